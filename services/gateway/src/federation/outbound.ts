import type { QueueRegistry } from '@pilot/kit'
import { type DeliveryOutcome, FEDERATION_TYP, type FederationQueues, type OutboundMessage } from '@pilot/schemas'
import { bodyDigest, checkTimes, type Signer, VerificationError } from '@pilot/signing'
import { DelayedError, type Job, UnrecoverableError } from 'bullmq'
import { type Kysely, sql } from 'kysely'
import type { GatewayDatabase } from '../db/schema.ts'
import { signMessage } from './envelope.ts'
import type { PartnerDirectory } from './partners.ts'

export interface DeliveryContext {
  city: string
  db: Kysely<GatewayDatabase>
  queues: QueueRegistry<FederationQueues>
  partners: PartnerDirectory
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
  await context.queues.queue('federation.delivery').add(outcome.outcome, outcome, {
    jobId: `${outcome.messageId}-${outcome.outcome}`,
    removeOnComplete: { age: 24 * 3600 },
    removeOnFail: false,
  })
}

/**
 * Delivers one outbound message: sign (fresh iat/exp, same jti and body), POST to the partner's gateway, verify the
 * receipt (signature by the partner, ref = our jti, digest = our body's), store it and report the outcome to the local
 * services. Network errors, 5xx and 429 are retried with backoff up to `maxAttempts`; any other 4xx, or running out
 * of attempts, dead-letters the message with its reason. The gateway's own table, not the job, decides: a job that
 * runs again for a message already delivered (a relay re-sent it) only repeats the outcome.
 */
export async function deliver(context: DeliveryContext, job: Job<OutboundMessage>, token?: string): Promise<void> {
  const message = job.data
  const digest = bodyDigest(message.body)
  await sql`
    insert into messages (direction, partner, message_id, type, ref, usr, status, digest, body)
    values ('outbound', ${message.to}, ${message.messageId}, ${message.type}, ${message.ref}, ${message.usr ?? null},
            'pending', ${digest}, ${JSON.stringify(message.body)}::jsonb)
    on conflict (direction, partner, message_id) do nothing`.execute(context.db)
  const row = await context.db
    .selectFrom('messages')
    .select(['id', 'status', 'attempts', 'digest', 'receipt_status', 'last_error'])
    .where('direction', '=', 'outbound')
    .where('partner', '=', message.to)
    .where('message_id', '=', message.messageId)
    .executeTakeFirstOrThrow()
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
  const fail = async (reason: string, retryable: boolean): Promise<never> => {
    if (retryable && attempt < context.maxAttempts) {
      await context.db
        .updateTable('messages')
        .set({ attempts: attempt, last_error: reason, updated_at: new Date() })
        .where('id', '=', row.id)
        .execute()
      context.onOutcome?.(message, 'retry')
      if (token) {
        await job.moveToDelayed(Date.now() + retryDelay(attempt, context.backoffBaseMs, context.backoffMaxMs), token)
        throw new DelayedError()
      }
      throw new Retryable(reason)
    }
    const why = retryable ? `gave up after ${attempt} attempts: ${reason}` : reason
    await context.db
      .updateTable('messages')
      .set({ status: 'dead', attempts: attempt, last_error: why, updated_at: new Date() })
      .where('id', '=', row.id)
      .execute()
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
  await context.db.updateTable('messages').set({ raw_jws: jws }).where('id', '=', row.id).execute()

  let response: Response
  try {
    response = await fetch(`${partner.gatewayUrl}/federation/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/jose', accept: 'application/jose, application/problem+json' },
      body: jws,
      signal: AbortSignal.timeout(context.timeoutMs),
    })
  } catch (error) {
    return fail(`network: ${(error as Error).message}`, true)
  }
  const text = await response.text().catch(() => '')
  if (response.status !== 202) {
    const problem = describeProblem(text)
    const reason = `${partner.id} answered ${response.status}${problem ? ` ${problem}` : ''}`
    return fail(reason, response.status === 429 || response.status >= 500)
  }

  let receipt: { status: 'accepted' | 'duplicate'; digest: string }
  try {
    receipt = await verifyReceipt(context, partner.id, text, message.messageId, digest)
  } catch (error) {
    return fail(`receipt: ${(error as Error).message}`, true)
  }
  await context.db
    .updateTable('messages')
    .set({
      status: 'delivered',
      attempts: attempt,
      receipt_jws: text,
      receipt_status: receipt.status,
      delivered_at: new Date(),
      last_error: null,
      updated_at: new Date(),
    })
    .where('id', '=', row.id)
    .execute()
  context.onDelivered?.(message, job.timestamp)
  context.onOutcome?.(message, 'delivered')
  await reportOutcome(context, {
    ...base,
    outcome: 'delivered',
    receiptStatus: receipt.status,
    at: new Date().toISOString(),
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
  partnerId: string,
  jws: string,
  messageId: string,
  digest: string,
): Promise<{ status: 'accepted' | 'duplicate'; digest: string }> {
  const partner = context.partners.get(partnerId)
  if (!partner) throw new Error(`${partnerId} is not a partner`)
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
