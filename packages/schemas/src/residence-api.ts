import { type Static, Type } from 'typebox'
import { IsoDate, Problem, StrictObject } from './common.ts'
import { EvidenceKind } from './pilot-profile.ts'

/** Reason codes of a residence verification. Stable: partner systems and caseworker screens branch on them. */
export const RESIDENCE_REASONS = [
  'no_residence_record',
  'residence_too_short',
  'not_resident_on_date',
  'hukou_city_not_in_pilot',
  'same_city',
] as const
export type ResidenceReason = (typeof RESIDENCE_REASONS)[number]

export const VerificationRequest = StrictObject(
  {
    idNumber: Type.String({ pattern: '^[0-9]{17}[0-9Xx]$', description: 'Resident identity number (GB 11643)' }),
    hukouCity: Type.String({
      pattern: '^[a-z][a-z_]{1,31}$',
      description: 'City of household registration; a city outside the pilot is answered with hukou_city_not_in_pilot',
    }),
    asOf: Type.Optional(
      Type.String({ format: 'date', description: 'Date to decide for; defaults to today in Asia/Shanghai' }),
    ),
  },
  { title: 'VerificationRequest' },
)
export type VerificationRequest = Static<typeof VerificationRequest>

export const EvidenceUsed = StrictObject(
  {
    kind: EvidenceKind,
    validFrom: IsoDate,
    validTo: Type.Union([IsoDate, Type.Null()], { description: 'null: still valid' }),
    sourceRef: Type.String(),
  },
  { title: 'EvidenceUsed' },
)

export const VerificationResult = StrictObject(
  {
    eligible: Type.Boolean(),
    reasons: Type.Array(Type.Enum([...RESIDENCE_REASONS])),
    asOf: IsoDate,
    residenceSince: Type.Union([IsoDate, Type.Null()], {
      description: 'Start of the continuous residence that covers asOf',
    }),
    qualifiesOn: Type.Union([IsoDate, Type.Null()], { description: 'residenceSince plus the required months' }),
    monthsResided: Type.Integer({ minimum: 0, description: 'Whole months from residenceSince to asOf' }),
    evidenceUsed: Type.Array(EvidenceUsed, { description: "The applicant's records that make up that residence" }),
    rule: Type.String({ description: 'Version of the rule applied' }),
    attestation: Type.String({
      description:
        "Compact JWS (typ residence-attestation+jwt) signed with the city's key; verifiable with the city's JWKS",
    }),
  },
  { title: 'VerificationResult' },
)
export type VerificationResult = Static<typeof VerificationResult>

/** The most verifications one batch may ask for. */
export const VERIFICATION_BATCH_MAX = 100

export const VerificationBatchRequest = StrictObject(
  {
    requests: Type.Array(VerificationRequest, {
      minItems: 1,
      maxItems: VERIFICATION_BATCH_MAX,
      description: 'Each decided as POST /v1/residence/verifications would decide it',
    }),
  },
  { title: 'VerificationBatchRequest' },
)
export type VerificationBatchRequest = Static<typeof VerificationBatchRequest>

/**
 * One object with one of two members rather than a union of two: the response serialiser would otherwise try each
 * branch of a union against every item.
 */
export const VerificationBatchItem = StrictObject(
  {
    verification: Type.Optional(VerificationResult),
    problem: Type.Optional(Problem),
  },
  {
    title: 'VerificationBatchItem',
    description:
      'Either `verification`, or `problem`: why this one request could not be decided (the problem the single ' +
      'route would have answered)',
  },
)
export type VerificationBatchItem = Static<typeof VerificationBatchItem>

export const VerificationBatchResult = StrictObject(
  {
    results: Type.Array(VerificationBatchItem, { description: 'One per request, in the order of the requests' }),
  },
  { title: 'VerificationBatchResult' },
)
export type VerificationBatchResult = Static<typeof VerificationBatchResult>

export const ImportLineError = StrictObject({ line: Type.Integer({ minimum: 1 }), reason: Type.String() })

export const ImportSummary = StrictObject(
  {
    importId: Type.String({ format: 'uuid' }),
    format: Type.Enum(['ndjson', 'csv']),
    received: Type.Integer({ minimum: 0, description: 'Records read from the feed' }),
    inserted: Type.Integer({ minimum: 0 }),
    updated: Type.Integer({
      minimum: 0,
      description: 'Records already held that changed (their dates, or for registrations the household)',
    }),
    unchanged: Type.Integer({ minimum: 0, description: 'Records already held as they are' }),
    rejected: Type.Integer({ minimum: 0 }),
    errors: Type.Array(ImportLineError, { description: 'Each bad line with its reason (the first 1000)' }),
    errorsTruncated: Type.Boolean(),
  },
  { title: 'ImportSummary' },
)

/** The pilot-wide matching hash of an identity number: HMAC-SHA256 under the matching key, base64url, 43 characters. */
export const MatchingSubject = Type.String({
  pattern: '^[A-Za-z0-9_-]{43}$',
  description: "matchingHash of the applicant's identity number, as an incoming transfer names them",
})

export const RegistrationConfirmRequest = StrictObject(
  {
    subject: MatchingSubject,
    asOf: Type.Optional(
      Type.String({ format: 'date', description: 'Date to confirm for; defaults to today in Asia/Shanghai' }),
    ),
  },
  { title: 'RegistrationConfirmRequest' },
)
export type RegistrationConfirmRequest = Static<typeof RegistrationConfirmRequest>

export const RegistrationConfirmResult = StrictObject(
  {
    registered: Type.Boolean({ description: 'Whether the person holds a household registration here on asOf' }),
    registeredSince: Type.Union([IsoDate, Type.Null()], {
      description: 'Start of the registration that stands on asOf; null when not registered',
    }),
    householdRef: Type.Union([Type.String(), Type.Null()], {
      description: "The registry's household reference of that registration; null when not registered or not given",
    }),
  },
  { title: 'RegistrationConfirmResult' },
)
export type RegistrationConfirmResult = Static<typeof RegistrationConfirmResult>
