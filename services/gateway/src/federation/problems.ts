import { HttpProblem } from '@pilot/kit'
import { problemType } from '@pilot/schemas'

/**
 * Every way an inbound message can be refused, with its HTTP status and a stable problem type. The protocol document
 * lists these; a partner's engineer branches on `type`.
 */
export const FEDERATION_FAILURES = {
  malformed: { status: 400, title: 'Malformed message' },
  'unsupported-media-type': { status: 415, title: 'Content-Type must be application/jose' },
  'alg-not-allowed': { status: 401, title: 'Signature algorithm not allowed' },
  'unknown-issuer': { status: 401, title: 'Issuer is not a partner' },
  'type-not-allowed': { status: 403, title: 'Message type not accepted from this partner' },
  'unknown-key': { status: 401, title: "Key id not in the partner's JWKS" },
  // Refused before the partner's JWKS is even consulted: our operators listed the kid in the pilot profile's
  // `revokedKids` for this partner (a compromised key), whatever the partner's JWKS, or our cached copy of it, says.
  'revoked-key': { status: 401, title: 'Key revoked for this partner' },
  'bad-signature': { status: 401, title: 'Signature does not verify' },
  'wrong-audience': { status: 401, title: 'Message is addressed to another city' },
  expired: { status: 401, title: 'Message has expired' },
  'not-yet-valid': { status: 401, title: 'Message is issued in the future' },
  'lifetime-too-long': { status: 401, title: 'exp is more than 600 s after iat' },
  'invalid-body': { status: 400, title: 'Claims or body fail their schema' },
  'replay-conflict': { status: 409, title: 'Message id already used for a different body' },
  'too-large': { status: 413, title: 'Message over 1 MiB' },
  'rate-limited': { status: 429, title: 'Too many messages from this partner' },
  'partner-keys-unavailable': { status: 503, title: "The partner's JWKS cannot be fetched; retry later" },
} as const

export type FederationFailure = keyof typeof FEDERATION_FAILURES

export function federationProblemType(cause: FederationFailure): string {
  return problemType(`federation:${cause}`)
}

export class FederationProblem extends HttpProblem {
  constructor(
    override readonly cause: FederationFailure,
    detail: string,
    extensions: Record<string, unknown> = {},
  ) {
    const { status, title } = FEDERATION_FAILURES[cause]
    super(status, federationProblemType(cause), title, detail, extensions)
  }
}
