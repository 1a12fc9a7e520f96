// kysely 0.28 (0.29 declares Node >= 22): Migrator comes from the package root, not kysely/migration.
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Kysely, type Migration, Migrator, PostgresDialect, sql } from 'kysely'
import pg from 'pg'

// DATE columns hold calendar dates (a residence start, a deadline). pg turns them into JavaScript Dates at local
// midnight, which shifts them by the process's time zone; the pilot keeps them as 'YYYY-MM-DD' strings instead.
pg.types.setTypeParser(pg.types.builtins.DATE, (value) => value)
// BIGINT amounts in fen stay exact as strings until the domain converts them.

export interface DatabaseOptions {
  url: string
  /**
   * Each service owns one PostgreSQL schema inside its city's database (one database per city, DESIGN.md). The
   * connection's search_path points at it, so queries and migrations use unqualified table names.
   */
  schema: string
  poolMax?: number
  applicationName?: string
}

const SCHEMA_NAME = /^[a-z][a-z0-9_]{0,62}$/

export function createPool(options: DatabaseOptions): pg.Pool {
  if (!SCHEMA_NAME.test(options.schema)) throw new Error(`invalid schema name ${options.schema}`)
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolMax ?? 10,
    // Fail fast when PostgreSQL is unreachable instead of queueing requests forever; the caller retries.
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30000,
    application_name: options.applicationName ?? options.schema,
    options: `-c search_path=${options.schema},public`,
  })
  // A connection that dies while idle (database restart, pg_terminate_backend) emits 'error' on the pool; without a
  // listener that would crash the process. The pool drops the client and opens a new one on the next query.
  pool.on('error', () => {})
  // pg-pool removes its listener while a client is checked out; a connection killed in that window (between two
  // queries of a transaction, say) would emit an unhandled 'error' and crash the process. The query in flight fails
  // and the pool discards the broken client on release.
  pool.on('connect', (client) => {
    client.on('error', () => {})
  })
  return pool
}

export function createDb<DB>(options: DatabaseOptions): Kysely<DB> {
  return new Kysely<DB>({ dialect: new PostgresDialect({ pool: createPool(options) }) })
}

export type Migrations = Record<string, Migration>

export interface MigrationOutcome {
  applied: string[]
}

/**
 * Brings the service's schema up to date. Safe to run from several replicas at once: Kysely's migrator holds a lock
 * for the whole run, and the schema is created idempotently before it.
 */
export async function migrateToLatest(
  db: Kysely<unknown>,
  schema: string,
  migrations: Migrations,
): Promise<MigrationOutcome> {
  try {
    await sql`create schema if not exists ${sql.id(schema)}`.execute(db)
  } catch (error) {
    // Two replicas creating the schema at the same instant: one wins, the other sees a unique violation.
    if ((error as { code?: string }).code !== '23505') throw error
  }
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
    migrationTableSchema: schema,
  })
  const { error, results } = await migrator.migrateToLatest()
  if (error) {
    const failed = results?.find((result) => result.status === 'Error')
    throw new Error(`migration ${failed?.migrationName ?? '(unknown)'} failed: ${(error as Error).message}`, {
      cause: error,
    })
  }
  return {
    applied: (results ?? []).filter((result) => result.status === 'Success').map((result) => result.migrationName),
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    db: Kysely<unknown>
    /** The pool under `db`, for the rare hot statement worth preparing by name (one parse per connection). */
    pgPool: pg.Pool
  }
}

/** Decorates the instance with `db` and closes the pool when the instance closes. */
export const dbPlugin = fp(
  async (app: FastifyInstance, options: DatabaseOptions) => {
    const pool = createPool(options)
    const db = new Kysely<unknown>({ dialect: new PostgresDialect({ pool }) })
    app.decorate('db', db)
    app.decorate('pgPool', pool)
    app.addHook('onClose', async () => {
      await db.destroy()
    })
  },
  { name: 'db' },
)
