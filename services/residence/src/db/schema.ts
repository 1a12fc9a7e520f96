import type { EvidenceKind } from '@pilot/schemas'
import type { ColumnType, Generated } from 'kysely'

/** The residence service's tables (schema `residence` of the city database). */
export interface ResidenceDatabase {
  evidence: EvidenceTable
  registrations: RegistrationTable
  imports: ImportTable
}

export interface EvidenceTable {
  id: Generated<string>
  /** HMAC-SHA256 of the identity number under the city's blind-index key. */
  person_index: Buffer
  /** The identity number, AES-256-GCM under the city's data key. */
  id_number_sealed: Buffer
  city: string
  kind: EvidenceKind
  valid_from: string
  valid_to: string | null
  source_ref: string
  import_id: string
  imported_at: ColumnType<Date, never, never>
  updated_at: ColumnType<Date, never, Date>
}

/** Household registration (hukou) records of this city. */
export interface RegistrationTable {
  id: Generated<string>
  /** HMAC-SHA256 of the identity number under the city's blind-index key. */
  person_index: Buffer
  /** The identity number, AES-256-GCM under the city's data key. */
  id_number_sealed: Buffer
  /** matchingHash of the identity number under the pilot-wide matching key: how another city's transfer names them. */
  subject: string
  city: string
  household_ref: string | null
  registered_since: string
  /** First day no longer registered; null while the registration stands. */
  cancelled_on: string | null
  source_ref: string
  import_id: string
  imported_at: ColumnType<Date, never, never>
  updated_at: ColumnType<Date, never, Date>
}

export interface ImportTable {
  id: string
  /** Which records the feed carried: 'evidence' or 'registrations'. */
  record_type: string
  format: string
  actor: string
  started_at: ColumnType<Date, never, never>
  finished_at: Date | null
  received: number
  inserted: number
  updated: number
  unchanged: number
  rejected: number
}
