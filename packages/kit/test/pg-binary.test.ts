import { testResources } from '@pilot/testing'
import fc from 'fast-check'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type BinaryElementType, binaryArray } from '../src/index.ts'

/**
 * Every array goes to a real PostgreSQL in binary and comes back as text (`array_to_json`), compared with what the
 * same values give when PostgreSQL reads them from their text form: the binary path must mean exactly what the text
 * path meant.
 */
describe('binary arrays', () => {
  const client = new pg.Client({ connectionString: testResources().databaseUrl })
  beforeAll(() => client.connect())
  afterAll(() => client.end())

  /**
   * What PostgreSQL makes of the binary array, and of the same values given as a text array: as JSON, and as
   * PostgreSQL's own text form (exact where JSON is not: a bigint beyond 2^53).
   */
  async function both(type: BinaryElementType, values: unknown[], textValues: unknown[] = values) {
    const { rows } = await client.query<{
      binary: unknown
      text: unknown
      n: number
      binaryText: string
      textText: string
    }>(
      `select array_to_json($1::${type}[]) as binary, array_to_json($2::${type}[]) as text,
         cardinality($1::${type}[]) as n, $1::${type}[]::text as "binaryText", $2::${type}[]::text as "textText"`,
      [binaryArray(type, values as never), textValues],
    )
    const row = rows[0] as { binary: unknown; text: unknown; n: number; binaryText: string; textText: string }
    expect(row.binaryText).toBe(row.textText)
    return row
  }

  const noNul = fc.string({ unit: 'binary' }).map((s) => s.replaceAll('\0', ''))

  it('reads text, with nulls, quotes, backslashes, commas, braces and any Unicode, as the text form does', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.option(noNul, { nil: null }), { maxLength: 20 }), async (values) => {
        const result = await both('text', values)
        expect(result.binary).toEqual(result.text)
        expect(result.binary ?? []).toEqual(values)
      }),
      { numRuns: 60 },
    )
  })

  it('reads bytea as the bytes given', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.option(fc.uint8Array({ maxLength: 64 }), { nil: null }), { maxLength: 12 }),
        async (values) => {
          const { rows } = await client.query<{ hex: (string | null)[] | null }>(
            `select array(select encode(b, 'hex') from unnest($1::bytea[]) with ordinality as t(b, n) order by n) as hex`,
            [binaryArray('bytea', values)],
          )
          expect(rows[0]?.hex).toEqual(values.map((v) => (v === null ? null : Buffer.from(v).toString('hex'))))
        },
      ),
      { numRuns: 40 },
    )
  })

  it('reads integers, booleans, dates, timestamps, UUIDs and jsonb as their text forms', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.option(fc.integer(), { nil: null }), { maxLength: 10 }),
        fc.array(fc.option(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), { nil: null }), { maxLength: 10 }),
        fc.array(fc.option(fc.boolean(), { nil: null }), { maxLength: 10 }),
        fc.array(fc.date({ min: new Date('1900-01-01'), max: new Date('2200-12-31'), noInvalidDate: true }), {
          maxLength: 10,
        }),
        fc.array(fc.uuid(), { maxLength: 10 }),
        fc.array(fc.jsonValue({ maxDepth: 3 }), { maxLength: 6 }),
        async (ints, bigints, bools, dates, uuids, json) => {
          for (const [type, values, text] of [
            ['int4', ints, ints],
            // As a bigint, and as the decimal text node-postgres returns for a bigint column.
            ['int8', bigints, bigints.map((n) => (n === null ? null : String(n)))],
            [
              'int8',
              bigints.map((n) => (n === null ? null : String(n))),
              bigints.map((n) => (n === null ? null : String(n))),
            ],
            ['bool', bools, bools],
            ['date', dates.map((d) => d.toISOString().slice(0, 10)), dates.map((d) => d.toISOString().slice(0, 10))],
            ['timestamptz', dates, dates.map((d) => d.toISOString())],
            ['uuid', uuids, uuids],
            ['jsonb', json.map((v) => JSON.stringify(v)), json.map((v) => JSON.stringify(v))],
          ] as const) {
            const result = await both(type, [...values], [...text])
            expect(result.binary, type).toEqual(result.text)
            expect(result.n ?? 0).toBe(values.length)
          }
        },
      ),
      { numRuns: 30 },
    )
  })

  it('unnests columns side by side, as the batch statements use them', async () => {
    const { rows } = await client.query(
      `select * from unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::jsonb[]) with ordinality as t(id, name, at, doc, n)`,
      [
        binaryArray('uuid', ['0b6a8f8e-3c1d-4f57-9d7e-2f0a1c9b7e11', '7c1e2d3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f']),
        binaryArray('text', ['林晓', null]),
        binaryArray('timestamptz', [new Date('2026-11-30T01:02:03.456Z'), '2026-12-01T00:00:00+08:00']),
        binaryArray('jsonb', ['{"b":1,"a":[true,null]}', null]),
      ],
    )
    expect(rows).toEqual([
      {
        id: '0b6a8f8e-3c1d-4f57-9d7e-2f0a1c9b7e11',
        name: '林晓',
        at: new Date('2026-11-30T01:02:03.456Z'),
        doc: { a: [true, null], b: 1 },
        n: '1',
      },
      {
        id: '7c1e2d3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f',
        name: null,
        at: new Date('2026-11-30T16:00:00.000Z'),
        doc: null,
        n: '2',
      },
    ])
  })

  it('refuses values PostgreSQL would refuse, before sending them', () => {
    expect(() => binaryArray('uuid', ['not-a-uuid'])).toThrow(/not a UUID/)
    expect(() => binaryArray('date', ['2026-02-30'])).toThrow(/not a date/)
    expect(() => binaryArray('date', ['30/11/2026'])).toThrow(/not a date/)
    expect(() => binaryArray('int4', [2 ** 31])).toThrow(/32-bit/)
    expect(() => binaryArray('int4', [1.5])).toThrow(/32-bit/)
    expect(() => binaryArray('int8', [2n ** 63n])).toThrow(/64-bit/)
    expect(() => binaryArray('int8', ['12a'])).toThrow(/64-bit/)
    expect(() => binaryArray('int8', [2 ** 53])).toThrow(/64-bit/)
    expect(() => binaryArray('timestamptz', ['yesterday'])).toThrow(/not a timestamp/)
    // No zone: this process and the database session could read it differently.
    expect(() => binaryArray('timestamptz', ['2026-11-30T09:00:00'])).toThrow(/with a zone/)
    expect(binaryArray('timestamptz', ['2026-11-30T09:00:00+0800'])).toHaveLength(32)
  })

  it('is refused by PostgreSQL when the statement expects another element type', async () => {
    await expect(client.query('select $1::text[]', [binaryArray('uuid', [])])).rejects.toThrow(
      /array element type \d+ \(\w+\) instead of expected/,
    )
    await expect(client.query('select $1::int4[]', [binaryArray('text', ['1'])])).rejects.toThrow(
      /array element type \d+ \(\w+\) instead of expected/,
    )
  })

  it('refuses text PostgreSQL cannot store (a NUL character), as the text form does', async () => {
    await expect(client.query('select $1::text[]', [binaryArray('text', ['a\0b'])])).rejects.toThrow(/0x00/)
  })
})
