import type { Migrations } from '@pilot/kit'
import * as evidence from './20260101T000000_evidence.ts'
import * as registrations from './20261130T000000_registrations.ts'

/** Timestamp-named migrations, applied in name order. Each takes Kysely<any>: it is frozen in time. */
export const migrations: Migrations = {
  '20260101T000000_evidence': evidence,
  '20261130T000000_registrations': registrations,
}
