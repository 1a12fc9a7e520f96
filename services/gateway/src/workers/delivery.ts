import { type QueueRegistry, startPeriodicPass } from '@pilot/kit'
import type { FederationQueues } from '@pilot/schemas'
import type { FastifyInstance } from 'fastify'
import type { Kysely } from 'kysely'
import type { GatewayDatabase } from '../db/schema.ts'
import { relayInbound } from '../federation/handoff.ts'
import { type DeliveryContext, deliver } from '../federation/outbound.ts'

/**
 * The gateway's background work: the outbound delivery worker and the inbound relay. Both stop with the instance:
 * the worker finishes the deliveries in flight, the relay its current pass.
 */
export function startGatewayWorkers(
  app: FastifyInstance,
  options: {
    delivery: DeliveryContext
    db: Kysely<GatewayDatabase>
    concurrency: number
    relayIntervalMs: number
    relayRecheckSeconds: number
  },
): void {
  const queues = app.queues as unknown as QueueRegistry<FederationQueues>
  const worker = queues.worker('federation.outbound', (job, token) => deliver(options.delivery, job, token), {
    concurrency: options.concurrency,
  })
  worker.on('failed', (job, error) => {
    if (job) app.log.warn({ message: job.id, reason: error.message }, 'outbound message dead-lettered')
  })

  const relay = startPeriodicPass(
    async () => {
      const outcome = await relayInbound(options.db, queues, { recheckAfterSeconds: options.relayRecheckSeconds })
      if (outcome.handedOff > 0) app.log.info(outcome, 'relayed inbound messages')
    },
    options.relayIntervalMs,
    (error) => app.log.warn({ err: error.message }, 'inbound relay pass failed; will retry'),
  )
  app.addHook('onClose', () => relay.stop())
}
