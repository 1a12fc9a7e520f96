import { mkdir, mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import pg from 'pg'
import type { TestProject } from 'vitest/node'
import { scanLogDirectory } from './log-scan.ts'

declare module 'vitest' {
  export interface ProvidedContext {
    /** Administrative PostgreSQL URL; each test file creates its own database through it. */
    adminDatabaseUrl: string
    redisUrl: string
    /** Every service built by a test logs here (one file per test file), so a test can scan all that was logged. */
    logDir: string
  }
}

type Stop = () => Promise<void>

async function checkPostgres(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 })
  try {
    await client.connect()
    await client.query('select 1')
  } finally {
    await client.end().catch(() => {})
  }
}

async function checkRedis(url: string): Promise<void> {
  const redis = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    connectTimeout: 5000,
    retryStrategy: () => null,
  })
  redis.on('error', () => {})
  try {
    await redis.connect()
    await redis.ping()
  } finally {
    redis.disconnect()
  }
}

function explain(what: string, variable: string, example: string, cause: unknown): Error {
  return new Error(
    `The tests need a real ${what}. ${variable} is not set, and testcontainers could not start one: ` +
      `${(cause as Error).message}\nSet ${variable}, for example ${variable}=${example}, or install a container runtime.`,
  )
}

/**
 * Finds the PostgreSQL and Redis the tests run against: the ones named by DATABASE_URL and REDIS_URL when set,
 * otherwise containers started with testcontainers. With neither, the run fails here with a message saying what to set;
 * no test is skipped for want of a database.
 */
export default async function setup(project: TestProject): Promise<Stop> {
  const stops: Stop[] = []
  let adminDatabaseUrl = process.env.DATABASE_URL
  let redisUrl = process.env.REDIS_URL

  if (adminDatabaseUrl) {
    await checkPostgres(adminDatabaseUrl).catch((error: Error) => {
      throw new Error(`DATABASE_URL=${adminDatabaseUrl} does not answer: ${error.message}`)
    })
  } else {
    try {
      const { PostgreSqlContainer } = await import('@testcontainers/postgresql')
      const container = await new PostgreSqlContainer('postgres:16-alpine').start()
      adminDatabaseUrl = container.getConnectionUri()
      stops.push(async () => {
        await container.stop()
      })
    } catch (error) {
      throw explain('PostgreSQL', 'DATABASE_URL', 'postgres://postgres@127.0.0.1:5432/postgres', error)
    }
  }

  if (redisUrl) {
    await checkRedis(redisUrl).catch((error: Error) => {
      throw new Error(`REDIS_URL=${redisUrl} does not answer: ${error.message}`)
    })
  } else {
    try {
      const { RedisContainer } = await import('@testcontainers/redis')
      const container = await new RedisContainer('redis:7-alpine').start()
      redisUrl = container.getConnectionUrl()
      stops.push(async () => {
        await container.stop()
      })
    } catch (error) {
      await Promise.allSettled(stops.map((stop) => stop()))
      throw explain('Redis', 'REDIS_URL', 'redis://127.0.0.1:6379', error)
    }
  }

  const logDir = process.env.TEST_LOG_DIR ?? (await mkdtemp(join(tmpdir(), 'pilot-test-logs-')))
  await mkdir(logDir, { recursive: true })
  project.provide('logDir', logDir)
  project.provide('adminDatabaseUrl', adminDatabaseUrl)
  project.provide('redisUrl', redisUrl)
  return async () => {
    await Promise.allSettled(stops.map((stop) => stop()))
    // Every line every service wrote during the run, scanned for personal data; a finding fails the run.
    const scan = scanLogDirectory(logDir)
    process.stdout.write(
      `Log scan: ${scan.lines} lines in ${scan.files} log files under ${logDir}, ${scan.findings.length} with personal data\n`,
    )
    if (scan.findings.length > 0) {
      const shown = scan.findings
        .slice(0, 20)
        .map((finding) => `  ${finding.file}:${finding.line} ${finding.kind} ${finding.masked}`)
      process.stderr.write(`FAIL: personal data in the services' logs:\n${shown.join('\n')}\n`)
      // vitest reports an error thrown here but still exits 0; the exit code is what CI reads.
      process.exitCode = 1
    }
  }
}
