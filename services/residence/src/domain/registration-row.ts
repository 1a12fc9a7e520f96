import { compareDates } from '@pilot/schemas'
import {
  blankToNull,
  feedIdNumber,
  feedObject,
  feedSourceRef,
  foreignCity,
  isFeedDate,
  type RowCheck,
} from './feed-row.ts'

/** One household registration (hukou) record of a registry feed after checking: what the store keeps. */
export interface RegistrationRow {
  idNumber: string
  registeredSince: string
  /** First day the person is no longer registered here; null while the registration stands. */
  cancelledOn: string | null
  householdRef: string | null
  sourceRef: string
}

const FIELDS = new Set(['idNumber', 'registeredSince', 'cancelledOn', 'householdRef', 'sourceRef', 'city'])
const HOUSEHOLD_REF_MAX = 200

/** Checks one registration row of a feed (see RowCheck for how a bad row is reported). */
export function checkRegistrationRow(raw: unknown, thisCity: string, today: string): RowCheck<RegistrationRow> {
  const object = feedObject(raw, FIELDS)
  if (!object.ok) return object
  const { idNumber, registeredSince, sourceRef, city } = object.row
  const cancelledOn = blankToNull(object.row.cancelledOn)
  const householdRef = blankToNull(object.row.householdRef)

  const identity = feedIdNumber(idNumber, today)
  if (!identity.ok) return identity
  if (!isFeedDate(registeredSince)) return { ok: false, reason: 'registeredSince is not a date (YYYY-MM-DD)' }
  if (cancelledOn !== null && !isFeedDate(cancelledOn)) {
    return { ok: false, reason: 'cancelledOn is not a date (YYYY-MM-DD) or empty' }
  }
  if (cancelledOn !== null && compareDates(registeredSince, cancelledOn) > 0) {
    return { ok: false, reason: 'registeredSince is after cancelledOn' }
  }
  if (
    householdRef !== null &&
    (typeof householdRef !== 'string' || householdRef.trim() === '' || householdRef.length > HOUSEHOLD_REF_MAX)
  ) {
    return { ok: false, reason: `householdRef must be 1 to ${HOUSEHOLD_REF_MAX} characters or empty` }
  }
  const reference = feedSourceRef(sourceRef)
  if (!reference.ok) return reference
  const elsewhere = foreignCity(city, thisCity, 'a registration')
  if (elsewhere) return { ok: false, reason: elsewhere }
  return {
    ok: true,
    row: {
      idNumber: identity.row,
      registeredSince,
      cancelledOn,
      householdRef: householdRef === null ? null : householdRef.trim(),
      sourceRef: reference.row,
    },
  }
}
