import { type Static, type TSchema, Type } from 'typebox'
import { CityId, IsoDate, StrictObject } from './common.ts'

/**
 * Federation protocol v1: the message types and the schema of each one's `body`. The gateway validates every inbound
 * body against these before anything is stored; the OpenAPI/prose protocol document is written from them.
 */

export const FEDERATION_TYP = 'pilot-msg+jwt'
export const FEDERATION_MAX_LIFETIME_SECONDS = 600
export const FEDERATION_CLOCK_TOLERANCE_SECONDS = 60
export const FEDERATION_MAX_BYTES = 1024 * 1024

export const CASE_MESSAGE_TYPES = [
  'case.transfer',
  'case.accepted',
  'case.refused',
  'case.info_requested',
  'case.info_supplied',
  'case.decided',
  'case.withdrawn',
] as const
/**
 * Questions one city asks the others about a case it decides: they move no case through its lifecycle, so they are not
 * case messages (the transition table never sends or receives them).
 */
export const CHECK_MESSAGE_TYPES = ['benefit.check', 'benefit.check_result'] as const
/** What a city may POST to a partner's gateway: everything but `receipt`, which only travels as the answer. */
export const PARTNER_MESSAGE_TYPES = [...CASE_MESSAGE_TYPES, ...CHECK_MESSAGE_TYPES] as const
export const MESSAGE_TYPES = [...PARTNER_MESSAGE_TYPES, 'receipt'] as const
export type MessageType = (typeof MESSAGE_TYPES)[number]
export type CaseMessageType = (typeof CASE_MESSAGE_TYPES)[number]
export type CheckMessageType = (typeof CHECK_MESSAGE_TYPES)[number]
export type PartnerMessageType = (typeof PARTNER_MESSAGE_TYPES)[number]

export const ASSISTANCE_CATEGORIES = [
  'subsistence_allowance',
  'low_income_margin',
  'extreme_poverty_support',
  'temporary_assistance',
  'medical_assistance',
  'education_assistance',
  'housing_assistance',
] as const
export const AssistanceCategory = Type.Enum([...ASSISTANCE_CATEGORIES])
export type AssistanceCategory = (typeof ASSISTANCE_CATEGORIES)[number]

/** Amounts are integers in fen (0.01 yuan), never floats. */
export const Fen = Type.Integer({ minimum: 0, maximum: 1_000_000_000, description: 'Amount in fen (1/100 yuan)' })

/**
 * A person named across cities: never by identity number, only by the pilot-wide matching hash (the same `sub` as in
 * the residence attestation). The hukou city finds its own registration record by it.
 */
export const PersonSubject = Type.String({
  pattern: '^[A-Za-z0-9_-]{43}$',
  description: 'base64url HMAC-SHA256 of the identity number under the pilot-wide matching key',
})

const ShortText = (maxLength: number) => Type.String({ minLength: 1, maxLength })

export const DocumentReference = StrictObject({
  name: ShortText(200),
  mediaType: Type.String({ pattern: '^[a-z]+/[a-z0-9.+-]+$', maxLength: 100 }),
  sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
})

export const HouseholdMemberTransfer = StrictObject({
  subject: PersonSubject,
  name: ShortText(100),
  relation: ShortText(40),
  birthDate: IsoDate,
  monthlyIncomeFen: Fen,
  assetsFen: Fen,
  disability: Type.Optional(ShortText(40)),
})

export const CaseTransferBody = StrictObject(
  {
    residenceCity: CityId,
    hukouCity: CityId,
    category: AssistanceCategory,
    submittedAt: Type.String({ format: 'date-time' }),
    applicant: StrictObject({ subject: PersonSubject, name: ShortText(100), birthDate: IsoDate }),
    household: Type.Array(HouseholdMemberTransfer, { maxItems: 30 }),
    circumstances: Type.String({ maxLength: 4000 }),
    rigidExpenditures: StrictObject({ medicalFen: Fen, educationFen: Fen, otherFen: Fen }),
    consent: StrictObject({ recordedBy: ShortText(100), recordedAt: Type.String({ format: 'date-time' }) }),
    documents: Type.Array(DocumentReference, { maxItems: 50 }),
    attestation: Type.String({ maxLength: 4096, description: 'The residence city’s signed residence attestation' }),
  },
  { title: 'CaseTransferBody' },
)

export const CaseAcceptedBody = StrictObject(
  {
    acceptedAt: Type.String({ format: 'date-time' }),
    reviewDeadline: IsoDate,
    reviewDeadlineProvisional: Type.Boolean({
      description: 'True when the deadline runs into a year whose holiday calendar is not yet published',
    }),
  },
  { title: 'CaseAcceptedBody' },
)
export const CaseRefusedBody = StrictObject(
  { reason: Type.String({ pattern: '^[a-z_]{1,64}$' }), detail: Type.String({ maxLength: 2000 }) },
  { title: 'CaseRefusedBody' },
)
export const CaseInfoRequestedBody = StrictObject(
  { requestId: Type.String({ format: 'uuid' }), missing: Type.Array(ShortText(500), { minItems: 1, maxItems: 20 }) },
  { title: 'CaseInfoRequestedBody' },
)
export const CaseInfoSuppliedBody = StrictObject(
  {
    requestId: Type.String({ format: 'uuid' }),
    note: Type.String({ maxLength: 4000 }),
    documents: Type.Array(DocumentReference, { maxItems: 50 }),
  },
  { title: 'CaseInfoSuppliedBody' },
)
export const CaseDecidedBody = StrictObject(
  {
    outcome: Type.Enum(['approved', 'rejected']),
    decidedAt: Type.String({ format: 'date-time' }),
    monthlyAmountFen: Type.Optional(Fen),
    startMonth: Type.Optional(Type.String({ pattern: '^[0-9]{4}-(0[1-9]|1[0-2])$' })),
    reviewDate: Type.Optional(IsoDate),
    reason: Type.Optional(Type.String({ maxLength: 2000 })),
  },
  { title: 'CaseDecidedBody' },
)
export const CaseWithdrawnBody = StrictObject(
  { withdrawnAt: Type.String({ format: 'date-time' }), reason: Type.String({ maxLength: 2000 }) },
  { title: 'CaseWithdrawnBody' },
)
const CASE_REFERENCE_PATTERN = '^[A-Za-z0-9._:-]+$'
const MONTH_PATTERN = '^[0-9]{4}-(0[1-9]|1[0-2])$'

/**
 * The duplicate-benefit check: the hukou city, on accepting a case, asks every other pilot city whether any member of
 * the household already has a benefit or an open application there. Members are named by subject only; `ref` is the
 * asking case's reference.
 */
export const BenefitCheckBody = StrictObject(
  {
    checkId: Type.String({ format: 'uuid', description: 'Names this check; the answer repeats it' }),
    subjects: Type.Array(PersonSubject, {
      minItems: 1,
      // The household of case.transfer (at most 30) and its applicant, who is normally one of them.
      maxItems: 31,
      uniqueItems: true,
      description: 'Every household member of the asking case, the applicant included, each once',
    }),
    asOf: Type.String({
      format: 'date',
      description: 'The asking city’s today (YYYY-MM-DD): a benefit whose review date is before it is not active',
    }),
  },
  { title: 'BenefitCheckBody' },
)

export const BENEFIT_MATCH_KINDS = ['active_benefit', 'open_application'] as const
export const BenefitMatch = StrictObject(
  {
    subject: PersonSubject,
    kind: Type.Enum([...BENEFIT_MATCH_KINDS], {
      description: 'An approved decision of the answering city, or a case there that is not final yet',
    }),
    category: AssistanceCategory,
    caseReference: Type.String({
      minLength: 1,
      maxLength: 128,
      pattern: CASE_REFERENCE_PATTERN,
      description: 'The answering city’s case reference',
    }),
    activeFrom: Type.Optional(
      Type.String({ pattern: MONTH_PATTERN, description: 'active_benefit: the first month of the benefit' }),
    ),
    activeUntil: Type.Optional(
      Type.String({ format: 'date', description: 'active_benefit: the review date of the decision (YYYY-MM-DD)' }),
    ),
  },
  { title: 'BenefitMatch' },
)
export const BenefitCheckResultBody = StrictObject(
  {
    checkId: Type.String({ format: 'uuid', description: 'The checkId of the benefit.check answered' }),
    matches: Type.Array(BenefitMatch, {
      maxItems: 100,
      description: 'Empty when nothing matched; the answering city is the message’s iss',
    }),
  },
  { title: 'BenefitCheckResultBody' },
)

export const ReceiptBody = StrictObject(
  {
    status: Type.Enum(['accepted', 'duplicate']),
    digest: Type.String({ pattern: '^[A-Za-z0-9_-]{43}$', description: 'base64url SHA-256 of the RFC 8785 body' }),
  },
  { title: 'ReceiptBody' },
)

export const MESSAGE_BODIES = {
  'case.transfer': CaseTransferBody,
  'case.accepted': CaseAcceptedBody,
  'case.refused': CaseRefusedBody,
  'case.info_requested': CaseInfoRequestedBody,
  'case.info_supplied': CaseInfoSuppliedBody,
  'case.decided': CaseDecidedBody,
  'case.withdrawn': CaseWithdrawnBody,
  'benefit.check': BenefitCheckBody,
  'benefit.check_result': BenefitCheckResultBody,
  receipt: ReceiptBody,
} as const satisfies Record<MessageType, TSchema>

export type MessageBody<T extends MessageType> = Static<(typeof MESSAGE_BODIES)[T]>

/** The claims of every federation message (the JWS payload). */
export const MessageClaims = StrictObject(
  {
    iss: CityId,
    aud: CityId,
    jti: Type.String({ format: 'uuid' }),
    iat: Type.Integer(),
    exp: Type.Integer(),
    type: Type.Enum([...MESSAGE_TYPES]),
    ref: Type.String({ minLength: 1, maxLength: 128, pattern: CASE_REFERENCE_PATTERN }),
    usr: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    body: Type.Unknown(),
  },
  { title: 'MessageClaims' },
)
export type MessageClaims = Static<typeof MessageClaims>

/** Queues between a city's gateway and its local services (one map: queue name → payload). */
export interface OutboundMessage {
  messageId: string
  to: string
  type: PartnerMessageType
  ref: string
  usr?: string
  body: unknown
}
export interface InboundMessage {
  messageId: string
  from: string
  type: PartnerMessageType
  ref: string
  usr?: string
  body: unknown
  receivedAt: string
}
export interface DeliveryOutcome {
  messageId: string
  to: string
  type: PartnerMessageType
  ref: string
  outcome: 'delivered' | 'dead'
  receiptStatus?: 'accepted' | 'duplicate'
  reason?: string
  at: string
}
export interface FederationQueues extends Record<string, unknown> {
  'federation.outbound': OutboundMessage
  'federation.inbound': InboundMessage
  'federation.delivery': DeliveryOutcome
}
