/**
 * Gateway to gateway, Shenzhen → Zhongshan, with both gateways as real processes on loopback:
 *   1. throughput — N messages queued at once on Shenzhen's federation.outbound (as the intake service's outbox relay
 *      queues them), timed until every one is `delivered` in Shenzhen's gateway.messages; against raw BullMQ add +
 *      process (empty processor, same concurrency, same Redis) for the same N, alternating twice, the better of each;
 *   2. latency — 100 messages/s offered open loop (each sent on its schedule, whatever the backlog), delivery latency
 *      from our own enqueue time to the row's delivered_at (the receipt verified and stored);
 *   3. signing — raw jose ES256 CompactSign + compactVerify, and node:crypto sign + verify, for ~3 s each;
 *   4. exactly once — every message sent is stored at Zhongshan once, none lost, none answered as a duplicate.
 * Databases bench_gateway_shenzhen and bench_gateway_zhongshan are created afresh each run and left for inspection.
 */
import { generateKeyPairSync, sign as nodeSign, verify as nodeVerify, randomUUID } from 'node:crypto'
import { createRequire } from 'node:module'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { createRedis, ensureDevSecrets, generateEs256Jwk, QueueRegistry, queueOutbound } from '@pilot/kit'
import type { FederationQueues, OutboundMessage } from '@pilot/schemas'
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
  scrapeCounter,
  startService,
  writeProfile,
} from './city.ts'
import {
  type BenchOptions,
  type BenchResult,
  type BenchTable,
  type BenchTarget,
  busyPercent,
  type Child,
  cpuSeconds,
  freePort,
  log,
  machineCpu,
  makeTempDir,
  percentile,
  removeTempDir,
  repoRoot,
  round,
  startNode,
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

const FROM = 'shenzhen'
const TO = 'zhongshan'
const DATABASES = { [FROM]: 'bench_gateway_shenzhen', [TO]: 'bench_gateway_zhongshan' }
/** Messages queued at once in each throughput run. */
const BURST = Number(process.env.BENCH_GATEWAY_MESSAGES ?? 3000)
/** Through both gateways before anything is measured: JIT, connection pools, the first JWKS fetch on each side. */
const WARMUP_MESSAGES = 300
const OFFERED_RATE = 100
/** The gateway's DELIVERY_CONCURRENCY default; the raw worker gets the same. */
const CONCURRENCY = 16
const CRYPTO_SECONDS = 3
/** Longest wait for a run's messages to be delivered before it is reported as incomplete. */
const DRAIN_TIMEOUT_MS = 120_000

const TARGET_RATIO = 0.4
const TARGET_P99_MS = 250

interface BurstFigures {
  messages: number
  /** Delivered (gateway) or completed (raw) within the drain timeout. */
  done: number
  dead: number
  /** Messages that needed more than one delivery attempt. */
  retried: number
  /** Time to queue all of them (the adds overlap the processing). */
  enqueueSeconds: number
  /** First add to last delivery. */
  seconds: number
  perSecond: number
  cpuMsPerMessage: number
  machineBusyPercent: number
}

interface OfferedFigures {
  messages: number
  offeredRate: number
  /** Messages actually queued per second over the sending period (the sender's own timer lag shows here). */
  achievedRate: number
  /** Largest delay of a send behind its schedule. */
  maxSendLagMs: number
  done: number
  dead: number
  retried: number
  p50Ms: number
  p95Ms: number
  p99Ms: number
  maxMs: number
}

interface CryptoFigures {
  label: string
  pairs: number
  pairsPerSecond: number
  microsecondsPerPair: number
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** A case.withdrawn message, the smallest case message; refs are per run and label, so rows can be told apart. */
function message(tag: string, label: string, i: number): OutboundMessage {
  return {
    messageId: randomUUID(),
    to: TO,
    type: 'case.withdrawn',
    ref: `440300-BENCH-${tag}-${label}-${i}`,
    usr: `${FROM}-caseworker-1`,
    body: { withdrawnAt: new Date().toISOString(), reason: 'The applicant moved back to Zhongshan before review.' },
  }
}

interface Gateways {
  sender: RunningService
  receiver: RunningService
  queues: QueueRegistry<FederationQueues>
  senderDb: pg.Client
  receiverDb: pg.Client
  tag: string
  /** Every message id sent through the gateways in this run, for the exactly-once check. */
  sent: string[]
}

/** The database's clock: rows whose created_at (the worker's first sight, now()) is at or after it belong to the run. */
async function dbNow(client: pg.Client): Promise<Date> {
  const { rows } = await client.query<{ now: Date }>('select clock_timestamp() as now')
  return rows[0]?.now as Date
}

async function outboundSince(client: pg.Client, since: Date): Promise<{ delivered: number; dead: number }> {
  const { rows } = await client.query<{ delivered: number; dead: number }>(
    `select count(*) filter (where status = 'delivered')::int as delivered,
       count(*) filter (where status = 'dead')::int as dead
     from gateway.messages where direction = 'outbound' and created_at >= $1`,
    [since],
  )
  return rows[0] ?? { delivered: 0, dead: 0 }
}

/** Polls Shenzhen's table until `count` messages of the run are delivered or dead, or the drain timeout passes. */
async function waitDelivered(g: Gateways, since: Date, count: number): Promise<{ delivered: number; dead: number }> {
  const deadline = Date.now() + DRAIN_TIMEOUT_MS
  let progress = await outboundSince(g.senderDb, since)
  while (progress.delivered + progress.dead < count && Date.now() < deadline) {
    await sleep(100)
    progress = await outboundSince(g.senderDb, since)
  }
  if (progress.delivered + progress.dead < count) {
    log(`  only ${progress.delivered} of ${count} delivered after ${DRAIN_TIMEOUT_MS / 1000} s`)
  }
  return progress
}

async function runRows(g: Gateways, since: Date) {
  const { rows } = await g.senderDb.query<{ id: string; delivered_at: Date | null; attempts: number; status: string }>(
    `select message_id::text as id, delivered_at, attempts, status
     from gateway.messages where direction = 'outbound' and created_at >= $1`,
    [since],
  )
  return rows
}

const gatewayCpu = (g: Gateways) => cpuSeconds(g.sender.child.pid) + cpuSeconds(g.receiver.child.pid)

async function gatewayBurst(g: Gateways, label: string, count: number): Promise<BurstFigures> {
  const messages = Array.from({ length: count }, (_, i) => message(g.tag, label, i))
  g.sent.push(...messages.map((m) => m.messageId))
  const since = await dbNow(g.senderDb)
  const cpuBefore = gatewayCpu(g)
  const machineBefore = machineCpu()
  const started = Date.now()
  await Promise.all(messages.map((m) => queueOutbound(g.queues, m)))
  const enqueueSeconds = (Date.now() - started) / 1000
  const progress = await waitDelivered(g, since, count)
  const cpu = gatewayCpu(g) - cpuBefore
  const machineBusy = busyPercent(machineBefore, machineCpu())
  const rows = await runRows(g, since)
  const last = Math.max(...rows.map((row) => row.delivered_at?.getTime() ?? 0))
  const seconds = (last - started) / 1000
  return {
    messages: count,
    done: progress.delivered,
    dead: progress.dead,
    retried: rows.filter((row) => row.attempts > 1).length,
    enqueueSeconds: round(enqueueSeconds, 2),
    seconds: round(seconds, 2),
    perSecond: round(progress.delivered / seconds),
    cpuMsPerMessage: round((cpu * 1000) / count, 3),
    machineBusyPercent: machineBusy,
  }
}

/**
 * Sends `rate` messages a second for `seconds`, each at its scheduled time, without waiting for earlier ones: an open
 * loop, so a slow system meets the same offered load instead of a politely slowed one. `send` resolves when queued.
 */
async function offer(
  rate: number,
  seconds: number,
  send: (i: number) => { id: string; queued: Promise<unknown> },
): Promise<{ sentAt: Map<string, number>; achievedRate: number; maxSendLagMs: number }> {
  const total = Math.round(rate * seconds)
  const sentAt = new Map<string, number>()
  const pending: Promise<unknown>[] = []
  const start = performance.now()
  let maxSendLagMs = 0
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate
    const wait = due - performance.now()
    if (wait > 1) await sleep(wait)
    maxSendLagMs = Math.max(maxSendLagMs, performance.now() - due)
    const now = Date.now()
    const { id, queued } = send(i)
    sentAt.set(id, now)
    pending.push(queued)
  }
  // n sends span n - 1 intervals: a sender exactly on schedule reports exactly `rate`.
  const sendingSeconds = (performance.now() - start) / 1000
  await Promise.all(pending)
  return { sentAt, achievedRate: total > 1 ? round((total - 1) / sendingSeconds) : rate, maxSendLagMs }
}

function latencyFigures(
  latencies: number[],
): Pick<OfferedFigures, 'p50Ms' | 'p95Ms' | 'p99Ms' | 'maxMs'> & { sorted: Float64Array } {
  const sorted = Float64Array.from(latencies).sort()
  return {
    sorted,
    p50Ms: round(percentile(sorted, 50), 1),
    p95Ms: round(percentile(sorted, 95), 1),
    p99Ms: round(percentile(sorted, 99), 1),
    maxMs: round(sorted[sorted.length - 1] ?? Number.NaN, 1),
  }
}

async function gatewayOffered(g: Gateways, label: string, seconds: number): Promise<OfferedFigures> {
  const since = await dbNow(g.senderDb)
  const sending = await offer(OFFERED_RATE, seconds, (i) => {
    const m = message(g.tag, label, i)
    g.sent.push(m.messageId)
    return { id: m.messageId, queued: queueOutbound(g.queues, m) }
  })
  const progress = await waitDelivered(g, since, sending.sentAt.size)
  const rows = await runRows(g, since)
  const latencies: number[] = []
  for (const row of rows) {
    const sentAt = sending.sentAt.get(row.id)
    if (row.delivered_at && sentAt !== undefined) latencies.push(row.delivered_at.getTime() - sentAt)
  }
  const { sorted: _sorted, ...percentiles } = latencyFigures(latencies)
  return {
    messages: sending.sentAt.size,
    offeredRate: OFFERED_RATE,
    achievedRate: sending.achievedRate,
    maxSendLagMs: round(sending.maxSendLagMs, 1),
    done: progress.delivered,
    dead: progress.dead,
    retried: rows.filter((row) => row.attempts > 1).length,
    ...percentiles,
  }
}

interface Raw {
  /** The process taking jobs off `federation.outbound`. */
  worker: Child
  /** Every process whose CPU the run costs (the worker, and the floor's receiver). */
  processes: Child[]
  queues: QueueRegistry<FederationQueues>
}

const cpuOf = (processes: Child[]) => processes.reduce((sum, child) => sum + cpuSeconds(child.pid), 0)

async function waitCompleted(raw: Raw, target: number, timeoutMs: number): Promise<number> {
  const queue = raw.queues.queue('federation.outbound')
  const deadline = Date.now() + timeoutMs
  let completed = await queue.getCompletedCount()
  while (completed < target && Date.now() < deadline) {
    await sleep(10)
    completed = await queue.getCompletedCount()
  }
  return completed
}

async function rawBurst(raw: Raw, tag: string, label: string, count: number): Promise<BurstFigures> {
  const queue = raw.queues.queue('federation.outbound')
  const before = await queue.getCompletedCount()
  const messages = Array.from({ length: count }, (_, i) => message(tag, label, i))
  const cpuBefore = cpuOf(raw.processes)
  const machineBefore = machineCpu()
  const started = Date.now()
  // The same add as queueOutbound's (job id, retention), so both sides pay for the same Redis work.
  await Promise.all(messages.map((m) => queueOutbound(raw.queues, m)))
  const enqueueSeconds = (Date.now() - started) / 1000
  const completed = (await waitCompleted(raw, before + count, DRAIN_TIMEOUT_MS)) - before
  const cpu = cpuOf(raw.processes) - cpuBefore
  const machineBusy = busyPercent(machineBefore, machineCpu())
  // The completed set is ordered by finishing time: its last member is the run's last job.
  const [last] = await queue.getJobs(['completed'], 0, 0, false)
  const seconds = ((last?.finishedOn ?? Date.now()) - started) / 1000
  return {
    messages: count,
    done: completed,
    dead: 0,
    retried: 0,
    enqueueSeconds: round(enqueueSeconds, 2),
    seconds: round(seconds, 2),
    perSecond: round(completed / seconds),
    cpuMsPerMessage: round((cpu * 1000) / count, 3),
    machineBusyPercent: machineBusy,
  }
}

async function rawOffered(raw: Raw, tag: string, seconds: number): Promise<OfferedFigures> {
  const queue = raw.queues.queue('federation.outbound')
  const before = await queue.getCompletedCount()
  const sending = await offer(OFFERED_RATE, seconds, (i) => {
    const m = message(tag, 'raw-offered', i)
    return { id: m.messageId, queued: queueOutbound(raw.queues, m) }
  })
  const completed = (await waitCompleted(raw, before + sending.sentAt.size, DRAIN_TIMEOUT_MS)) - before
  const latencies: number[] = []
  const ids = [...sending.sentAt.keys()]
  for (let i = 0; i < ids.length; i += 200) {
    const jobs = await Promise.all(ids.slice(i, i + 200).map((id) => queue.getJob(id)))
    for (const job of jobs) {
      const sentAt = job?.id ? sending.sentAt.get(job.id) : undefined
      if (job?.finishedOn && sentAt !== undefined) latencies.push(job.finishedOn - sentAt)
    }
  }
  const { sorted: _sorted, ...percentiles } = latencyFigures(latencies)
  return {
    messages: sending.sentAt.size,
    offeredRate: OFFERED_RATE,
    achievedRate: sending.achievedRate,
    maxSendLagMs: round(sending.maxSendLagMs, 1),
    done: completed,
    dead: 0,
    retried: 0,
    ...percentiles,
  }
}

/** The part of jose this benchmark uses (jose is a dependency of packages/signing, not of the repository root). */
interface Jose {
  CompactSign: new (
    payload: Uint8Array,
  ) => { setProtectedHeader(header: Record<string, unknown>): { sign(key: unknown): Promise<string> } }
  compactVerify(jws: string, key: unknown, options?: { algorithms?: string[] }): Promise<{ payload: Uint8Array }>
  importJWK(jwk: Record<string, unknown>, alg: string): Promise<unknown>
}

/** The very jose the gateway verifies with: resolved from packages/signing, where the gateway gets it. */
async function loadJose(): Promise<Jose> {
  const path = createRequire(join(repoRoot, 'packages/signing/package.json')).resolve('jose')
  return (await import(pathToFileURL(path).href)) as Jose
}

/** A federation message's payload as the gateway signs it: the envelope claims and a case.withdrawn body. */
function samplePayload(): Uint8Array {
  const iat = Math.floor(Date.now() / 1000)
  const m = message('crypto', 'sample', 0)
  const claims = { iss: FROM, aud: TO, jti: m.messageId, iat, exp: iat + 300, type: m.type, ref: m.ref, body: m.body }
  return new TextEncoder().encode(JSON.stringify(claims))
}

/**
 * ES256 sign + verify pairs. jose goes through WebCrypto, whose operations run on libuv's thread pool, so it is driven
 * with as many pairs in flight as the gateway has deliveries; node:crypto is synchronous and runs one pair at a time.
 */
async function cryptoRates(): Promise<CryptoFigures[]> {
  const jose = await loadJose()
  const jwk = generateEs256Jwk()
  const { d: _d, ...publicPart } = jwk
  const privateKey = await jose.importJWK(jwk, 'ES256')
  const publicKey = await jose.importJWK(publicPart, 'ES256')
  const payload = samplePayload()
  const header = { alg: 'ES256', kid: jwk.kid, typ: 'pilot-msg+jwt' }

  const measureFor = async (label: string, loops: number, pair: () => Promise<void> | void) => {
    let pairs = 0
    const started = performance.now()
    const end = started + CRYPTO_SECONDS * 1000
    await Promise.all(
      Array.from({ length: loops }, async () => {
        while (performance.now() < end) {
          await pair()
          pairs++
        }
      }),
    )
    const seconds = (performance.now() - started) / 1000
    return {
      label,
      pairs,
      pairsPerSecond: Math.round(pairs / seconds),
      microsecondsPerPair: round((seconds * 1e6) / pairs),
    }
  }

  const joseFigures = await measureFor(
    `jose CompactSign + compactVerify (${CONCURRENCY} in flight)`,
    CONCURRENCY,
    async () => {
      const jws = await new jose.CompactSign(payload).setProtectedHeader(header).sign(privateKey)
      await jose.compactVerify(jws, publicKey, { algorithms: ['ES256'] })
    },
  )
  const { privateKey: nodePrivate, publicKey: nodePublic } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const input = Buffer.from(
    `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(payload).toString('base64url')}`,
  )
  const nodeFigures = await measureFor('node:crypto sign + verify (one at a time)', 1, () => {
    const signature = nodeSign('sha256', input, { key: nodePrivate, dsaEncoding: 'ieee-p1363' })
    if (!nodeVerify('sha256', input, { key: nodePublic, dsaEncoding: 'ieee-p1363' }, signature)) {
      throw new Error('node:crypto did not verify its own signature')
    }
  })
  return [joseFigures, nodeFigures]
}

interface ExactlyOnce {
  sent: number
  storedAtReceiver: number
  lost: number
  storedTwiceOrUnexpected: number
  answeredDuplicate: number
  deliveredAtSender: number
  deadAtSender: number
  retriedAtSender: number
  handedOffAtReceiver: number
}

/** Every message sent must be stored at Zhongshan exactly once and be `delivered` at Shenzhen. */
async function exactlyOnce(g: Gateways): Promise<ExactlyOnce> {
  const { rows: received } = await g.receiverDb.query<{
    stored: number
    distinct_ids: number
    handed_off: number
    unexpected: number
  }>(
    `select count(*) filter (where message_id = any($1::uuid[]))::int as stored,
       count(distinct message_id) filter (where message_id = any($1::uuid[]))::int as distinct_ids,
       count(*) filter (where message_id = any($1::uuid[]) and status in ('handed_off', 'consumed'))::int as handed_off,
       count(*) filter (where not (message_id = any($1::uuid[])))::int as unexpected
     from gateway.messages where direction = 'inbound' and partner = $2`,
    [g.sent, FROM],
  )
  const { rows: sent } = await g.senderDb.query<{ delivered: number; dead: number; retried: number; dup: number }>(
    `select count(*) filter (where status = 'delivered')::int as delivered,
       count(*) filter (where status = 'dead')::int as dead,
       count(*) filter (where attempts > 1)::int as retried,
       count(*) filter (where receipt_status = 'duplicate')::int as dup
     from gateway.messages where direction = 'outbound' and message_id = any($1::uuid[])`,
    [g.sent],
  )
  const r = received[0] ?? { stored: 0, distinct_ids: 0, handed_off: 0, unexpected: 0 }
  const s = sent[0] ?? { delivered: 0, dead: 0, retried: 0, dup: 0 }
  // A message POSTed again after it was stored is answered `duplicate`: harmless, but it means a lost receipt.
  const answeredDuplicate = await scrapeCounter(g.receiver.url, 'federation_messages_total', {
    direction: 'inbound',
    outcome: 'duplicate',
  }).catch(() => s.dup)
  return {
    sent: g.sent.length,
    storedAtReceiver: r.distinct_ids,
    lost: g.sent.length - r.distinct_ids,
    storedTwiceOrUnexpected: r.stored - r.distinct_ids + r.unexpected,
    answeredDuplicate: Math.max(answeredDuplicate, s.dup),
    deliveredAtSender: s.delivered,
    deadAtSender: s.dead,
    retriedAtSender: s.retried,
    handedOffAtReceiver: r.handed_off,
  }
}

/** Waits for the raw worker's `ready` line; fails early when it exits. */
async function waitForLine(child: Child, logFile: string, line: string, timeoutMs: number): Promise<void> {
  let exited = false
  void child.exited.then(() => {
    exited = true
  })
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline && !exited) {
    if (logTail(logFile).split('\n').includes(line)) return
    await sleep(100)
  }
  throw new Error(`${logFile} did not say ${line} ${exited ? '(the process exited)' : `within ${timeoutMs} ms`}`)
}

/** The suspects on a message's path through both gateways, for --profile. */
const GATEWAY_STAGES: Stage[] = [
  // Both gateways sign with node:crypto (the message at Shenzhen, the receipt at Zhongshan); they verified with jose.
  { label: 'ES256 sign (node:crypto)', match: named('signOneShot', 'node:internal/crypto/sig') },
  { label: 'ES256 verify (WebCrypto, via jose)', match: named('verify', 'node:internal/crypto/webcrypto') },
  // Verification moved to node:crypto (packages/signing JwksVerifier): messages at Zhongshan, receipts at Shenzhen.
  { label: 'ES256 verify (node:crypto)', match: named('verifyOneShot', 'node:internal/crypto/sig') },
  { label: 'jose, all of it', match: inPackage('jose') },
  { label: 'body digest (canonical JSON + SHA-256)', match: named('bodyDigest') },
  { label: 'claims and body schema checks (TypeBox)', match: inPackage('typebox') },
  { label: 'HTTP client (fetch, undici)', match: (f) => f.url.includes('undici') },
  // The delivery worker's client since fetch was replaced (services/gateway/src/federation/http.ts).
  {
    label: 'HTTP client (node:http, keep-alive)',
    match: (f) =>
      f.url.startsWith('node:_http_client') ||
      f.url.startsWith('node:_http_agent') ||
      named('post', 'services/gateway/src/federation/http.ts')(f),
  },
  { label: 'BullMQ + ioredis', match: inPackage('bullmq', 'ioredis') },
  { label: 'query building (Kysely)', match: inPackage('kysely') },
  { label: 'PostgreSQL driver (pg, pg-protocol)', match: inPackage('pg', 'pg-protocol', 'pg-pool') },
  { label: 'Fastify (routing, hooks, reply)', match: inPackage('fastify') },
  { label: 'logging (pino)', match: inPackage('pino', '@pinojs/redact') },
  { label: 'metrics (prom-client)', match: inPackage('prom-client') },
  { label: 'garbage collection', match: named('(garbage collector)'), selfOnly: true },
]

/** Statements of the delivery path for the PostgreSQL activity table: the gateway's named statements, the relay. */
const GATEWAY_STATEMENTS: [RegExp, string][] = [
  [/^\s*insert into messages \(direction[\s\S]*'outbound'/, 'take outbound row (insert pending, or read)'],
  [/^\s*insert into messages/, 'insert inbound (received)'],
  [/^\s*update messages m set status = 'delivered'/, 'update delivered (with raw_jws, many rows)'],
  [/^\s*update messages set status = coalesce\(\$2/, 'update failed attempt (with raw_jws)'],
  [/^\s*update messages set status = 'handed_off'[\s\S]*any\(/, 'update handed_off (many rows)'],
  [/for update skip locked/, 'inbound relay pass'],
  [/^(commit|begin)/i, 'begin/commit'],
]

export async function run(partial: Partial<BenchOptions> = {}): Promise<BenchResult> {
  const options: BenchOptions = { fresh: false, durationSeconds: 20, warmupSeconds: 3, profile: false, ...partial }
  const notes: string[] = []
  const tag = runTag()
  const redisBase = `bench:gateway:${tag}`
  ensureDevSecrets(keysDir, [FROM, TO])
  const workDir = makeTempDir('bench-gateway-')
  const services: RunningService[] = []
  const clients: pg.Client[] = []
  let raw: Raw | undefined
  let hop: Raw | undefined
  const redis = createRedis({ url: redisUrl(), purpose: 'command', connectionName: 'bench-gateway' })
  let queues: QueueRegistry<FederationQueues> | undefined
  try {
    // ---- signing first, while nothing else of this benchmark runs ----
    log(`crypto: ES256 sign + verify, ${CRYPTO_SECONDS} s each`)
    const crypto = await cryptoRates()
    for (const figures of crypto) log(`  ${figures.label}: ${figures.pairsPerSecond} pairs/s`)

    // ---- two gateways ----
    const ports = { [FROM]: await freePort(), [TO]: await freePort() }
    const profilePath = writeProfile(join(workDir, 'pilot.yaml'), {
      [FROM]: { gateway: ports[FROM] },
      [TO]: { gateway: ports[TO] },
    })
    const envs: Record<string, Record<string, string>> = {}
    const start = async (city: typeof FROM | typeof TO) => {
      const databaseUrl = await recreateDatabase(DATABASES[city])
      envs[city] = cityEnv({
        city,
        databaseUrl,
        profilePath,
        redisPrefix: `${redisBase}:${city}`,
        logFile: join(workDir, `${city}-gateway.log`),
        port: ports[city],
        extra: {
          // The pilot's 6000 a minute is exactly the 100 messages/s of the latency run; a burst of thousands would be
          // refused with 429 and retried after ≥ 1 s, measuring the limit instead of the gateway.
          INBOUND_RATE_LIMIT_PER_MINUTE: '10000000',
          // Nothing consumes Zhongshan's inbound queue here; without this, after 30 s the relay would recheck every
          // handed-off message once a second, a load no real city (whose intake consumes them) would see.
          RELAY_RECHECK_SECONDS: '3600',
        },
      })
      const service = await startService(`${city} gateway`, 'gateway', envs[city])
      services.push(service)
      return { service, client: await connect(databaseUrl) }
    }
    log('starting the Shenzhen and Zhongshan gateways')
    const sender = await start(FROM)
    const receiver = await start(TO)
    clients.push(sender.client, receiver.client)
    await redis.connect()
    queues = new QueueRegistry<FederationQueues>(redis, redisUrl(), `${redisBase}:${FROM}`)
    const g: Gateways = {
      sender: sender.service,
      receiver: receiver.service,
      queues,
      senderDb: sender.client,
      receiverDb: receiver.client,
      tag,
      sent: [],
    }

    // ---- the raw BullMQ worker ----
    const rawLog = join(workDir, 'bullmq-baseline.log')
    const worker = startNode(
      'bench/baseline-bullmq-worker.ts',
      [],
      { REDIS_URL: redisUrl(), REDIS_PREFIX: `${redisBase}:raw`, CONCURRENCY: String(CONCURRENCY) },
      rawLog,
    )
    raw = {
      worker,
      processes: [worker],
      queues: new QueueRegistry<FederationQueues>(redis, redisUrl(), `${redisBase}:raw`),
    }
    await waitForLine(worker, rawLog, 'ready', 60_000)

    // ---- the floor: BullMQ → HTTP POST → BullMQ, nothing else (bench/baseline-hop.ts) ----
    const hopPrefix = `${redisBase}:hop`
    const hopPort = await freePort()
    const hopReceiverLog = join(workDir, 'hop-receiver.log')
    const hopReceiver = startNode(
      'bench/baseline-hop.ts',
      [],
      { MODE: 'receiver', REDIS_URL: redisUrl(), REDIS_PREFIX: hopPrefix, PORT: String(hopPort) },
      hopReceiverLog,
    )
    await waitForLine(hopReceiver, hopReceiverLog, 'ready', 60_000)
    const hopSenderLog = join(workDir, 'hop-sender.log')
    const hopSender = startNode(
      'bench/baseline-hop.ts',
      [],
      {
        MODE: 'sender',
        REDIS_URL: redisUrl(),
        REDIS_PREFIX: hopPrefix,
        CONCURRENCY: String(CONCURRENCY),
        RECEIVER_URL: `http://127.0.0.1:${hopPort}/messages`,
      },
      hopSenderLog,
    )
    await waitForLine(hopSender, hopSenderLog, 'ready', 60_000)
    hop = {
      worker: hopSender,
      processes: [hopSender, hopReceiver],
      queues: new QueueRegistry<FederationQueues>(redis, redisUrl(), hopPrefix),
    }

    // ---- warm-up ----
    log(`warm-up: ${WARMUP_MESSAGES} messages through the gateways, ${WARMUP_MESSAGES * 3} through raw BullMQ`)
    const warmup = await gatewayBurst(g, 'warmup', WARMUP_MESSAGES)
    if (warmup.done !== WARMUP_MESSAGES) {
      throw new Error(
        `warm-up: ${warmup.done} of ${WARMUP_MESSAGES} delivered (${warmup.dead} dead); see ` +
          `${g.sender.logFile}:\n${logTail(g.sender.logFile)}`,
      )
    }
    await rawBurst(raw, tag, 'raw-warmup', WARMUP_MESSAGES * 3)
    const hopWarmup = await rawBurst(hop, tag, 'hop-warmup', WARMUP_MESSAGES * 3)
    if (hopWarmup.done !== hopWarmup.messages) {
      throw new Error(
        `floor warm-up: ${hopWarmup.done} of ${hopWarmup.messages} completed; see ${hopSenderLog}:\n` +
          logTail(hopSenderLog),
      )
    }

    // ---- 1. throughput ----
    const bursts: { raw: BurstFigures[]; hop: BurstFigures[]; gateway: BurstFigures[] } = {
      raw: [],
      hop: [],
      gateway: [],
    }
    const activity: ActivitySummary[] = []
    // pg_stat_activity covers the whole server: one connection to the admin database sees both cities.
    const samplerClient = await connect(adminUrl())
    clients.push(samplerClient)
    const sampler = new ActivitySampler(
      samplerClient,
      Object.values(DATABASES),
      [`${FROM}-gateway`, `${TO}-gateway`],
      GATEWAY_STATEMENTS,
    )
    for (let round = 1; round <= 2; round++) {
      log(`throughput, round ${round}: ${BURST} messages queued at once, raw BullMQ`)
      const rawFigures = await rawBurst(raw, tag, `raw-${round}`, BURST)
      bursts.raw.push(rawFigures)
      log(`  ${rawFigures.perSecond} jobs/s in ${rawFigures.seconds} s, CPU ${rawFigures.cpuMsPerMessage} ms/job`)
      log(`throughput, round ${round}: ${BURST} messages queued at once, floor (BullMQ → HTTP → BullMQ)`)
      const hopFigures = await rawBurst(hop, tag, `hop-${round}`, BURST)
      bursts.hop.push(hopFigures)
      log(
        `  ${hopFigures.perSecond} messages/s in ${hopFigures.seconds} s, CPU ${hopFigures.cpuMsPerMessage} ms/message`,
      )
      log(`throughput, round ${round}: ${BURST} messages queued at once, gateway to gateway`)
      sampler.start()
      const gatewayFigures = await gatewayBurst(g, `burst-${round}`, BURST)
      activity.push(await sampler.stop())
      bursts.gateway.push(gatewayFigures)
      log(
        `  ${gatewayFigures.perSecond} messages/s in ${gatewayFigures.seconds} s (${gatewayFigures.done} delivered, ` +
          `${gatewayFigures.dead} dead, ${gatewayFigures.retried} retried), CPU ${gatewayFigures.cpuMsPerMessage} ms/message`,
      )
    }
    const betterBurst = (list: BurstFigures[]) => list.reduce((a, b) => (b.perSecond > a.perSecond ? b : a))
    const bestRaw = betterBurst(bursts.raw)
    const bestHop = betterBurst(bursts.hop)
    const bestGateway = betterBurst(bursts.gateway)
    const bestActivity = activity[bursts.gateway.indexOf(bestGateway)] ?? { samples: 0, rows: [] }
    const ratio = bestGateway.perSecond / bestRaw.perSecond

    // ---- 2. latency at a fixed offered load ----
    const offered: OfferedFigures[] = []
    for (let round = 1; round <= 2; round++) {
      log(`latency, round ${round}: ${OFFERED_RATE} messages/s for ${options.durationSeconds} s, gateway to gateway`)
      const figures = await gatewayOffered(g, `offered-${round}`, options.durationSeconds)
      offered.push(figures)
      log(`  p50 ${figures.p50Ms} ms, p99 ${figures.p99Ms} ms, ${figures.done} of ${figures.messages} delivered`)
    }
    log(`latency: ${OFFERED_RATE} messages/s for ${options.durationSeconds} s, raw BullMQ (for comparison)`)
    const rawLatency = await rawOffered(raw, tag, options.durationSeconds)
    log(`  p50 ${rawLatency.p50Ms} ms, p99 ${rawLatency.p99Ms} ms`)
    const bestOffered = offered.reduce((a, b) => (b.p99Ms < a.p99Ms ? b : a))

    // ---- 3. exactly once ----
    const once = await exactlyOnce(g)
    log(`exactly once: ${once.sent} sent, ${once.storedAtReceiver} stored at ${TO}, ${once.lost} lost`)

    // ---- --profile: both gateways again under --cpu-prof, one warm-up and one burst (figures not comparable) ----
    const profiles: Partial<Record<string, ProfileSummary>> = {}
    if (options.profile) {
      await Promise.all([g.sender.child.stop(), g.receiver.child.stop()])
      const dirs = { [FROM]: profileDir(`gateway-${FROM}`), [TO]: profileDir(`gateway-${TO}`) }
      // The same ports: the rewritten profile, which both read, names them.
      const relaunch = async (city: typeof FROM | typeof TO) => {
        const service = await startService(
          `${city} gateway (profiled)`,
          'gateway',
          envs[city] as Record<string, string>,
          ['--cpu-prof', `--cpu-prof-dir=${dirs[city]}`],
        )
        services.push(service)
        return service
      }
      g.sender = await relaunch(FROM)
      g.receiver = await relaunch(TO)
      log(`profile: ${WARMUP_MESSAGES} + ${BURST} messages with both gateways under --cpu-prof`)
      await gatewayBurst(g, 'profile-warmup', WARMUP_MESSAGES)
      const profiled = await gatewayBurst(g, 'profile', BURST)
      log(`  ${profiled.perSecond} messages/s under the profiler`)
      await Promise.all([g.sender.child.stop(20_000), g.receiver.child.stop(20_000)])
      for (const city of [FROM, TO] as const) {
        profiles[city] = summariseProfile(mainThreadProfile(dirs[city]), GATEWAY_STAGES, WARMUP_MESSAGES + BURST)
        notes.push(`CPU profile of the ${city} gateway (separate run, main thread only): ${profiles[city]?.file}`)
      }
    }

    const duplicates = once.storedTwiceOrUnexpected + once.answeredDuplicate
    const targets: BenchTarget[] = [
      {
        label: 'gateway throughput vs raw BullMQ add + process',
        target: `≥ ${TARGET_RATIO * 100} %`,
        actual: `${round(ratio * 100)} %`,
        pass: ratio >= TARGET_RATIO,
      },
      {
        label: `delivery latency p99 at ${OFFERED_RATE} messages/s`,
        target: `< ${TARGET_P99_MS} ms`,
        actual: `${bestOffered.p99Ms} ms`,
        pass: bestOffered.p99Ms < TARGET_P99_MS,
      },
      { label: 'messages lost', target: '0', actual: String(once.lost), pass: once.lost === 0 },
      {
        label: `messages doubled (stored twice, or answered duplicate, at ${TO})`,
        target: '0',
        actual: String(duplicates),
        pass: duplicates === 0,
      },
    ]

    const burstRow = (name: string, f: BurstFigures) => [
      name,
      f.perSecond,
      f.seconds,
      f.enqueueSeconds,
      `${f.done}/${f.messages}`,
      f.retried,
      f.cpuMsPerMessage,
      f.machineBusyPercent,
    ]
    const offeredRow = (name: string, f: OfferedFigures) => [
      name,
      `${f.done}/${f.messages}`,
      f.achievedRate,
      f.p50Ms,
      f.p95Ms,
      f.p99Ms,
      f.maxMs,
      f.retried,
      f.maxSendLagMs,
    ]
    const tables: BenchTable[] = [
      {
        title: `Throughput: ${BURST} messages queued at once, best of 2 (alternating)`,
        columns: ['target', 'msg/s', 'seconds', 'enqueue s', 'done', 'retried', 'CPU ms/msg', 'machine CPU %'],
        rows: [
          burstRow(`raw BullMQ add + process (empty, concurrency ${CONCURRENCY})`, bestRaw),
          burstRow('floor: BullMQ → HTTP POST → BullMQ, nothing else (2 processes)', bestHop),
          burstRow(`gateway ${FROM} → ${TO} (delivered)`, bestGateway),
          ['floor / raw BullMQ', `${round((bestHop.perSecond / bestRaw.perSecond) * 100)} %`, '', '', '', '', '', ''],
          ['gateway / raw BullMQ', `${round(ratio * 100)} %`, '', '', '', '', '', ''],
          ['gateway / floor', `${round((bestGateway.perSecond / bestHop.perSecond) * 100)} %`, '', '', '', '', '', ''],
        ],
      },
      {
        title: `Delivery latency at ${OFFERED_RATE} messages/s offered (open loop), ${options.durationSeconds} s`,
        columns: ['run', 'done', 'msg/s sent', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'retried', 'send lag ms'],
        rows: [
          ...offered.map((f, i) => offeredRow(`gateway ${FROM} → ${TO}, run ${i + 1}`, f)),
          offeredRow('raw BullMQ (queue alone)', rawLatency),
        ],
      },
      {
        title: `ES256 sign + verify, ${CRYPTO_SECONDS} s each (bench process, gateways idle)`,
        columns: ['method', 'pairs/s', 'µs per pair'],
        rows: crypto.map((c) => [c.label, c.pairsPerSecond, c.microsecondsPerPair]),
      },
      {
        title: 'Exactly once (every gateway message of the run: warm-up, throughput and latency)',
        columns: ['check', 'messages'],
        rows: [
          ['sent (queued on Shenzhen federation.outbound)', once.sent],
          [`stored at ${TO} (distinct message ids)`, once.storedAtReceiver],
          ['lost', once.lost],
          [`stored twice, or unexpected, at ${TO}`, once.storedTwiceOrUnexpected],
          [`answered duplicate by ${TO} (sent again after a lost receipt)`, once.answeredDuplicate],
          [`handed off to ${TO}'s local queue`, once.handedOffAtReceiver],
          [`delivered at ${FROM}`, once.deliveredAtSender],
          [`dead at ${FROM}`, once.deadAtSender],
          [`needed more than one attempt`, once.retriedAtSender],
        ],
      },
      {
        title: `Where the gateways' PostgreSQL connections were during the best burst (average backends, ${bestActivity.samples} samples)`,
        columns: ['application', 'state: last statement', 'backends'],
        rows: activityRows(bestActivity),
      },
    ]
    const senderProfile = profiles[FROM]
    const receiverProfile = profiles[TO]
    if (senderProfile && receiverProfile) {
      const receiverStages = new Map(receiverProfile.stages.map((stage) => [stage.label, stage]))
      tables.push({
        title: 'Where gateway CPU goes (--cpu-prof, inclusive, stages overlap), ms per message',
        columns: ['stage', FROM, TO],
        rows: senderProfile.stages.map((stage) => [
          stage.label,
          stage.msPerRequest,
          receiverStages.get(stage.label)?.msPerRequest ?? '',
        ]),
      })
      const areas = (summary: ProfileSummary) => summary.byArea.slice(0, 12).map((a) => `${a.area} ${a.share} %`)
      const left = areas(senderProfile)
      const right = areas(receiverProfile)
      tables.push({
        title: 'Self time by package or area (--cpu-prof, share of the main thread)',
        columns: ['rank', FROM, TO],
        rows: Array.from({ length: Math.max(left.length, right.length) }, (_, i) => [
          i + 1,
          left[i] ?? '',
          right[i] ?? '',
        ]),
      })
    }
    notes.push(
      `Two gateway processes (node --import tsx services/gateway/src/server.ts), ${FROM} and ${TO}, each with its ` +
        `own database (${Object.values(DATABASES).join(', ')}, created afresh), pool of 10, LOG_LEVEL=warn, ` +
        `DELIVERY_CONCURRENCY ${CONCURRENCY} (default), Redis prefix ${redisBase}:<city>.`,
      `Messages are case.withdrawn, queued with queueOutbound (job id = message id, as the intake outbox relay does). ` +
        `Throughput is from the first add to the last delivered_at (a verified receipt stored at ${FROM}); raw BullMQ ` +
        `from the first add to the last job's finishedOn. The floor (bench/baseline-hop.ts) is the queue and HTTP work ` +
        `every delivery of this design has to do — a job taken off ${FROM}'s outbound queue, its message POSTed to a ` +
        `bare Fastify receiver that queues it for its local service and answers 202, the outcome queued for ${FROM}'s ` +
        `local service — with no signing, verifying, PostgreSQL or schema checks; timed to its last outbound job's ` +
        `finishedOn. No implementation of the protocol can beat it, so floor / raw BullMQ bounds gateway / raw BullMQ.`,
      `Latency is from the bench's clock just before each add to delivered_at written by the ${FROM} gateway (one ` +
        `machine, one clock). The raw BullMQ row is the queue alone (add → finishedOn) at the same offered load.`,
      `Test settings, not defaults: INBOUND_RATE_LIMIT_PER_MINUTE=10000000 (the default 6000/min per partner is ` +
        `exactly ${OFFERED_RATE}/s, so any burst above it is answered 429 and retried after ≥ 1 s) and ` +
        `RELAY_RECHECK_SECONDS=3600 (no intake consumes ${TO}'s inbound queue here).`,
      `CPU ms/msg: user + system of both gateway processes (or of the raw worker, or both floor processes) per message; PostgreSQL, Redis ` +
        `and the bench excluded. Machine CPU %: all ${cpus().length} cores, everything included.`,
    )
    return {
      name: 'gateway',
      title: `Federation gateway: ${FROM} → ${TO}, throughput and delivery latency`,
      tables,
      targets,
      notes,
      details: {
        options,
        burst: BURST,
        crypto,
        bursts,
        best: { raw: bestRaw, floor: bestHop, gateway: bestGateway, ratio: round(ratio, 3) },
        warmup,
        offered,
        rawLatency,
        exactlyOnce: once,
        activity,
        profiles,
        peakRssMb: Object.fromEntries(services.map((s) => [s.name, s.child.peakRssMb()])),
      },
    }
  } finally {
    await Promise.all([
      ...services.map((s) => s.child.stop()),
      raw?.worker.stop(),
      ...(hop?.processes ?? []).map((child) => child.stop()),
    ])
    await queues?.close().catch(() => {})
    await raw?.queues.close().catch(() => {})
    redis.disconnect()
    await Promise.all(clients.map((client) => client.end().catch(() => {})))
    await withTimeout('removing the Redis keys', 30_000, removeRedisKeys(redisBase)).catch((error: Error) =>
      log(`could not remove Redis keys under ${redisBase}: ${error.message}`),
    )
    removeTempDir(workDir)
  }
}
