import { createHash } from 'node:crypto'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { bodyDigest, canonicalJson } from '../src/index.ts'

/** The same value with every object's keys inserted in reverse order. */
function reverseKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reverseKeys)
  if (typeof value === 'object' && value !== null) {
    // fromEntries defines own properties, so a "__proto__" key stays a key instead of replacing the prototype.
    return Object.fromEntries(
      Object.entries(value)
        .reverse()
        .map(([key, item]) => [key, reverseKeys(item)]),
    )
  }
  return value
}

const jsonValues = fc.jsonValue({ stringUnit: 'grapheme' })

describe('canonicalJson (RFC 8785)', () => {
  it('sorts keys by UTF-16 code units (RFC 8785 section 3.2.3)', () => {
    const input = {
      '\u20ac': 'Euro Sign',
      '\r': 'Carriage Return',
      '\ufb33': 'Hebrew Letter Dalet With Dagesh',
      '1': 'One',
      '\ud83d\ude00': 'Emoji: Grinning Face',
      '\u0080': 'Control',
      '\u00f6': 'Latin Small Letter O With Diaeresis',
    }
    expect(canonicalJson(input)).toBe(
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis",' +
        '"\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    )
  })

  it('serialises the RFC 8785 section 3.2.2 example', () => {
    const input = JSON.parse(
      '{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],' +
        '"string":"\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/","literals":[null,true,false]}',
    )
    expect(canonicalJson(input)).toBe(
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],' +
        '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
    )
  })

  it('serialises numbers as ECMAScript does (RFC 8785 appendix B)', () => {
    const vectors: [string, string][] = [
      ['0000000000000000', '0'],
      ['8000000000000000', '0'],
      ['0000000000000001', '5e-324'],
      ['8000000000000001', '-5e-324'],
      ['7fefffffffffffff', '1.7976931348623157e+308'],
      ['4340000000000000', '9007199254740992'],
      ['4430000000000000', '295147905179352830000'],
      ['44b52d02c7e14af6', '1e+23'],
      ['444b1ae4d6e2ef4f', '999999999999999900000'],
      ['444b1ae4d6e2ef50', '1e+21'],
      ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'],
      ['3eb0c6f7a0b5ed8d', '0.000001'],
      ['41b3de4355555557', '333333333.33333343'],
      ['becbf647612f3696', '-0.0000033333333333333333'],
      ['43143ff3c1cb0959', '1424953923781206.2'],
    ]
    for (const [bits, expected] of vectors) {
      expect(canonicalJson(Buffer.from(bits, 'hex').readDoubleBE(0)), bits).toBe(expected)
    }
    expect(canonicalJson([1e21, 0.000001, -0, 1e-7, 100])).toBe('[1e+21,0.000001,0,1e-7,100]')
  })

  it('sorts nested objects and keeps array order', () => {
    expect(canonicalJson({ b: [{ z: 1, a: null }, 'x'], a: { d: true, c: false } })).toBe(
      '{"a":{"c":false,"d":true},"b":[{"a":null,"z":1},"x"]}',
    )
    expect(canonicalJson({ '10': 1, '9': 2, a: 3 })).toBe('{"10":1,"9":2,"a":3}')
  })

  it('refuses what is not a JSON value', () => {
    const circular: Record<string, unknown> = {}
    circular.self = circular
    for (const value of [
      undefined,
      () => 1,
      10n,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      Symbol('s'),
      { a: undefined },
      [1, undefined],
      // biome-ignore lint/suspicious/noSparseArray: a hole is one of the things being refused
      [1, , 2],
      { nested: { n: Number.NEGATIVE_INFINITY } },
      new Date(0),
      new Map(),
      circular,
      '\ud800',
      { '\udc00': 1 },
    ]) {
      expect(() => canonicalJson(value), String(typeof value)).toThrow(TypeError)
    }
  })

  it('names where the refused value stands', () => {
    expect(() => canonicalJson({ a: [1, { b: Number.NaN }] })).toThrow('$.a[1].b: NaN is not a JSON number')
    expect(() => canonicalJson([{ x: '\ud800' }])).toThrow('$[0].x: string holds an unpaired UTF-16 surrogate')
    // A key with a lone surrogate is reported at the object that holds it.
    expect(() => canonicalJson({ o: { '\udc00': 1 } })).toThrow('$.o: string holds an unpaired UTF-16 surrogate')
    expect(() => canonicalJson(undefined)).toThrow('$: a undefined is not a JSON value')
  })

  it('is a fixed point: canonicalising the parsed canonical form gives the same text', () => {
    fc.assert(
      fc.property(jsonValues, (value) => {
        const canonical = canonicalJson(value)
        expect(canonicalJson(JSON.parse(canonical))).toBe(canonical)
        expect(JSON.parse(canonical)).toEqual(JSON.parse(JSON.stringify(value)))
      }),
    )
  })

  it('does not depend on the order keys were inserted in', () => {
    fc.assert(
      fc.property(jsonValues, (value) => {
        expect(canonicalJson(reverseKeys(value))).toBe(canonicalJson(value))
      }),
    )
  })
})

describe('bodyDigest', () => {
  it('is the base64url SHA-256 of the UTF-8 canonical form', () => {
    const body = { reason: '户籍不在试点城市', amount: 1.5, list: [3, 2, 1] }
    const expected = createHash('sha256')
      .update(Buffer.from('{"amount":1.5,"list":[3,2,1],"reason":"户籍不在试点城市"}', 'utf8'))
      .digest('base64url')
    expect(bodyDigest(body)).toBe(expected)
    expect(bodyDigest(body)).toMatch(/^[A-Za-z0-9_-]{43}$/)
  })

  it('is the same for the same value however it was built', () => {
    fc.assert(
      fc.property(jsonValues, (value) => {
        expect(bodyDigest(reverseKeys(value))).toBe(bodyDigest(JSON.parse(JSON.stringify(value))))
      }),
    )
  })
})
