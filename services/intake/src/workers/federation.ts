import { type QueueRegistry, queueOutbound, queueOutboundFirst, startPeriodicPass } from '@pilot/kit'
import type { FederationQueues, OutboundMessage } from '@pilot/schemas'
import type { FastifyInstance } from 'fastify'
import { sql } from 'kysely'
import { startAuditChainer } from '../cases/audit.ts'
import type { CaseContext } from '../cases/context.ts'
import { startIdempotencyHousekeeping } from '../cases/idempotency-housekeeping.ts'
import { applyDeliveryOutcome, applyInbound, type JwksSource } from '../cases/inbound.ts'
import { type OutboxFields, outboundMessageOf } from '../cases/outbox.ts'
import { openForm } from '../cases/sealing.ts'
import { type ApplicationForm, transferBodyOf } from '../cases/transfer.ts'

/**
 * An outbox row as the relay reads it. A case.transfer stores no body, and comes with the columns of its case that
 * the body is built from (null for every other row).
 */
type RelayRow = Omit<OutboxFields, 'body'> &
  NullableColumns<Parameters<typeof transferBodyOf>[1] & { form_sealed: Buffer }> & {
    body: unknown | null
    relayed_at: Date | null
  }
type NullableColumns<T> = { [K in keyof T]: T[K] | null }

/** The message a row stands for; a transfer's body is built from its case as the submission built it. */
function messageOf(context: CaseContext, row: RelayRow) {
  if (row.body !== null) return outboundMessageOf(row)
  const { partner_city, category, submitted_at, household_subjects, attestation, form_sealed } = row
  if (!partner_city || !category || !submitted_at || !household_subjects || !form_sealed) {
    throw new Error(`outbox row ${row.id} has neither a body nor a case to build one from`)
  }
  const form = openForm<ApplicationForm>(context.piiKey, form_sealed)
  const columns = { partner_city, category, submitted_at, household_subjects, attestation }
  return outboundMessageOf({ ...row, body: transferBodyOf(context.city, columns, form) })
}

/**
 * One pass of the outbox relay: rows not yet on the gateway's queue go on it; rows queued long ago with no delivery
 * outcome go again (Redis may have lost them; the gateway recognises a message it already delivered). Rows are claimed
 * with SKIP LOCKED so several workers relay side by side. Redis down: the pass fails, the rows wait in PostgreSQL.
 *
 * Never-queued rows come first, in the order they were written, then the rows queued longest ago; the scan runs on the
 * index of exactly that order (outbox_relay_due), so a pass with nothing due reads nothing however many rows wait for
 * their outcome.
 */
export async function relayOutbox(context: CaseContext, resendAfterSeconds: number, batch = 200): Promise<number> {
  const unbuilt: string[] = []
  const relayed = await context.db.transaction().execute(async (trx) => {
    const { rows } = await sql<RelayRow>`
      select o.id, o.to_city, o.type, o.ref, o.usr, o.body, o.relayed_at, c.partner_city, c.category, c.submitted_at,
        c.household_subjects, c.attestation, c.form_sealed
      from outbox o left join cases c on o.body is null and c.id = o.case_id
      where o.outcome is null
        and coalesce(o.relayed_at, '-infinity'::timestamptz) < now() - make_interval(secs => ${resendAfterSeconds})
      order by coalesce(o.relayed_at, '-infinity'::timestamptz), o.created_at
      limit ${batch} for update of o skip locked`.execute(trx)
    // A transfer whose form cannot be opened (a data key missing from this worker, say) stays unrelayed, and is named
    // below, rather than holding back every other message of the pass.
    const ready: { row: RelayRow; message: OutboundMessage }[] = []
    for (const row of rows) {
      try {
        ready.push({ row, message: messageOf(context, row) })
      } catch {
        unbuilt.push(row.id)
      }
    }
    if (ready.length === 0) return 0
    // Rows never relayed go in one round trip; a resend checks its job first (queueOutbound re-adds a finished one).
    const first = ready.filter(({ row }) => row.relayed_at === null).map(({ message }) => message)
    const again = ready.filter(({ row }) => row.relayed_at !== null).map(({ message }) => message)
    await queueOutboundFirst(context.queues, first)
    await Promise.all(again.map((message) => queueOutbound(context.queues, message)))
    // One update for the pass rather than one per row: the relay runs after every submission. Should queueing a row
    // fail, the pass rolls back and every row of it is relayed again (the gateway recognises a message it has).
    const ids = ready.map(({ row }) => row.id)
    await sql`update outbox set relayed_at = ${new Date()} where id = any(${ids}::uuid[])`.execute(trx)
    return ready.length
  })
  if (unbuilt.length > 0) {
    throw new Error(`outbox rows ${unbuilt.join(', ')} could not be built from their cases; they wait in PostgreSQL`)
  }
  return relayed
}

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
): void {
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
  const housekeeping = startIdempotencyHousekeeping(
    context.db,
    { piiKey: context.piiKey, retentionDays: options.idempotencyRetentionDays },
    app.log,
  )
  const chainer = startAuditChainer(context.db, options.auditChainIntervalMs, (error) =>
    app.log.warn({ err: error.message }, 'audit chain pass failed; the rows stay unlinked until the next pass'),
  )
  app.addHook('onClose', async () => {
    await relay.stop()
    await housekeeping.stop()
    // Link what this worker's own requests wrote, so a clean stop leaves no row unlinked for long.
    await chainer.stop()
    await chainer.now()
  })
}
