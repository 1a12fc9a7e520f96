import { randomBytes } from 'node:crypto'
import { afterAll, expect, inject } from 'vitest'
import { clearRedisPrefix, createDatabase, dropDatabase, extraDatabases } from './databases.ts'

/**
 * Runs before every test file (vitest `setupFiles`): the file gets its own fresh database and its own Redis key
 * prefix, so files run in parallel without seeing each other's rows or jobs. Both are removed when the file ends.
 */
const adminDatabaseUrl = inject('adminDatabaseUrl')
const redisUrl = inject('redisUrl')
const label =
  (expect.getState().testPath ?? 'file')
    .split('/')
    .pop()
    ?.replace(/\.test\.ts$/, '') ?? 'file'
const databaseUrl = await createDatabase(adminDatabaseUrl, label)
const redisPrefix = `t:${randomBytes(4).toString('hex')}`

process.env.TEST_DATABASE_URL = databaseUrl
process.env.TEST_REDIS_URL = redisUrl
process.env.TEST_REDIS_PREFIX = redisPrefix
process.env.TEST_LOG_FILE = `${inject('logDir')}/${label}.ndjson`

afterAll(async () => {
  const extra = extraDatabases().splice(0)
  await Promise.all([databaseUrl, ...extra].map((url) => dropDatabase(adminDatabaseUrl, url)))
  await clearRedisPrefix(redisUrl, redisPrefix)
})
