/**
 * Why a token was refused. The codes are stable: callers map them to problem types and metrics, and tests assert them,
 * so the message is free to change but a code never is.
 */
export type VerificationFailure =
  | 'malformed'
  | 'alg_not_allowed'
  | 'wrong_typ'
  | 'unknown_kid'
  | 'bad_signature'
  | 'missing_times'
  | 'not_yet_valid'
  | 'expired'
  | 'lifetime_too_long'
  | 'wrong_issuer'
  | 'wrong_subject'

export class VerificationError extends Error {
  override name = 'VerificationError'
  readonly code: VerificationFailure

  constructor(code: VerificationFailure, message: string, options?: ErrorOptions) {
    super(message, options)
    this.code = code
  }
}
