import { execFile } from 'node:child_process'
import { mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { repoRoot, serviceEnv } from '@pilot/testing'
import type { FastifyInstance } from 'fastify'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { idNumber, importFeed, ndjson, residenceApp } from './helpers.ts'

const good = [
  {
    idNumber: idNumber('440304', '19800101', 1),
    kind: 'residence_registration',
    validFrom: '2022-01-01',
    validTo: null,
    sourceRef: 'G-1',
  },
  {
    idNumber: idNumber('440304', '19800101', 1),
    kind: 'social_insurance',
    validFrom: '2022-01-01',
    validTo: '2022-12-31',
    sourceRef: 'G-2',
  },
  {
    idNumber: idNumber('442000', '20000229', 2),
    kind: 'rental_registration',
    validFrom: '2023-05-01',
    sourceRef: 'G-3',
    city: 'shenzhen',
  },
]
const valid = good[0] as (typeof good)[number]

/** Each bad line with the reason it must be reported with. */
const bad: [unknown, RegExp][] = [
  [
    {
      ...valid,
      idNumber: `${valid.idNumber.slice(0, 17)}${valid.idNumber.endsWith('1') ? '2' : '1'}`,
      sourceRef: 'B-1',
    },
    /check character/,
  ],
  [{ ...valid, idNumber: idNumber('440304', '20230229', 3), sourceRef: 'B-2' }, /birth date/],
  [{ ...valid, kind: 'hotel_stay', sourceRef: 'B-3' }, /kind must be one of/],
  [{ ...valid, validFrom: '2023-02-29', sourceRef: 'B-4' }, /validFrom is not a date/],
  [{ ...valid, validFrom: '2023-03-01', validTo: '2023-02-01', sourceRef: 'B-5' }, /validFrom is after validTo/],
  [{ ...valid, sourceRef: '' }, /sourceRef/],
  [{ ...valid, sourceRef: 'B-7', nickname: 'x' }, /unknown field nickname/],
  [{ ...valid, sourceRef: 'B-8', city: 'zhuhai' }, /does not belong/],
  ['{"idNumber": ', /not valid JSON/],
  [[1, 2], /not an object/],
]

/** The good rows with the bad ones interleaved between them, and which line carries which bad row. */
function feedWithBadLines(): { body: string; badLines: Map<number, RegExp> } {
  const lines: string[] = []
  const badLines = new Map<number, RegExp>()
  const perGap = Math.ceil(bad.length / good.length)
  good.forEach((row, index) => {
    lines.push(JSON.stringify(row))
    for (const [value, reason] of bad.slice(index * perGap, (index + 1) * perGap)) {
      lines.push(typeof value === 'string' ? value : JSON.stringify(value))
      badLines.set(lines.length, reason)
    }
  })
  return { body: `${lines.join('\n')}\n`, badLines }
}

describe('evidence import', () => {
  let app: FastifyInstance
  beforeAll(async () => {
    app = await residenceApp('shenzhen')
  })
  afterAll(() => app.close())

  const count = async () =>
    (await sql<{ n: number }>`select count(*)::int as n from evidence`.execute(app.db)).rows[0]?.n

  it('loads exactly the good lines and names every bad one with its reason; a second import changes nothing', async () => {
    const { body, badLines } = feedWithBadLines()
    expect(badLines.size).toBe(bad.length)
    const first = (await importFeed(app, 'shenzhen', body)).json()
    expect(first).toMatchObject({ received: good.length + bad.length, inserted: good.length, rejected: bad.length })
    expect(first.errors.map((error: { line: number }) => error.line)).toEqual([...badLines.keys()])
    for (const error of first.errors as { line: number; reason: string }[]) {
      expect(error.reason).toMatch(badLines.get(error.line) as RegExp)
    }
    expect(await count()).toBe(good.length)

    const stamp = (await sql<{ t: string }>`select max(updated_at)::text as t from evidence`.execute(app.db)).rows[0]?.t
    const second = (await importFeed(app, 'shenzhen', body)).json()
    expect(second).toMatchObject({ inserted: 0, updated: 0, unchanged: good.length, rejected: bad.length })
    expect(await count()).toBe(good.length)
    expect((await sql<{ t: string }>`select max(updated_at)::text as t from evidence`.execute(app.db)).rows[0]?.t).toBe(
      stamp,
    )
  })

  it('stores no identity number in clear', async () => {
    const { rows } = await sql<{ row: string }>`select row_to_json(evidence)::text as row from evidence`.execute(app.db)
    for (const { row } of rows) for (const person of good) expect(row).not.toContain(person.idNumber)
  })

  it('updates a record whose dates changed (a registration that has ended)', async () => {
    const ended = { ...valid, validTo: '2024-06-30' }
    expect((await importFeed(app, 'shenzhen', ndjson([ended]))).json()).toMatchObject({ inserted: 0, updated: 1 })
    expect(await count()).toBe(good.length)
  })

  it('reads CSV with a header row, quoted fields and CRLF line ends, naming bad lines', async () => {
    const id = idNumber('440404', '19660606', 4)
    const csv = [
      'idNumber,kind,validFrom,validTo,sourceRef',
      `${id},residence_registration,2021-01-01,,"C-1, street office"`,
      `${id},social_insurance,2021-01-01,2021-13-01,C-2`,
      `${id},residence_permit,2021-06-01,2022-06-01,"C-""3"""`,
      `${id},residence_permit,2021-06-01`,
      '',
    ].join('\r\n')
    const summary = (await importFeed(app, 'shenzhen', csv, 'text/csv')).json()
    expect(summary).toMatchObject({ format: 'csv', inserted: 2, rejected: 2 })
    expect(summary.errors).toEqual([
      { line: 3, reason: expect.stringMatching(/validTo/) },
      { line: 5, reason: expect.stringMatching(/not valid CSV/) },
    ])
    const refs = (
      await sql<{ ref: string }>`select source_ref as ref from evidence where source_ref like 'C-%' order by 1`.execute(
        app.db,
      )
    ).rows
    expect(refs.map((row) => row.ref)).toEqual(['C-"3"', 'C-1, street office'])
  })

  it('runs as a command-line tool on a file, exiting 2 when lines were rejected', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'feed-'))
    const file = join(dir, 'feed.ndjson')
    const errors = join(dir, 'bad.ndjson')
    const rows = Array.from({ length: 2500 }, (_, index) => ({
      idNumber: idNumber('440305', '19900101', index % 999),
      kind: 'residence_registration',
      validFrom: '2022-01-01',
      sourceRef: `CLI-${index}`,
    }))
    await writeFile(file, `${ndjson(rows)}{"broken\n`)
    const run = promisify(execFile)
    const outcome = await run(
      process.execPath,
      ['--import', 'tsx', 'services/residence/src/cli/import-evidence.ts', file, '--errors', errors],
      {
        cwd: repoRoot,
        env: { PATH: process.env.PATH ?? '', ...serviceEnv('shenzhen') },
      },
    ).then(
      (result) => ({ code: 0, ...result }),
      (error: { code: number; stdout: string; stderr: string }) => error,
    )
    expect(outcome.code).toBe(2)
    expect(JSON.parse(outcome.stdout.trim().split('\n').pop() ?? '{}')).toMatchObject({
      received: 2501,
      inserted: 2500,
      rejected: 1,
    })
    expect(JSON.parse(await readFile(errors, 'utf8'))).toEqual({ line: 2501, reason: 'not valid JSON' })
  })
})
