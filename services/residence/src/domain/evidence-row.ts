import { compareDates, EVIDENCE_KINDS, type EvidenceKind } from '@pilot/schemas'
import {
  blankToNull,
  feedIdNumber,
  feedObject,
  feedSourceRef,
  foreignCity,
  isFeedDate,
  type RowCheck,
} from './feed-row.ts'

/** One row of a registry feed after checking: what the store keeps. */
export interface EvidenceRow {
  idNumber: string
  kind: EvidenceKind
  validFrom: string
  validTo: string | null
  sourceRef: string
}

const FIELDS = new Set(['idNumber', 'kind', 'validFrom', 'validTo', 'sourceRef', 'city'])

/** Checks one evidence row of a feed (see RowCheck for how a bad row is reported). */
export function checkEvidenceRow(raw: unknown, thisCity: string, today: string): RowCheck<EvidenceRow> {
  const object = feedObject(raw, FIELDS)
  if (!object.ok) return object
  const { idNumber, kind, validFrom, sourceRef, city } = object.row
  const validTo = blankToNull(object.row.validTo)

  const identity = feedIdNumber(idNumber, today)
  if (!identity.ok) return identity
  if (typeof kind !== 'string' || !(EVIDENCE_KINDS as readonly string[]).includes(kind)) {
    return { ok: false, reason: `kind must be one of ${EVIDENCE_KINDS.join(', ')}` }
  }
  if (!isFeedDate(validFrom)) return { ok: false, reason: 'validFrom is not a date (YYYY-MM-DD)' }
  if (validTo !== null && !isFeedDate(validTo)) {
    return { ok: false, reason: 'validTo is not a date (YYYY-MM-DD) or empty' }
  }
  if (validTo !== null && compareDates(validFrom, validTo) > 0) {
    return { ok: false, reason: 'validFrom is after validTo' }
  }
  const reference = feedSourceRef(sourceRef)
  if (!reference.ok) return reference
  const elsewhere = foreignCity(city, thisCity, 'evidence')
  if (elsewhere) return { ok: false, reason: elsewhere }
  return {
    ok: true,
    row: { idNumber: identity.row, kind: kind as EvidenceKind, validFrom, validTo, sourceRef: reference.row },
  }
}
