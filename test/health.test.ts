import { PROBLEM_TYPES } from '@pilot/schemas'
import { serviceEnv, TcpProxy, testResources } from '@pilot/testing'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp as buildGateway } from '../services/gateway/src/app.ts'
import { readGatewayConfig } from '../services/gateway/src/config.ts'
import { buildApp as buildIntake } from '../services/intake/src/app.ts'
import { readIntakeConfig } from '../services/intake/src/config.ts'
import { buildApp as buildResidence } from '../services/residence/src/app.ts'
import { readResidenceConfig } from '../services/residence/src/config.ts'

const SERVICES = {
  residence: (env: Record<string, string>) => buildResidence(readResidenceConfig(serviceEnv('shenzhen', env))),
  intake: (env: Record<string, string>) => buildIntake(readIntakeConfig(serviceEnv('shenzhen', env))),
  gateway: (env: Record<string, string>) => buildGateway(readGatewayConfig(serviceEnv('shenzhen', env))),
}

async function ready(app: FastifyInstance) {
  const response = await app.inject({ method: 'GET', url: '/health/ready' })
  return { status: response.statusCode, type: response.headers['content-type'], body: response.json() }
}

/** Polls until readiness reaches `status` (reconnection is asynchronous), failing after `ms`. */
async function until(app: FastifyInstance, status: number, ms = 15_000) {
  const deadline = Date.now() + ms
  let last = await ready(app)
  while (last.status !== status && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 200))
    last = await ready(app)
  }
  return last
}

describe.each(Object.entries(SERVICES))('%s readiness follows PostgreSQL and Redis', (_service, build) => {
  let postgres: TcpProxy
  let redis: TcpProxy
  let app: FastifyInstance

  beforeAll(async () => {
    const { databaseUrl, redisUrl } = testResources()
    postgres = await TcpProxy.forUrl(databaseUrl).start()
    redis = await TcpProxy.forUrl(redisUrl).start()
    app = await build({ DATABASE_URL: postgres.rewrite(databaseUrl), REDIS_URL: redis.rewrite(redisUrl) })
    await app.ready()
  })
  afterAll(async () => {
    await app.close()
    await Promise.all([postgres.stop(), redis.stop()])
  })

  it('is live and ready when both answer', async () => {
    expect((await app.inject({ method: 'GET', url: '/health/live' })).json()).toEqual({ status: 'ok' })
    expect(await until(app, 200)).toMatchObject({
      status: 200,
      body: { status: 'ready', checks: { postgres: 'up', redis: 'up' } },
    })
  })

  it('answers 503 problem+json naming PostgreSQL when PostgreSQL stops answering, and recovers', async () => {
    postgres.cut()
    const down = await until(app, 503)
    expect(down.type).toMatch(/^application\/problem\+json/)
    expect(down.body).toMatchObject({
      type: PROBLEM_TYPES.notReady,
      status: 503,
      checks: { postgres: 'down', redis: 'up' },
    })
    expect(down.body.detail).toContain('PostgreSQL')
    postgres.restore()
    expect((await until(app, 200)).status).toBe(200)
  })

  it('answers 503 naming Redis when Redis stops answering, and recovers without a restart', async () => {
    redis.cut()
    const down = await until(app, 503)
    expect(down.body).toMatchObject({ type: PROBLEM_TYPES.notReady, checks: { postgres: 'up', redis: 'down' } })
    redis.restore()
    expect((await until(app, 200)).status).toBe(200)
  })

  it('is not ready when started against ports where nothing listens', async () => {
    const dead = await build({
      DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none',
      REDIS_URL: 'redis://127.0.0.1:1',
    })
    try {
      await dead.ready()
      const response = await ready(dead)
      expect(response).toMatchObject({ status: 503, body: { checks: { postgres: 'down', redis: 'down' } } })
      expect((await dead.inject({ method: 'GET', url: '/health/live' })).statusCode).toBe(200)
    } finally {
      await dead.close()
    }
  })
})
