import type { ColumnType, Generated, Selectable } from 'kysely'

export type CaseSide = 'outgoing' | 'incoming'
type Json<T> = ColumnType<T, string, string>
type NullableJson<T> = ColumnType<T | null, string | null, string | null>

/** The intake service's tables (schema `intake` of the city database). */
export interface IntakeDatabase {
  cases: CaseTable
  case_events: CaseEventTable
  outbox: OutboxTable
  idempotency_keys: IdempotencyTable
  inbound_processed: InboundProcessedTable
  audit_log: AuditTable
}

/** A case as read back (and as a submission writes it). */
export type CaseRow = Selectable<CaseTable>

export interface CaseTable {
  id: Generated<string>
  /** Case reference: minted by the residence city, the same in both cities for the whole case. */
  reference: string
  side: CaseSide
  partner_city: string
  status: string
  category: string
  /** Pilot-wide matching hash of the applicant's identity number (how the two cities name the person). */
  applicant_subject: string
  /** Blind index of the applicant's identity number (outgoing cases; this city's key). */
  applicant_index: Buffer | null
  caseworker_id: string | null
  /** The application (outgoing) or the transfer body (incoming), AES-256-GCM under the city's data key. */
  form_sealed: Buffer
  household_size: number
  /** Matching hashes of every household member, the applicant included: what a duplicate-benefit check looks for. */
  household_subjects: ColumnType<string[], string[] | undefined, string[]>
  residence: NullableJson<{
    eligible: boolean
    reasons: string[]
    residenceSince: string | null
    qualifiesOn: string | null
  }>
  attestation: string | null
  review_deadline: string | null
  review_deadline_provisional: ColumnType<boolean, boolean | undefined, boolean>
  partner_latest: NullableJson<{ type: string; at: string; detail: Record<string, unknown> }>
  decision: NullableJson<Record<string, unknown>>
  open_info_request: NullableJson<{ requestId: string; missing: string[] }>
  /** Incoming cases: the duplicate-benefit check asked of the other pilot cities when the case was accepted. */
  benefit_check: NullableJson<BenefitCheckState>
  submitted_at: ColumnType<Date, Date | undefined, never>
  updated_at: ColumnType<Date, Date | undefined, Date>
}

export interface BenefitCheckState {
  checkId: string
  asOf: string
  /** The cities asked, and those that answered or whose question could not be delivered (dead-lettered). */
  asked: string[]
  answered: string[]
  undelivered: string[]
  /** What the answers found; `subject` stays here to name the member, it is never shown. */
  matches: StoredBenefitMatch[]
  resolved: { by: string; at: string; note: string; matches: number } | null
}

export interface StoredBenefitMatch {
  city: string
  subject: string
  kind: 'active_benefit' | 'open_application'
  category: string
  caseReference: string
  activeFrom: string | null
  activeUntil: string | null
}

export interface CaseEventTable {
  id: Generated<string>
  case_id: string
  at: ColumnType<Date, Date | undefined, never>
  action: string
  from_status: string | null
  to_status: string
  actor: string
  role: string
  detail: NullableJson<Record<string, unknown>>
  /** The federation message that caused the event, if any: a message is applied to a case once. */
  message_id: string | null
}

export interface OutboxTable {
  /** The federation message id (jti). */
  id: string
  case_id: string | null
  to_city: string
  type: string
  ref: string
  usr: string | null
  /** The message body; null for a case.transfer, which is built from its case (cases/transfer.ts). */
  body: Json<unknown> | null
  created_at: ColumnType<Date, Date | undefined, never>
  relayed_at: Date | null
  outcome: string | null
  outcome_at: Date | null
  outcome_reason: string | null
}

export interface IdempotencyTable {
  actor: string
  key: string
  request_hash: string
  status_code: number
  /** Only in rows written before responses were sealed, until the worker seals them. */
  response: NullableJson<unknown>
  /** The response (a case view: personal data) sealed like a form. */
  response_sealed: Buffer | null
  created_at: ColumnType<Date, Date | undefined, never>
}

export interface InboundProcessedTable {
  message_id: string
  from_city: string
  type: string
  outcome: string
  processed_at: ColumnType<Date, Date | undefined, never>
}

export interface AuditTable {
  id: Generated<string>
  at: Date
  actor: string
  role: string
  city: string
  action: string
  case_id: string | null
  request_id: string | null
  detail: NullableJson<Record<string, string | number | boolean | null>>
  /** Place in the hash chain; null (with prev_hash and hash) until the chainer links the row. */
  chain_seq: ColumnType<string | null, never, string>
  prev_hash: ColumnType<string | null, never, string>
  hash: ColumnType<string | null, never, string>
}
