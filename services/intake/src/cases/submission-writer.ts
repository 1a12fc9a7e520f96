import {
  type Batcher,
  type BinaryElementType,
  type BinaryElementValue,
  binaryArray,
  createBatcher,
  type QueueRegistry,
  queueOutboundFirst,
} from '@pilot/kit'
import type { FederationQueues, OutboundMessage } from '@pilot/schemas'
import type pg from 'pg'
import type { CaseRow } from '../db/schema.ts'
import { outboundMessageOf } from './outbox.ts'

/** Everything one submission writes, worked out before it is written (the response is built from the same values). */
export interface SubmissionWrite {
  /** The caseworker, and the Idempotency-Key they sent. */
  actor: string
  role: string
  key: string
  requestHash: string
  /** The 201 response, sealed like a form, stored with the key for repeats. */
  responseSealed: Buffer
  /** The case row exactly as it is written. */
  row: CaseRow
  /** The residence decision's event: its action and detail (the status it leads to is the row's). */
  action: string
  verified: object
  /** The case.transfer outbox row's id and the message body (built from the row and form, not stored with it). */
  transfer: { id: string; body: object } | null
  requestId: string | null
}

/**
 * Everything a batch of submissions writes, as one statement (so one round trip, and one transaction by itself). Each
 * submission is one element of every array parameter, unnested into `input` with its position `n`.
 *
 * `claimed` inserts the Idempotency-Keys with their stored responses; every other insert reads from `accepted`, the
 * submissions whose key this statement inserted, so a key already taken — by a finished submission, or by a concurrent
 * one, whose commit the insert waits for — writes nothing else. A key twice in one batch is inserted once (ON CONFLICT
 * DO NOTHING skips the later row), and `accepted` keeps only its first submission, the one whose response was stored.
 * Foreign keys (events and outbox to the case) are checked at the end of the statement, when the case rows are there.
 * The outbox rows are written as relayed at the submission's time: the writer hands them to the gateway's queue itself
 * once the statement has committed (see createSubmissionWriter). They hold no body: a case.transfer is built from the
 * case (transfer.ts), by the submission for that hand-off and by the relay should it have to send the message again.
 * Events get their ids in the order given (INSERT … SELECT … ORDER BY inserts in that order): per submission, `submit`
 * then the residence decision, the order a read of the case lists them in. The audit rows are the ones appendAudit
 * would write: unchained, for the chainer to link once they have committed. The answer is the ids of the cases written.
 *
 * household_subjects comes as one JSON array per submission: a text[] per submission would make a two-dimensional
 * array, which PostgreSQL requires to be rectangular.
 */
const SUBMIT_BATCH_STATEMENT = `
  with input as (
    select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::timestamptz[], $7::uuid[],
      $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::bytea[], $14::bytea[], $15::integer[],
      $16::jsonb[], $17::jsonb[], $18::text[], $19::date[], $20::boolean[], $21::text[], $22::jsonb[], $23::uuid[],
      $24::text[])
      with ordinality as input (actor, role, key, request_hash, response_sealed, at, id, reference, partner_city, status,
        category, applicant_subject, applicant_index, form_sealed, household_size, household_subjects, residence,
        attestation, review_deadline, review_deadline_provisional, action, verified, transfer_id, request_id, n)
  ), claimed as (
    insert into idempotency_keys (actor, key, request_hash, status_code, response_sealed, created_at)
    select actor, key, request_hash, 201, response_sealed, at from input order by n
    on conflict (actor, key) do nothing
    returning actor, key
  ), accepted as (
    select distinct on (input.actor, input.key) input.*
    from input join claimed on claimed.actor = input.actor and claimed.key = input.key
    order by input.actor, input.key, input.n
  ), created as (
    insert into cases (id, reference, side, partner_city, status, category, applicant_subject, applicant_index,
      caseworker_id, form_sealed, household_size, household_subjects, residence, attestation, review_deadline,
      review_deadline_provisional, partner_latest, decision, open_info_request, benefit_check, submitted_at, updated_at)
    select id, reference, 'outgoing', partner_city, status, category, applicant_subject, applicant_index, actor,
      form_sealed, household_size, array(select jsonb_array_elements_text(household_subjects)), residence, attestation,
      review_deadline, review_deadline_provisional, null, null, null, null, at, at
    from accepted
    returning id
  ), events as (
    insert into case_events (case_id, at, action, from_status, to_status, actor, role, detail)
    select accepted.id, accepted.at, event.action, event.from_status, event.to_status, event.actor, event.role,
      event.detail
    from accepted cross join lateral (
      values (1, 'submit', null, 'submitted', accepted.actor, accepted.role, null::jsonb),
             (2, accepted.action, 'submitted', accepted.status, 'system', 'system', accepted.verified)
    ) as event (n, action, from_status, to_status, actor, role, detail)
    order by accepted.n, event.n
  ), transfer as (
    insert into outbox (id, case_id, to_city, type, ref, usr, body, relayed_at)
    select transfer_id, id, partner_city, 'case.transfer', reference, actor, null, at
    from accepted where transfer_id is not null
  ), audited as (
    insert into audit_log (at, actor, role, city, action, case_id, request_id, detail)
    select at, actor, role, $25::text, 'application.submit', id, request_id, jsonb_build_object('status', status)
    from accepted order by n
  )
  select id from created`

/**
 * The batch statement's parameters: one array per column, one element per submission, each in PostgreSQL's binary
 * array format (kit's binaryArray; the types match the casts in the statement, which PostgreSQL checks).
 */
function parametersOf(batch: SubmissionWrite[], city: string): unknown[] {
  const column = <T extends BinaryElementType>(
    type: T,
    value: (write: SubmissionWrite) => BinaryElementValue[T] | null,
  ) => binaryArray(type, batch.map(value))
  return [
    column('text', (w) => w.actor),
    column('text', (w) => w.role),
    column('text', (w) => w.key),
    column('text', (w) => w.requestHash),
    column('bytea', (w) => w.responseSealed),
    column('timestamptz', (w) => w.row.submitted_at),
    column('uuid', (w) => w.row.id),
    column('text', (w) => w.row.reference),
    column('text', (w) => w.row.partner_city),
    column('text', (w) => w.row.status),
    column('text', (w) => w.row.category),
    column('text', (w) => w.row.applicant_subject),
    column('bytea', (w) => w.row.applicant_index),
    column('bytea', (w) => w.row.form_sealed),
    column('int4', (w) => w.row.household_size),
    column('jsonb', (w) => JSON.stringify(w.row.household_subjects)),
    column('jsonb', (w) => JSON.stringify(w.row.residence)),
    column('text', (w) => w.row.attestation),
    column('date', (w) => w.row.review_deadline),
    column('bool', (w) => w.row.review_deadline_provisional),
    column('text', (w) => w.action),
    column('jsonb', (w) => JSON.stringify(w.verified)),
    column('uuid', (w) => w.transfer?.id ?? null),
    column('text', (w) => w.requestId),
    city,
  ]
}

/** The most transfers handed to the gateway's queue in one round trip. */
const HAND_OFF_MAX = 200

/** A rare failure, logged; the outbox row waits for the relay. */
interface WriterLog {
  warn: (object: object, message: string) => void
}

export interface SubmissionWriter {
  /** Writes one submission with those written at the same moment: true when written, false when its key was taken. */
  add(write: SubmissionWrite): Promise<boolean>
  /** Resolves once every hand-off to the gateway's queue begun so far has ended (for a clean stop). */
  settled(): Promise<void>
}

/**
 * Writes submissions in batches (kit's group commit): under load the submissions whose residence answers came back
 * while earlier batches were being written go together in one statement. Measured with pgbench on the two-core machine
 * the benchmarks run on, ten submissions in one statement cost PostgreSQL about 40 % of ten statements; a lone
 * submission is written at once, as before. `concurrency` batches are in flight at once, leaving the rest of the pool
 * to reads and the workers.
 *
 * Once a batch has committed, its case.transfer messages go to the gateway's outbound queue (with those of any other
 * batch that committed meanwhile, in one round trip), without waiting for the outbox relay: the relay would read each
 * row back, queue it and update it, which cost PostgreSQL a second write of every transfer. The response does not wait
 * for this hand-off. Should it fail (Redis down), the rows are marked not relayed and the relay queues them once Redis
 * answers; should the process stop before it ends, the relay queues them again once OUTBOX_RESEND_AFTER_SECONDS have
 * passed without a delivery outcome. Either way the transfer is delayed, never lost, and the gateway recognises a
 * message it already has.
 */
export function createSubmissionWriter(
  pool: pg.Pool,
  queues: QueueRegistry<FederationQueues>,
  city: string,
  log: WriterLog,
  options: { concurrency: number; maxSize: number; onBatch?: (size: number) => void },
): SubmissionWriter {
  const handOffs = new Set<Promise<void>>()

  const handOff = async (messages: OutboundMessage[]): Promise<undefined[]> => {
    try {
      await queueOutboundFirst(queues, messages)
    } catch (error) {
      log.warn(
        { err: (error as Error).message, messages: messages.length },
        'transfers not handed to the gateway queue; the outbox relay will queue them',
      )
      await pool
        .query('update outbox set relayed_at = null where id = any($1::uuid[]) and outcome is null', [
          messages.map((message) => message.messageId),
        ])
        .catch((reset: Error) => log.warn({ err: reset.message }, 'transfers wait for the outbox relay to resend them'))
    }
    return messages.map(() => undefined)
  }
  // The transfers of the batches that commit while a hand-off is in flight go together in the next: each hand-off is a
  // Redis round trip, and BullMQ makes an ioredis pipeline for each, which copies every one of its scripts onto it (2 %
  // of this service's CPU with one per statement). A failed hand-off is left to the relay as a whole (never retried here
  // message by message: Redis is what failed).
  const handOffBatcher = createBatcher<OutboundMessage, undefined>({
    run: handOff,
    concurrency: 1,
    maxSize: HAND_OFF_MAX,
    retryEach: false,
  })
  /** Starts handing messages over; `settled` waits for it. Never rejects: handOff logs a failure and leaves it. */
  const handOver = (messages: OutboundMessage[]) => {
    const running = Promise.all(messages.map((message) => handOffBatcher.add(message))).then(
      () => {},
      () => {},
    )
    handOffs.add(running)
    void running.finally(() => handOffs.delete(running))
  }

  const batcher: Batcher<SubmissionWrite, boolean> = createBatcher<SubmissionWrite, boolean>({
    run: async (batch) => {
      const { rows } = await pool.query<{ id: string }>({
        name: 'intake-submit-batch',
        text: SUBMIT_BATCH_STATEMENT,
        values: parametersOf(batch, city),
      })
      const written = new Set(rows.map((row) => row.id))
      // The messages the outbox rows just written stand for, as the relay would read them back.
      const transfers = batch.flatMap(({ transfer, row, actor }) =>
        transfer && written.has(row.id)
          ? [
              outboundMessageOf({
                id: transfer.id,
                to_city: row.partner_city,
                type: 'case.transfer',
                ref: row.reference,
                usr: actor,
                body: transfer.body,
              }),
            ]
          : [],
      )
      if (transfers.length > 0) handOver(transfers)
      return batch.map((write) => written.has(write.row.id))
    },
    ...options,
  })

  return {
    add: (write) => batcher.add(write),
    settled: async () => {
      await Promise.all([...handOffs])
    },
  }
}
