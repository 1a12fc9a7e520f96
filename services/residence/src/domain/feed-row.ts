import { ID_NUMBER_REJECTIONS, isValidDate, validateIdNumber } from '@pilot/schemas'

/**
 * What every registry feed row has in common, whatever it records. A row is rejected as a whole with one reason (the
 * first found), so the registry can fix and resend it; the rest of the feed still loads.
 */
export type RowCheck<Row> = { ok: true; row: Row } | { ok: false; reason: string }

const SOURCE_REF_MAX = 200

/** The row as an object, provided it names no field outside `fields` (a misspelt column must not be dropped). */
export function feedObject(raw: unknown, fields: ReadonlySet<string>): RowCheck<Record<string, unknown>> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { ok: false, reason: 'not an object' }
  const record = raw as Record<string, unknown>
  const unknown = Object.keys(record).filter((key) => !fields.has(key))
  if (unknown.length > 0) return { ok: false, reason: `unknown field ${unknown.join(', ')}` }
  // PostgreSQL text cannot hold U+0000: such a value would fail the whole batch's statement, not just this row.
  const withNul = Object.keys(record).filter((key) => typeof record[key] === 'string' && record[key].includes('\u0000'))
  if (withNul.length > 0) return { ok: false, reason: `${withNul.join(', ')} contains a NUL character` }
  return { ok: true, row: record }
}

/** The identity number in normal form, checked as GB 11643 prescribes (format, birth date, check character). */
export function feedIdNumber(value: unknown, today: string): RowCheck<string> {
  if (typeof value !== 'string') return { ok: false, reason: 'idNumber is missing' }
  const identity = validateIdNumber(value, today)
  if (!identity.ok) return { ok: false, reason: `idNumber ${ID_NUMBER_REJECTIONS[identity.reason]}` }
  return { ok: true, row: identity.idNumber }
}

/** The registry's own reference for the record, trimmed: with the person, the key that makes re-imports idempotent. */
export function feedSourceRef(value: unknown): RowCheck<string> {
  if (typeof value !== 'string' || value.trim() === '' || value.length > SOURCE_REF_MAX) {
    return { ok: false, reason: `sourceRef must be 1 to ${SOURCE_REF_MAX} characters` }
  }
  return { ok: true, row: value.trim() }
}

/** Why a row naming another city is refused, or undefined when it names none or this one. */
export function foreignCity(value: unknown, thisCity: string, what: string): string | undefined {
  if (value === undefined || value === '' || value === thisCity) return undefined
  return `${what} for ${String(value)} does not belong in ${thisCity}'s records`
}

/** An optional field: NDJSON may leave it out or send null, CSV sends an empty column; all three mean none. */
export function blankToNull(value: unknown): unknown {
  return value === '' || value === undefined ? null : value
}

export function isFeedDate(value: unknown): value is string {
  return typeof value === 'string' && isValidDate(value)
}
