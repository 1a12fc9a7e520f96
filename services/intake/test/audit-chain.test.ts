import { createHash } from 'node:crypto'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  type AuditDetail,
  type AuditEntry,
  type AuditRow,
  auditHash,
  GENESIS_HASH,
  verifyChain,
} from '../src/domain/audit-chain.ts'

function chain(entries: readonly AuditEntry[], previous = GENESIS_HASH): AuditRow[] {
  const rows: AuditRow[] = []
  let prevHash = previous
  for (const entry of entries) {
    const hash = auditHash(prevHash, entry)
    rows.push({ ...entry, prevHash, hash })
    prevHash = hash
  }
  return rows
}

function entry(id: number, overrides: Partial<AuditEntry> = {}): AuditEntry {
  return {
    id: String(id),
    at: `2026-03-0${(id % 9) + 1}T08:00:00.000Z`,
    actor: 'u-17',
    role: 'caseworker',
    city: 'zhuhai',
    action: 'case.read',
    caseId: 'ZH-2026-000042',
    requestId: `req-${id}`,
    ...overrides,
  }
}

const FIVE = chain([1, 2, 3, 4, 5].map((id) => entry(id)))

describe('auditHash', () => {
  it('is hex SHA-256 of the previous hash, a newline and the RFC 8785 form of the entry', () => {
    const first = entry(1, { detail: { fields: 'household', masked: true, count: 3, note: null } })
    // Keys sorted by UTF-16 code units, no whitespace: written out by hand, not by canonicalJson.
    const canonical =
      '{"action":"case.read","actor":"u-17","at":"2026-03-02T08:00:00.000Z","caseId":"ZH-2026-000042","city":"zhuhai",' +
      '"detail":{"count":3,"fields":"household","masked":true,"note":null},"id":"1","requestId":"req-1",' +
      '"role":"caseworker"}'
    const expected = createHash('sha256').update(`${GENESIS_HASH}\n${canonical}`).digest('hex')
    expect(auditHash(GENESIS_HASH, first)).toBe(expected)
    expect(expected).toMatch(/^[0-9a-f]{64}$/)
    expect(GENESIS_HASH).toBe('0000000000000000000000000000000000000000000000000000000000000000')
  })

  it('hashes only the entry’s own fields, so a database row can be passed as it is', () => {
    const [row] = FIVE
    expect(row && auditHash(GENESIS_HASH, row)).toBe(auditHash(GENESIS_HASH, entry(1)))
  })

  it('leaves out undefined fields, as JSON storage would, but tells an absent detail from an empty one', () => {
    const withUndefined = { ...entry(1), detail: { kept: 1, dropped: undefined } as unknown as AuditDetail }
    expect(auditHash(GENESIS_HASH, withUndefined)).toBe(auditHash(GENESIS_HASH, entry(1, { detail: { kept: 1 } })))
    expect(auditHash(GENESIS_HASH, { ...entry(1), detail: undefined })).toBe(auditHash(GENESIS_HASH, entry(1)))
    expect(auditHash(GENESIS_HASH, entry(1, { detail: {} }))).not.toBe(auditHash(GENESIS_HASH, entry(1)))
  })

  it('tells null from a missing case, and depends on the previous hash', () => {
    expect(auditHash(GENESIS_HASH, entry(1, { caseId: null }))).not.toBe(auditHash(GENESIS_HASH, entry(1)))
    expect(auditHash('f'.repeat(64), entry(1))).not.toBe(auditHash(GENESIS_HASH, entry(1)))
  })

  it('refuses a detail that is not JSON rather than hash something that will not read back the same', () => {
    const nan = { ...entry(1), detail: { amount: Number.NaN } }
    expect(() => auditHash(GENESIS_HASH, nan)).toThrow(TypeError)
  })
})

describe('verifyChain', () => {
  it('accepts a valid chain and an empty one', () => {
    expect(verifyChain(FIVE)).toEqual({ ok: true, count: 5, head: FIVE[4]?.hash })
    expect(verifyChain([])).toEqual({ ok: true, count: 0, head: GENESIS_HASH })
  })

  it('verifies from a checkpoint', () => {
    expect(verifyChain(FIVE.slice(2), FIVE[1]?.hash)).toMatchObject({ ok: true, count: 3 })
    expect(verifyChain(FIVE.slice(2))).toEqual({ ok: false, brokenAt: '3', reason: 'prev_hash_mismatch' })
  })

  it('names the row after a deleted middle row', () => {
    expect(verifyChain(FIVE.toSpliced(2, 1))).toEqual({ ok: false, brokenAt: '4', reason: 'prev_hash_mismatch' })
    expect(verifyChain(FIVE.slice(1))).toEqual({ ok: false, brokenAt: '2', reason: 'prev_hash_mismatch' })
  })

  it('does not see rows cut from the end, except through a checkpoint of the head', () => {
    const cut = verifyChain(FIVE.slice(0, 4))
    expect(cut).toMatchObject({ ok: true, count: 4 })
    expect(cut.ok && cut.head).not.toBe(FIVE[4]?.hash)
  })

  it('detects rows in another order', () => {
    const [a, b, c, d, e] = FIVE
    if (!a || !b || !c || !d || !e) throw new Error('five rows')
    expect(verifyChain([a, c, b, d, e])).toEqual({ ok: false, brokenAt: '3', reason: 'prev_hash_mismatch' })
    expect(verifyChain([b, a, c, d, e])).toEqual({ ok: false, brokenAt: '2', reason: 'prev_hash_mismatch' })
    // Renumbering the swapped rows does not help: the ids are part of what is hashed.
    expect(verifyChain([a, { ...c, id: '2' }, { ...b, id: '3' }, d, e])).toMatchObject({ ok: false, brokenAt: '2' })
  })

  it('names a row whose hash was recomputed after an edit by the next row', () => {
    const forged = FIVE.map((row) => ({ ...row }))
    const target = forged[1]
    if (!target) throw new Error('row 2')
    target.actor = 'someone-else'
    target.hash = auditHash(target.prevHash, target)
    expect(verifyChain(forged)).toEqual({ ok: false, brokenAt: '3', reason: 'prev_hash_mismatch' })
  })
})

describe('audit chain properties', () => {
  const text = fc.string({ minLength: 1, maxLength: 12 })
  const detailValue = fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.boolean(), fc.constant(null))
  const detail = fc.dictionary(fc.stringMatching(/^[a-z][a-zA-Z]{0,7}$/), detailValue, { maxKeys: 4 })
  const entryContent = fc.record(
    {
      at: fc
        .date({ min: new Date('2022-01-01T00:00:00Z'), max: new Date('2030-01-01T00:00:00Z'), noInvalidDate: true })
        .map((date) => date.toISOString()),
      actor: text,
      role: fc.constantFrom('caseworker', 'reviewer', 'auditor', 'system'),
      city: fc.constantFrom('shenzhen', 'zhuhai', 'zhongshan'),
      action: text,
      caseId: fc.option(text, { nil: null }),
      requestId: fc.option(fc.uuid(), { nil: null }),
      detail,
    },
    { requiredKeys: ['at', 'actor', 'role', 'city', 'action', 'caseId', 'requestId'] },
  )
  // Ids ascend with gaps, as a sequence's do after rolled-back inserts.
  const entries = fc.array(fc.tuple(fc.integer({ min: 1, max: 1000 }), entryContent), { minLength: 1, maxLength: 12 })
  const rows = entries.map((list) => {
    let id = 10n ** 12n
    return chain(
      list.map(([gap, content]) => {
        id += BigInt(gap)
        return { id: String(id), ...content }
      }),
    )
  })

  const FIELDS = [
    'id',
    'at',
    'actor',
    'role',
    'city',
    'action',
    'caseId',
    'requestId',
    'detail',
    'prevHash',
    'hash',
  ] as const

  function edited(row: AuditRow, field: (typeof FIELDS)[number], variant: number): AuditRow {
    const copy: AuditRow = { ...row }
    switch (field) {
      case 'caseId':
      case 'requestId': {
        const value = row[field]
        copy[field] = value === null ? 'x' : variant % 2 === 0 ? null : `${value}x`
        return copy
      }
      case 'detail': {
        const value = row.detail
        if (value === undefined) {
          copy.detail = variant % 2 === 0 ? {} : { added: variant }
          return copy
        }
        const keys = Object.keys(value)
        const key = keys[variant % Math.max(keys.length, 1)]
        if (key === undefined || variant % 3 === 0) {
          copy.detail = variant % 2 === 0 ? { ...value, zAdded: true } : undefined
        } else if (variant % 3 === 1) {
          copy.detail = Object.fromEntries(Object.entries(value).filter(([k]) => k !== key))
        } else {
          const old = value[key]
          const changed = typeof old === 'number' ? old + 1 : typeof old === 'boolean' ? !old : `${String(old)}x`
          copy.detail = { ...value, [key]: changed }
        }
        return copy
      }
      default:
        copy[field] = `${row[field]}${variant % 2 === 0 ? 'x' : '0'}`
        return copy
    }
  }

  it('verifies every chain it builds', () => {
    fc.assert(
      fc.property(rows, (list) => {
        expect(verifyChain(list)).toEqual({ ok: true, count: list.length, head: list.at(-1)?.hash })
      }),
    )
  })

  it('names exactly the edited row, whichever field of whichever row is edited', () => {
    fc.assert(
      fc.property(rows, fc.nat(), fc.constantFrom(...FIELDS), fc.nat(), (list, index, field, variant) => {
        const at = index % list.length
        const original = list[at]
        if (!original) throw new Error('row in range')
        const row = edited(original, field, variant)
        const tampered = list.with(at, row)
        expect(verifyChain(tampered)).toEqual({
          ok: false,
          brokenAt: row.id,
          reason: field === 'prevHash' ? 'prev_hash_mismatch' : 'hash_mismatch',
        })
      }),
      { numRuns: 500 },
    )
  })

  it('names the row after a deleted one, and the row that moved into a swapped position', () => {
    fc.assert(
      fc.property(rows, fc.nat(), fc.nat(), (list, i, j) => {
        if (list.length < 2) return
        const deleted = i % (list.length - 1)
        expect(verifyChain(list.toSpliced(deleted, 1))).toEqual({
          ok: false,
          brokenAt: list[deleted + 1]?.id,
          reason: 'prev_hash_mismatch',
        })
        const [low, high] = [i % list.length, j % list.length].sort((a, b) => a - b) as [number, number]
        if (low === high) return
        const swapped = list.with(low, list[high] as AuditRow).with(high, list[low] as AuditRow)
        expect(verifyChain(swapped)).toMatchObject({ ok: false, brokenAt: list[high]?.id })
      }),
    )
  })
})
