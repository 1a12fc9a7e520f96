import { blindIndex, encryptPii } from '@pilot/kit'
import { matchingHash } from '@pilot/signing'
import { type SealedEvidence, upsertEvidence } from '../db/evidence-repository.ts'
import { type SealedRegistration, upsertRegistrations } from '../db/registration-repository.ts'
import { checkEvidenceRow } from '../domain/evidence-row.ts'
import { checkRegistrationRow } from '../domain/registration-row.ts'
import type { FeedRecordType } from './import.ts'

/** Residence evidence (the 3-month rule's input), idempotent on (person, kind, sourceRef). */
export const evidenceRecords: FeedRecordType<SealedEvidence> = {
  name: 'evidence',
  prepare(value, context) {
    const checked = checkEvidenceRow(value, context.city, context.today)
    if (!checked.ok) return checked
    const { row } = checked
    const personIndex = blindIndex(context.blindIndexKey, row.idNumber)
    return {
      ok: true,
      key: `${personIndex.toString('base64')}|${row.kind}|${row.sourceRef}`,
      row: {
        personIndex,
        idNumberSealed: encryptPii(context.piiKey, row.idNumber),
        kind: row.kind,
        validFrom: row.validFrom,
        validTo: row.validTo,
        sourceRef: row.sourceRef,
      },
    }
  },
  upsert: upsertEvidence,
}

/**
 * Household registration (hukou) records, idempotent on (person, sourceRef). Besides the city's own blind index they
 * keep the pilot-wide matching hash: an incoming transfer names the applicant by that alone.
 */
export const registrationRecords: FeedRecordType<SealedRegistration> = {
  name: 'registrations',
  prepare(value, context) {
    const checked = checkRegistrationRow(value, context.city, context.today)
    if (!checked.ok) return checked
    const { row } = checked
    const personIndex = blindIndex(context.blindIndexKey, row.idNumber)
    return {
      ok: true,
      key: `${personIndex.toString('base64')}|${row.sourceRef}`,
      row: {
        personIndex,
        idNumberSealed: encryptPii(context.piiKey, row.idNumber),
        subject: matchingHash(row.idNumber, context.matchingKey),
        registeredSince: row.registeredSince,
        cancelledOn: row.cancelledOn,
        householdRef: row.householdRef,
        sourceRef: row.sourceRef,
      },
    }
  },
  upsert: upsertRegistrations,
}

export type FeedRecordName = 'evidence' | 'registrations'

/**
 * The record types a feed may carry, by the name the command-line tool takes. The pipeline never looks inside a sealed
 * row, so the row types are erased here for a caller that picks the type at run time.
 */
export const FEED_RECORD_TYPES: Record<FeedRecordName, FeedRecordType<unknown>> = {
  evidence: evidenceRecords,
  registrations: registrationRecords,
}
