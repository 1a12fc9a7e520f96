import { execFile } from 'node:child_process'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { blindIndex, decryptPii, type Role } from '@pilot/kit'
import { checkCharacter, PROBLEM_TYPES, todayIn } from '@pilot/schemas'
import { matchingHash } from '@pilot/signing'
import { repoRoot, serviceEnv, token } from '@pilot/testing'
import type { FastifyInstance } from 'fastify'
import { type Kysely, sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ResidenceConfig, readResidenceConfig } from '../src/config.ts'
import type { ResidenceDatabase } from '../src/db/schema.ts'
import { idNumber, importFeed, ndjson, residenceApp } from './helpers.ts'

/**
 * Household registration (hukou) records through the HTTP API, against real PostgreSQL: loaded through the import
 * endpoint, confirmed through the confirm endpoint by the matching hash alone, as the hukou city's intake worker does
 * for an incoming transfer.
 */

/** An identity number whose check character is X, given in lower case as some registries write it. */
function idNumberEndingInX(): string {
  for (let order = 1; order < 1000; order++) {
    const first17 = `440303198203${String(order % 28 || 1).padStart(2, '0')}${String(order).padStart(3, '0')}`
    if (checkCharacter(first17) === 'X') return `${first17}x`
  }
  throw new Error('no identity number ending in X')
}

const person = {
  standing: idNumber('440304', '19750505', 101),
  cancelled: idNumber('440305', '19600101', 103),
  recent: idNumber('440306', '19950707', 105),
  returned: idNumber('440307', '19880808', 107),
  changing: idNumber('440308', '19700303', 109),
  lowerX: idNumberEndingInX(),
  nobody: idNumber('440309', '19990909', 111),
}

const good = [
  {
    idNumber: person.standing,
    registeredSince: '2015-03-01',
    cancelledOn: null,
    householdRef: 'H-100',
    sourceRef: 'HK-1',
  },
  { idNumber: person.cancelled, registeredSince: '2010-01-01', cancelledOn: '2023-06-01', sourceRef: 'HK-2' },
  {
    idNumber: person.recent,
    registeredSince: '2024-05-01',
    householdRef: 'H-300',
    sourceRef: 'HK-3',
    city: 'shenzhen',
  },
  { idNumber: person.returned, registeredSince: '2000-01-01', cancelledOn: '2020-01-01', sourceRef: 'HK-4' },
  { idNumber: person.returned, registeredSince: '2022-01-01', householdRef: 'H-500', sourceRef: 'HK-5' },
  { idNumber: person.changing, registeredSince: '2012-12-12', householdRef: 'H-600', sourceRef: 'HK-6' },
  { idNumber: person.lowerX, registeredSince: '2018-08-08', cancelledOn: '', householdRef: '', sourceRef: 'HK-7' },
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
  [{ ...valid, idNumber: undefined, sourceRef: 'B-2' }, /idNumber is missing/],
  [{ ...valid, registeredSince: '2023-02-29', sourceRef: 'B-3' }, /registeredSince is not a date/],
  [{ ...valid, cancelledOn: 'soon', sourceRef: 'B-4' }, /cancelledOn is not a date/],
  [{ ...valid, registeredSince: '2023-03-01', cancelledOn: '2023-02-01', sourceRef: 'B-5' }, /after cancelledOn/],
  [{ ...valid, householdRef: 42, sourceRef: 'B-6' }, /householdRef/],
  [{ ...valid, sourceRef: '' }, /sourceRef/],
  [{ ...valid, sourceRef: 'B-8', name: 'Zhang San' }, /unknown field name/],
  [{ ...valid, sourceRef: 'B-9', city: 'zhuhai' }, /does not belong/],
  [{ ...valid, kind: 'residence_registration', sourceRef: 'B-10' }, /unknown field kind/],
  ['{"idNumber": ', /not valid JSON/],
  ['"HK"', /not an object/],
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

describe('household registration records', () => {
  let app: FastifyInstance
  let config: ResidenceConfig
  const subject = (id: string) => matchingHash(id, config.matchingKey)

  beforeAll(async () => {
    app = await residenceApp('shenzhen')
    config = readResidenceConfig(serviceEnv('shenzhen'))
  })
  afterAll(() => app.close())

  const importRegistrations = (body: string, contentType?: string) =>
    importFeed(app, 'shenzhen', body, contentType, 'registrations')
  const count = async () =>
    (await sql<{ n: number }>`select count(*)::int as n from registrations`.execute(app.db)).rows[0]?.n
  const lastUpdate = async () =>
    (await sql<{ t: string }>`select max(updated_at)::text as t from registrations`.execute(app.db)).rows[0]?.t

  async function confirmAs(roles: Role[], payload: object, city = 'shenzhen') {
    return app.inject({
      method: 'POST',
      url: '/v1/residence/registrations:confirm',
      headers: { authorization: `Bearer ${await token(city, roles)}` },
      payload,
    })
  }
  async function confirm(id: string, asOf?: string) {
    const response = await confirmAs(['system'], { subject: subject(id), ...(asOf ? { asOf } : {}) })
    expect(response.statusCode).toBe(200)
    return response.json()
  }

  describe('import', () => {
    it('loads the good lines and names every bad one with its reason; a second import changes nothing', async () => {
      const { body, badLines } = feedWithBadLines()
      expect(badLines.size).toBe(bad.length)
      const first = await importRegistrations(body)
      expect(first.statusCode).toBe(200)
      expect(first.json()).toMatchObject({
        format: 'ndjson',
        received: good.length + bad.length,
        inserted: good.length,
        updated: 0,
        rejected: bad.length,
      })
      const errors = first.json().errors as { line: number; reason: string }[]
      expect(errors.map((error) => error.line)).toEqual([...badLines.keys()])
      for (const error of errors) expect(error.reason).toMatch(badLines.get(error.line) as RegExp)
      expect(await count()).toBe(good.length)

      const stamp = await lastUpdate()
      const second = (await importRegistrations(body)).json()
      expect(second).toMatchObject({ inserted: 0, updated: 0, unchanged: good.length, rejected: bad.length })
      expect(await count()).toBe(good.length)
      expect(await lastUpdate()).toBe(stamp)

      const { rows } = await sql<{ recordType: string; inserted: number; unchanged: number }>`
        select record_type as "recordType", inserted, unchanged from imports
        where id in (${first.json().importId}::uuid, ${second.importId}::uuid)
        order by started_at`.execute(app.db)
      expect(rows).toEqual([
        { recordType: 'registrations', inserted: good.length, unchanged: 0 },
        { recordType: 'registrations', inserted: 0, unchanged: good.length },
      ])
    })

    it('leaves the evidence alone, and the evidence import refuses registration rows', async () => {
      const evidence = await sql<{ n: number }>`select count(*)::int as n from evidence`.execute(app.db)
      expect(evidence.rows[0]?.n).toBe(0)
      const misrouted = (await importFeed(app, 'shenzhen', ndjson([valid]))).json()
      expect(misrouted).toMatchObject({ inserted: 0, rejected: 1 })
      expect(misrouted.errors[0].reason).toMatch(/unknown field/)
    })

    it('stores the identity number only as blind index, ciphertext and matching hash', async () => {
      const { rows } = await sql<{
        row: string
      }>`select row_to_json(registrations)::text as row from registrations`.execute(app.db)
      expect(rows).toHaveLength(good.length)
      for (const { row } of rows) {
        for (const id of Object.values(person)) {
          expect(row).not.toContain(id)
          expect(row.toUpperCase()).not.toContain(id.toUpperCase())
        }
      }
      const stored = await (app.db as Kysely<ResidenceDatabase>)
        .selectFrom('registrations')
        .select(['person_index', 'id_number_sealed', 'subject'])
        .where('source_ref', '=', 'HK-1')
        .executeTakeFirstOrThrow()
      expect(stored.subject).toBe(subject(person.standing))
      expect(stored.subject).toMatch(/^[A-Za-z0-9_-]{43}$/)
      expect(stored.person_index.equals(blindIndex(config.blindIndexKey, person.standing))).toBe(true)
      expect(decryptPii(config.piiKey, stored.id_number_sealed)).toBe(person.standing)
    })

    it('updates a record whose dates changed (a registration since cancelled)', async () => {
      expect(await confirm(person.changing, '2024-06-01')).toMatchObject({ registered: true })
      const changed = { ...good[5], cancelledOn: '2024-01-01' }
      expect((await importRegistrations(ndjson([changed]))).json()).toMatchObject({
        inserted: 0,
        updated: 1,
        unchanged: 0,
      })
      expect(await count()).toBe(good.length)
      expect(await confirm(person.changing, '2024-06-01')).toEqual({
        registered: false,
        registeredSince: null,
        householdRef: null,
      })
      expect(await confirm(person.changing, '2023-12-31')).toMatchObject({ registered: true, householdRef: 'H-600' })
      expect((await importRegistrations(ndjson([changed]))).json()).toMatchObject({ updated: 0, unchanged: 1 })
    })

    it('reads CSV with a header row, empty optional columns and CRLF line ends, naming bad lines', async () => {
      const id = idNumber('440404', '19660606', 113)
      const csv = [
        'idNumber,registeredSince,cancelledOn,householdRef,sourceRef',
        `${id},2019-01-01,,,"CSV-1, police station"`,
        `${id},2019-13-01,,,CSV-2`,
        `${id},2005-01-01,2019-01-01,"H-""old""",CSV-3`,
        `${id},2019-01-01`,
        '',
      ].join('\r\n')
      const summary = (await importRegistrations(csv, 'text/csv')).json()
      expect(summary).toMatchObject({ format: 'csv', inserted: 2, rejected: 2 })
      expect(summary.errors).toEqual([
        { line: 3, reason: expect.stringMatching(/registeredSince/) },
        { line: 5, reason: expect.stringMatching(/not valid CSV/) },
      ])
      expect(await confirm(id, '2020-01-01')).toEqual({
        registered: true,
        registeredSince: '2019-01-01',
        householdRef: null,
      })
      expect(await confirm(id, '2018-12-31')).toEqual({
        registered: true,
        registeredSince: '2005-01-01',
        householdRef: 'H-"old"',
      })
    })

    it('runs as the command-line tool with --records registrations, exiting 2 when lines were rejected', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'hukou-feed-'))
      const file = join(dir, 'registrations.ndjson')
      const rows = Array.from({ length: 30 }, (_, index) => ({
        idNumber: idNumber('440310', '19910101', index + 1),
        registeredSince: '2020-01-01',
        sourceRef: `CLI-R-${index}`,
      }))
      await writeFile(file, `${ndjson(rows)}{"broken\n`)
      const run = (args: string[]) =>
        promisify(execFile)(
          process.execPath,
          ['--import', 'tsx', 'services/residence/src/cli/import-evidence.ts', ...args],
          {
            cwd: repoRoot,
            env: { PATH: process.env.PATH ?? '', ...serviceEnv('shenzhen') },
          },
        ).then(
          (result) => ({ code: 0, ...result }),
          (error: { code: number; stdout: string; stderr: string }) => error,
        )

      const outcome = await run([file, '--records', 'registrations'])
      expect(outcome.code).toBe(2)
      expect(JSON.parse(outcome.stdout.trim().split('\n').pop() ?? '{}')).toMatchObject({
        received: 31,
        inserted: 30,
        rejected: 1,
      })
      expect(outcome.stderr).toContain('line 31: not valid JSON')
      const loaded = await sql<{ n: number }>`
        select count(*)::int as n from registrations where source_ref like 'CLI-R-%'`.execute(app.db)
      expect(loaded.rows[0]?.n).toBe(30)
      expect(await confirm(idNumber('440310', '19910101', 7), '2021-01-01')).toMatchObject({ registered: true })

      expect((await run([file, '--records', 'residents'])).code).toBe(64)
    })
  })

  describe('confirm', () => {
    it('confirms a standing registration by the matching hash, and says nothing more', async () => {
      const response = await confirmAs(['system'], { subject: subject(person.standing), asOf: '2023-01-01' })
      expect(response.statusCode).toBe(200)
      expect(response.json()).toEqual({ registered: true, registeredSince: '2015-03-01', householdRef: 'H-100' })
      expect(response.body).not.toContain(person.standing)
      expect(response.body).not.toContain('HK-1')
    })

    it('registers from registeredSince inclusive', async () => {
      expect(await confirm(person.standing, '2015-03-01')).toMatchObject({ registered: true })
      expect(await confirm(person.standing, '2015-02-28')).toEqual({
        registered: false,
        registeredSince: null,
        householdRef: null,
      })
    })

    it('answers not registered for a subject it has no record of', async () => {
      expect(await confirm(person.nobody, '2023-01-01')).toEqual({
        registered: false,
        registeredSince: null,
        householdRef: null,
      })
    })

    it('answers not registered once the registration was cancelled, from cancelledOn on', async () => {
      expect(await confirm(person.cancelled, '2023-05-31')).toEqual({
        registered: true,
        registeredSince: '2010-01-01',
        householdRef: null,
      })
      expect(await confirm(person.cancelled, '2023-06-01')).toMatchObject({ registered: false, registeredSince: null })
      expect(await confirm(person.cancelled, '2024-01-01')).toMatchObject({ registered: false })
    })

    it('answers not registered on a date before the registration began', async () => {
      expect(await confirm(person.recent, '2024-04-30')).toMatchObject({ registered: false, householdRef: null })
      expect(await confirm(person.recent, '2024-05-01')).toEqual({
        registered: true,
        registeredSince: '2024-05-01',
        householdRef: 'H-300',
      })
    })

    it('answers with the registration that stands on asOf when a person left and came back', async () => {
      expect(await confirm(person.returned, '2019-12-31')).toMatchObject({
        registered: true,
        registeredSince: '2000-01-01',
      })
      expect(await confirm(person.returned, '2021-01-01')).toMatchObject({ registered: false })
      expect(await confirm(person.returned, '2023-01-01')).toEqual({
        registered: true,
        registeredSince: '2022-01-01',
        householdRef: 'H-500',
      })
    })

    it('finds a number the feed wrote with a lower-case x by the hash of its normal form', async () => {
      expect(person.lowerX).toMatch(/x$/)
      expect(await confirm(person.lowerX.toUpperCase(), '2020-01-01')).toEqual({
        registered: true,
        registeredSince: '2018-08-08',
        householdRef: null,
      })
    })

    it('confirms for today in Asia/Shanghai when asOf is omitted, and refuses a future asOf', async () => {
      expect(todayIn('Asia/Shanghai') >= '2024-05-01').toBe(true)
      expect(await confirm(person.standing)).toMatchObject({ registered: true, registeredSince: '2015-03-01' })
      expect(await confirm(person.recent)).toMatchObject({ registered: true })
      expect(await confirm(person.cancelled)).toMatchObject({ registered: false })
      const future = await confirmAs(['system'], { subject: subject(person.standing), asOf: '2999-01-01' })
      expect(future.statusCode).toBe(400)
      expect(future.json().type).toBe(PROBLEM_TYPES.badRequest)
    })

    it('rejects a malformed request naming the field; an identity number is not a subject', async () => {
      const response = await confirmAs(['system'], { subject: person.standing, asOf: '2023-02-29', idNumber: 'x' })
      expect(response.statusCode).toBe(400)
      const pointers = response.json().errors.map((issue: { pointer: string }) => issue.pointer)
      expect(pointers).toEqual(expect.arrayContaining(['/subject', '/asOf', '/idNumber']))
      expect((await confirmAs(['system'], {})).statusCode).toBe(400)
    })
  })

  describe('who may call', () => {
    const payload = () => ({ subject: subject(person.standing), asOf: '2023-01-01' })

    it.each([[['system']], [['reviewer']]] as Role[][][])('admits %j to confirm', async (roles) => {
      const response = await confirmAs(roles, payload())
      expect(response.statusCode).toBe(200)
      expect(response.json().registered).toBe(true)
    })

    it.each([[['caseworker']], [['operator']], [['auditor']], [[]]] as Role[][][])(
      'answers 403 to %j asking to confirm',
      async (roles) => {
        const response = await confirmAs(roles, payload())
        expect(response.statusCode).toBe(403)
        expect(response.json().type).toBe(PROBLEM_TYPES.forbidden)
      },
    )

    it("answers 403 to a system token of this IdP for another city, and 401 to another city's IdP", async () => {
      const foreignClaim = await token('shenzhen', ['system'], { cityClaim: 'zhuhai' })
      const inject = (bearer: string) =>
        app.inject({
          method: 'POST',
          url: '/v1/residence/registrations:confirm',
          headers: { authorization: `Bearer ${bearer}` },
          payload: payload(),
        })
      expect((await inject(foreignClaim)).statusCode).toBe(403)
      expect((await inject(await token('zhuhai', ['system']))).statusCode).toBe(401)
    })

    it('answers 401 without a token', async () => {
      const response = await app.inject({
        method: 'POST',
        url: '/v1/residence/registrations:confirm',
        payload: payload(),
      })
      expect(response.statusCode).toBe(401)
      expect(response.headers['www-authenticate']).toMatch(/^Bearer/)
      expect(response.json().type).toBe(PROBLEM_TYPES.unauthorized)
    })

    it.each([[['caseworker']], [['system']], [['reviewer']]] as Role[][][])(
      'answers 403 to %j importing registrations, and loads nothing',
      async (roles) => {
        const response = await app.inject({
          method: 'POST',
          url: '/v1/residence/registrations:import',
          headers: {
            authorization: `Bearer ${await token('shenzhen', roles)}`,
            'content-type': 'application/x-ndjson',
          },
          payload: ndjson([{ ...valid, sourceRef: 'FORBIDDEN-1' }]),
        })
        expect(response.statusCode).toBe(403)
        const { rows } = await sql<{ n: number }>`
          select count(*)::int as n from registrations where source_ref = 'FORBIDDEN-1'`.execute(app.db)
        expect(rows[0]?.n).toBe(0)
      },
    )
  })
})
