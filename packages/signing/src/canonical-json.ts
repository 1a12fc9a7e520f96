import { createHash } from 'node:crypto'

// RFC 8785 requires I-JSON input (RFC 7493), which forbids unpaired surrogates: they have no UTF-8 form, so two
// implementations would hash them differently. With the u flag a well-formed pair is one code point, not a match.
const LONE_SURROGATE = /\p{Cs}/u

/**
 * RFC 8785 (JCS) canonical JSON. Two parties that hold the same JSON value get the same bytes, which is what lets a
 * receipt's digest be checked against a body the receiver parsed itself.
 *
 * Only JSON values are accepted: plain objects, arrays, strings, finite numbers, booleans and null. Anything that
 * JSON.stringify would silently drop or reshape (undefined, functions, symbols, a Date's toJSON, a Map) is a
 * TypeError here, because a digest over a value that is not what the peer receives can never match.
 */
export function canonicalJson(value: unknown): string {
  return serialise(value, '$', new Set())
}

/** base64url (no padding) SHA-256 of the UTF-8 canonical JSON: the `digest` of federation receipts. */
export function bodyDigest(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value), 'utf8').digest('base64url')
}

function serialise(value: unknown, path: string, ancestors: Set<object>): string {
  switch (typeof value) {
    case 'string':
      return string(value, path)
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`${path}: ${value} is not a JSON number`)
      // ECMAScript Number::toString is exactly the serialisation RFC 8785 prescribes, and it prints -0 as 0.
      return JSON.stringify(value)
    case 'boolean':
      return value ? 'true' : 'false'
    case 'object':
      break
    default:
      throw new TypeError(`${path}: a ${typeof value} is not a JSON value`)
  }
  if (value === null) return 'null'
  if (ancestors.has(value)) throw new TypeError(`${path}: circular reference`)
  ancestors.add(value)
  try {
    if (Array.isArray(value)) {
      const items: string[] = []
      for (let index = 0; index < value.length; index++) {
        // A hole reads as undefined and is rejected like any other undefined.
        items.push(serialise(value[index], `${path}[${index}]`, ancestors))
      }
      return `[${items.join(',')}]`
    }
    const prototype = Object.getPrototypeOf(value)
    if (prototype !== Object.prototype && prototype !== null) {
      const kind = (value as { constructor?: { name?: string } }).constructor?.name ?? 'non-plain object'
      throw new TypeError(`${path}: a ${kind} is not a JSON value`)
    }
    const record = value as Record<string, unknown>
    // The default sort compares UTF-16 code units, which is the order RFC 8785 section 3.2.3 asks for.
    const keys = Object.keys(record).sort()
    const members = keys.map((key) => `${string(key, path)}:${serialise(record[key], `${path}.${key}`, ancestors)}`)
    return `{${members.join(',')}}`
  } finally {
    ancestors.delete(value)
  }
}

function string(value: string, path: string): string {
  if (LONE_SURROGATE.test(value)) throw new TypeError(`${path}: string holds an unpaired UTF-16 surrogate`)
  // JSON.stringify escapes exactly what RFC 8785 section 3.2.2.2 escapes, with the same short forms and lowercase hex.
  return JSON.stringify(value)
}
