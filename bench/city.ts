/**
 * What the gateway and intake benchmarks share: real services of a city run as child processes, as `pnpm pilot` runs
 * them (node --import tsx services/<service>/src/server.ts with its environment), against databases the benchmark
 * creates afresh, with a pilot profile rewritten so that every URL a service follows points at the free ports chosen
 * for this run. Cities share the local Redis under a key prefix of their own, removed at the end.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createRedis, devSecretsEnv, unlinkKeysUnder } from '@pilot/kit'
import type { ServiceName } from '@pilot/schemas'
import pg from 'pg'
import { parse, stringify } from 'yaml'
import { type Child, repoRoot, round, startNode, waitReady } from './lib.ts'

/** The benchmarks' own development secrets (kept between runs, outside git, beside the residence benchmark's). */
export const keysDir = join(repoRoot, '.pilot/bench-keys')

export const adminUrl = (): string => process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
export const redisUrl = (): string => process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

export function databaseUrl(name: string): string {
  const url = new URL(adminUrl())
  url.pathname = `/${name}`
  return url.toString()
}

export async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 })
  client.on('error', () => {})
  await client.connect()
  return client
}

/**
 * Drops and creates a benchmark database, so every run starts from empty tables (the services migrate it on start).
 * Only names starting with bench_ are accepted: this must never reach a pilot or test database.
 */
export async function recreateDatabase(name: string): Promise<string> {
  if (!/^bench_[a-z0-9_]+$/.test(name)) throw new Error(`refusing to recreate database ${name}`)
  const client = await connect(adminUrl())
  try {
    await client.query(`drop database if exists ${name} with (force)`)
    await client.query(`create database ${name}`)
  } finally {
    await client.end()
  }
  return databaseUrl(name)
}

export type Ports = Partial<Record<ServiceName, number>>

interface ProfileCity {
  id: string
  services: Record<ServiceName, { port: number; url: string }>
  federation: { gatewayUrl: string; jwksUrl: string }
}

/**
 * The pilot profile with the given cities' services moved to `ports` (a city's gateway also moves its federation and
 * JWKS URLs), written to `path`. Services not named keep the profile's ports; nothing listens there in a benchmark.
 */
export function writeProfile(path: string, ports: Record<string, Ports>): string {
  const profile = parse(readFileSync(join(repoRoot, 'infra/pilot.yaml'), 'utf8')) as { cities: ProfileCity[] }
  for (const [id, servicePorts] of Object.entries(ports)) {
    const city = profile.cities.find((candidate) => candidate.id === id)
    if (!city) throw new Error(`no city ${id} in the pilot profile`)
    for (const [service, port] of Object.entries(servicePorts) as [ServiceName, number][]) {
      city.services[service] = { port, url: `http://127.0.0.1:${port}` }
    }
    if (servicePorts.gateway) {
      city.federation.gatewayUrl = `http://127.0.0.1:${servicePorts.gateway}`
      city.federation.jwksUrl = `http://127.0.0.1:${servicePorts.gateway}/.well-known/jwks.json`
    }
  }
  writeFileSync(path, stringify(profile))
  return path
}

export interface CityEnvOptions {
  city: string
  databaseUrl: string
  profilePath: string
  redisPrefix: string
  logFile: string
  port: number
  /** Service-specific settings; they win over the common ones. */
  extra?: Record<string, string>
}

/** A service's whole environment, as scripts/pilot.ts gives it, quiet (warn) and migrating its schema on start. */
export function cityEnv(options: CityEnvOptions): Record<string, string> {
  return {
    CITY: options.city,
    HOST: '127.0.0.1',
    PORT: String(options.port),
    DATABASE_URL: options.databaseUrl,
    DATABASE_POOL_MAX: '10',
    REDIS_URL: redisUrl(),
    REDIS_PREFIX: options.redisPrefix,
    PILOT_CONFIG: options.profilePath,
    // The intake service looks for the calendar beside the profile, which is in a temporary directory here.
    WORKING_DAY_CALENDAR: join(repoRoot, 'infra/data/cn-workdays.json'),
    LOG_LEVEL: 'warn',
    LOG_FILE: options.logFile,
    MIGRATE_ON_START: 'true',
    USER: 'bench',
    ...devSecretsEnv(keysDir, options.city),
    ...options.extra,
  }
}

export interface RunningService {
  name: string
  child: Child
  url: string
  logFile: string
}

/** Starts a service and waits until /health/ready answers 200 (PostgreSQL and Redis reachable, migrations done). */
export async function startService(
  name: string,
  service: ServiceName,
  env: Record<string, string>,
  nodeArgs: string[] = [],
): Promise<RunningService> {
  const logFile = env.LOG_FILE as string
  // BENCH_SERVICE_NODE_ARGS (e.g. "--trace-gc") reaches every service process, to look into a run without editing it.
  const extra = (process.env.BENCH_SERVICE_NODE_ARGS ?? '').split(' ').filter(Boolean)
  const child = startNode(`services/${service}/src/server.ts`, [], env, logFile, [...extra, ...nodeArgs])
  const url = `http://127.0.0.1:${env.PORT}`
  try {
    await waitReady(`${url}/health/ready`, child, 90_000, logFile)
  } catch (error) {
    await child.stop()
    throw error
  }
  return { name, child, url, logFile }
}

/** Removes every Redis key under `prefix` (a benchmark's queues); other prefixes on the shared Redis are untouched. */
export async function removeRedisKeys(prefix: string): Promise<number> {
  if (!prefix.startsWith('bench:')) throw new Error(`refusing to remove Redis keys under ${prefix}`)
  const redis = createRedis({ url: redisUrl(), purpose: 'command', connectionName: 'bench-cleanup' })
  await redis.connect()
  try {
    return await unlinkKeysUnder(redis, prefix)
  } finally {
    redis.disconnect()
  }
}

/** A short random tag, so that each run's Redis keys and database rows are its own. */
export const runTag = (): string => `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`

/** The sum of a service's Prometheus counters of this name whose labels include `labels`. */
export async function scrapeCounter(url: string, name: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) })).text()
  let sum = 0
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue
    if (!Object.entries(labels).every(([key, value]) => line.includes(`${key}="${value}"`))) continue
    sum += Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return sum
}

export function logTail(file: string, bytes = 2000): string {
  try {
    return readFileSync(file, 'utf8').slice(-bytes)
  } catch {
    return '(no log)'
  }
}

/** How a backend's last statement is named in the activity table; the first pattern that matches wins. */
export type StatementLabels = [RegExp, string][]

export interface ActivityRow {
  /** The backend's application_name: <city>-<service> for the services. */
  who: string
  what: string
  /** Average number of backends in this state over the samples. */
  backends: number
}

export interface ActivitySummary {
  samples: number
  rows: ActivityRow[]
}

/**
 * Samples pg_stat_activity while a load runs, to see where the services' PostgreSQL connections spend their time:
 * running a statement, waiting for a lock or the WAL flush, idle inside a transaction (the service is doing something
 * else — an HTTP call, JavaScript — while holding the connection and its locks), or free in the pool. By Little's law
 * the average number of backends in a state is the rate of entering it times the time spent there, so the largest
 * rows are where the time goes. Cheap: one catalogue query every `intervalMs`.
 */
export class ActivitySampler {
  private readonly counts = new Map<string, number>()
  private samples = 0
  private timer: NodeJS.Timeout | undefined
  private inFlight: Promise<void> | undefined

  constructor(
    private readonly client: pg.Client,
    private readonly databases: string[],
    /** application_name values to watch; the services use <city>-<service>. */
    private readonly applications: string[],
    private readonly labels: StatementLabels,
  ) {}

  start(intervalMs = 50): void {
    this.counts.clear()
    this.samples = 0
    this.timer = setInterval(() => {
      this.inFlight ??= this.sample().finally(() => {
        this.inFlight = undefined
      })
    }, intervalMs)
  }

  async stop(): Promise<ActivitySummary> {
    clearInterval(this.timer)
    await this.inFlight
    const rows = [...this.counts.entries()].map(([key, count]) => {
      const [who = '', what = ''] = key.split('\t')
      return { who, what, backends: round(count / Math.max(1, this.samples), 2) }
    })
    rows.sort((a, b) => (a.who === b.who ? b.backends - a.backends : a.who < b.who ? -1 : 1))
    return { samples: this.samples, rows }
  }

  private label(query: string): string {
    for (const [pattern, label] of this.labels) if (pattern.test(query)) return label
    return query.replace(/\s+/g, ' ').trim().slice(0, 50)
  }

  private async sample(): Promise<void> {
    const { rows } = await this.client.query<{
      datname: string
      app: string
      state: string | null
      wait_type: string | null
      wait: string | null
      query: string
    }>(
      `select datname, application_name as app, state, wait_event_type as wait_type, wait_event as wait, query
       from pg_stat_activity
       where datname = any($1) and application_name = any($2) and pid <> pg_backend_pid()`,
      [this.databases, this.applications],
    )
    this.samples++
    for (const row of rows) {
      let what: string
      if (row.state === 'idle') what = 'idle (free in the pool)'
      else if (row.state === 'idle in transaction')
        what = `in a transaction, waiting for the service, after: ${this.label(row.query)}`
      else if (row.wait_type && row.wait_type !== 'Client')
        what = `waiting ${row.wait_type}:${row.wait}: ${this.label(row.query)}`
      else what = `running: ${this.label(row.query)}`
      const key = `${row.app}\t${what}`
      this.counts.set(key, (this.counts.get(key) ?? 0) + 1)
    }
  }
}

/**
 * The activity table's rows: per application, its busy backends (not idle) in all, then each state holding at least
 * `minimum` of them on average. Free pool connections are left out; an application with none busy shows a single 0.
 */
export function activityRows(summary: ActivitySummary, minimum = 0.05): (string | number)[][] {
  const rows: (string | number)[][] = []
  const apps = [...new Set(summary.rows.map((row) => row.who))]
  for (const app of apps) {
    const busy = summary.rows.filter((row) => row.who === app && !row.what.startsWith('idle'))
    rows.push([
      app,
      'busy (not free in the pool), all states',
      round(
        busy.reduce((sum, row) => sum + row.backends, 0),
        2,
      ),
    ])
    for (const row of busy) if (row.backends >= minimum) rows.push([app, row.what, row.backends])
  }
  return rows
}
