import { type Static, Type } from 'typebox'
import { IsoDate, StrictObject } from './common.ts'
import { AssistanceCategory, BENEFIT_MATCH_KINDS, DocumentReference, Fen } from './federation.ts'
import { RESIDENCE_REASONS } from './residence-api.ts'

const IdNumber = Type.String({ pattern: '^[0-9]{17}[0-9Xx]$', description: 'Resident identity number (GB 11643)' })
const Text = (maxLength: number, minLength = 1) => Type.String({ minLength, maxLength })

export const ApplicantInput = StrictObject({
  idNumber: IdNumber,
  name: Text(100),
  phone: Type.String({ pattern: '^\\+?[0-9 -]{5,20}$' }),
  address: Text(300),
  monthlyIncomeFen: Fen,
  assetsFen: Fen,
  disability: Type.Optional(Text(40)),
})

export const HouseholdMemberInput = StrictObject({
  idNumber: IdNumber,
  name: Text(100),
  relation: Text(40),
  monthlyIncomeFen: Fen,
  assetsFen: Fen,
  disability: Type.Optional(Text(40)),
})

export const ApplicationRequest = StrictObject(
  {
    applicant: ApplicantInput,
    hukouCity: Type.String({ pattern: '^[a-z][a-z_]{1,31}$', description: 'Where the applicant is registered' }),
    category: AssistanceCategory,
    household: Type.Array(HouseholdMemberInput, { maxItems: 29, description: 'Members other than the applicant' }),
    circumstances: Text(4000, 0),
    rigidExpenditures: StrictObject({ medicalFen: Fen, educationFen: Fen, otherFen: Fen }),
    consent: StrictObject(
      {
        economicCheckAuthorised: Type.Literal(true, {
          description: 'The applicant authorised the household economic check; an application without it is refused',
        }),
        recordedBy: Text(100),
        recordedAt: Type.String({ format: 'date-time' }),
      },
      { description: "The applicant's consent to the household economic check: who recorded it and when" },
    ),
    documents: Type.Array(DocumentReference, { maxItems: 50 }),
  },
  { title: 'ApplicationRequest' },
)
export type ApplicationRequest = Static<typeof ApplicationRequest>

export const CaseEvent = StrictObject(
  {
    at: Type.String({ format: 'date-time' }),
    action: Type.String(),
    from: Type.Union([Type.String(), Type.Null()]),
    to: Type.String(),
    actor: Type.String({ description: 'Pseudonymous user id, or the partner city, or system' }),
    role: Type.String(),
    detail: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
  },
  { title: 'CaseEvent' },
)

export const PartnerWord = StrictObject(
  {
    type: Type.String(),
    at: Type.String({ format: 'date-time' }),
    detail: Type.Record(Type.String(), Type.Unknown()),
  },
  { title: 'PartnerWord', description: "The other city's latest message about the case" },
)

export const BenefitCheckView = StrictObject(
  {
    asOf: IsoDate,
    asked: Type.Array(Type.String(), { description: 'The other pilot cities asked when the case was accepted' }),
    answered: Type.Array(Type.String(), { description: 'Those that have answered' }),
    undelivered: Type.Array(Type.String(), {
      description: 'Those the question could not be delivered to (dead-lettered; an operator can re-drive it)',
    }),
    matches: Type.Array(
      StrictObject({
        city: Type.String({ description: 'The city that reported it' }),
        member: Type.Union([StrictObject({ name: Type.String(), relation: Type.String() }), Type.Null()], {
          description: 'The household member concerned, from the transferred household',
        }),
        kind: Type.Enum([...BENEFIT_MATCH_KINDS]),
        category: AssistanceCategory,
        caseReference: Type.String({ description: 'The reporting city’s case' }),
        activeFrom: Type.Union([Type.String({ pattern: '^[0-9]{4}-(0[1-9]|1[0-2])$' }), Type.Null()]),
        activeUntil: Type.Union([IsoDate, Type.Null()]),
      }),
    ),
    resolved: Type.Union([
      StrictObject({
        by: Type.String({ description: 'Pseudonymous id of the reviewer' }),
        at: Type.String({ format: 'date-time' }),
        note: Type.String(),
        matches: Type.Integer({ minimum: 1, description: 'How many matches the resolution covered' }),
      }),
      Type.Null(),
    ]),
  },
  {
    title: 'BenefitCheckView',
    description:
      'Incoming cases: the duplicate-benefit check asked of every other pilot city when the case was accepted. ' +
      'Approving needs every match resolved (resolve-benefit-matches); cities that have not answered do not block.',
  },
)

export const CaseView = StrictObject(
  {
    id: Type.String({ format: 'uuid' }),
    reference: Type.String({ description: 'Case reference, the same in both cities' }),
    side: Type.Enum(['outgoing', 'incoming']),
    status: Type.String(),
    partnerCity: Type.String(),
    category: AssistanceCategory,
    applicant: StrictObject({
      name: Type.String(),
      idNumberMasked: Type.Union([Type.String(), Type.Null()], { description: 'e.g. 4403**********123X' }),
      birthDate: Type.Union([IsoDate, Type.Null()]),
    }),
    householdSize: Type.Integer({ minimum: 1 }),
    residence: Type.Union([
      StrictObject({
        eligible: Type.Boolean(),
        reasons: Type.Array(Type.Enum([...RESIDENCE_REASONS])),
        residenceSince: Type.Union([IsoDate, Type.Null()]),
        qualifiesOn: Type.Union([IsoDate, Type.Null()]),
      }),
      Type.Null(),
    ]),
    submittedAt: Type.String({ format: 'date-time' }),
    reviewDeadline: Type.Union([IsoDate, Type.Null()], { description: 'In working days from submission or receipt' }),
    reviewDeadlineProvisional: Type.Boolean({
      description: 'The deadline runs into a year whose holiday calendar is unpublished; weekdays were counted there',
    }),
    overdue: Type.Boolean(),
    partnerLatest: Type.Union([PartnerWord, Type.Null()]),
    decision: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
    openInfoRequest: Type.Union([
      StrictObject({ requestId: Type.String({ format: 'uuid' }), missing: Type.Array(Type.String()) }),
      Type.Null(),
    ]),
    recommendation: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()], {
      description:
        'Incoming cases: the categories the household fits under the policy in force today, with reasons, and the ' +
        'recommended amounts in fen (see services/intake/src/domain/benefits.ts). A decision that departs from the ' +
        'recommended subsistence amount needs a departureReason.',
    }),
    benefitCheck: Type.Union([BenefitCheckView, Type.Null()]),
    allowedActions: Type.Array(Type.String(), { description: 'What the caller may do next' }),
    events: Type.Array(CaseEvent),
  },
  { title: 'CaseView' },
)
export type CaseView = Static<typeof CaseView>

export const CaseSummary = StrictObject(
  {
    id: Type.String({ format: 'uuid' }),
    reference: Type.String(),
    status: Type.String(),
    partnerCity: Type.String(),
    category: AssistanceCategory,
    submittedAt: Type.String({ format: 'date-time' }),
    reviewDeadline: Type.Union([IsoDate, Type.Null()]),
    overdue: Type.Boolean(),
  },
  { title: 'CaseSummary' },
)
export const CasePage = StrictObject(
  { items: Type.Array(CaseSummary), nextCursor: Type.Union([Type.String(), Type.Null()]) },
  { title: 'CasePage' },
)
export const CaseListQuery = StrictObject({
  status: Type.Optional(Type.String({ pattern: '^[a-z_]{1,32}$' })),
  partnerCity: Type.Optional(Type.String({ pattern: '^[a-z]{1,32}$' })),
  overdue: Type.Optional(Type.Boolean()),
  limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
  cursor: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{1,200}$' })),
})
export type CaseListQuery = Static<typeof CaseListQuery>

export const RefuseRequest = StrictObject({
  reason: Type.String({ pattern: '^[a-z_]{1,64}$', description: 'Stable reason code, e.g. not_registered_here' }),
  detail: Text(2000),
})
export const InfoRequest = StrictObject({ missing: Type.Array(Text(500), { minItems: 1, maxItems: 20 }) })
export const InfoSupplied = StrictObject({
  requestId: Type.String({ format: 'uuid' }),
  note: Text(4000, 0),
  documents: Type.Array(DocumentReference, { maxItems: 50 }),
})
export const DecisionRequest = Type.Union(
  [
    StrictObject({
      outcome: Type.Literal('approved'),
      monthlyAmountFen: Fen,
      startMonth: Type.String({ pattern: '^[0-9]{4}-(0[1-9]|1[0-2])$' }),
      reviewDate: IsoDate,
      departureReason: Type.Optional(
        Type.String({ minLength: 1, maxLength: 2000, description: 'Why the amount differs from the recommendation' }),
      ),
    }),
    StrictObject({ outcome: Type.Literal('rejected'), reason: Text(2000) }),
  ],
  { title: 'DecisionRequest' },
)
export type DecisionRequest = Static<typeof DecisionRequest>
export const WithdrawRequest = StrictObject({ reason: Text(2000) })
export const ResolveBenefitMatchesRequest = StrictObject({
  note: Type.String({
    minLength: 1,
    maxLength: 2000,
    description: 'Why the case may go ahead despite the matches (kept in this city’s record, not sent across)',
  }),
})
