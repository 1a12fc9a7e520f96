import { type BuildOptions, buildServiceApp, jwksRoutes, type QueueRegistry, type ServiceDefinition } from '@pilot/kit'
import type { FederationQueues } from '@pilot/schemas'
import { Signer } from '@pilot/signing'
import type { FastifyInstance } from 'fastify'
import type { Kysely } from 'kysely'
import type { GatewayConfig } from './config.ts'
import { migrations } from './db/migrations/index.ts'
import type { GatewayDatabase } from './db/schema.ts'
import { PartnerHttpClient } from './federation/http.ts'
import { InboundStore } from './federation/inbound.ts'
import { OutboundStore } from './federation/outbound.ts'
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

/** The count of a rate-limit window after this message; the window's key expires once its minute is well past. */
const RATE_COUNT = `local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count`

interface RateCounting {
  federationRateCount(key: string, expireSeconds: number): Promise<number>
}

export interface GatewayBuildOptions extends BuildOptions {
  /**
   * The clock inbound verification reads (message times, receipts, the rate-limit minute). Code only, never
   * configuration, so a deployment cannot be set to accept expired messages: tests move it to replay a captured
   * message hours later without sleeping.
   */
  clock?: () => Date
}

export async function buildApp(config: GatewayConfig, options: GatewayBuildOptions = {}): Promise<FastifyInstance> {
  const clock = options.clock ?? (() => new Date())
  return buildServiceApp(
    gatewayService,
    config,
    async (app) => {
      const db = app.db as Kysely<GatewayDatabase>
      const queues = app.queues as unknown as QueueRegistry<FederationQueues>
      const signer = new Signer(config.keys)
      const partners = new PartnerDirectory(config.pilot, config.cityProfile, config.partnerJwks)
      const metrics = gatewayMetrics(app.metrics)
      // Every inbound message counts against its partner's minute: one script call (INCR, and EXPIRE on the window's
      // first message), where MULTI/INCR/EXPIRE/EXEC was four commands and a transaction per message.
      app.redis.defineCommand('federationRateCount', { numberOfKeys: 1, lua: RATE_COUNT })
      const rateCounter = app.redis as unknown as RateCounting

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
            store: new InboundStore(app.pgPool),
            clock,
            rateLimit: async (partner) => {
              const window = Math.floor(clock().getTime() / 60_000)
              const key = `${config.redisPrefix}:ratelimit:${partner}:${window}`
              // Fail open: a Redis outage must not stop federation; the messages go to PostgreSQL regardless.
              const count = await rateCounter.federationRateCount(key, 120).catch(() => 0)
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
        // As many sockets per partner as deliveries in flight: a delivery never waits for a connection.
        const http = new PartnerHttpClient({ maxSockets: config.delivery.concurrency })
        app.addHook('onClose', async () => http.close())
        startGatewayWorkers(app, {
          db,
          concurrency: config.delivery.concurrency,
          relayIntervalMs: config.relayIntervalMs,
          relayRecheckSeconds: config.relayRecheckSeconds,
          delivery: {
            city: config.city,
            store: new OutboundStore(app.pgPool),
            http,
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
