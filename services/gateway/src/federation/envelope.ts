import { FEDERATION_TYP } from '@pilot/schemas'
import type { Signer } from '@pilot/signing'
import { FederationProblem } from './problems.ts'

export interface Envelope {
  iss: string
  aud: string
  jti: string
  type: string
  ref: string
  usr?: string
  body: unknown
}

/** Signs a federation message: the envelope plus fresh iat/exp (a retry is re-signed, keeping jti and body). */
export function signMessage(
  signer: Signer,
  envelope: Envelope,
  lifetimeSeconds: number,
  now = Date.now(),
): Promise<string> {
  const iat = Math.floor(now / 1000)
  const claims: Record<string, unknown> = {
    iss: envelope.iss,
    aud: envelope.aud,
    jti: envelope.jti,
    iat,
    exp: iat + lifetimeSeconds,
    type: envelope.type,
    ref: envelope.ref,
    body: envelope.body,
  }
  if (envelope.usr !== undefined) claims.usr = envelope.usr
  return signer.sign(claims, { typ: FEDERATION_TYP })
}

export interface UnverifiedJws {
  header: Record<string, unknown>
  claims: Record<string, unknown>
}

const SEGMENT = /^[A-Za-z0-9_-]+$/

function decodeJson(segment: string, what: string): Record<string, unknown> {
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'))
  } catch {
    throw new FederationProblem('malformed', `the ${what} is not base64url JSON`)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FederationProblem('malformed', `the ${what} is not a JSON object`)
  }
  return value as Record<string, unknown>
}

/** Step 1 of the protocol's verification order: a compact JWS whose header and payload are JSON objects. */
export function parseCompactJws(jws: string): UnverifiedJws {
  const parts = jws.trim().split('.')
  if (parts.length !== 3 || !parts.every((part, index) => SEGMENT.test(part) || (index === 2 && part === ''))) {
    throw new FederationProblem('malformed', 'the body is not a compact JWS (three base64url parts)')
  }
  const [header = '', payload = ''] = parts
  return { header: decodeJson(header, 'protected header'), claims: decodeJson(payload, 'payload') }
}
