/**
 * Residence at pilot scale (5,000,000 evidence rows for 2,000,000 people):
 *   1. import — the real command-line importer loads a 1,000,000-row NDJSON feed; rows/s and its peak RSS;
 *   2. bulk — server-side SQL brings the table to full size (the same population, see residence-data.ts);
 *   3. load — POST /v1/residence/verifications on the real service against a bare Fastify + one indexed SELECT
 *      baseline, 32 connections, alternating baseline/service twice and keeping the better run of each.
 * Data and keys are kept between runs (database bench_residence, .pilot/bench-keys); --fresh rebuilds them.
 */
import { once } from 'node:events'
import { createWriteStream, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { blindIndex, createDb, devSecretsEnv, ensureDevSecrets, migrateToLatest, mintDevToken } from '@pilot/kit'
import { validateIdNumber } from '@pilot/schemas'
import pg from 'pg'
import { residenceService } from '../services/residence/src/app.ts'
import {
  type BenchOptions,
  type BenchResult,
  type BenchTable,
  type BenchTarget,
  best,
  type Child,
  freePort,
  type LoadFigures,
  load,
  loadTargets,
  log,
  makeTempDir,
  removeTempDir,
  repoRoot,
  round,
  startNode,
  waitReady,
  withTimeout,
} from './lib.ts'
import {
  inPackage,
  mainThreadProfile,
  named,
  type ProfileSummary,
  profileDir,
  type Stage,
  summariseProfile,
} from './profile.ts'
import {
  AS_OF,
  BULK_INSERT,
  groupOfPerson,
  IMPORT_PEOPLE,
  IMPORT_ROWS,
  idNumberOf,
  PEOPLE,
  rowCountOf,
  rowsOf,
  SQL_FUNCTIONS,
  TOTAL_ROWS,
} from './residence-data.ts'

const CITY = 'shenzhen'
const CONNECTIONS = 32
/** The service's default DATABASE_POOL_MAX; the baseline gets the same. */
const POOL_SIZE = 10
const BULK_CHUNK_PEOPLE = 100_000
/** The bulk rows' import record; fixed, so a resumed load reuses it. */
const BULK_IMPORT_ID = '00000000-0000-4000-8000-00000000b0c0'
const keysDir = join(repoRoot, '.pilot/bench-keys')

const TARGET_RATIO = 0.5
const TARGET_P99_MS = 25
/** "A few hundred MB" of the issue, read as at most half a gigabyte. */
const TARGET_IMPORT_RSS_MB = 512

interface ImportFigures {
  rows: number
  seconds: number
  rowsPerSecond: number
  /** The importer's own clock (imports.started_at → finished_at), without process start-up. */
  importerSeconds: number
  peakRssMb: number
  recordedAt: string
}

interface BulkFigures {
  rows: number
  seconds: number
  rowsPerSecond: number
  recordedAt: string
}

function databaseUrls(): { admin: string; bench: string } {
  const admin = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
  const url = new URL(admin)
  url.pathname = '/bench_residence'
  return { admin, bench: url.toString() }
}

async function ensureDatabase(adminUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 5000 })
  await client.connect()
  try {
    const { rowCount } = await client.query(`select 1 from pg_database where datname = 'bench_residence'`)
    if (rowCount === 0) {
      await client.query('create database bench_residence')
      log('created database bench_residence')
    }
  } finally {
    await client.end()
  }
}

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 })
  await client.connect()
  return client
}

async function figure<T>(client: pg.Client, key: string): Promise<T | undefined> {
  const { rows } = await client.query<{ value: T }>('select value from bench.figures where key = $1', [key])
  return rows[0]?.value
}

async function recordFigure(client: pg.Client, key: string, value: unknown): Promise<void> {
  await client.query(
    `insert into bench.figures (key, value) values ($1, $2)
     on conflict (key) do update set value = excluded.value, recorded_at = now()`,
    [key, JSON.stringify(value)],
  )
}

async function countRows(client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ n: string }>('select count(*) as n from residence.evidence')
  return Number(rows[0]?.n ?? 0)
}

/** Writes the import feed: every row of persons 0 … IMPORT_PEOPLE-1, as a registry would send them. */
async function writeFeed(path: string): Promise<void> {
  const out = createWriteStream(path)
  let lines: string[] = []
  for (let p = 0; p < IMPORT_PEOPLE; p++) {
    const idNumber = idNumberOf(p)
    for (const row of rowsOf(p)) lines.push(JSON.stringify({ idNumber, ...row }))
    if (lines.length >= 5000) {
      if (!out.write(`${lines.join('\n')}\n`)) await once(out, 'drain')
      lines = []
    }
  }
  out.end(lines.length > 0 ? `${lines.join('\n')}\n` : '')
  await once(out, 'finish')
}

async function importPhase(
  client: pg.Client,
  serviceEnv: Record<string, string>,
  workDir: string,
): Promise<ImportFigures> {
  const feed = join(workDir, 'evidence-1m.ndjson')
  log(`writing a ${IMPORT_ROWS.toLocaleString('en')}-row feed to ${feed}`)
  await writeFeed(feed)
  const logFile = join(workDir, 'import.log')
  log('importing it with services/residence/src/cli/import-evidence.ts')
  const started = performance.now()
  const child = startNode('services/residence/src/cli/import-evidence.ts', [feed], serviceEnv, logFile)
  let code: number | null
  try {
    code = await withTimeout('the import', 20 * 60_000, child.exited)
  } finally {
    await child.stop()
  }
  const seconds = (performance.now() - started) / 1000
  const output = readFileSync(logFile, 'utf8')
  if (code !== 0) throw new Error(`the importer exited with ${code}:\n${output.slice(-2000)}`)
  const summary = JSON.parse(output.trim().split('\n').at(-1) ?? '{}') as {
    importId?: string
    inserted?: number
    rejected?: number
  }
  if (summary.inserted !== IMPORT_ROWS || summary.rejected !== 0) {
    throw new Error(
      `the importer inserted ${summary.inserted} and rejected ${summary.rejected}: ${output.slice(-2000)}`,
    )
  }
  const { rows } = await client.query<{ seconds: number }>(
    'select extract(epoch from finished_at - started_at)::float8 as seconds from residence.imports where id = $1',
    [summary.importId],
  )
  rmSync(feed)
  return {
    rows: IMPORT_ROWS,
    seconds: round(seconds),
    rowsPerSecond: Math.round(IMPORT_ROWS / seconds),
    importerSeconds: round(rows[0]?.seconds ?? Number.NaN),
    peakRssMb: child.peakRssMb(),
    recordedAt: new Date().toISOString(),
  }
}

/**
 * pgcrypto's hmac(utf8 bytes, key, 'sha256') must be the very blind index blindIndex() computes, and the SQL identity
 * numbers the ones idNumberOf() gives, or the load would ask for people the table does not hold. Checked on persons
 * whose check character is X as well as on ordinary ones.
 */
async function checkSqlMirror(client: pg.Client, key: Buffer): Promise<void> {
  const persons = [IMPORT_PEOPLE, IMPORT_PEOPLE + 1, 777_777, 1_234_567, PEOPLE - 1]
  for (let p = IMPORT_PEOPLE; persons.length < 10; p++) if (idNumberOf(p).endsWith('X')) persons.push(p)
  const { rows } = await client.query<{ p: string; id_number: string; person_index: Buffer }>(
    `select p, pg_temp.bench_id_number(p) as id_number,
       hmac(convert_to(pg_temp.bench_id_number(p), 'UTF8'), decode($2, 'base64'), 'sha256') as person_index
     from unnest($1::bigint[]) as p`,
    [persons, key.toString('base64')],
  )
  for (const row of rows) {
    const p = Number(row.p)
    const idNumber = idNumberOf(p)
    if (!validateIdNumber(idNumber, AS_OF).ok) throw new Error(`person ${p}: ${idNumber} is not a valid number`)
    if (row.id_number !== idNumber) throw new Error(`person ${p}: SQL makes ${row.id_number}, TypeScript ${idNumber}`)
    if (!row.person_index.equals(blindIndex(key, idNumber))) {
      throw new Error(`person ${p}: pgcrypto's hmac differs from blindIndex()`)
    }
  }
}

async function bulkPhase(client: pg.Client, key: Buffer): Promise<BulkFigures> {
  await client.query('create extension if not exists pgcrypto with schema public')
  await client.query(SQL_FUNCTIONS)
  await checkSqlMirror(client, key)
  // Losing the last commits in a crash costs nothing here: the load resumes and the rows are recomputed.
  await client.query('set synchronous_commit = off')
  await client.query(`set statement_timeout = '15min'`)
  await client.query(
    `insert into residence.imports (id, record_type, format, actor, finished_at)
     values ($1, 'evidence', 'sql', 'bench:bulk', now()) on conflict do nothing`,
    [BULK_IMPORT_ID],
  )
  const started = performance.now()
  let inserted = 0
  for (let first = IMPORT_PEOPLE; first < PEOPLE; first += BULK_CHUNK_PEOPLE) {
    const last = Math.min(first + BULK_CHUNK_PEOPLE, PEOPLE) - 1
    // A chunk is one statement, so its last person being present means the whole chunk is.
    const { rowCount: done } = await client.query('select 1 from residence.evidence where person_index = $1', [
      blindIndex(key, idNumberOf(last)),
    ])
    if (done) continue
    const chunkStarted = performance.now()
    const { rowCount } = await client.query(BULK_INSERT, [first, last, key.toString('base64'), BULK_IMPORT_ID])
    inserted += rowCount ?? 0
    const seconds = (performance.now() - chunkStarted) / 1000
    log(`bulk: persons ${first}…${last}, ${rowCount} rows in ${seconds.toFixed(1)} s`)
  }
  log('bulk: vacuum analyze (statistics for the planner, visibility and hint bits set before the load)')
  await client.query('vacuum (analyze) residence.evidence')
  const seconds = (performance.now() - started) / 1000
  return {
    rows: inserted,
    seconds: round(seconds),
    rowsPerSecond: Math.round(inserted / seconds),
    recordedAt: new Date().toISOString(),
  }
}

/** Persons spread over both the imported and the bulk-loaded range must hold exactly the rows rowsOf() describes. */
async function checkData(client: pg.Client, key: Buffer): Promise<void> {
  const persons = [0, 1, IMPORT_PEOPLE - 1, IMPORT_PEOPLE, PEOPLE - 1]
  for (let i = 0; i < 15; i++) persons.push(Math.floor(Math.random() * PEOPLE))
  for (const p of persons) {
    const { rows } = await client.query<{ kind: string; from: string; to: string | null; ref: string }>(
      `select kind, valid_from::text as from, valid_to::text as to, source_ref as ref
       from residence.evidence where person_index = $1 order by source_ref`,
      [blindIndex(key, idNumberOf(p))],
    )
    const expected = rowsOf(p)
      .map((row) => ({ kind: row.kind, from: row.validFrom, to: row.validTo, ref: row.sourceRef }))
      .sort((a, b) => (a.ref < b.ref ? -1 : 1))
    if (JSON.stringify(rows) !== JSON.stringify(expected)) {
      throw new Error(`person ${p} holds ${JSON.stringify(rows)}, expected ${JSON.stringify(expected)}`)
    }
  }
}

/** A small seeded generator, so every run asks for the same sequence of people. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

interface ServerSpec {
  name: 'baseline' | 'service'
  script: string
  env: Record<string, string>
  readyPath: string
  path: string
  headers: Record<string, string>
  body: (p: number) => string
}

interface Target {
  name: ServerSpec['name']
  child: Child
  url: string
  headers: Record<string, string>
  body: (p: number) => string
}

const hukouCityOf = (p: number): string => (p % 3 === 0 ? 'zhongshan' : 'zhuhai')

/** CPU seconds (user + system) the process has used so far. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
  // Fields 14 and 15 of stat(5), counted from the state field (3) after the command name.
  return (Number(fields[11]) + Number(fields[12])) / 100
}

interface RunFigures extends LoadFigures {
  cpuMsPerRequest: number
  warmupRequests: number
}

async function measure(target: Target, options: BenchOptions, seed: number): Promise<RunFigures> {
  const common = { url: target.url, method: 'POST' as const, headers: target.headers, connections: CONNECTIONS }
  let warmupRequests = 0
  if (options.warmupSeconds > 0) {
    const random = mulberry32(seed + 1000)
    const warmup = await load({
      ...common,
      durationSeconds: options.warmupSeconds,
      body: () => target.body(Math.floor(random() * PEOPLE)),
    })
    warmupRequests = warmup.ok + warmup.non2xx
  }
  const random = mulberry32(seed)
  const cpuBefore = cpuSeconds(target.child.pid)
  const figures = await load({
    ...common,
    durationSeconds: options.durationSeconds,
    body: () => target.body(Math.floor(random() * PEOPLE)),
  })
  const cpu = cpuSeconds(target.child.pid) - cpuBefore
  const requests = figures.ok + figures.non2xx
  return {
    ...figures,
    cpuMsPerRequest: requests > 0 ? round((cpu * 1000) / requests, 3) : Number.NaN,
    warmupRequests,
  }
}

/** Answers must be what the population says: the service's decision by group, the baseline's row count. */
async function checkAnswers(service: Target, baseline: Target): Promise<void> {
  const persons: number[] = []
  for (const group of ['eligible', 'too_recent', 'ended', 'rental_only']) {
    for (let p = IMPORT_PEOPLE - 10_000, found = 0; found < 3; p += 9973) {
      if (groupOfPerson(p % PEOPLE) === group) {
        persons.push(p % PEOPLE)
        found++
      }
    }
  }
  for (const p of persons) {
    const response = await fetch(`${service.url}`, {
      method: 'POST',
      headers: service.headers,
      body: service.body(p),
      signal: AbortSignal.timeout(10_000),
    })
    const answer = (await response.json()) as { eligible?: boolean }
    const expected = ['eligible', 'rental_only'].includes(groupOfPerson(p))
    if (response.status !== 200 || answer.eligible !== expected) {
      throw new Error(`service on person ${p} (${groupOfPerson(p)}): ${response.status} ${JSON.stringify(answer)}`)
    }
    const rows = (await (
      await fetch(baseline.url, {
        method: 'POST',
        headers: baseline.headers,
        body: baseline.body(p),
        signal: AbortSignal.timeout(10_000),
      })
    ).json()) as unknown[]
    if (rows.length !== rowCountOf(p)) throw new Error(`baseline on person ${p}: ${rows.length} rows`)
  }
}

/** The suspects on a verification's path, for --profile. A stage counts every sample with one of its frames. */
export const RESIDENCE_PROFILE_STAGES: Stage[] = [
  // Bearer tokens are verified with jose (WebCrypto) on first sight, then cached; attestations are signed with
  // node:crypto.
  {
    label: 'ES256 verify: bearer token (WebCrypto, via jose)',
    match: named('verify', 'node:internal/crypto/webcrypto'),
  },
  { label: 'ES256 sign: attestation (node:crypto)', match: named('signOneShot', 'node:internal/crypto/sig') },
  { label: 'jose, all of it (JWT parsing, base64)', match: inPackage('jose') },
  { label: "todayIn (today's date in Asia/Shanghai)", match: named('todayIn') },
  { label: 'identity number validation', match: named('validateIdNumber') },
  { label: 'blind index + matching hash (HMAC)', match: (f) => named('blindIndex')(f) || named('matchingHash')(f) },
  { label: 'three-month rule', match: named('decideResidence') },
  { label: 'query building (Kysely compile)', match: named('compileQuery', '/kysely/') },
  { label: 'PostgreSQL driver (pg, pg-protocol)', match: inPackage('pg', 'pg-protocol', 'pg-pool') },
  { label: 'logging (pino child loggers, redaction)', match: inPackage('pino', '@pinojs/redact') },
  { label: 'metrics (prom-client)', match: inPackage('prom-client') },
  { label: 'HTTP response end (headers + body to socket)', match: named('end', 'node:_http_outgoing') },
  {
    label: 'socket writes (native writev/writeBuffer)',
    match: (f) => f.url === '' && /^(writev|writeBuffer|writeUtf8String|writeLatin1String)$/.test(f.functionName),
    selfOnly: true,
  },
  { label: 'garbage collection', match: named('(garbage collector)'), selfOnly: true },
]

export async function run(partial: Partial<BenchOptions> = {}): Promise<BenchResult> {
  const options: BenchOptions = { fresh: false, durationSeconds: 20, warmupSeconds: 3, profile: false, ...partial }
  const notes: string[] = []
  const urls = databaseUrls()
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
  ensureDevSecrets(keysDir, [CITY])
  const secrets = devSecretsEnv(keysDir, CITY)
  const key = Buffer.from(readFileSync(secrets.BLIND_INDEX_KEY_FILE as string, 'utf8').trim(), 'base64')
  const workDir = makeTempDir('bench-residence-')
  const serviceEnv: Record<string, string> = {
    CITY,
    DATABASE_URL: urls.bench,
    DATABASE_POOL_MAX: String(POOL_SIZE),
    REDIS_URL: redisUrl,
    REDIS_PREFIX: 'bench:residence',
    PILOT_CONFIG: join(repoRoot, 'infra/pilot.yaml'),
    LOG_LEVEL: 'warn',
    LOG_FILE: join(workDir, 'residence.log'),
    USER: 'bench',
    ...secrets,
  }
  const children: Child[] = []
  await ensureDatabase(urls.admin)
  const client = await connect(urls.bench)
  try {
    const db = createDb<unknown>({ url: urls.bench, schema: 'residence', poolMax: 1 })
    try {
      await migrateToLatest(db, 'residence', residenceService.migrations)
    } finally {
      await db.destroy()
    }
    await client.query(`create schema if not exists bench`)
    await client.query(
      `create table if not exists bench.figures
         (key text primary key, value jsonb not null, recorded_at timestamptz not null default now())`,
    )
    if (options.fresh) {
      log('--fresh: emptying residence.evidence')
      await client.query('truncate residence.evidence, residence.imports, bench.figures')
    }

    // ---- 1. import ----
    let imported = await figure<ImportFigures>(client, 'import')
    if (imported) {
      notes.push(`Import figures are from ${imported.recordedAt} (data kept between runs; --fresh measures it again).`)
    } else {
      if ((await countRows(client)) > 0) {
        log('an earlier import did not finish: starting over from an empty table')
        await client.query('truncate residence.evidence, residence.imports')
      }
      imported = await importPhase(client, serviceEnv, workDir)
      await recordFigure(client, 'import', imported)
      log(`import: ${imported.rowsPerSecond} rows/s, peak RSS ${imported.peakRssMb} MB`)
    }

    // ---- 2. bulk ----
    let bulk = await figure<BulkFigures>(client, 'bulk')
    const count = await countRows(client)
    if (count < TOTAL_ROWS) {
      log(`bulk: ${count.toLocaleString('en')} rows; loading up to ${TOTAL_ROWS.toLocaleString('en')}`)
      bulk = await bulkPhase(client, key)
      await recordFigure(client, 'bulk', bulk)
    }
    await checkData(client, key)
    const { rows: sizes } = await client.query<{ rows: string; table: string; indexes: string }>(
      `select (select count(*) from residence.evidence)::text as rows,
         pg_size_pretty(pg_table_size('residence.evidence')) as table,
         pg_size_pretty(pg_indexes_size('residence.evidence')) as indexes`,
    )
    const size = sizes[0]
    log(`data: ${size?.rows} rows, table ${size?.table}, indexes ${size?.indexes}`)

    // ---- 3. load ----
    // Valid for the whole run: warm-ups, four measured runs and the profiles, with a wide margin.
    const token = await mintDevToken(keysDir, CITY, { roles: ['caseworker'], ttlSeconds: 3600 })
    const servers: Record<Target['name'], ServerSpec> = {
      service: {
        name: 'service',
        script: 'services/residence/src/server.ts',
        env: serviceEnv,
        readyPath: '/health/ready',
        path: '/v1/residence/verifications',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: (p) => JSON.stringify({ idNumber: idNumberOf(p), hukouCity: hukouCityOf(p), asOf: AS_OF }),
      },
      baseline: {
        name: 'baseline',
        script: 'bench/baseline-residence-server.ts',
        env: {
          DATABASE_URL: urls.bench,
          DATABASE_POOL_MAX: String(POOL_SIZE),
          BLIND_INDEX_KEY_FILE: secrets.BLIND_INDEX_KEY_FILE as string,
        },
        readyPath: '/health',
        path: '/lookup',
        headers: { 'content-type': 'application/json' },
        body: (p) => JSON.stringify({ idNumber: idNumberOf(p) }),
      },
    }
    const start = async (spec: ServerSpec, nodeArgs: string[] = []): Promise<Target> => {
      const port = await freePort()
      const logFile = join(workDir, `${spec.name}-${port}.log`)
      const child = startNode(spec.script, [], { ...spec.env, PORT: String(port) }, logFile, nodeArgs)
      children.push(child)
      const url = `http://127.0.0.1:${port}`
      await waitReady(`${url}${spec.readyPath}`, child, 60_000, logFile)
      return { name: spec.name, child, url: `${url}${spec.path}`, headers: spec.headers, body: spec.body }
    }
    const service = await start(servers.service)
    const baseline = await start(servers.baseline)
    await checkAnswers(service, baseline)

    const runs: Record<Target['name'], RunFigures[]> = { baseline: [], service: [] }
    for (let round = 1; round <= 2; round++) {
      for (const target of [baseline, service]) {
        log(`load: ${target.name}, round ${round} (${options.warmupSeconds} s warm-up, ${options.durationSeconds} s)`)
        const figures = await measure(target, options, round)
        runs[target.name].push(figures)
        log(
          `  ${figures.requestsPerSecond} req/s, p50 ${figures.p50Ms} ms, p99 ${figures.p99Ms} ms, ` +
            `non-2xx ${figures.non2xx}, errors ${figures.errors}, CPU ${figures.cpuMsPerRequest} ms/req`,
        )
      }
    }
    const bestBaseline = best(runs.baseline) as RunFigures
    const bestService = best(runs.service) as RunFigures
    const ratio = bestService.requestsPerSecond / bestBaseline.requestsPerSecond

    // The measured servers stop before the profiled ones start, so those have the CPUs to themselves too.
    await Promise.all([service.child.stop(), baseline.child.stop()])
    const profiles: Partial<Record<Target['name'], ProfileSummary>> = {}
    if (options.profile) {
      for (const spec of [servers.baseline, servers.service]) {
        const dir = profileDir(`residence-${spec.name}`)
        const target = await start(spec, ['--cpu-prof', `--cpu-prof-dir=${dir}`])
        log(`profile: ${spec.name} under --cpu-prof`)
        const figures = await measure(target, options, 9)
        await target.child.stop(20_000)
        const requests = figures.ok + figures.non2xx + figures.warmupRequests
        profiles[spec.name] = summariseProfile(mainThreadProfile(dir), RESIDENCE_PROFILE_STAGES, requests)
        notes.push(
          `CPU profile of the ${spec.name} (separate run, slowed by the profiler; main thread only): ` +
            `${profiles[spec.name]?.file}`,
        )
      }
    }

    const targets: BenchTarget[] = [
      ...loadTargets({
        what: 'service',
        ratio,
        targetRatio: TARGET_RATIO,
        p99Ms: bestService.p99Ms,
        targetP99Ms: TARGET_P99_MS,
        runs: [...runs.service, ...runs.baseline],
      }),
      {
        label: 'import of 1,000,000 rows: peak RSS',
        target: `≤ ${TARGET_IMPORT_RSS_MB} MB`,
        actual: `${imported.peakRssMb} MB`,
        pass: imported.peakRssMb <= TARGET_IMPORT_RSS_MB,
      },
    ]
    notes.push(
      `Import: ${imported.seconds} s wall clock from process start to exit (rows/s above), ` +
        `${imported.importerSeconds} s by the importer's own clock; peak RSS is the child's VmHWM.`,
      `Population: ${size?.rows} evidence rows for ${PEOPLE.toLocaleString('en')} people (table ${size?.table}, ` +
        `indexes ${size?.indexes}); each request asks for a different person drawn uniformly; asOf ${AS_OF}.`,
      'Baseline: bare Fastify, blind index + one SELECT by person_index through a pg Pool of 10; no auth, validation, ' +
        'rule, signing or logging. Service: POST /v1/residence/verifications with a caseworker token, LOG_LEVEL=warn.',
      `Each target ran twice, alternating (baseline, service, baseline, service), ${options.warmupSeconds} s warm-up ` +
        `+ ${options.durationSeconds} s, ${CONNECTIONS} connections; the better run of each is shown.`,
      'CPU ms/req: user + system time of the server process only (PostgreSQL and the load generator excluded).',
    )

    const loadRow = (name: string, r: RunFigures) => [
      name,
      r.requestsPerSecond,
      r.p50Ms,
      r.p90Ms,
      r.p99Ms,
      r.maxMs,
      r.non2xx,
      r.errors,
      r.cpuMsPerRequest,
    ]
    const tables: BenchTable[] = [
      {
        title: `Verification, ${CONNECTIONS} connections, best of 2 × ${options.durationSeconds} s`,
        columns: ['target', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'non-2xx', 'errors', 'CPU ms/req'],
        rows: [
          loadRow('baseline (Fastify + SELECT)', bestBaseline),
          loadRow('residence service', bestService),
          ['service / baseline', `${round(ratio * 100)} %`, '', '', '', '', '', '', ''],
        ],
      },
      {
        title: 'Loading',
        columns: ['phase', 'rows', 'seconds', 'rows/s', 'peak RSS MB', 'measured'],
        rows: [
          [
            'import (real CLI, NDJSON)',
            imported.rows,
            imported.seconds,
            imported.rowsPerSecond,
            imported.peakRssMb,
            imported.recordedAt,
          ],
          ...(bulk
            ? [['bulk (server-side SQL)', bulk.rows, bulk.seconds, bulk.rowsPerSecond, '', bulk.recordedAt]]
            : []),
        ],
      },
    ]
    if (profiles.service && profiles.baseline) {
      const baselineStages = new Map(profiles.baseline.stages.map((stage) => [stage.label, stage]))
      tables.push({
        title: 'Where server CPU goes (--cpu-prof, inclusive, stages overlap), ms per request',
        columns: ['stage', 'baseline', 'service', 'service %'],
        rows: profiles.service.stages.map((stage) => [
          stage.label,
          baselineStages.get(stage.label)?.msPerRequest ?? '',
          stage.msPerRequest,
          stage.share,
        ]),
      })
    }
    return {
      name: 'residence',
      title: 'Residence verification at 5M rows / 2M people',
      tables,
      targets,
      notes,
      details: {
        options,
        data: { ...size, people: PEOPLE, asOf: AS_OF },
        import: imported,
        bulk,
        runs,
        best: { baseline: bestBaseline, service: bestService, ratio: round(ratio, 3) },
        profiles,
      },
    }
  } finally {
    await Promise.all(children.map((child) => child.stop()))
    await client.end().catch(() => {})
    removeTempDir(workDir)
  }
}
