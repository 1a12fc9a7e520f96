import type { QueueRegistry } from '@pilot/kit'
import type { FederationQueues, InboundMessage } from '@pilot/schemas'
import type { FastifyInstance } from 'fastify'
import { type Kysely, sql } from 'kysely'
import type { GatewayDatabase } from '../db/schema.ts'

/** Completed hand-offs stay in Redis long enough for the relay to see that the local service finished them. */
const KEEP_COMPLETED_SECONDS = 24 * 3600

export function inboundJobId(partner: string, messageId: string): string {
  // BullMQ job ids may not contain ':'.
  return `${partner}-${messageId}`
}

export interface StoredInbound {
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
 * Puts a stored inbound message on the local services' queue, then marks its row `handed_off` (through `marks`, many
 * rows to a statement). Failure (Redis down) is not an error for the partner: the message is already stored and the
 * relay hands it off when Redis returns. The row is marked only once the job is on the queue; should the mark be lost
 * (a crash before it is written, the database failing it), the row stays `received` and the next relay pass finds its
 * job on the queue and leaves it there.
 */
export async function handOff(
  queues: QueueRegistry<FederationQueues>,
  marks: HandOffMarks,
  row: StoredInbound,
): Promise<void> {
  await enqueueInbound(queues, row)
  marks.mark(row.id)
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

/**
 * `is true` keeps the status test out of the index choice: rows are found by primary key only. Without it the planner
 * may AND in a scan of messages_open for `received`, which reads every dead `received` entry left by earlier hand-offs.
 */
const MARK_HANDED_OFF = {
  name: 'gateway-inbound-handed-off',
  text: `update messages set status = 'handed_off', handed_off_at = now(), updated_at = now()
    where id = any($1::uuid[]) and (status = 'received') is true`,
}

/**
 * The `received` → `handed_off` marks of accepted messages, written many to a statement: one statement runs at a time,
 * and the marks made while it runs go together into the next. Under load that is one commit for many messages instead
 * of one each; alone, a mark is written at once. The partner's 202 does not wait for the mark: the message is stored
 * and on the queue by then, and the mark only tells the relay it need not look at the row.
 *
 * Nothing is weakened by a mark written late or never: a row still `received` is picked up by the relay's next pass
 * (every RELAY_INTERVAL_MS), which checks the job on the queue and hands the message off again only if the job is
 * missing (the local service is idempotent on the message id, and the job id is fixed, so a double hand-off adds
 * nothing). A mark never precedes the job: `mark` is called only after the job was added.
 */
export class HandOffMarks {
  #pending: string[] = []
  #writing: Promise<void> | undefined

  constructor(
    private readonly pool: FastifyInstance['pgPool'],
    private readonly onError: (error: Error, rows: number) => void,
  ) {}

  mark(id: string): void {
    this.#pending.push(id)
    this.#writing ??= this.#write()
  }

  async #write(): Promise<void> {
    try {
      while (this.#pending.length > 0) {
        const ids = this.#pending
        this.#pending = []
        await this.pool
          .query({ ...MARK_HANDED_OFF, values: [ids] })
          .catch((error: Error) => this.onError(error, ids.length))
      }
    } finally {
      this.#writing = undefined
    }
  }

  /** Resolves once every mark made so far has been written (or has failed): before the pool closes. */
  async flush(): Promise<void> {
    while (this.#writing) await this.#writing
  }
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
    // Two statements, not one with an OR: each is then a plain scan of messages_open in created_at order that stops at
    // the limit. The OR made it a bitmap scan of every `received` and every `handed_off` entry on every pass (a bitmap
    // scan never marks the entries of dead row versions, which every hand-off leaves behind until vacuum), about 85 ms
    // a pass at 10 000 rows. A row is handed off after it is created, so `created_at` older than the recheck interval
    // is implied by `handed_off_at` older than it, and bounds the second scan to rows that old.
    const columns = sql`id, partner, message_id, type, ref, usr, claims, created_at, status`
    const { rows: waiting } = await sql<StoredInbound & { status: string }>`
      select ${columns} from messages
      where direction = 'inbound' and status = 'received'
      order by created_at
      limit ${batch}
      for update skip locked`.execute(trx)
    const { rows: recheck } =
      waiting.length < batch
        ? await sql<StoredInbound & { status: string }>`
            select ${columns} from messages
            where direction = 'inbound' and status = 'handed_off'
              and created_at < now() - make_interval(secs => ${recheckAfterSeconds})
              and handed_off_at < now() - make_interval(secs => ${recheckAfterSeconds})
            order by created_at
            limit ${batch - waiting.length}
            for update skip locked`.execute(trx)
        : { rows: [] }
    const rows = [...waiting, ...recheck]
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
        await sql`
          update messages set status = 'handed_off', handed_off_at = now(),
            updated_at = case when status = 'received' then now() else updated_at end
          where id = ${row.id}`.execute(trx)
        handedOff++
      } else {
        // Still waiting, active, delayed or failed in the local service: on the queue, so handed off (a `received` row
        // here is one whose mark was lost or not yet written); look again after the recheck interval.
        await sql`
          update messages set status = 'handed_off', handed_off_at = now(),
            updated_at = case when status = 'received' then now() else updated_at end
          where id = ${row.id}`.execute(trx)
      }
    }
  })
  return { handedOff, consumed }
}
