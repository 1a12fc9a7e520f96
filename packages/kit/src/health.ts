import { HealthLive, HealthReady, PROBLEM_TYPES } from '@pilot/schemas'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { sql } from 'kysely'
import { problemResponses } from './openapi.ts'
import { sendProblem } from './problems.ts'

const CHECK_TIMEOUT_MS = 1500

async function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

async function up(check: () => Promise<unknown>): Promise<'up' | 'down'> {
  try {
    await within(check(), CHECK_TIMEOUT_MS)
    return 'up'
  } catch {
    return 'down'
  }
}

/**
 * Liveness says the process can answer at all (restart it if not); readiness says it can do its work: PostgreSQL and
 * Redis both answer. A load balancer routes only to ready instances.
 */
export const healthPlugin = fp(
  async (app: FastifyInstance) => {
    app.get(
      '/health/live',
      {
        schema: { tags: ['health'], summary: 'Liveness: the process answers', response: { 200: HealthLive } },
        logLevel: 'warn',
      },
      async () => ({ status: 'ok' as const }),
    )

    app.get(
      '/health/ready',
      {
        schema: {
          tags: ['health'],
          summary: 'Readiness: PostgreSQL and Redis both answer',
          response: { 200: HealthReady, ...problemResponses({ 503: 'PostgreSQL or Redis does not answer' }) },
        },
        logLevel: 'warn',
      },
      async (_request, reply) => {
        const [postgres, redis] = await Promise.all([
          up(() => sql`select 1`.execute(app.db)),
          up(() => app.redis.ping()),
        ])
        if (postgres === 'up' && redis === 'up') return { status: 'ready' as const, checks: { postgres, redis } }
        const down = [postgres === 'down' && 'PostgreSQL', redis === 'down' && 'Redis'].filter(Boolean).join(' and ')
        return sendProblem(reply, {
          type: PROBLEM_TYPES.notReady,
          title: 'Service not ready',
          status: 503,
          detail: `${down} did not answer`,
          checks: { postgres, redis },
        })
      },
    )
  },
  { name: 'health', dependencies: ['db', 'redis'] },
)
