import { unstorableTextAt, validationIssues } from '@pilot/kit'
import {
  FEDERATION_CLOCK_TOLERANCE_SECONDS,
  FEDERATION_MAX_LIFETIME_SECONDS,
  FEDERATION_TYP,
  MESSAGE_BODIES,
  MessageClaims,
  type MessageType,
} from '@pilot/schemas'
import { ALLOWED_ALGS, bodyDigest, checkTimes, type Signer, VerificationError } from '@pilot/signing'
import type { FastifyInstance } from 'fastify'
import type { Kysely } from 'kysely'
import { Compile } from 'typebox/compile'
import { type Batcher, statementBatcher } from '../db/batch.ts'
import type { GatewayDatabase } from '../db/schema.ts'
import { type Envelope, parseCompactJws, signMessage } from './envelope.ts'
import { type PartnerDirectory, PartnerKeyRevoked, PartnerKeysUnavailable } from './partners.ts'
import { FederationProblem } from './problems.ts'

const claimsCheck = Compile(MessageClaims)
const bodyChecks = Object.fromEntries(
  Object.entries(MESSAGE_BODIES).map(([type, schema]) => [type, Compile(schema)]),
) as Record<MessageType, ReturnType<typeof Compile>>

export interface Accepted {
  status: 'accepted' | 'duplicate'
  receipt: string
  /** Set when this call stored the message (not for a duplicate): the row to hand off, and when it was stored. */
  stored?: { id: string; at: Date }
  partner: string
  claims: MessageClaims
}

export interface InboundContext {
  city: string
  db: Kysely<GatewayDatabase>
  /** Where accepted messages are stored (the statement every accepted message runs). */
  store: InboundStore
  partners: PartnerDirectory
  signer: Signer
  lifetimeSeconds: number
  /** Called once the signature is verified: throws a 429 problem when the partner is over its rate. */
  rateLimit: (partner: string) => Promise<void>
  /** The gateway's clock for the time checks and receipts; the system clock unless a test injects one. */
  clock?: () => Date
}

/**
 * Step 15: each message, its raw JWS, the verified claims and the receipt we issue, in one statement that is also the
 * replay record (a known (partner, jti) stores nothing and returns no row), many messages to a statement. `created_at`
 * comes back for the hand-off, which is built from the claims just stored rather than read back.
 */
const STORE = {
  name: 'gateway-inbound-store',
  text: `insert into messages (direction, partner, message_id, type, ref, usr, status, digest, raw_jws, claims,
      receipt_jws, receipt_status)
    select 'inbound', v.partner, v.message_id, v.type, v.ref, v.usr, 'received', v.digest, v.raw_jws, v.claims::jsonb,
      v.receipt_jws, 'accepted'
    from unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
        $9::text[])
      as v(partner, message_id, type, ref, usr, digest, raw_jws, claims, receipt_jws)
    on conflict (direction, partner, message_id) do nothing
    returning id, partner, message_id, created_at`,
}

export interface StoredMessage {
  partner: string
  claims: MessageClaims
  digest: string
  jws: string
  receipt: string
}

/**
 * Accepted messages' rows, written through a batcher (statementBatcher, db/batch.ts): the requests in flight share the statement and its
 * commit. Sent straight to the gateway's pool and prepared by name, so it is parsed once per connection.
 */
export class InboundStore {
  readonly #store: Batcher<StoredMessage, { id: string; at: Date } | undefined>

  constructor(readonly pool: FastifyInstance['pgPool']) {
    this.#store = statementBatcher((items) => this.#storeRows(items))
  }

  /** Stores the message and answers its row, or nothing when (partner, jti) was stored before. */
  store(message: StoredMessage): Promise<{ id: string; at: Date } | undefined> {
    return this.#store.add(message)
  }

  async #storeRows(items: StoredMessage[]): Promise<({ id: string; at: Date } | undefined)[]> {
    // A jti twice among the waiting requests goes into the statement once, with the first request's content: the row
    // then holds exactly what that request's receipt says, and the others find it stored, as they would a moment later.
    const key = (partner: string, jti: string) => `${partner} ${jti.toLowerCase()}`
    const first = new Map<string, StoredMessage>()
    for (const item of items) {
      const k = key(item.partner, item.claims.jti)
      if (!first.has(k)) first.set(k, item)
    }
    const asked = [...first.values()]
    const { rows } = await this.pool.query<{ id: string; partner: string; message_id: string; created_at: Date }>({
      ...STORE,
      values: [
        asked.map((item) => item.partner),
        asked.map((item) => item.claims.jti),
        asked.map((item) => item.claims.type),
        asked.map((item) => item.claims.ref),
        asked.map((item) => item.claims.usr ?? null),
        asked.map((item) => item.digest),
        asked.map((item) => item.jws),
        asked.map((item) => JSON.stringify(item.claims)),
        asked.map((item) => item.receipt),
      ],
    })
    const stored = new Map(rows.map((row) => [key(row.partner, row.message_id), row]))
    return items.map((item) => {
      const k = key(item.partner, item.claims.jti)
      const row = first.get(k) === item ? stored.get(k) : undefined
      return row ? { id: row.id, at: row.created_at } : undefined
    })
  }
}

function verificationProblem(error: VerificationError): FederationProblem {
  switch (error.code) {
    case 'alg_not_allowed':
      return new FederationProblem('alg-not-allowed', error.message)
    case 'unknown_kid':
      return new FederationProblem('unknown-key', error.message)
    case 'expired':
      return new FederationProblem('expired', error.message)
    case 'not_yet_valid':
      return new FederationProblem('not-yet-valid', error.message)
    case 'lifetime_too_long':
      return new FederationProblem('lifetime-too-long', error.message)
    case 'missing_times':
      return new FederationProblem('invalid-body', error.message)
    case 'malformed':
    case 'wrong_typ':
      return new FederationProblem('malformed', error.message)
    default:
      return new FederationProblem('bad-signature', error.message)
  }
}

/**
 * Verifies an inbound message in the protocol's order, stopping at the first failure: parse; alg; issuer allowed to
 * send the type; key by kid from that partner's JWKS only; signature; audience; times; claims and body schema; replay.
 * An accepted message is stored with the raw JWS, the verified claims and the receipt we issue, in one statement that
 * is also the replay record.
 */
export async function receiveMessage(
  context: InboundContext,
  body: string,
  now = context.clock?.() ?? new Date(),
): Promise<Accepted> {
  // A trailing newline from a command-line client is not part of the JWS.
  const jws = body.trim()
  const { header, claims: unverified } = parseCompactJws(jws)

  if (typeof header.alg !== 'string' || !(ALLOWED_ALGS as readonly string[]).includes(header.alg)) {
    throw new FederationProblem('alg-not-allowed', `alg ${JSON.stringify(header.alg)} is not one of ES256, EdDSA`)
  }
  // RFC 7515 §4.1.9: "application/" may be left off the media type, so both spellings name the same type.
  if (typeof header.typ !== 'string' || header.typ.toLowerCase().replace(/^application\//, '') !== FEDERATION_TYP) {
    throw new FederationProblem('malformed', `typ must be ${FEDERATION_TYP}`)
  }

  const issuer = typeof unverified.iss === 'string' ? unverified.iss : ''
  const partner = context.partners.get(issuer)
  if (!partner) throw new FederationProblem('unknown-issuer', `${JSON.stringify(unverified.iss)} is not a partner city`)
  const type = typeof unverified.type === 'string' ? unverified.type : ''
  if (!context.partners.accepts(partner, type)) {
    throw new FederationProblem('type-not-allowed', `${partner.id} may not send ${JSON.stringify(unverified.type)}`)
  }

  let claims: Record<string, unknown>
  try {
    const verifier = await context.partners.verifierFor(
      partner,
      typeof header.kid === 'string' ? header.kid : undefined,
    )
    ;({ claims } = await verifier.verify(jws, { typ: FEDERATION_TYP }))
  } catch (error) {
    if (error instanceof PartnerKeyRevoked) throw new FederationProblem('revoked-key', error.message)
    if (error instanceof PartnerKeysUnavailable) throw new FederationProblem('partner-keys-unavailable', error.message)
    if (error instanceof VerificationError) throw verificationProblem(error)
    throw error
  }
  await context.rateLimit(partner.id)

  if (claims.aud !== context.city) {
    throw new FederationProblem(
      'wrong-audience',
      `the message is for ${JSON.stringify(claims.aud)}, not ${context.city}`,
    )
  }
  try {
    checkTimes(claims, {
      now,
      toleranceSeconds: FEDERATION_CLOCK_TOLERANCE_SECONDS,
      maxLifetimeSeconds: FEDERATION_MAX_LIFETIME_SECONDS,
    })
  } catch (error) {
    if (error instanceof VerificationError) throw verificationProblem(error)
    throw error
  }

  if (!claimsCheck.Check(claims)) {
    const errors = validationIssues('claims', claimsCheck.Errors(claims))
    throw new FederationProblem('invalid-body', 'the claims fail their schema', { errors })
  }
  const message = claims as MessageClaims
  const bodyCheck = bodyChecks[message.type]
  if (!bodyCheck.Check(message.body)) {
    const errors = validationIssues('body', bodyCheck.Errors(message.body))
    throw new FederationProblem('invalid-body', `the body fails the ${message.type} schema`, { errors })
  }
  // A NUL or half a surrogate pair passes the schemas but can be neither digested (RFC 8785) nor stored (jsonb).
  const unstorable = unstorableTextAt(message)
  if (unstorable !== undefined) {
    const errors = [{ in: 'claims', pointer: unstorable, detail: 'must not contain U+0000 or an unpaired surrogate' }]
    throw new FederationProblem('invalid-body', 'the claims hold text that cannot be stored or digested', { errors })
  }

  const digest = bodyDigest(message.body)
  const receiptFor = (status: 'accepted' | 'duplicate') =>
    signMessage(
      context.signer,
      receiptEnvelope(context.city, partner.id, message.jti, { status, digest }),
      context.lifetimeSeconds,
      now.getTime(),
    )

  const receipt = await receiptFor('accepted')
  const stored = await context.store.store({ partner: partner.id, claims: message, digest, jws, receipt })
  if (stored) return { status: 'accepted', receipt, stored, partner: partner.id, claims: message }

  const earlier = await context.db
    .selectFrom('messages')
    .select(['digest', 'type', 'ref'])
    .where('direction', '=', 'inbound')
    .where('partner', '=', partner.id)
    .where('message_id', '=', message.jti)
    .executeTakeFirstOrThrow()
  // A retry keeps jti, type, ref and body; the same id with anything else different is not a retry.
  if (earlier.digest !== digest || earlier.type !== message.type || earlier.ref !== message.ref) {
    throw new FederationProblem(
      'replay-conflict',
      `message ${message.jti} was received before with a different content`,
    )
  }
  return { status: 'duplicate', receipt: await receiptFor('duplicate'), partner: partner.id, claims: message }
}

export function receiptEnvelope(
  from: string,
  to: string,
  receivedJti: string,
  body: { status: 'accepted' | 'duplicate'; digest: string },
): Envelope {
  return { iss: from, aud: to, jti: crypto.randomUUID(), type: 'receipt', ref: receivedJti, body }
}
