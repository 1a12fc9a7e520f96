import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { unstorableTextAt } from '../src/index.ts'

/** The walk as first written (a pointer built for every value on the way), kept as the reference. */
function reference(value: unknown): string | undefined {
  const unstorable = (text: string) =>
    text.includes('\u0000') || /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(text)
  const stack: [unknown, string][] = [[value, '']]
  while (stack.length > 0) {
    const [item, pointer] = stack.pop() as [unknown, string]
    if (typeof item === 'string') {
      if (unstorable(item)) return pointer
    } else if (Array.isArray(item)) {
      for (let index = item.length - 1; index >= 0; index--) stack.push([item[index], `${pointer}/${index}`])
    } else if (item !== null && typeof item === 'object') {
      for (const [key, child] of Object.entries(item)) {
        const at = `${pointer}/${key.replaceAll('~', '~0').replaceAll('/', '~1')}`
        if (unstorable(key)) return at
        stack.push([child, at])
      }
    }
  }
  return undefined
}

/** Strings that are sometimes unstorable: NULs and halves of surrogate pairs among ordinary and astral characters. */
const text = fc
  .array(fc.constantFrom('a', '/', '~', '\u0000', '\ud800', '\udc00', '😀', '林', ''), { maxLength: 6 })
  .map((parts) => parts.join(''))

const json = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    text,
    fc.integer(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(text, tie('value'), { maxKeys: 4 }),
  ),
})).value

describe('unstorableTextAt', () => {
  it('finds the same string, at the same JSON Pointer, as the walk it replaced', () => {
    fc.assert(
      fc.property(json, (value) => {
        expect(unstorableTextAt(value)).toBe(reference(value))
      }),
      { numRuns: 2000 },
    )
  })

  it('names the place of a NUL or half a surrogate pair, escaping ~ and / in keys', () => {
    expect(unstorableTextAt({ a: [{ 'b/c~': 'x\u0000' }] })).toBe('/a/0/b~1c~0')
    expect(unstorableTextAt({ a: 'ok', b: ['x\ud800y'] })).toBe('/b/0')
    expect(unstorableTextAt({ 'k\udc00': 1 })).toBe('/k\udc00')
    expect(unstorableTextAt('\u0000')).toBe('')
    expect(unstorableTextAt({ a: '😀 林', b: [1, null, { c: '' }] })).toBeUndefined()
  })

  it('walks a body nested ten thousand levels deep without overflowing the stack', () => {
    let deep: unknown = 'x\u0000'
    for (let i = 0; i < 10_000; i++) deep = [deep]
    expect(unstorableTextAt(deep)).toBe('/0'.repeat(10_000))
  })
})
