import { validationIssues } from '@pilot/kit'
import {
  FEDERATION_CLOCK_TOLERANCE_SECONDS,
  FEDERATION_MAX_LIFETIME_SECONDS,
  FEDERATION_TYP,
  MESSAGE_BODIES,
  MessageClaims,
  type MessageType,
} from '@pilot/schemas'
import { ALLOWED_ALGS, bodyDigest, checkTimes, type Signer, VerificationError } from '@pilot/signing'
import { type Kysely, sql } from 'kysely'
import { Compile } from 'typebox/compile'
import type { GatewayDatabase } from '../db/schema.ts'
import { type Envelope, parseCompactJws, signMessage } from './envelope.ts'
import { type PartnerDirectory, PartnerKeysUnavailable } from './partners.ts'
import { FederationProblem } from './problems.ts'

const claimsCheck = Compile(MessageClaims)
const bodyChecks = Object.fromEntries(
  Object.entries(MESSAGE_BODIES).map(([type, schema]) => [type, Compile(schema)]),
) as Record<MessageType, ReturnType<typeof Compile>>

export interface Accepted {
  status: 'accepted' | 'duplicate'
  receipt: string
  /** Set when this call stored the message (not for a duplicate): the row to hand off. */
  storedId?: string
  partner: string
  claims: MessageClaims
}

export interface InboundContext {
  city: string
  db: Kysely<GatewayDatabase>
  partners: PartnerDirectory
  signer: Signer
  lifetimeSeconds: number
  /** Called once the signature is verified: throws a 429 problem when the partner is over its rate. */
  rateLimit: (partner: string) => Promise<void>
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
export async function receiveMessage(context: InboundContext, body: string, now = new Date()): Promise<Accepted> {
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

  const digest = bodyDigest(message.body)
  const receiptFor = (status: 'accepted' | 'duplicate') =>
    signMessage(
      context.signer,
      receiptEnvelope(context.city, partner.id, message.jti, { status, digest }),
      context.lifetimeSeconds,
      now.getTime(),
    )

  const receipt = await receiptFor('accepted')
  const stored = await sql<{ id: string }>`
    insert into messages (direction, partner, message_id, type, ref, usr, status, digest, raw_jws, claims, receipt_jws, receipt_status)
    values ('inbound', ${partner.id}, ${message.jti}, ${message.type}, ${message.ref}, ${message.usr ?? null}, 'received',
            ${digest}, ${jws}, ${JSON.stringify(message)}::jsonb, ${receipt}, 'accepted')
    on conflict (direction, partner, message_id) do nothing
    returning id`.execute(context.db)
  const storedId = stored.rows[0]?.id
  if (storedId) return { status: 'accepted', receipt, storedId, partner: partner.id, claims: message }

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
