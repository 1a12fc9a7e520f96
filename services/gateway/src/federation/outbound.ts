import { addAgainIfFinished, INFRASTRUCTURE_RETRIES, type QueueRegistry } from '@pilot/kit'
import { type DeliveryOutcome, FEDERATION_TYP, type FederationQueues, type OutboundMessage } from '@pilot/schemas'
import { bodyDigest, checkTimes, type Signer, VerificationError } from '@pilot/signing'
import { DelayedError, type Job, UnrecoverableError } from 'bullmq'
import type { FastifyInstance } from 'fastify'
import { type Batcher, statementBatcher } from '../db/batch.ts'
import { signMessage } from './envelope.ts'
import type { PartnerHttpClient } from './http.ts'
import type { Partner, PartnerDirectory } from './partners.ts'

export interface DeliveryContext {
  city: string
  /** The messages' rows (see OutboundStore). */
  store: OutboundStore
  queues: QueueRegistry<FederationQueues>
  partners: PartnerDirectory
  /** The keep-alive HTTP client deliveries are POSTed with (see http.ts). */
  http: PartnerHttpClient
  signer: Signer
  lifetimeSeconds: number
  maxAttempts: number
  backoffBaseMs: number
  backoffMaxMs: number
  timeoutMs: number
  onDelivered?: (message: OutboundMessage, enqueuedAt: number) => void
  onOutcome?: (message: OutboundMessage, outcome: DeliveryOutcome['outcome'] | 'retry') => void
}

/** Exponential backoff with equal jitter (between half and all of the ceiling), so retries do not arrive in step. */
export function retryDelay(attempt: number, baseMs: number, maxMs: number, random = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1))
  return Math.round(ceiling / 2 + random() * (ceiling / 2))
}

class Retryable extends Error {}

async function reportOutcome(context: DeliveryContext, outcome: DeliveryOutcome): Promise<void> {
  // Reported again (a job that ran again because the sender never saw the outcome) is queued anew.
  await addAgainIfFinished(context.queues.queue('federation.delivery'), outcome.outcome, outcome, {
    jobId: `${outcome.messageId}-${outcome.outcome}`,
    ...INFRASTRUCTURE_RETRIES,
    removeOnComplete: { age: 24 * 3600 },
    removeOnFail: false,
  })
}

export interface OutboundRow {
  id: string
  status: string
  attempts: number
  digest: string
  receipt_status: string | null
  last_error: string | null
}

/**
 * The messages' rows, created `pending` on the first attempt and read back on any later one, many to a statement. The
 * no-op `do update` (rather than `do nothing`) makes a conflicting row part of the statement's result: `do nothing`
 * returns no row for it, and a second statement would be needed to read it. A statement may not touch one row twice, so
 * a message asked for twice in one batch goes into the statement once (OutboundStore.#takeRows).
 */
const TAKE = {
  name: 'gateway-outbound-take',
  text: `insert into messages (direction, partner, message_id, type, ref, usr, status, digest, body)
    select 'outbound', v.partner, v.message_id, v.type, v.ref, v.usr, 'pending', v.digest, v.body::jsonb
    from unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
      as v(partner, message_id, type, ref, usr, digest, body)
    order by v.partner, v.message_id
    on conflict (direction, partner, message_id) do update set updated_at = messages.updated_at
    returning id, partner, message_id, status, attempts, digest, receipt_status, last_error`,
}
/**
 * Attempts that ended with a verified receipt, with the JWS each sent, many to a statement: written once, after the
 * partner answered, rather than before the POST and again after it. A crash in between leaves the row `pending` with
 * the previous attempt's JWS; the job then runs again, signs afresh and stores that.
 */
const DELIVERED = {
  name: 'gateway-outbound-delivered',
  text: `update messages m set status = 'delivered', attempts = v.attempts, raw_jws = v.raw_jws,
      receipt_jws = v.receipt_jws, receipt_status = v.receipt_status, delivered_at = v.at, last_error = null,
      updated_at = v.at
    from unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
      as v(id, attempts, raw_jws, receipt_jws, receipt_status, at)
    where m.id = v.id`,
}
/**
 * A failed attempt, with the JWS it sent (none when none was signed, for an unknown partner): `dead`, or its status
 * left as it is (`pending`, retried later). Rare, so one statement each.
 */
const FAILED = {
  name: 'gateway-outbound-failed',
  text: `update messages set status = coalesce($2, status), attempts = $3, last_error = $4,
    raw_jws = coalesce($5, raw_jws), updated_at = $6 where id = $1`,
}

interface Delivered {
  id: string
  attempts: number
  jws: string
  receipt: string
  receiptStatus: 'accepted' | 'duplicate'
  at: Date
}

const messageKey = (partner: string, messageId: string) => `${partner} ${messageId.toLowerCase()}`

/**
 * The delivery path's statements, sent straight to the gateway's pool (the one under its Kysely instance) and prepared
 * by name, so each is parsed once per connection rather than built by Kysely and parsed by PostgreSQL on every
 * delivery. The two every delivery runs go through batchers (statementBatcher, db/batch.ts): the deliveries in flight share their
 * statements and commits.
 */
export class OutboundStore {
  readonly #take: Batcher<{ message: OutboundMessage; digest: string }, OutboundRow>
  readonly #delivered: Batcher<Delivered, undefined>

  constructor(private readonly pool: FastifyInstance['pgPool']) {
    this.#take = statementBatcher((items) => this.#takeRows(items))
    this.#delivered = statementBatcher((items) => this.#deliveredRows(items))
  }

  /** The message's row, created `pending` if it has none. */
  take(message: OutboundMessage, digest: string): Promise<OutboundRow> {
    return this.#take.add({ message, digest })
  }

  async delivered(row: Delivered): Promise<void> {
    await this.#delivered.add(row)
  }

  /** A failed attempt: `dead` gives up on the message; `retry` leaves it pending for the next attempt. */
  async failed(
    id: string,
    outcome: 'retry' | 'dead',
    attempts: number,
    reason: string,
    jws: string | null,
  ): Promise<void> {
    await this.pool.query({
      ...FAILED,
      values: [id, outcome === 'dead' ? 'dead' : null, attempts, reason, jws, new Date()],
    })
  }

  async #takeRows(items: { message: OutboundMessage; digest: string }[]): Promise<OutboundRow[]> {
    const distinct = new Map<string, { message: OutboundMessage; digest: string }>()
    for (const item of items) {
      const key = messageKey(item.message.to, item.message.messageId)
      if (!distinct.has(key)) distinct.set(key, item)
    }
    const asked = [...distinct.values()]
    const { rows } = await this.pool.query<OutboundRow & { partner: string; message_id: string }>({
      ...TAKE,
      values: [
        asked.map(({ message }) => message.to),
        asked.map(({ message }) => message.messageId),
        asked.map(({ message }) => message.type),
        asked.map(({ message }) => message.ref),
        asked.map(({ message }) => message.usr ?? null),
        asked.map(({ digest }) => digest),
        asked.map(({ message }) => JSON.stringify(message.body)),
      ],
    })
    const byKey = new Map(rows.map((row) => [messageKey(row.partner, row.message_id), row]))
    return items.map(({ message }) => {
      const row = byKey.get(messageKey(message.to, message.messageId))
      if (!row) throw new Error(`no row came back for message ${message.messageId}`)
      return row
    })
  }

  async #deliveredRows(items: Delivered[]): Promise<undefined[]> {
    await this.pool.query({
      ...DELIVERED,
      values: [
        items.map((item) => item.id),
        items.map((item) => item.attempts),
        items.map((item) => item.jws),
        items.map((item) => item.receipt),
        items.map((item) => item.receiptStatus),
        items.map((item) => item.at),
      ],
    })
    return items.map(() => undefined)
  }
}

const POST_HEADERS = { 'content-type': 'application/jose', accept: 'application/jose, application/problem+json' }

/** Each partner's inbox URL, parsed once. */
const inboxes = new WeakMap<Partner, URL>()
function inboxOf(partner: Partner): URL {
  let url = inboxes.get(partner)
  if (!url) {
    url = new URL(`${partner.gatewayUrl}/federation/v1/messages`)
    inboxes.set(partner, url)
  }
  return url
}

/**
 * Delivers one outbound message: sign (fresh iat/exp, same jti and body), POST to the partner's gateway, verify the
 * receipt (signature by the partner, ref = our jti, digest = our body's), store it and report the outcome to the local
 * services. Network errors, 5xx and 429 are retried with backoff up to `maxAttempts`; any other 4xx, or running out
 * of attempts, dead-letters the message with its reason. The gateway's own table, not the job, decides: a job that
 * runs again for a message already delivered (a relay re-sent it) only repeats the outcome.
 *
 * Two statements per attempt, shared with the other deliveries in flight (OutboundStore): the row is taken (created or
 * read) before anything is sent, so that a message already delivered or dead is never sent again and a different body
 * under a known id is refused; the outcome, with the JWS that was sent, is written once the attempt is over.
 */
export async function deliver(context: DeliveryContext, job: Job<OutboundMessage>, token?: string): Promise<void> {
  const message = job.data
  const digest = bodyDigest(message.body)
  const row = await context.store.take(message, digest)
  if (row.digest !== digest) {
    throw new UnrecoverableError(`message ${message.messageId} was queued before with a different body`)
  }
  const base = { messageId: message.messageId, to: message.to, type: message.type, ref: message.ref }
  if (row.status === 'delivered' || row.status === 'dead') {
    await reportOutcome(context, {
      ...base,
      outcome: row.status,
      ...(row.receipt_status ? { receiptStatus: row.receipt_status as 'accepted' | 'duplicate' } : {}),
      ...(row.last_error ? { reason: row.last_error } : {}),
      at: new Date().toISOString(),
    })
    return
  }

  const attempt = row.attempts + 1
  /** The JWS of this attempt once signed: stored with the attempt's outcome, whatever it is. */
  let sent: string | null = null
  const fail = async (reason: string, retryable: boolean): Promise<never> => {
    if (retryable && attempt < context.maxAttempts) {
      await context.store.failed(row.id, 'retry', attempt, reason, sent)
      context.onOutcome?.(message, 'retry')
      if (token) {
        await job.moveToDelayed(Date.now() + retryDelay(attempt, context.backoffBaseMs, context.backoffMaxMs), token)
        throw new DelayedError()
      }
      throw new Retryable(reason)
    }
    const why = retryable ? `gave up after ${attempt} attempts: ${reason}` : reason
    await context.store.failed(row.id, 'dead', attempt, why, sent)
    context.onOutcome?.(message, 'dead')
    await reportOutcome(context, { ...base, outcome: 'dead', reason: why, at: new Date().toISOString() })
    throw new UnrecoverableError(why)
  }

  const partner = context.partners.get(message.to)
  if (!partner) return fail(`${message.to} is not a partner city`, false)
  const jws = await signMessage(
    context.signer,
    {
      iss: context.city,
      aud: partner.id,
      jti: message.messageId,
      type: message.type,
      ref: message.ref,
      usr: message.usr,
      body: message.body,
    },
    context.lifetimeSeconds,
  )
  sent = jws

  let status: number
  let text: string
  try {
    ;({ status, text } = await context.http.post(inboxOf(partner), jws, POST_HEADERS, context.timeoutMs))
  } catch (error) {
    return fail(`network: ${(error as Error).message}`, true)
  }
  if (status !== 202) {
    const problem = describeProblem(text)
    const reason = `${partner.id} answered ${status}${problem ? ` ${problem}` : ''}`
    return fail(reason, status === 429 || status >= 500)
  }

  let receipt: { status: 'accepted' | 'duplicate'; digest: string }
  try {
    receipt = await verifyReceipt(context, partner, text, message.messageId, digest)
  } catch (error) {
    return fail(`receipt: ${(error as Error).message}`, true)
  }
  const now = new Date()
  await context.store.delivered({
    id: row.id,
    attempts: attempt,
    jws,
    receipt: text,
    receiptStatus: receipt.status,
    at: now,
  })
  context.onDelivered?.(message, job.timestamp)
  context.onOutcome?.(message, 'delivered')
  await reportOutcome(context, {
    ...base,
    outcome: 'delivered',
    receiptStatus: receipt.status,
    at: now.toISOString(),
  })
}

function describeProblem(text: string): string {
  try {
    const problem = JSON.parse(text) as { type?: string; detail?: string }
    return [problem.type, problem.detail].filter(Boolean).join(': ').slice(0, 500)
  } catch {
    return text.slice(0, 200)
  }
}

async function verifyReceipt(
  context: DeliveryContext,
  partner: Partner,
  jws: string,
  messageId: string,
  digest: string,
): Promise<{ status: 'accepted' | 'duplicate'; digest: string }> {
  const partnerId = partner.id
  const kid = (() => {
    try {
      return JSON.parse(Buffer.from(jws.split('.')[0] ?? '', 'base64url').toString('utf8')).kid as string
    } catch {
      return undefined
    }
  })()
  let claims: Record<string, unknown>
  try {
    const verifier = await context.partners.verifierFor(partner, kid)
    ;({ claims } = await verifier.verify(jws, { typ: FEDERATION_TYP }))
    checkTimes(claims, { toleranceSeconds: 60, maxLifetimeSeconds: 600 })
  } catch (error) {
    throw new Error(error instanceof VerificationError ? `${error.code}: ${error.message}` : (error as Error).message)
  }
  const body = claims.body as { status?: unknown; digest?: unknown } | undefined
  if (claims.iss !== partnerId) throw new Error(`issued by ${String(claims.iss)}, not ${partnerId}`)
  if (claims.aud !== context.city) throw new Error(`addressed to ${String(claims.aud)}`)
  if (claims.type !== 'receipt') throw new Error(`type ${String(claims.type)} is not a receipt`)
  if (claims.ref !== messageId) throw new Error(`ref ${String(claims.ref)} is not our message ${messageId}`)
  if (body?.digest !== digest) throw new Error('digest does not match the body we sent')
  if (body.status !== 'accepted' && body.status !== 'duplicate') throw new Error(`status ${String(body.status)}`)
  return { status: body.status, digest }
}
