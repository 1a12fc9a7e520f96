import { randomBytes } from 'node:crypto'
import { unlinkKeysUnder } from '@pilot/kit'
import { Redis } from 'ioredis'
import pg from 'pg'

export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url)
  parsed.pathname = `/${database}`
  return parsed.toString()
}

async function admin<T>(adminUrl: string, run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl })
  await client.connect()
  try {
    return await run(client)
  } finally {
    await client.end()
  }
}

/** Creates an empty database with a unique name and returns its URL. */
export async function createDatabase(adminUrl: string, label: string): Promise<string> {
  const name = `t_${label
    .replace(/[^a-z0-9]/gi, '')
    .toLowerCase()
    .slice(0, 30)}_${randomBytes(4).toString('hex')}`
  await admin(adminUrl, (client) => client.query(`create database "${name}"`))
  return withDatabase(adminUrl, name)
}

export async function dropDatabase(adminUrl: string, url: string): Promise<void> {
  const name = new URL(url).pathname.slice(1)
  if (!name.startsWith('t_')) throw new Error(`refusing to drop ${name}: not a test database`)
  // WITH (FORCE) ends connections a failed test may have left open.
  await admin(adminUrl, (client) => client.query(`drop database if exists "${name}" with (force)`))
}

/** Deletes every Redis key under a test's prefix. */
export async function clearRedisPrefix(redisUrl: string, prefix: string): Promise<void> {
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 })
  redis.on('error', () => {})
  try {
    await redis.connect()
    await unlinkKeysUnder(redis, prefix)
  } finally {
    redis.disconnect()
  }
}

const EXTRA = Symbol.for('pilot.testing.extraDatabases')

/** Databases a test file made besides its own; shared through globalThis because the setup file is another module. */
export function extraDatabases(): string[] {
  const holder = globalThis as unknown as Record<symbol, string[] | undefined>
  holder[EXTRA] ??= []
  return holder[EXTRA]
}
