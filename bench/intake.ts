/**
 * Application intake with 50 concurrent caseworkers: POST /v1/applications on the real Shenzhen intake service, which
 * asks the real residence service (3-month rule, signed attestation) and hands the case.transfer to the real gateway,
 * against a bare Fastify + one INSERT baseline on the same database, alternating twice and keeping the better run of
 * each. Every request is a different applicant (hukou in Zhongshan, residence evidence imported beforehand through the
 * residence import endpoint) with its own Idempotency-Key.
 *
 * Transfers: Shenzhen's federation.outbound queue is paused while a measured run loads the service, so the transfers
 * wait in the queue (the delivery work is asynchronous and would otherwise take CPU from the two cores under test);
 * after the run it is resumed and the Shenzhen gateway delivers them to a real Zhongshan gateway, and the next run
 * starts only once every transfer is delivered and its outcome recorded. The drain is reported.
 * Databases bench_intake_shenzhen and bench_intake_zhongshan are created afresh each run and left for inspection.
 */
import { cpus } from 'node:os'
import { join } from 'node:path'
import { createRedis, ensureDevSecrets, mintDevToken, QueueRegistry } from '@pilot/kit'
import type { FederationQueues } from '@pilot/schemas'
import type pg from 'pg'
import {
  ActivitySampler,
  type ActivitySummary,
  activityRows,
  adminUrl,
  cityEnv,
  connect,
  keysDir,
  logTail,
  type RunningService,
  recreateDatabase,
  redisUrl,
  removeRedisKeys,
  runTag,
  type StatementLabels,
  startService,
  writeProfile,
} from './city.ts'
import {
  type BenchOptions,
  type BenchResult,
  type BenchTable,
  type BenchTarget,
  best,
  busyPercent,
  type Child,
  CommandCpuMeter,
  cpuSeconds,
  freePort,
  type LoadFigures,
  load,
  loadTargets,
  log,
  machineCpu,
  makeTempDir,
  removeTempDir,
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
import { RESIDENCE_PROFILE_STAGES } from './residence.ts'
import { idNumberOf } from './residence-data.ts'

const CITY = 'shenzhen'
const HUKOU = 'zhongshan'
const DATABASES = { [CITY]: 'bench_intake_shenzhen', [HUKOU]: 'bench_intake_zhongshan' }
/** Applicants with residence evidence; each request takes the next one, so none is asked for twice in a run. */
const APPLICANTS = 100_000
/** Household members are other people: person p's spouse is person p + SPOUSE_OFFSET (no evidence needed). */
const SPOUSE_OFFSET = 1_000_000
const CONNECTIONS = 50
/** One caseworker identity per connection's worth of load, in rotation (autocannon keeps no per-connection state). */
const CASEWORKERS = 50
/** The service's default DATABASE_POOL_MAX; the baseline gets the same. */
const POOL_SIZE = 10
/** A run of about 2,000 submissions a second leaves some 35,000 transfers; delivery runs at 200–250 a second. */
const DRAIN_TIMEOUT_MS = 360_000

/** Rounds of (baseline, service): two by default, more to narrow a noisy machine's spread, one to try something out. */
const ROUNDS = Number(process.env.BENCH_INTAKE_ROUNDS ?? 2)
/** The intake service's tuning knobs, passed through when set, to try other values without editing the bench. */
const INTAKE_KNOBS = ['SUBMISSION_WRITE_CONCURRENCY', 'RESIDENCE_VERIFY_CONCURRENCY', 'DATABASE_POOL_MAX']

const TARGET_RATIO = 0.35
const TARGET_P99_MS = 100

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** The application of the cross-city test, for applicant p (hukou in Zhongshan, one spouse). */
function application(p: number): string {
  return JSON.stringify({
    applicant: {
      idNumber: idNumberOf(p),
      name: '林晓',
      phone: '13800138000',
      address: '深圳市南山区某街道1号',
      monthlyIncomeFen: 50_000,
      assetsFen: 0,
    },
    hukouCity: HUKOU,
    category: 'subsistence_allowance',
    household: [
      {
        idNumber: idNumberOf(p + SPOUSE_OFFSET),
        name: '陈伟',
        relation: 'spouse',
        monthlyIncomeFen: 30_000,
        assetsFen: 100_000,
      },
    ],
    circumstances: 'Lost work after an illness.',
    rigidExpenditures: { medicalFen: 120_000, educationFen: 0, otherFen: 0 },
    consent: {
      economicCheckAuthorised: true,
      recordedBy: `${CITY}-caseworker-1`,
      recordedAt: '2026-11-30T09:00:00+08:00',
    },
    documents: [{ name: 'hospital-bill.pdf', mediaType: 'application/pdf', sha256: 'a'.repeat(64) }],
  })
}

/** Evidence that makes applicant p eligible in Shenzhen: residence registration since 2024, still valid. */
function evidenceFeed(): string {
  const lines: string[] = []
  for (let p = 0; p < APPLICANTS; p++) {
    lines.push(
      JSON.stringify({
        idNumber: idNumberOf(p),
        kind: 'residence_registration',
        validFrom: '2024-01-01',
        validTo: null,
        sourceRef: `BENCH-RR-${p}`,
      }),
    )
  }
  return `${lines.join('\n')}\n`
}

/**
 * Requests for one target: the next applicant, a fresh Idempotency-Key and the next caseworker's token. Both targets get
 * the very same bytes (the baseline ignores the token); each has its own counter so the baseline uses no applicants.
 */
class Requests {
  private next = 0
  /** Requests that asked for an applicant already asked for (the counter went round). */
  reused = 0

  constructor(
    private readonly tag: string,
    private readonly name: string,
    private readonly tokens: string[],
  ) {}

  get issued(): number {
    return this.next
  }

  request = (): { body: string; headers: Record<string, string> } => {
    const n = this.next++
    if (n >= APPLICANTS) this.reused++
    return {
      body: application(n % APPLICANTS),
      headers: {
        'idempotency-key': `bench-${this.tag}-${this.name}-${n}`,
        authorization: `Bearer ${this.tokens[n % this.tokens.length]}`,
      },
    }
  }
}

interface Target {
  name: 'baseline' | 'service'
  url: string
  /** The processes whose CPU is counted for this target. */
  processes: () => Record<string, Child>
  /** The service's /metrics, where it reports the sizes of its batches. */
  metricsUrl?: string
  requests: Requests
}

interface RunFigures extends LoadFigures {
  /** CPU ms per request of each process (user + system), and of the machine (all cores, everything). */
  cpuMsPerRequest: Record<string, number>
  /** CPU ms per request of what both targets share: PostgreSQL (every backend), Redis and the load generator. */
  sharedCpuMsPerRequest: Record<string, number>
  machineBusyPercent: number
  /** PostgreSQL write-ahead log written during the run, per request (the whole cluster: everything else is idle). */
  walKbPerRequest: number
  warmupRequests: number
  activity: ActivitySummary
  /** Average items per batch during the run, by batcher (the service only). */
  averageBatch: Record<string, number>
}

/** batch_size histogram sums and counts by batcher, from a service's /metrics. */
async function batchTotals(metricsUrl: string | undefined): Promise<Record<string, { sum: number; count: number }>> {
  if (!metricsUrl) return {}
  const text = await (await fetch(metricsUrl, { signal: AbortSignal.timeout(5000) })).text()
  const totals: Record<string, { sum: number; count: number }> = {}
  for (const match of text.matchAll(/^batch_size_(sum|count)\{[^}]*batcher="([^"]+)"[^}]*\} (\S+)$/gm)) {
    const [, kind, batcher, value] = match as unknown as [string, 'sum' | 'count', string, string]
    totals[batcher] ??= { sum: 0, count: 0 }
    totals[batcher][kind] = Number(value)
  }
  return totals
}

/** Measures the CPU of what both targets share; the load generator is this process (autocannon runs in it). */
function sharedCpuMeter(): { stop: () => Record<string, number> } {
  const postgres = new CommandCpuMeter('postgres')
  const redis = new CommandCpuMeter('redis-server')
  postgres.start()
  redis.start()
  const own = process.cpuUsage()
  return {
    stop: () => {
      const used = process.cpuUsage(own)
      return {
        'PostgreSQL (every backend)': postgres.stop(),
        Redis: redis.stop(),
        'load generator (autocannon, this process)': (used.user + used.system) / 1e6,
      }
    },
  }
}

const walPosition = async (admin: pg.Client): Promise<string> =>
  (await admin.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')).rows[0]?.lsn as string

async function measure(
  target: Target,
  options: BenchOptions,
  sampler: ActivitySampler,
  admin: pg.Client,
): Promise<RunFigures> {
  const common = {
    url: target.url,
    method: 'POST' as const,
    headers: { 'content-type': 'application/json' },
    connections: CONNECTIONS,
    body: target.requests.request,
  }
  let warmupRequests = 0
  if (options.warmupSeconds > 0) {
    const warmup = await load({ ...common, durationSeconds: options.warmupSeconds })
    warmupRequests = warmup.ok + warmup.non2xx
  }
  const processes = target.processes()
  const cpuBefore = Object.fromEntries(Object.entries(processes).map(([name, child]) => [name, cpuSeconds(child.pid)]))
  const machineBefore = machineCpu()
  const walBefore = await walPosition(admin)
  const batchesBefore = await batchTotals(target.metricsUrl)
  sampler.start()
  const shared = sharedCpuMeter()
  const figures = await load({ ...common, durationSeconds: options.durationSeconds })
  const sharedSeconds = shared.stop()
  const activity = await sampler.stop()
  const batchesAfter = await batchTotals(target.metricsUrl)
  const averageBatch = Object.fromEntries(
    Object.entries(batchesAfter).map(([batcher, after]) => {
      const before = batchesBefore[batcher] ?? { sum: 0, count: 0 }
      const count = after.count - before.count
      return [batcher, count > 0 ? round((after.sum - before.sum) / count, 2) : 0]
    }),
  )
  const machineBusy = busyPercent(machineBefore, machineCpu())
  const requests = figures.ok + figures.non2xx
  const walBytes = Number(
    (
      await admin.query<{ bytes: string }>('select pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::text as bytes', [
        walBefore,
      ])
    ).rows[0]?.bytes,
  )
  const cpuMsPerRequest = Object.fromEntries(
    Object.entries(processes).map(([name, child]) => [
      name,
      requests > 0 ? round(((cpuSeconds(child.pid) - (cpuBefore[name] ?? 0)) * 1000) / requests, 3) : Number.NaN,
    ]),
  )
  const sharedCpuMsPerRequest = Object.fromEntries(
    Object.entries(sharedSeconds).map(([name, seconds]) => [
      name,
      requests > 0 ? round((seconds * 1000) / requests, 3) : Number.NaN,
    ]),
  )
  const walKbPerRequest = requests > 0 ? round(walBytes / 1024 / requests, 2) : Number.NaN
  return {
    ...figures,
    cpuMsPerRequest,
    sharedCpuMsPerRequest,
    machineBusyPercent: machineBusy,
    walKbPerRequest,
    warmupRequests,
    activity,
    averageBatch,
  }
}

interface Drain {
  transfers: number
  seconds: number
  /** Transfers still without a delivery outcome when the wait gave up. */
  pending: number
  /** Delivery reports still queued for the intake service when every outcome was recorded (repeats; see drain). */
  reportsAfter: number
  /** Seconds more until the intake service had taken all of them. */
  reportsSeconds: number
}

/** Outbox rows (the transfers) still without a delivery outcome. */
async function openTransfers(client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ n: number }>(
    'select count(*)::int as n from intake.outbox where outcome is null',
  )
  return rows[0]?.n ?? 0
}

/**
 * Vacuums and analyses both cities' databases, then checkpoints, before a measured run of the second round (and the
 * profile). A run and its drain leave tens of thousands of new and updated rows for autovacuum to catch up on, and a
 * checkpoint falling inside one run but not another makes their write-ahead logs differ by full-page images; this keeps
 * both out of the measured runs. Second-round runs still tend to be slower (the databases have outgrown
 * shared_buffers by then), for both targets alike; the best run of each is what is compared.
 *
 * Not before the first round: the intake's tables then hold one case, and statistics saying so make PostgreSQL plan
 * sequential scans (the foreign-key checks among them) that it keeps while the tables grow by thousands of rows a
 * second; one such run measured 797 submissions a second and 1.3 ms of PostgreSQL CPU each. Before any statistics the
 * planner assumes a table of ten pages and uses the indexes, and autovacuum analyses the tables as they grow.
 */
async function settle(clients: pg.Client[]): Promise<void> {
  for (const client of clients) await client.query('vacuum (analyze)')
  await clients[0]?.query('checkpoint')
}

/**
 * Before a measured run of the first round: what settle does, for the tables that hold their full contents already or
 * whose plans cannot go wrong — the residence evidence imported just before (100,000 rows, which autovacuum would
 * otherwise vacuum and analyse during the first runs) and the baseline's one table (tens of thousands of rows from its
 * run, only ever inserted into) — then a checkpoint, so the import's write-ahead log is not checkpointed inside a run.
 * The intake's and gateways' tables are left to autovacuum, as settle's comment explains. Before this the first
 * round's runs inherited the import's and the baseline run's catching up; they still tend to measure lowest (README,
 * Benchmarks), with every process spending more CPU per request, the idle ones included.
 */
async function settleFirstRound(client: pg.Client): Promise<void> {
  // The baseline server creates its table before it answers /health, which the bench waits for before any round.
  await client.query('vacuum (analyze) residence.evidence, bench_baseline.applications')
  await client.query('checkpoint')
}

type BenchQueue = ReturnType<QueueRegistry<FederationQueues>['queue']>

/** Jobs of a queue not finished yet: waiting, running or waiting to run again. */
async function unfinished(queue: BenchQueue): Promise<number> {
  const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized')
  return Object.values(counts).reduce((sum, n) => sum + n, 0)
}

/**
 * Resumes delivery and waits until every transfer has its outcome recorded in the intake outbox, then until the
 * intake service has taken every delivery report still queued for it. Those are repeats: a transfer that waited in the
 * paused queue longer than OUTBOX_RESEND_AFTER_SECONDS is queued again by the relay, and one whose first delivery had
 * finished is delivered again and reported again. Left queued, they would be applied during the next measured runs
 * and charge the intake service's and PostgreSQL's CPU to whichever target ran then.
 */
async function drain(client: pg.Client, outbound: BenchQueue, delivery: BenchQueue): Promise<Drain> {
  const transfers = await openTransfers(client)
  const started = Date.now()
  await outbound.resume()
  const pending = await pollWhileAny(() => openTransfers(client), transfers, started)
  const seconds = round((Date.now() - started) / 1000, 1)
  const reportsAfter = await unfinished(delivery)
  const reportsStarted = Date.now()
  const reports = await pollWhileAny(() => unfinished(delivery), reportsAfter, started)
  if (reports > 0) throw new Error(`${reports} delivery reports still queued for the intake service after the drain`)
  return { transfers, seconds, pending, reportsAfter, reportsSeconds: round((Date.now() - reportsStarted) / 1000, 1) }
}

/** Asks `count` every quarter second while it is above zero and DRAIN_TIMEOUT_MS has not passed since `started`. */
async function pollWhileAny(count: () => Promise<number>, first: number, started: number): Promise<number> {
  let n = first
  while (n > 0 && Date.now() - started < DRAIN_TIMEOUT_MS) {
    await sleep(250)
    n = await count()
  }
  return n
}

/** The suspects on a submission's path through the intake service, for --profile. */
const INTAKE_STAGES: Stage[] = [
  { label: 'ES256 verify: bearer token (WebCrypto)', match: named('verify', 'node:internal/crypto/webcrypto') },
  { label: 'jose, all of it', match: inPackage('jose') },
  {
    // node:http on kept-alive connections since the client moved off fetch; undici still counts should it come back.
    label: 'residence call (http client, or fetch/undici)',
    match: (f) =>
      f.url.includes('undici') ||
      f.url.endsWith('/clients/residence.ts') ||
      f.url === 'node:_http_client' ||
      f.url === 'node:_http_agent',
  },
  { label: 'request hash (canonical JSON + SHA-256)', match: named('canonicalJson') },
  { label: 'identity number validation', match: named('validateIdNumber') },
  { label: 'todayIn (Intl.DateTimeFormat)', match: named('todayIn') },
  { label: 'review deadline (working days)', match: named('reviewDeadline') },
  { label: 'matching hash + blind index (HMAC)', match: (f) => named('matchingHash')(f) || named('blindIndex')(f) },
  { label: 'form sealing (AES-GCM)', match: named('sealForm') },
  { label: 'audit chain hash', match: named('auditHash') },
  { label: 'case view (unseal + shape)', match: named('caseView') },
  { label: 'query building (Kysely)', match: inPackage('kysely') },
  { label: 'PostgreSQL driver (pg, pg-protocol)', match: inPackage('pg', 'pg-protocol', 'pg-pool') },
  { label: 'outbox relay + outcomes (BullMQ, ioredis)', match: inPackage('bullmq', 'ioredis') },
  { label: 'Fastify (routing, hooks; compiled validators are anonymous)', match: inPackage('fastify', 'ajv') },
  { label: 'logging (pino)', match: inPackage('pino', '@pinojs/redact') },
  { label: 'metrics (prom-client)', match: inPackage('prom-client') },
  {
    label: 'socket writes (native writev/writeBuffer)',
    match: (f) => f.url === '' && /^(writev|writeBuffer|writeUtf8String|writeLatin1String)$/.test(f.functionName),
    selfOnly: true,
  },
  { label: 'garbage collection', match: named('(garbage collector)'), selfOnly: true },
]

/** Statements of a submission (and of the baseline), for the PostgreSQL activity table. */
const STATEMENTS: StatementLabels = [
  [
    /^\s*with claimed as \(\s*insert into idempotency_keys/,
    'submission: key, case, events, outbox, audit (one statement)',
  ],
  [/from idempotency_keys/, 'Idempotency-Key lookup'],
  [/^update outbox/, 'outbox update'],
  [/hashtextextended/, 'Idempotency-Key lock'],
  [/pg_advisory_xact_lock/, 'audit chainer lock (background)'],
  [/^insert into "idempotency_keys"/, 'store the response (idempotency)'],
  [/from "idempotency_keys"/, 'Idempotency-Key lookup'],
  [/from audit_log/, 'audit chainer: unlinked rows and head (background)'],
  [/^update audit_log/, 'audit chainer: link (background)'],
  [/^insert into audit_log/, 'audit insert'],
  [/^insert into "cases"/, 'case insert'],
  [/^insert into "case_events"/, 'case event insert'],
  [/^insert into "outbox"/, 'outbox insert'],
  [/from "case_events"/, 'case events read'],
  [/from "cases"/, 'case read'],
  [/from outbox[\s\S]*for update skip locked/, 'outbox relay pass'],
  [/^update "outbox"/, 'outbox update'],
  [/from evidence/, 'residence: evidence lookup'],
  [/INSERT INTO bench_baseline/, 'baseline insert'],
  [/^\s*commit/i, 'commit'],
  [/^\s*begin/i, 'begin'],
]

/** CPU of every process counted for a run (the target's own, PostgreSQL, Redis, load generator), ms per request. */
function machineCpuPerRequest(figures: RunFigures): number {
  const sum = (values: Record<string, number>) => Object.values(values).reduce((total, value) => total + value, 0)
  return sum(figures.cpuMsPerRequest) + sum(figures.sharedCpuMsPerRequest)
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2
}

export async function run(partial: Partial<BenchOptions> = {}): Promise<BenchResult> {
  const options: BenchOptions = { fresh: false, durationSeconds: 20, warmupSeconds: 3, profile: false, ...partial }
  const notes: string[] = []
  const tag = runTag()
  const redisBase = `bench:intake:${tag}`
  ensureDevSecrets(keysDir, [CITY, HUKOU])
  const workDir = makeTempDir('bench-intake-')
  const services: RunningService[] = []
  const others: Child[] = []
  const clients: pg.Client[] = []
  const redis = createRedis({ url: redisUrl(), purpose: 'command', connectionName: 'bench-intake' })
  let queues: QueueRegistry<FederationQueues> | undefined
  try {
    // ---- one city (Shenzhen: residence, intake, gateway) and Zhongshan's gateway to deliver to ----
    const ports = {
      residence: await freePort(),
      intake: await freePort(),
      gateway: await freePort(),
      hukouGateway: await freePort(),
      baseline: await freePort(),
    }
    const profilePath = writeProfile(join(workDir, 'pilot.yaml'), {
      [CITY]: { residence: ports.residence, intake: ports.intake, gateway: ports.gateway },
      [HUKOU]: { gateway: ports.hukouGateway },
    })
    const cityUrl = await recreateDatabase(DATABASES[CITY])
    const hukouUrl = await recreateDatabase(DATABASES[HUKOU])
    const envFor = (city: string, service: string, port: number, extra: Record<string, string> = {}) =>
      cityEnv({
        city,
        databaseUrl: city === CITY ? cityUrl : hukouUrl,
        profilePath,
        redisPrefix: `${redisBase}:${city}`,
        logFile: join(workDir, `${city}-${service}.log`),
        port,
        extra,
      })
    log('starting Shenzhen residence, gateway and intake, and the Zhongshan gateway')
    const residenceEnv = envFor(CITY, 'residence', ports.residence)
    let residence = await startService('residence', 'residence', residenceEnv)
    services.push(residence)
    const gateway = await startService('gateway', 'gateway', envFor(CITY, 'gateway', ports.gateway))
    services.push(gateway)
    const hukouGateway = await startService(
      `${HUKOU} gateway`,
      'gateway',
      envFor(HUKOU, 'gateway', ports.hukouGateway, {
        // Thousands of transfers arrive in a burst when delivery resumes; the default 6000/min would answer 429.
        INBOUND_RATE_LIMIT_PER_MINUTE: '10000000',
        // Nothing consumes Zhongshan's inbound queue here; no relay rechecks of messages nobody will take.
        RELAY_RECHECK_SECONDS: '3600',
      }),
    )
    services.push(hukouGateway)
    const knobs = Object.fromEntries(
      INTAKE_KNOBS.flatMap((name) => (process.env[name] ? [[name, process.env[name]]] : [])),
    )
    if (Object.keys(knobs).length > 0) {
      notes.push(`Intake service settings from the environment: ${JSON.stringify(knobs)}.`)
    }
    const intakeEnv = envFor(CITY, 'intake', ports.intake, knobs)
    let intake = await startService('intake', 'intake', intakeEnv)
    services.push(intake)
    const client = await connect(cityUrl)
    clients.push(client)
    await redis.connect()
    queues = new QueueRegistry<FederationQueues>(redis, redisUrl(), `${redisBase}:${CITY}`)
    const outbound = queues.queue('federation.outbound')
    const delivery = queues.queue('federation.delivery')

    // ---- residence evidence for every applicant, through the import endpoint ----
    const operator = await mintDevToken(keysDir, CITY, { roles: ['operator'], subject: `${CITY}-bench-loader` })
    log(`importing residence evidence for ${APPLICANTS.toLocaleString('en')} applicants`)
    const importStarted = performance.now()
    const imported = await fetch(`${residence.url}/v1/residence/evidence:import`, {
      method: 'POST',
      headers: { authorization: `Bearer ${operator}`, 'content-type': 'application/x-ndjson' },
      body: evidenceFeed(),
      signal: AbortSignal.timeout(300_000),
    })
    const summary = (await imported.json()) as { inserted?: number; rejected?: number }
    const importSeconds = (performance.now() - importStarted) / 1000
    if (!imported.ok || summary.inserted !== APPLICANTS || summary.rejected) {
      throw new Error(`evidence import answered ${imported.status}: ${JSON.stringify(summary).slice(0, 2000)}`)
    }
    log(`  ${APPLICANTS} rows in ${importSeconds.toFixed(1)} s`)

    // ---- 50 caseworkers, and the two targets ----
    // Valid for the whole run: warm-ups, four measured runs, drains and the profile, with a wide margin.
    const tokens = await Promise.all(
      Array.from({ length: CASEWORKERS }, (_, i) =>
        mintDevToken(keysDir, CITY, {
          roles: ['caseworker'],
          subject: `${CITY}-caseworker-${i + 1}`,
          ttlSeconds: 7200,
        }),
      ),
    )
    const baselineLog = join(workDir, 'baseline.log')
    const baselineChild = startNode(
      'bench/baseline-intake-server.ts',
      [],
      { DATABASE_URL: cityUrl, DATABASE_POOL_MAX: String(POOL_SIZE), PORT: String(ports.baseline) },
      baselineLog,
    )
    others.push(baselineChild)
    await waitReady(`http://127.0.0.1:${ports.baseline}/health`, baselineChild, 60_000, baselineLog)

    const serviceRequests = new Requests(tag, 'service', tokens)
    const targets: Record<Target['name'], Target> = {
      baseline: {
        name: 'baseline',
        url: `http://127.0.0.1:${ports.baseline}/v1/applications`,
        processes: () => ({ baseline: baselineChild }),
        requests: new Requests(tag, 'baseline', tokens),
      },
      service: {
        name: 'service',
        url: `${intake.url}/v1/applications`,
        metricsUrl: `${intake.url}/metrics`,
        processes: () => ({
          intake: intake.child,
          residence: residence.child,
          [`${CITY} gateway`]: gateway.child,
          [`${HUKOU} gateway`]: hukouGateway.child,
        }),
        requests: serviceRequests,
      },
    }

    // One submission by hand: the service must answer 201 with an eligible, queued case, or the load means nothing.
    const first = serviceRequests.request()
    const answer = await fetch(targets.service.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...first.headers },
      body: first.body,
      signal: AbortSignal.timeout(10_000),
    })
    const view = (await answer.json()) as { status?: string; residence?: { eligible?: boolean } }
    if (answer.status !== 201 || view.status !== 'queued' || view.residence?.eligible !== true) {
      throw new Error(
        `a submission answered ${answer.status} ${JSON.stringify(view).slice(0, 1000)}; see ${intake.logFile}:\n` +
          logTail(intake.logFile),
      )
    }

    const hukouClient = await connect(hukouUrl)
    clients.push(hukouClient)
    const samplerClient = await connect(adminUrl())
    clients.push(samplerClient)
    const applications = [`${CITY}-intake`, `${CITY}-residence`, `${CITY}-gateway`, 'bench-intake-baseline']
    const sampler = new ActivitySampler(samplerClient, [DATABASES[CITY]], applications, STATEMENTS)

    const runs: Record<Target['name'], RunFigures[]> = { baseline: [], service: [] }
    const drains: Drain[] = []
    for (let round = 1; round <= ROUNDS; round++) {
      for (const target of [targets.baseline, targets.service]) {
        log(`load: ${target.name}, round ${round} (${options.warmupSeconds} s warm-up, ${options.durationSeconds} s)`)
        if (target.name === 'service') await outbound.pause()
        await (round > 1 ? settle([client, hukouClient]) : settleFirstRound(client))
        const figures = await measure(target, options, sampler, samplerClient)
        runs[target.name].push(figures)
        log(
          `  ${figures.requestsPerSecond} req/s, p50 ${figures.p50Ms} ms, p99 ${figures.p99Ms} ms, ` +
            `non-2xx ${figures.non2xx}, errors ${figures.errors}, machine CPU ${figures.machineBusyPercent} %` +
            Object.entries(figures.averageBatch)
              .map(([batcher, size]) => `, ${batcher} batches of ${size}`)
              .join(''),
        )
        if (target.name === 'service') {
          const drained = await drain(client, outbound, delivery)
          drains.push(drained)
          log(
            `  transfers: ${drained.transfers} delivered in ${drained.seconds} s, ${drained.pending} pending; ` +
              `${drained.reportsAfter} repeated delivery reports taken in ${drained.reportsSeconds} s more`,
          )
        }
      }
    }
    const bestBaseline = best(runs.baseline) as RunFigures
    const bestService = best(runs.service) as RunFigures
    const ratio = bestService.requestsPerSecond / bestBaseline.requestsPerSecond

    // What the submissions left behind: every case queued for transfer, every transfer delivered to Zhongshan.
    const { rows: left } = await client.query<{ cases: number; outbox: number; delivered: number; audit: number }>(
      `select (select count(*)::int from intake.cases) as cases,
         (select count(*)::int from intake.outbox) as outbox,
         (select count(*)::int from intake.outbox where outcome = 'delivered') as delivered,
         (select count(*)::int from intake.audit_log) as audit`,
    )
    const { rows: statuses } = await client.query<{ status: string; n: number }>(
      'select status, count(*)::int as n from intake.cases group by status order by n desc',
    )
    const { rows: arrived } = await hukouClient.query<{ n: number }>(
      `select count(*)::int as n from gateway.messages where direction = 'inbound' and type = 'case.transfer'`,
    )

    // ---- --profile: the intake and residence services under --cpu-prof (separate run, not comparable) ----
    // Both are profiled in the same run: the residence service's share of a submission depends on the batches intake
    // sends it, which only a submission load makes.
    let profile: ProfileSummary | undefined
    let residenceProfile: ProfileSummary | undefined
    if (options.profile) {
      await Promise.all([intake.child.stop(), residence.child.stop(), baselineChild.stop()])
      const intakeDir = profileDir('intake-service')
      const residenceDir = profileDir('residence-service')
      residence = await startService('residence (profiled)', 'residence', residenceEnv, [
        '--cpu-prof',
        `--cpu-prof-dir=${residenceDir}`,
      ])
      services.push(residence)
      intake = await startService('intake (profiled)', 'intake', intakeEnv, [
        '--cpu-prof',
        `--cpu-prof-dir=${intakeDir}`,
      ])
      services.push(intake)
      const profiled: Target = { ...targets.service, url: `${intake.url}/v1/applications` }
      log('profile: intake and residence under --cpu-prof')
      await outbound.pause()
      await settle([client, hukouClient])
      const figures = await measure(profiled, options, sampler, samplerClient)
      // Stopped before its transfers drain: delivery outcomes would be processed by this process and profiled too.
      await Promise.all([intake.child.stop(20_000), residence.child.stop(20_000)])
      const submissions = figures.ok + figures.non2xx + figures.warmupRequests
      profile = summariseProfile(mainThreadProfile(intakeDir), INTAKE_STAGES, submissions)
      // Per submission, not per verification call: one call carries a batch of them.
      residenceProfile = summariseProfile(mainThreadProfile(residenceDir), RESIDENCE_PROFILE_STAGES, submissions)
      log(`  ${figures.requestsPerSecond} req/s under the profiler`)
      notes.push(
        `CPU profiles of the intake and residence services (separate run, slowed by the profiler; main thread only): ` +
          `${profile.file}, ${residenceProfile.file}`,
      )
    }

    const benchTargets: BenchTarget[] = [
      ...loadTargets({
        what: 'submission',
        ratio,
        targetRatio: TARGET_RATIO,
        p99Ms: bestService.p99Ms,
        targetP99Ms: TARGET_P99_MS,
        runs: [...runs.service, ...runs.baseline],
      }),
    ]

    const loadRow = (name: string, r: RunFigures) => [
      name,
      r.requestsPerSecond,
      r.p50Ms,
      r.p90Ms,
      r.p99Ms,
      r.maxMs,
      r.non2xx,
      r.errors,
      Object.values(r.cpuMsPerRequest)[0] ?? '',
      r.machineBusyPercent,
      r.walKbPerRequest,
    ]
    const cpuColumns = Object.keys(bestService.cpuMsPerRequest)
    // Each round's baseline and service runs, measured back to back.
    const pairs = runs.service.map((service, i) => ({ baseline: runs.baseline[i] as RunFigures, service }))
    const pairRatio = (pair: (typeof pairs)[number]) => pair.service.requestsPerSecond / pair.baseline.requestsPerSecond
    const tables: BenchTable[] = [
      {
        title: `Submission, ${CONNECTIONS} connections, best of ${ROUNDS} × ${options.durationSeconds} s`,
        columns: [
          'target',
          'req/s',
          'p50 ms',
          'p90 ms',
          'p99 ms',
          'max ms',
          'non-2xx',
          'errors',
          'CPU ms/req',
          'machine CPU %',
          'WAL KB/req',
        ],
        rows: [
          loadRow('baseline (Fastify + one INSERT)', bestBaseline),
          loadRow('intake service (+ residence)', bestService),
          ['service / baseline', `${round(ratio * 100)} %`, '', '', '', '', '', '', '', '', ''],
        ],
      },
      {
        // On a shared machine a neighbour's burst can slow one run by a fifth; the rounds side by side show how far the
        // best-of figure above is from the typical pair, and machine CPU per request is less sensitive to how busy the
        // machine was than requests per second.
        title:
          'Each round (baseline, then service, back to back) and the machine CPU per request of each: every process ' +
          'counted (targets, PostgreSQL, Redis, load generator)',
        columns: [
          'round',
          'baseline req/s',
          'service req/s',
          'service / baseline',
          'baseline CPU ms',
          'service CPU ms',
        ],
        rows: [
          ...pairs.map(({ baseline, service }, i) => [
            String(i + 1),
            baseline.requestsPerSecond,
            service.requestsPerSecond,
            `${round(100 * pairRatio({ baseline, service }))} %`,
            round(machineCpuPerRequest(baseline), 3),
            round(machineCpuPerRequest(service), 3),
          ]),
          [
            'median',
            '',
            '',
            `${round(100 * median(pairs.map(pairRatio)))} %`,
            round(median(runs.baseline.map(machineCpuPerRequest)), 3),
            round(median(runs.service.map(machineCpuPerRequest)), 3),
          ],
        ],
      },
      {
        title: 'Service CPU per submission by process (best run), ms',
        columns: ['process', 'CPU ms/req'],
        rows: cpuColumns.map((name) => [name, bestService.cpuMsPerRequest[name] ?? '']),
      },
      {
        title: 'CPU per request outside the target processes (best runs), ms',
        columns: ['process', 'baseline', 'service'],
        rows: Object.keys(bestService.sharedCpuMsPerRequest).map((name) => [
          name,
          bestBaseline.sharedCpuMsPerRequest[name] ?? '',
          bestService.sharedCpuMsPerRequest[name] ?? '',
        ]),
      },
      {
        title:
          'Average batch sizes in the intake service (best run): submissions per statement, verifications per call',
        columns: ['batcher', 'items per batch'],
        rows: Object.entries(bestService.averageBatch),
      },
      {
        title:
          `Where the PostgreSQL connections were during the best service run ` +
          `(average backends of a pool of ${POOL_SIZE}, ${bestService.activity.samples} samples)`,
        columns: ['application', 'state: last statement', 'backends'],
        rows: activityRows(bestService.activity),
      },
      {
        title: 'Transfers (case.transfer) after each service run: delivered to Zhongshan, outcome recorded',
        columns: [
          'after run',
          'transfers',
          'seconds',
          'per second',
          'still pending',
          'repeated reports then',
          'seconds more',
        ],
        rows: drains.map((d, i) => [
          `service, round ${i + 1}`,
          d.transfers,
          d.seconds,
          d.seconds > 0 ? round(d.transfers / d.seconds) : '',
          d.pending,
          d.reportsAfter,
          d.reportsSeconds,
        ]),
      },
    ]
    for (const [name, summary] of [
      ['intake', profile],
      ['residence', residenceProfile],
    ] as const) {
      if (!summary) continue
      tables.push(
        {
          title: `Where ${name} CPU goes (--cpu-prof, inclusive, stages overlap), ms per submission`,
          columns: ['stage', 'ms/req', 'share %'],
          rows: summary.stages.map((stage) => [stage.label, stage.msPerRequest, stage.share]),
        },
        {
          title: `${name === 'intake' ? 'Intake' : 'Residence'} self time by package or area, and the top functions (--cpu-prof)`,
          columns: ['rank', 'area', 'share %', 'function', 'share %'],
          rows: Array.from({ length: 12 }, (_, i) => [
            i + 1,
            summary.byArea[i]?.area ?? '',
            summary.byArea[i]?.share ?? '',
            summary.topFunctions[i]?.fn ?? '',
            summary.topFunctions[i]?.share ?? '',
          ]),
        },
      )
    }
    const leftRow = left[0]
    notes.push(
      `Service: real processes (node --import tsx services/<service>/src/server.ts) — Shenzhen residence, intake and ` +
        `gateway on ${DATABASES[CITY]}, Zhongshan gateway on ${DATABASES[HUKOU]}; pools of ${POOL_SIZE}, ` +
        'LOG_LEVEL=warn. POST /v1/applications, each request a different applicant with residence evidence (all ' +
        `eligible, hukou ${HUKOU}), its own Idempotency-Key, ${CASEWORKERS} caseworker tokens in rotation.`,
      `Baseline: bare Fastify, one INSERT of the same JSON into a jsonb column (uuid id) through a pg Pool of ` +
        `${POOL_SIZE}, schema bench_baseline of the same database; no auth, validation, residence check, sealing, ` +
        'history, audit, outbox or idempotency. Same request bytes.',
      `Each target ran ${ROUNDS === 2 ? 'twice' : `${ROUNDS} times`}, alternating (baseline, service, …), ` +
        `${options.warmupSeconds} s warm-up + ${options.durationSeconds} s, ${CONNECTIONS} connections; the ` +
        `${ROUNDS === 2 ? 'better' : 'best'} run of each is shown.`,
      'Before each measured run after the first round both databases are vacuumed and analysed and a checkpoint is ' +
        "taken, so no run inherits autovacuum's catching up after the drain before it; before each first-round run " +
        "the residence evidence and the baseline's table are, then a checkpoint (the intake's tables have no " +
        'statistics yet on purpose).',
      `During each service run Shenzhen's federation.outbound queue is paused (transfers wait in the queue); it is ` +
        'resumed afterwards and the next run starts once every transfer is delivered to Zhongshan and the intake ' +
        'service has taken every delivery report queued for it (table above).',
      `CPU ms/req: user + system per request of each process (PostgreSQL, Redis and the load generator excluded); ` +
        `machine CPU %: all ${cpus().length} cores, everything included; WAL KB/req: PostgreSQL's write-ahead log ` +
        'written during the run per request (the whole cluster).',
      `Left behind: ${leftRow?.cases} cases (${statuses.map((s) => `${s.n} ${s.status}`).join(', ')}), ` +
        `${leftRow?.delivered} of ${leftRow?.outbox} transfers delivered, ${arrived[0]?.n} stored by the Zhongshan ` +
        `gateway, ${leftRow?.audit} audit rows. Residence evidence import: ${APPLICANTS} rows in ` +
        `${importSeconds.toFixed(1)} s through POST /v1/residence/evidence:import.`,
      ...(serviceRequests.reused > 0
        ? [`${serviceRequests.reused} service requests asked for an applicant already asked for (counter went round).`]
        : []),
    )
    return {
      name: 'intake',
      title: `Application intake, ${CONNECTIONS} concurrent caseworkers`,
      tables,
      targets: benchTargets,
      notes,
      details: {
        options,
        applicants: APPLICANTS,
        importSeconds: round(importSeconds, 2),
        runs,
        best: { baseline: bestBaseline, service: bestService, ratio: round(ratio, 3) },
        drains,
        leftBehind: { ...leftRow, statuses, arrivedAtZhongshan: arrived[0]?.n },
        profile,
        residenceProfile,
        peakRssMb: Object.fromEntries(services.map((s) => [s.name, s.child.peakRssMb()])),
      },
    }
  } finally {
    await Promise.all([...services.map((s) => s.child.stop()), ...others.map((child) => child.stop())])
    await queues?.close().catch(() => {})
    redis.disconnect()
    await Promise.all(clients.map((client) => client.end().catch(() => {})))
    await withTimeout('removing the Redis keys', 30_000, removeRedisKeys(redisBase)).catch((error: Error) =>
      log(`could not remove Redis keys under ${redisBase}: ${error.message}`),
    )
    removeTempDir(workDir)
  }
}
