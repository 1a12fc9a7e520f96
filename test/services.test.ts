import { readFile } from 'node:fs/promises'
import { type ServiceProcess, serviceEnv, startServiceProcess } from '@pilot/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

/**
 * The three services of one city, each started as its own process the way the pilot starts them, against this file's
 * PostgreSQL database and Redis.
 */
const SERVICES = ['residence', 'intake', 'gateway'] as const
const ID_NUMBER = '44030419900101123X'

describe.each(SERVICES)('%s as a process', (service) => {
  let running: ServiceProcess
  const env = serviceEnv('zhongshan', { MIGRATE_ON_START: 'true' })

  beforeAll(async () => {
    running = await startServiceProcess(service, env)
  })
  afterAll(async () => {
    await running?.stop('SIGKILL')
  })

  it('is live and ready', async () => {
    expect(await (await fetch(`${running.url}/health/live`)).json()).toEqual({ status: 'ok' })
    const ready = await fetch(`${running.url}/health/ready`)
    expect(ready.status).toBe(200)
    expect(await ready.json()).toEqual({ status: 'ready', checks: { postgres: 'up', redis: 'up' } })
  })

  it('serves Prometheus metrics labelled with its service and city', async () => {
    await fetch(`${running.url}/health/live`)
    const response = await fetch(`${running.url}/metrics`)
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/)
    const text = await response.text()
    const live = text
      .split('\n')
      .find((line) => line.startsWith('http_request_duration_seconds_count') && line.includes('route="/health/live"'))
    expect(live).toContain(`service="${service}"`)
    expect(live).toContain('city="zhongshan"')
    expect(text).toContain('process_resident_memory_bytes')
  })

  it('serves its OpenAPI 3.1 document and Swagger UI', async () => {
    const document = (await (await fetch(`${running.url}/docs/json`)).json()) as { openapi: string; paths: object }
    expect(document.openapi).toBe('3.1.0')
    expect(Object.keys(document.paths)).toEqual(expect.arrayContaining(['/health/live', '/health/ready', '/metrics']))
    expect((await fetch(`${running.url}/docs/`)).status).toBe(200)
  })

  it('keeps the caller’s request id, or makes one', async () => {
    const kept = await fetch(`${running.url}/health/live`, { headers: { 'x-request-id': 'caseworker-req-42' } })
    expect(kept.headers.get('x-request-id')).toBe('caseworker-req-42')
    const made = await fetch(`${running.url}/health/live`, { headers: { 'x-request-id': 'bad id with spaces' } })
    expect(made.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/)
  })

  it('logs no identity number that a request carried', async () => {
    const response = await fetch(`${running.url}/v1/lookup/${ID_NUMBER}?idNumber=${ID_NUMBER}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-id-number': ID_NUMBER },
      body: JSON.stringify({ idNumber: ID_NUMBER, phone: '13912345678' }),
    })
    expect(response.status).toBe(404)
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/)
    // The log is written asynchronously: wait (a bounded while) for the request's line to reach the file.
    let logged = ''
    for (let tries = 0; tries < 50 && !logged.includes('/v1/lookup/'); tries++) {
      if (tries > 0) await new Promise((resolve) => setTimeout(resolve, 50))
      logged = await readFile(env.LOG_FILE as string, 'utf8')
    }
    expect(logged).toContain('/v1/lookup/')
    expect(logged).not.toContain(ID_NUMBER)
    expect(logged).not.toContain(ID_NUMBER.slice(0, 17))
    expect(logged).not.toContain('13912345678')
  })

  it('shuts down cleanly on SIGTERM', async () => {
    const code = await running.stop('SIGTERM')
    expect(code).toBe(0)
    const logged = await readFile(env.LOG_FILE as string, 'utf8')
    expect(logged).toMatch(new RegExp(`"service":"${service}".*"signal":"SIGTERM".*"msg":"shutting down"`))
  })
})

describe('configuration errors stop a service at start', () => {
  it.each(SERVICES)('%s exits non-zero naming the missing or invalid variable', async (service) => {
    const env = serviceEnv('zhuhai')
    delete (env as Record<string, string | undefined>).DATABASE_URL
    const broken = await startServiceProcess(service, { ...env, REDIS_URL: 'http://not-redis' }, { waitReady: false })
    const code = await broken.exited
    expect(code).not.toBe(0)
    expect(broken.output()).toContain('DATABASE_URL is required')
    expect(broken.output()).toMatch(/REDIS_URL="http:\/\/not-redis" is invalid/)
  })
})
