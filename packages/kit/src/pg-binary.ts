/**
 * One-dimensional PostgreSQL arrays in the binary wire format (what PostgreSQL's array_recv reads), for statements that
 * pass a batch as one array per column and unnest it on the server.
 *
 * Why: node-postgres sends every other parameter as text, so a batch of submissions went as array literals, which
 * PostgreSQL parses character by character (array_in: quotes, backslashes, and each bytea as doubled, escaped hex).
 * Profiled on the intake benchmark that parsing was a fifth of PostgreSQL's CPU, and building the literals (pg's
 * escapeElement) a visible share of the service's. In binary each element is its length and its bytes. node-postgres
 * sends a Buffer parameter in binary format as it is, so a statement only needs `$1::text[]` as before and a Buffer
 * from here in place of the JavaScript array.
 *
 * The element type's OID travels in the array header and PostgreSQL refuses an array whose element type is not the
 * one the statement declares ("binary data has array element type … instead of expected …"), so a column given the wrong encoder fails loudly instead of being
 * misread. Element values are checked as strictly as PostgreSQL's text input would check them.
 */

/** The element types written here, with their OIDs (pg_type.oid; fixed for built-in types). */
const ELEMENT_OIDS = {
  bool: 16,
  bytea: 17,
  int8: 20,
  int4: 23,
  text: 25,
  date: 1082,
  timestamptz: 1184,
  uuid: 2950,
  jsonb: 3802,
} as const

export type BinaryElementType = keyof typeof ELEMENT_OIDS

/** What each element type takes from JavaScript. */
export interface BinaryElementValue {
  bool: boolean
  bytea: Uint8Array
  int4: number
  /** A bigint, a safe integer, or its decimal digits (as node-postgres returns a bigint column). */
  int8: bigint | number | string
  text: string
  /** `YYYY-MM-DD`. */
  date: string
  /** A Date, or an ISO 8601 string with a time zone; microseconds are kept as milliseconds. */
  timestamptz: Date | string
  uuid: string
  /** Already serialised JSON text (jsonb's binary format is a version byte and the text). */
  jsonb: string
}

/** PostgreSQL's epoch for dates and timestamps: 2000-01-01 UTC, in Unix milliseconds. */
const POSTGRES_EPOCH_MS = Date.UTC(2000, 0, 1)
const DAY_MS = 86_400_000
const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/
const ZONED = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/i

function encodeElement<T extends BinaryElementType>(type: T, value: BinaryElementValue[T]): Buffer {
  switch (type) {
    case 'text':
      return Buffer.from(value as string, 'utf8')
    case 'bytea': {
      const bytes = value as Uint8Array
      return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    }
    case 'jsonb': {
      const text = Buffer.from(value as string, 'utf8')
      const out = Buffer.allocUnsafe(text.length + 1)
      out[0] = 1 // jsonb's binary format version
      text.copy(out, 1)
      return out
    }
    case 'bool':
      return Buffer.from([(value as boolean) ? 1 : 0])
    case 'int4': {
      const number = value as number
      if (!Number.isInteger(number) || number < -2_147_483_648 || number > 2_147_483_647) {
        throw new RangeError(`not a 32-bit integer: ${number}`)
      }
      const out = Buffer.allocUnsafe(4)
      out.writeInt32BE(number)
      return out
    }
    case 'int8': {
      const given = value as bigint | number | string
      let number: bigint
      try {
        if (typeof given === 'number' && !Number.isSafeInteger(given)) throw new RangeError()
        if (typeof given === 'string' && !/^-?\d+$/.test(given)) throw new RangeError()
        number = BigInt(given)
      } catch {
        throw new RangeError(`not a 64-bit integer: ${String(given)}`)
      }
      if (number < -(2n ** 63n) || number >= 2n ** 63n) throw new RangeError(`not a 64-bit integer: ${number}`)
      const out = Buffer.allocUnsafe(8)
      out.writeBigInt64BE(number)
      return out
    }
    case 'uuid': {
      const text = value as string
      if (!UUID.test(text)) throw new RangeError(`not a UUID: ${JSON.stringify(text)}`)
      return Buffer.from(text.replaceAll('-', ''), 'hex')
    }
    case 'date': {
      const match = DATE.exec(value as string)
      const days = match ? Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3])) : Number.NaN
      // Date.UTC rolls 2026-02-30 over into March; PostgreSQL refuses it, and so does this.
      if (!match || new Date(days).toISOString().slice(0, 10) !== value) {
        throw new RangeError(`not a date: ${JSON.stringify(value)}`)
      }
      const out = Buffer.allocUnsafe(4)
      out.writeInt32BE((days - POSTGRES_EPOCH_MS) / DAY_MS)
      return out
    }
    case 'timestamptz': {
      // A string must say its zone: without one, Date.parse would read it in this process's zone and PostgreSQL's
      // text input in the session's, which need not agree.
      const ms =
        value instanceof Date ? value.getTime() : ZONED.test(value as string) ? Date.parse(value as string) : Number.NaN
      if (!Number.isFinite(ms)) throw new RangeError(`not a timestamp with a zone: ${JSON.stringify(String(value))}`)
      const out = Buffer.allocUnsafe(8)
      out.writeBigInt64BE(BigInt(ms - POSTGRES_EPOCH_MS) * 1000n)
      return out
    }
  }
  throw new TypeError(`no binary encoding for ${type}`)
}

/**
 * A one-dimensional array of `type` in PostgreSQL's binary format; null and undefined elements are SQL NULL. Pass the
 * result as the parameter of a statement that casts it to `type[]`.
 */
export function binaryArray<T extends BinaryElementType>(
  type: T,
  values: readonly (BinaryElementValue[T] | null | undefined)[],
): Buffer {
  const elements = values.map((value) => (value === null || value === undefined ? null : encodeElement(type, value)))
  const hasNull = elements.includes(null)
  const header = values.length === 0 ? 12 : 20
  const size = elements.reduce((sum, element) => sum + 4 + (element?.length ?? 0), header)
  const out = Buffer.allocUnsafe(size)
  out.writeInt32BE(values.length === 0 ? 0 : 1, 0) // dimensions (an empty array has none)
  out.writeInt32BE(hasNull ? 1 : 0, 4)
  out.writeInt32BE(ELEMENT_OIDS[type], 8)
  let at = header
  if (values.length > 0) {
    out.writeInt32BE(values.length, 12)
    out.writeInt32BE(1, 16) // lower bound
  }
  for (const element of elements) {
    if (element === null) {
      out.writeInt32BE(-1, at)
      at += 4
    } else {
      out.writeInt32BE(element.length, at)
      element.copy(out, at + 4)
      at += 4 + element.length
    }
  }
  return out
}
