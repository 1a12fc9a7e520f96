/**
 * Runs the pilot on this machine: one PostgreSQL database per city (pilot_<city>) on the local server, one Redis with a
 * key prefix per city, and residence, intake and gateway for each city on the ports of infra/pilot.yaml.
 *
 *   pnpm pilot                      all three cities
 *   pnpm pilot --city shenzhen      one city
 *
 * DATABASE_URL (any database on the server; the pilot's databases are created beside it) and REDIS_URL override the
 * local defaults. Data is kept between runs. Ctrl-C stops every service cleanly.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import {
  createRedis,
  devSecretsEnv,
  ensureDevSecrets,
  loadPilotProfile,
  mintDevToken,
  unlinkKeysUnder,
} from '@pilot/kit'
import { type CityProfile, SERVICE_NAMES } from '@pilot/schemas'
import pg from 'pg'
import { demoEvidence, demoRegistrations } from './demo-data.ts'
import { keysDir, logDir, pilotSettings } from './pilot-settings.ts'

const { root, config: pilotConfig, databasePrefix, redisPrefix } = pilotSettings

const { values } = parseArgs({ options: { city: { type: 'string', multiple: true } } })
const profile = loadPilotProfile(pilotConfig)
const cities = values.city?.length ? profile.cities.filter((city) => values.city?.includes(city.id)) : profile.cities
if (cities.length === 0) {
  console.error(`No such city. Choose from: ${profile.cities.map((city) => city.id).join(', ')}`)
  process.exit(2)
}

const adminUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

function cityDatabaseUrl(city: CityProfile): string {
  const url = new URL(adminUrl)
  url.pathname = `/${databasePrefix}${city.id}`
  return url.toString()
}

/**
 * What a city's data is written under: its blind-index and data keys and the pilot-wide matching key. Data written
 * under other keys (the pilot run from another checkout, whose .pilot/keys were generated afresh) cannot be read or
 * matched: forms and stored answers do not open, evidence is not found.
 */
function keysFingerprint(cityId: string): string {
  const secrets = devSecretsEnv(keysDir, cityId)
  const hash = createHash('sha256')
  for (const file of [secrets.BLIND_INDEX_KEY_FILE, secrets.PII_ENCRYPTION_KEY_FILE, secrets.MATCHING_KEY_FILE]) {
    hash.update(readFileSync(file as string))
  }
  return `pilot keys ${hash.digest('base64url').slice(0, 22)}`
}

/**
 * Creates each city's database, or keeps it when it was written under this checkout's keys (recorded as the
 * database's comment). One written under other keys, or before the keys were recorded, is started afresh, with the
 * city's queues in Redis: its data could not be read with these keys anyway.
 */
async function ensureDatabases(): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 5000 })
  try {
    await client.connect()
  } catch (error) {
    console.error(
      `PostgreSQL at ${adminUrl} does not answer (${(error as Error).message}).\n` +
        'Start it (on this machine: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start) or set DATABASE_URL.',
    )
    process.exit(1)
  }
  try {
    for (const city of cities) {
      const name = `${databasePrefix}${city.id}`
      const fingerprint = keysFingerprint(city.id)
      const { rows } = await client.query<{ comment: string | null }>(
        'select shobj_description(oid, $2) as comment from pg_database where datname = $1',
        [name, 'pg_database'],
      )
      if (rows.length > 0 && rows[0]?.comment === fingerprint) continue
      if (rows.length > 0) {
        console.log(`database ${name} was written under other keys than ${keysDir}: starting it afresh`)
        await client.query(`drop database "${name}" with (force)`)
        await removeRedisKeys(`${redisPrefix}:${city.id}`)
      }
      await client.query(`create database "${name}"`)
      await client.query(`comment on database "${name}" is '${fingerprint}'`)
      console.log(`created database ${name}`)
    }
  } finally {
    await client.end()
  }
}

/** Removes the Redis keys of one city's queues (`prefix:*`). */
async function removeRedisKeys(prefix: string): Promise<void> {
  const redis = createRedis({ url: redisUrl, purpose: 'command', connectionName: 'pilot-reset' })
  await redis.connect()
  try {
    await unlinkKeysUnder(redis, prefix)
  } finally {
    redis.disconnect()
  }
}

const children: ChildProcess[] = []
let stopping = false

function start(city: CityProfile, service: (typeof SERVICE_NAMES)[number]): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', `services/${service}/src/server.ts`], {
    cwd: root,
    env: {
      ...process.env,
      CITY: city.id,
      PORT: String(city.services[service].port),
      HOST: '127.0.0.1',
      DATABASE_URL: cityDatabaseUrl(city),
      REDIS_URL: redisUrl,
      REDIS_PREFIX: `${redisPrefix}:${city.id}`,
      PILOT_CONFIG: pilotConfig,
      MIGRATE_ON_START: 'true',
      LOG_FILE: join(logDir, `${city.id}-${service}.log`),
      ...devSecretsEnv(keysDir, city.id),
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  child.on('exit', (code, signal) => {
    if (!stopping) {
      console.error(
        `${city.id} ${service} exited (${signal ?? code}); see ${join(logDir, `${city.id}-${service}.log`)}`,
      )
      void stopAll(1)
    }
  })
  children.push(child)
  return child
}

async function waitReady(url: string, timeoutMs = 60_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline && !stopping) {
    try {
      if ((await fetch(`${url}/health/ready`)).status === 200) return true
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  return false
}

async function stopAll(code: number): Promise<void> {
  if (stopping) return
  stopping = true
  console.log('\nStopping the pilot…')
  const exits = children
    .filter((child) => child.exitCode === null && child.signalCode === null)
    .map((child) => new Promise((resolve) => child.once('exit', resolve)))
  for (const child of children) child.kill('SIGTERM')
  await Promise.all(exits)
  console.log('All services stopped.')
  process.exit(code)
}

process.on('SIGINT', () => void stopAll(0))
process.on('SIGTERM', () => void stopAll(0))

mkdirSync(logDir, { recursive: true })
// Keys are generated on this machine on first run and kept (outside git), so data encrypted under them stays readable.
ensureDevSecrets(
  keysDir,
  profile.cities.map((city) => city.id),
)
await ensureDatabases()
for (const city of cities) for (const service of SERVICE_NAMES) start(city, service)

const rows: string[][] = []
for (const city of cities) {
  for (const service of SERVICE_NAMES) {
    const url = `http://127.0.0.1:${city.services[service].port}`
    const ready = await waitReady(url)
    if (!ready) {
      if (!stopping) {
        console.error(`${city.id} ${service} did not become ready; see ${join(logDir, `${city.id}-${service}.log`)}`)
        await stopAll(1)
      }
      break
    }
    rows.push([city.name.en, service, url, `${url}/docs`, `${url}/metrics`])
  }
}

/** Loads the demo residents through the same import endpoints a registry uses (idempotent: a second run adds nothing). */
async function loadDemoData(): Promise<void> {
  for (const city of cities) {
    const operator = await mintDevToken(keysDir, city.id, { roles: ['operator'], subject: `${city.id}-pilot-loader` })
    for (const [records, body] of [
      ['evidence', demoEvidence(city.id)],
      ['registrations', demoRegistrations(city.id)],
    ] as const) {
      const response = await fetch(`${city.services.residence.url}/v1/residence/${records}:import`, {
        method: 'POST',
        headers: { authorization: `Bearer ${operator}`, 'content-type': 'application/x-ndjson' },
        body,
      })
      const summary = (await response.json()) as { inserted?: number; unchanged?: number; rejected?: number }
      if (!response.ok || summary.rejected)
        throw new Error(`demo ${records} for ${city.id}: ${JSON.stringify(summary)}`)
    }
  }
}

if (!stopping) {
  await loadDemoData()
  for (const city of cities) {
    const gateway = city.services.gateway.url
    rows.push([city.name.en, 'JWKS', `${gateway}/.well-known/jwks.json`, `${gateway}/ops/board/login`, ''])
  }
}

const header = ['city', 'service', 'URL', 'Swagger UI', 'metrics']
const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]?.length ?? 0)))
const line = (cells: string[]) => cells.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join('  ')
console.log(`\nThe pilot is ready (${cities.length} ${cities.length === 1 ? 'city' : 'cities'}).\n`)
console.log(line(header))
console.log(line(widths.map((width) => '-'.repeat(width))))
for (const row of rows) console.log(line(row))
console.log('\nDevelopment tokens (8 hours; `pnpm pilot:token <city> <role>` prints a fresh one):')
for (const city of cities) {
  for (const role of ['caseworker', 'reviewer', 'operator'] as const) {
    const token = await mintDevToken(keysDir, city.id, { roles: [role] })
    console.log(`  ${String(city.id).padEnd(9)} ${role.padEnd(10)} ${token}`)
  }
}
console.log("\nThe JWKS rows give each gateway's public keys and its queue dashboard (sign in with an operator token).")
console.log('Walk six cases through all six directions: pnpm pilot:demo')
console.log(`\nLogs: ${logDir}/<city>-<service>.log   Ctrl-C stops everything.`)
