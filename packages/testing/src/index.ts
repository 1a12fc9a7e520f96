import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { type DevTokenOptions, devSecretsEnv, ensureDevSecrets, mintDevToken, type Role } from '@pilot/kit'
import { CITY_IDS } from '@pilot/schemas'
import { inject } from 'vitest'
import { createDatabase, extraDatabases } from './databases.ts'

export { clearRedisPrefix, createDatabase, dropDatabase, extraDatabases, withDatabase } from './databases.ts'
export { TcpProxy } from './tcp-proxy.ts'

import { pilotConfigPath } from './paths.ts'

export { pilotConfigPath, repoRoot } from './paths.ts'
export { freePort, type ServiceProcess, startServiceProcess } from './processes.ts'

function required(name: string): string {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set: is packages/testing/src/per-file-setup.ts in vitest setupFiles?`)
  return value
}

/** The database, Redis and key prefix this test file owns (made by the per-file setup). */
export function testResources() {
  return {
    databaseUrl: required('TEST_DATABASE_URL'),
    redisUrl: required('TEST_REDIS_URL'),
    redisPrefix: required('TEST_REDIS_PREFIX'),
  }
}

/**
 * Another fresh database for this file (e.g. one per city in a cross-city test), dropped when the file ends by the
 * per-file setup (a hook registered here would be lost when this is called from inside beforeAll).
 */
export async function freshDatabase(label: string): Promise<string> {
  const url = await createDatabase(inject('adminDatabaseUrl'), label)
  extraDatabases().push(url)
  return url
}

let secretsDir: string | undefined

/** This file's development secrets (keys of every city, the development IdP), generated on first use. */
export function testSecretsDir(): string {
  if (!secretsDir) {
    secretsDir = mkdtempSync(join(tmpdir(), 'pilot-test-keys-'))
    ensureDevSecrets(secretsDir, CITY_IDS)
  }
  return secretsDir
}

/** A token from `city`'s development identity provider. */
export function token(
  city: string,
  roles: readonly Role[],
  options: Omit<DevTokenOptions, 'roles'> = {},
): Promise<string> {
  return mintDevToken(testSecretsDir(), city, { ...options, roles })
}

/** The environment a service of `city` reads in tests: this file's database and Redis, the repository's profile. */
export function serviceEnv(city: string, overrides: Record<string, string> = {}): Record<string, string> {
  const { databaseUrl, redisUrl, redisPrefix } = testResources()
  return {
    CITY: city,
    HOST: '127.0.0.1',
    PORT: '0',
    DATABASE_URL: databaseUrl,
    REDIS_URL: redisUrl,
    REDIS_PREFIX: `${redisPrefix}:${city}`,
    PILOT_CONFIG: pilotConfigPath,
    LOG_LEVEL: 'info',
    LOG_FILE: required('TEST_LOG_FILE'),
    ...devSecretsEnv(testSecretsDir(), city),
    ...overrides,
  }
}

/** A log destination that keeps every line, so a test can read exactly what a service logged. */
export class LogCapture extends Writable {
  readonly lines: string[] = []

  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.lines.push(...chunk.toString('utf8').split('\n').filter(Boolean))
    done()
  }

  get text(): string {
    return this.lines.join('\n')
  }

  records(): Record<string, unknown>[] {
    return this.lines.map((line) => JSON.parse(line) as Record<string, unknown>)
  }
}
