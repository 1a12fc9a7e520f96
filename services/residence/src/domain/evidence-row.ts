import {
  compareDates,
  EVIDENCE_KINDS,
  type EvidenceKind,
  ID_NUMBER_REJECTIONS,
  isValidDate,
  validateIdNumber,
} from '@pilot/schemas'

/** One row of a registry feed after checking: what the store keeps. */
export interface EvidenceRow {
  idNumber: string
  kind: EvidenceKind
  validFrom: string
  validTo: string | null
  sourceRef: string
}

export type RowCheck = { ok: true; row: EvidenceRow } | { ok: false; reason: string }

const FIELDS = new Set(['idNumber', 'kind', 'validFrom', 'validTo', 'sourceRef', 'city'])
const SOURCE_REF_MAX = 200

/**
 * Checks one feed row. A feed row is rejected as a whole with one reason (the first found), so the registry can fix
 * and resend it; the rest of the feed still loads.
 */
export function checkEvidenceRow(raw: unknown, thisCity: string, today: string): RowCheck {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { ok: false, reason: 'not an object' }
  const record = raw as Record<string, unknown>
  const unknown = Object.keys(record).filter((key) => !FIELDS.has(key))
  if (unknown.length > 0) return { ok: false, reason: `unknown field ${unknown.join(', ')}` }

  const { idNumber, kind, validFrom, sourceRef, city } = record
  const validTo = record.validTo === '' || record.validTo === undefined ? null : record.validTo
  if (typeof idNumber !== 'string') return { ok: false, reason: 'idNumber is missing' }
  const identity = validateIdNumber(idNumber, today)
  if (!identity.ok) {
    return { ok: false, reason: `idNumber ${ID_NUMBER_REJECTIONS[identity.reason]}` }
  }
  if (typeof kind !== 'string' || !(EVIDENCE_KINDS as readonly string[]).includes(kind)) {
    return { ok: false, reason: `kind must be one of ${EVIDENCE_KINDS.join(', ')}` }
  }
  if (typeof validFrom !== 'string' || !isValidDate(validFrom))
    return { ok: false, reason: 'validFrom is not a date (YYYY-MM-DD)' }
  if (validTo !== null && (typeof validTo !== 'string' || !isValidDate(validTo))) {
    return { ok: false, reason: 'validTo is not a date (YYYY-MM-DD) or empty' }
  }
  if (validTo !== null && compareDates(validFrom, validTo) > 0)
    return { ok: false, reason: 'validFrom is after validTo' }
  if (typeof sourceRef !== 'string' || sourceRef.trim() === '' || sourceRef.length > SOURCE_REF_MAX) {
    return { ok: false, reason: `sourceRef must be 1 to ${SOURCE_REF_MAX} characters` }
  }
  if (city !== undefined && city !== '' && city !== thisCity) {
    return { ok: false, reason: `evidence for ${String(city)} does not belong in ${thisCity}'s records` }
  }
  return {
    ok: true,
    row: { idNumber: identity.idNumber, kind: kind as EvidenceKind, validFrom, validTo, sourceRef: sourceRef.trim() },
  }
}
