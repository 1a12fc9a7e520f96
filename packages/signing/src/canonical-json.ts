import { createHash } from 'node:crypto'

/**
 * RFC 8785 (JCS) canonical JSON. Two parties that hold the same JSON value get the same bytes, which is what lets a
 * receipt's digest be checked against a body the receiver parsed itself.
 *
 * Only JSON values are accepted: plain objects, arrays, strings, finite numbers, booleans and null. Anything that
 * JSON.stringify would silently drop or reshape (undefined, functions, symbols, a Date's toJSON, a Map) is a
 * TypeError here, because a digest over a value that is not what the peer receives can never match.
 */
export function canonicalJson(value: unknown): string {
  return serialise(value, [], new Set())
}

/** base64url (no padding) SHA-256 of the UTF-8 canonical JSON: the `digest` of federation receipts. */
export function bodyDigest(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value), 'utf8').digest('base64url')
}

/**
 * `trail` is the way down to `value` (keys and indexes), turned into a path like `$.household[0].name` only for an
 * error: building that string for every member cost a submission's request hash more than the serialising itself.
 */
function serialise(value: unknown, trail: (string | number)[], ancestors: Set<object>): string {
  switch (typeof value) {
    case 'string':
      return string(value, trail)
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`${pathOf(trail)}: ${value} is not a JSON number`)
      // ECMAScript Number::toString is exactly the serialisation RFC 8785 prescribes, and it prints -0 as 0.
      return JSON.stringify(value)
    case 'boolean':
      return value ? 'true' : 'false'
    case 'object':
      break
    default:
      throw new TypeError(`${pathOf(trail)}: a ${typeof value} is not a JSON value`)
  }
  if (value === null) return 'null'
  if (ancestors.has(value)) throw new TypeError(`${pathOf(trail)}: circular reference`)
  ancestors.add(value)
  try {
    if (Array.isArray(value)) {
      let out = '['
      for (let index = 0; index < value.length; index++) {
        trail.push(index)
        // A hole reads as undefined and is rejected like any other undefined.
        out += `${index === 0 ? '' : ','}${serialise(value[index], trail, ancestors)}`
        trail.pop()
      }
      return `${out}]`
    }
    const prototype = Object.getPrototypeOf(value)
    if (prototype !== Object.prototype && prototype !== null) {
      const kind = (value as { constructor?: { name?: string } }).constructor?.name ?? 'non-plain object'
      throw new TypeError(`${pathOf(trail)}: a ${kind} is not a JSON value`)
    }
    const record = value as Record<string, unknown>
    // The default sort compares UTF-16 code units, which is the order RFC 8785 section 3.2.3 asks for.
    const keys = Object.keys(record).sort()
    let out = '{'
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i] as string
      out += `${i === 0 ? '' : ','}${string(key, trail)}:`
      trail.push(key)
      out += serialise(record[key], trail, ancestors)
      trail.pop()
    }
    return `${out}}`
  } finally {
    ancestors.delete(value)
  }
}

function pathOf(trail: (string | number)[]): string {
  return `$${trail.map((step) => (typeof step === 'number' ? `[${step}]` : `.${step}`)).join('')}`
}

function string(value: string, trail: (string | number)[]): string {
  // RFC 8785 requires I-JSON input (RFC 7493), which forbids unpaired surrogates: they have no UTF-8 form, so two
  // implementations would hash them differently. isWellFormed is the engine's own scan, several times faster than a
  // /\p{Cs}/u test.
  if (!value.isWellFormed()) throw new TypeError(`${pathOf(trail)}: string holds an unpaired UTF-16 surrogate`)
  // JSON.stringify escapes exactly what RFC 8785 section 3.2.2.2 escapes, with the same short forms and lowercase hex.
  return JSON.stringify(value)
}
