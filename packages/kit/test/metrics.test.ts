import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ConfigError } from '../src/index.ts'
import { buildFixtureApp } from './fixture-app.ts'

const dir = mkdtempSync(join(tmpdir(), 'metrics-token-'))
const tokenFile = (name: string, text: string) => {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}
const TOKEN = 'scrape-token-0123456789abcdefghijklmnop'

describe('GET /metrics with METRICS_TOKEN_FILE', () => {
  let app: FastifyInstance
  beforeAll(async () => {
    app = await buildFixtureApp({ METRICS_TOKEN_FILE: tokenFile('token', `${TOKEN}\n`) })
  })
  afterAll(() => app.close())

  it('answers the scrape that sends the token, and 401 problem+json to any other', async () => {
    const ok = await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } })
    expect(ok.statusCode).toBe(200)
    expect(ok.body).toContain('process_resident_memory_bytes')
    for (const authorization of [undefined, `Bearer ${TOKEN.slice(0, -1)}`, `Bearer ${TOKEN}x`, TOKEN, 'Bearer ']) {
      const refused = await app.inject({
        method: 'GET',
        url: '/metrics',
        headers: authorization === undefined ? {} : { authorization },
      })
      expect(refused.statusCode, String(authorization)).toBe(401)
      expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/)
      expect(refused.body).not.toContain('process_resident_memory_bytes')
    }
  })

  it('leaves the other routes as they were', async () => {
    expect((await app.inject({ method: 'GET', url: '/health/live' })).statusCode).toBe(200)
  })
})

describe('METRICS_TOKEN_FILE', () => {
  it('stops the service at start when the token is short, spans lines or cannot be read', async () => {
    for (const path of [
      tokenFile('short', 'too-short'),
      tokenFile('two-lines', `${TOKEN}\n${TOKEN}`),
      join(dir, 'missing'),
    ]) {
      await expect(buildFixtureApp({ METRICS_TOKEN_FILE: path })).rejects.toBeInstanceOf(ConfigError)
    }
  })

  it('is optional: unset, /metrics stays open', async () => {
    const open = await buildFixtureApp()
    try {
      expect((await open.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(200)
    } finally {
      await open.close()
    }
  })
})
