import type { QueueRegistry } from '@pilot/kit'
import type { FederationQueues, InboundMessage } from '@pilot/schemas'
import { type Kysely, sql } from 'kysely'
import type { GatewayDatabase } from '../db/schema.ts'

/** Completed hand-offs stay in Redis long enough for the relay to see that the local service finished them. */
const KEEP_COMPLETED_SECONDS = 24 * 3600

export function inboundJobId(partner: string, messageId: string): string {
  // BullMQ job ids may not contain ':'.
  return `${partner}-${messageId}`
}

interface StoredInbound {
  id: string
  partner: string
  message_id: string
  type: string
  ref: string
  usr: string | null
  claims: Record<string, unknown> | null
  created_at: Date
}

function payload(row: StoredInbound): InboundMessage {
  return {
    messageId: row.message_id,
    from: row.partner,
    type: row.type as InboundMessage['type'],
    ref: row.ref,
    ...(row.usr ? { usr: row.usr } : {}),
    body: row.claims?.body,
    receivedAt: row.created_at.toISOString(),
  }
}

/**
 * Puts a stored inbound message on the local services' queue. Failure (Redis down) is not an error for the partner:
 * the message is already stored and the relay hands it off when Redis returns.
 */
export async function handOff(
  db: Kysely<GatewayDatabase>,
  queues: QueueRegistry<FederationQueues>,
  row: StoredInbound,
): Promise<void> {
  await enqueueInbound(queues, row)
  await db
    .updateTable('messages')
    .set({ status: 'handed_off', handed_off_at: new Date(), updated_at: new Date() })
    .where('id', '=', row.id)
    .where('status', '=', 'received')
    .execute()
}

async function enqueueInbound(queues: QueueRegistry<FederationQueues>, row: StoredInbound): Promise<void> {
  await queues.queue('federation.inbound').add(row.type, payload(row), {
    jobId: inboundJobId(row.partner, row.message_id),
    attempts: 10,
    backoff: { type: 'exponential', delay: 1000 },
    removeOnComplete: { age: KEEP_COMPLETED_SECONDS },
    removeOnFail: false,
  })
}

export async function findInbound(db: Kysely<GatewayDatabase>, id: string): Promise<StoredInbound | undefined> {
  return db
    .selectFrom('messages')
    .select(['id', 'partner', 'message_id', 'type', 'ref', 'usr', 'claims', 'created_at'])
    .where('id', '=', id)
    .executeTakeFirst()
}

/**
 * One pass of the inbound relay. Messages not yet handed off are handed off; messages handed off a while ago are
 * checked against the queue: finished → consumed; missing (Redis lost it) → handed off again. The local service is
 * idempotent on message id, so a second hand-off is harmless; a lost one would not be. Rows are claimed with
 * SKIP LOCKED, so several gateway workers can relay at once.
 */
export async function relayInbound(
  db: Kysely<GatewayDatabase>,
  queues: QueueRegistry<FederationQueues>,
  { recheckAfterSeconds = 30, batch = 200 } = {},
): Promise<{ handedOff: number; consumed: number }> {
  let handedOff = 0
  let consumed = 0
  await db.transaction().execute(async (trx) => {
    const { rows } = await sql<StoredInbound & { status: string }>`
      select id, partner, message_id, type, ref, usr, claims, created_at, status from messages
      where direction = 'inbound'
        and (status = 'received' or (status = 'handed_off' and handed_off_at < now() - make_interval(secs => ${recheckAfterSeconds})))
      order by created_at
      limit ${batch}
      for update skip locked`.execute(trx)
    const queue = queues.queue('federation.inbound')
    for (const row of rows) {
      const job = await queue.getJob(inboundJobId(row.partner, row.message_id))
      const state = job ? await job.getState() : 'missing'
      if (state === 'completed') {
        await trx
          .updateTable('messages')
          .set({ status: 'consumed', consumed_at: new Date(), updated_at: new Date() })
          .where('id', '=', row.id)
          .execute()
        consumed++
      } else if (state === 'missing' || state === 'unknown') {
        await enqueueInbound(queues, { ...row, created_at: new Date(row.created_at) })
        await trx
          .updateTable('messages')
          .set({ status: 'handed_off', handed_off_at: new Date(), updated_at: new Date() })
          .where('id', '=', row.id)
          .execute()
        handedOff++
      } else {
        // Still waiting, active, delayed or failed in the local service: look again later.
        await trx.updateTable('messages').set({ handed_off_at: new Date() }).where('id', '=', row.id).execute()
      }
    }
  })
  return { handedOff, consumed }
}
