import { type QueueRegistry, queueOutbound, startPeriodicPass } from '@pilot/kit'
import type { FederationQueues, PartnerMessageType } from '@pilot/schemas'
import type { FastifyInstance } from 'fastify'
import { sql } from 'kysely'
import { startAuditChainer } from '../cases/audit.ts'
import type { CaseContext } from '../cases/context.ts'
import { startIdempotencyHousekeeping } from '../cases/idempotency-housekeeping.ts'
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
    if (rows.length === 0) return 0
    for (const row of rows) {
      await queueOutbound(context.queues, {
        messageId: row.id,
        to: row.to_city,
        type: row.type as PartnerMessageType,
        ref: row.ref,
        ...(row.usr ? { usr: row.usr } : {}),
        body: row.body,
      })
    }
    // One update for the pass rather than one per row: the relay runs after every submission. Should queueing a row
    // fail, the pass rolls back and every row of it is relayed again (the gateway recognises a message it has).
    await sql`update outbox set relayed_at = ${new Date()} where id = any(${rows.map((row) => row.id)}::uuid[])`.execute(
      trx,
    )
    return rows.length
  })
}

/** How long a relay pass after a submission waits for others to join it (the transfer is asynchronous anyway). */
const RELAY_SOON_MS = 20

/**
 * The intake service's background work: the outbox relay, the audit-log chainer and the consumers of the gateway's
 * queues.
 */
export function startIntakeWorkers(
  app: FastifyInstance,
  context: CaseContext,
  options: {
    relayIntervalMs: number
    resendAfterSeconds: number
    auditChainIntervalMs: number
    idempotencyRetentionDays: number
    jwksOf: JwksSource
  },
): { relaySoon: () => void } {
  const queues = app.queues as unknown as QueueRegistry<FederationQueues>
  queues.worker('federation.inbound', async (job) => {
    const outcome = await applyInbound(context, job.data, options.jwksOf)
    app.log.info({ message: job.data.messageId, type: job.data.type, outcome }, 'federation message applied')
  })
  queues.worker('federation.delivery', async (job) => {
    await applyDeliveryOutcome(context, job.data)
  })

  const relay = startPeriodicPass(
    () => relayOutbox(context, options.resendAfterSeconds),
    options.relayIntervalMs,
    (error) => app.log.warn({ err: error.message }, 'outbox relay pass failed; the rows wait in PostgreSQL'),
  )
  // A pass shortly after a submission, shared by every submission until then: a pass per submission (a transaction of
  // four statements, holding a connection while it queues) was twice the round trips of the submission's own writes,
  // and under load one pass now relays many rows. A pass already running may have read the outbox before these rows
  // committed, so it is waited for and a new one run.
  let soon: NodeJS.Timeout | undefined
  const relaySoon = () => {
    soon ??= setTimeout(() => {
      soon = undefined
      void relay.next()
    }, RELAY_SOON_MS)
  }
  const housekeeping = startIdempotencyHousekeeping(
    context.db,
    { piiKey: context.piiKey, retentionDays: options.idempotencyRetentionDays },
    app.log,
  )
  const chainer = startAuditChainer(context.db, options.auditChainIntervalMs, (error) =>
    app.log.warn({ err: error.message }, 'audit chain pass failed; the rows stay unlinked until the next pass'),
  )
  app.addHook('onClose', async () => {
    clearTimeout(soon)
    await relay.stop()
    await housekeeping.stop()
    // Link what this worker's own requests wrote, so a clean stop leaves no row unlinked for long.
    await chainer.stop()
    await chainer.now()
  })
  return { relaySoon }
}
