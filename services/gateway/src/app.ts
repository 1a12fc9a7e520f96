import { type BuildOptions, buildServiceApp, jwksRoutes, type QueueRegistry, type ServiceDefinition } from '@pilot/kit'
import type { FederationQueues } from '@pilot/schemas'
import { Signer } from '@pilot/signing'
import type { FastifyInstance } from 'fastify'
import type { Kysely } from 'kysely'
import type { GatewayConfig } from './config.ts'
import { migrations } from './db/migrations/index.ts'
import type { GatewayDatabase } from './db/schema.ts'
import { PartnerDirectory } from './federation/partners.ts'
import { FederationProblem } from './federation/problems.ts'
import { gatewayMetrics } from './metrics.ts'
import { boardPlugin } from './plugins/board.ts'
import { federationRoutes } from './routes/federation.ts'
import { opsRoutes } from './routes/ops.ts'
import { startGatewayWorkers } from './workers/delivery.ts'

export const gatewayService: ServiceDefinition = {
  name: 'gateway',
  title: 'Federation gateway',
  description:
    'The only door between pilot cities: signs and verifies federation messages, publishes the JWKS, delivers with retries and dead-lettering.',
  version: '0.1.0',
  migrations,
}

export async function buildApp(config: GatewayConfig, options: BuildOptions = {}): Promise<FastifyInstance> {
  return buildServiceApp(
    gatewayService,
    config,
    async (app) => {
      const db = app.db as Kysely<GatewayDatabase>
      const queues = app.queues as unknown as QueueRegistry<FederationQueues>
      const signer = new Signer(config.keys)
      const partners = new PartnerDirectory(config.pilot, config.cityProfile, config.partnerJwks)
      const metrics = gatewayMetrics(app.metrics)

      await app.register(jwksRoutes, {
        keys: config.keys,
        cacheSeconds: config.partnerJwks.cacheSeconds,
        summary: "The city's public signing keys (current, next and retired)",
      })
      if (config.mode !== 'worker') {
        await app.register(federationRoutes, {
          metrics,
          context: {
            city: config.city,
            db,
            partners,
            signer,
            lifetimeSeconds: config.messageLifetimeSeconds,
            rateLimit: async (partner) => {
              const window = Math.floor(Date.now() / 60_000)
              const key = `${config.redisPrefix}:ratelimit:${partner}:${window}`
              // Fail open: a Redis outage must not stop federation; the messages go to PostgreSQL regardless.
              const count = await app.redis
                .multi()
                .incr(key)
                .expire(key, 120)
                .exec()
                .then((results) => Number(results?.[0]?.[1] ?? 0))
                .catch(() => 0)
              if (count > config.inboundRateLimitPerMinute) {
                throw new FederationProblem(
                  'rate-limited',
                  `${partner} sent more than ${config.inboundRateLimitPerMinute} messages this minute`,
                )
              }
            },
          },
        })
        await app.register(opsRoutes, { db })
        if (options.connect !== false) await app.register(boardPlugin, { queues })
      }
      if (config.mode !== 'api' && options.connect !== false) {
        startGatewayWorkers(app, {
          db,
          concurrency: config.delivery.concurrency,
          relayIntervalMs: config.relayIntervalMs,
          relayRecheckSeconds: config.relayRecheckSeconds,
          delivery: {
            city: config.city,
            db,
            queues,
            partners,
            signer,
            lifetimeSeconds: config.messageLifetimeSeconds,
            ...config.delivery,
            onDelivered: (message, enqueuedAt) =>
              metrics.deliveryLatency.observe(
                { partner: message.to, type: message.type },
                (Date.now() - enqueuedAt) / 1000,
              ),
            onOutcome: (message, outcome) =>
              metrics.messages.inc({ direction: 'outbound', partner: message.to, type: message.type, outcome }),
          },
        })
      }
    },
    options,
  )
}
