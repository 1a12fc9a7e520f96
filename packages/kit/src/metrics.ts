import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { collectDefaultMetrics, Histogram, Registry } from 'prom-client'
import { problemResponses } from './openapi.ts'
import { problems } from './problems.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** The instance's own Prometheus registry; services register their counters here. */
    metrics: Registry
  }
}

const digest = (text: string) => createHash('sha256').update(text).digest()

/**
 * Prometheus metrics at GET /metrics. Each instance has its own registry (tests build many instances in one process).
 * Request durations are labelled by route pattern, never by raw URL: a URL may hold a case id or worse.
 *
 * With `token` set, a scrape must send it as a bearer token: the gateway's port is reachable by partner cities, and
 * its counters by partner and message type are our business, not theirs. The token is compared in constant time (as
 * digests, so its length does not show either).
 */
export const metricsPlugin = fp(
  async (app: FastifyInstance, options: { service: string; city: string; token?: string }) => {
    const expected = options.token === undefined ? undefined : digest(`Bearer ${options.token}`)
    const registry = new Registry()
    registry.setDefaultLabels({ service: options.service, city: options.city })
    collectDefaultMetrics({ register: registry })
    const duration = new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request duration by route pattern, method and status',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    })
    app.decorate('metrics', registry)

    app.addHook('onResponse', (request, reply, done) => {
      duration.observe(
        {
          method: request.method,
          route: request.routeOptions.url ?? 'unmatched',
          status_code: String(reply.statusCode),
        },
        reply.elapsedTime / 1000,
      )
      done()
    })

    app.get(
      '/metrics',
      {
        schema: {
          tags: ['health'],
          summary: 'Prometheus metrics (text exposition format)',
          produces: ['text/plain'],
          response: {
            200: { type: 'string', description: 'Prometheus text format 0.0.4' },
            ...problemResponses({ 401: 'METRICS_TOKEN_FILE is set and the bearer token is missing or wrong' }),
          },
        },
        logLevel: 'warn',
        ...(expected
          ? {
              onRequest: async (request) => {
                const sent = request.headers.authorization
                if (typeof sent !== 'string' || !timingSafeEqual(digest(sent), expected)) {
                  throw problems.unauthorized('GET /metrics needs the metrics bearer token (METRICS_TOKEN_FILE)')
                }
              },
            }
          : {}),
      },
      async (_request, reply) => {
        reply.type(registry.contentType)
        return registry.metrics()
      },
    )
  },
  { name: 'metrics' },
)
