import type { Migrations } from '@pilot/kit'
import * as cases from './20260101T000000_cases.ts'
import * as benefitCheck from './20261201T000000_benefit_check.ts'
import * as auditChainer from './20261202T000000_audit_chainer.ts'
import * as sealedIdempotency from './20261203T000000_sealed_idempotency_responses.ts'
import * as leanerIndexes from './20261204T000000_leaner_indexes.ts'
import * as transferBodyFromCase from './20261205T000000_transfer_body_from_case.ts'
import * as outboxRelayDue from './20261206T000000_outbox_relay_due.ts'

/** Timestamp-named migrations, applied in name order. Each takes Kysely<any>: it is frozen in time. */
export const migrations: Migrations = {
  '20260101T000000_cases': cases,
  '20261201T000000_benefit_check': benefitCheck,
  '20261202T000000_audit_chainer': auditChainer,
  '20261203T000000_sealed_idempotency_responses': sealedIdempotency,
  '20261204T000000_leaner_indexes': leanerIndexes,
  '20261205T000000_transfer_body_from_case': transferBodyFromCase,
  '20261206T000000_outbox_relay_due': outboxRelayDue,
}
