import { type QueueRegistry, queueOutbound } from '@pilot/kit'
import type { FederationQueues, PartnerMessageType } from '@pilot/schemas'
import type { FastifyInstance } from 'fastify'
import { sql } from 'kysely'
import type { CaseContext } from '../cases/context.ts'
import { applyDeliveryOutcome, applyInbound, type JwksSource } from '../cases/inbound.ts'

/**
 * One pass of the outbox relay: rows not yet on the gateway's queue go on it; rows queued long ago with no delivery
 * outcome go again (Redis may have lost them; the gateway recognises a message it already delivered). Rows are claimed
 * with SKIP LOCKED so several workers relay side by side. Redis down: the pass fails, the rows wait in PostgreSQL.
 */
export async function relayOutbox(context: CaseContext, resendAfterSeconds: number, batch = 200): Promise<number> {
  return context.db.transaction().execute(async (trx) => {
    const { rows } = await sql<{
      id: string
      to_city: string
      type: string
      ref: string
      usr: string | null
      body: unknown
    }>`
      select id, to_city, type, ref, usr, body from outbox
      where outcome is null and (relayed_at is null or relayed_at < now() - make_interval(secs => ${resendAfterSeconds}))
      order by created_at limit ${batch} for update skip locked`.execute(trx)
    for (const row of rows) {
      await queueOutbound(context.queues, {
        messageId: row.id,
        to: row.to_city,
        type: row.type as PartnerMessageType,
        ref: row.ref,
        ...(row.usr ? { usr: row.usr } : {}),
        body: row.body,
      })
      await trx.updateTable('outbox').set({ relayed_at: new Date() }).where('id', '=', row.id).execute()
    }
    return rows.length
  })
}

/** The intake service's background work: the outbox relay and the consumers of the gateway's queues. */
export function startIntakeWorkers(
  app: FastifyInstance,
  context: CaseContext,
  options: { relayIntervalMs: number; resendAfterSeconds: number; jwksOf: JwksSource },
): { relayNow: () => Promise<void> } {
  const queues = app.queues as unknown as QueueRegistry<FederationQueues>
  queues.worker('federation.inbound', async (job) => {
    const outcome = await applyInbound(context, job.data, options.jwksOf)
    app.log.info({ message: job.data.messageId, type: job.data.type, outcome }, 'federation message applied')
  })
  queues.worker('federation.delivery', async (job) => {
    await applyDeliveryOutcome(context, job.data)
  })

  let relaying: Promise<void> | undefined
  const relayNow = () => {
    relaying ??= relayOutbox(context, options.resendAfterSeconds)
      .then(() => undefined)
      .catch((error: Error) =>
        app.log.warn({ err: error.message }, 'outbox relay pass failed; the rows wait in PostgreSQL'),
      )
      .finally(() => {
        relaying = undefined
      })
    return relaying
  }
  const timer = setInterval(() => void relayNow(), options.relayIntervalMs)
  timer.unref()
  app.addHook('onClose', async () => {
    clearInterval(timer)
    await relaying
  })
  return { relayNow }
}
