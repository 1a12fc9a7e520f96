import { testResources } from '@pilot/testing'
import { type Kysely, type Migration, sql } from 'kysely'
import { afterAll, describe, expect, it } from 'vitest'
import { createDb, migrateToLatest } from '../src/index.ts'

const migrations: Record<string, Migration> = {
  '20260101T000000_create_register': {
    // biome-ignore lint/suspicious/noExplicitAny: migrations are frozen in time and typed loosely on purpose
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('register')
        .addColumn('id', 'serial', (column) => column.primaryKey())
        .execute()
    },
  },
  '20260102T000000_add_entry': {
    // biome-ignore lint/suspicious/noExplicitAny: as above
    async up(db: Kysely<any>) {
      await db.schema.alterTable('register').addColumn('entry', 'text').execute()
    },
  },
}

describe('migrations', () => {
  const dbs: Kysely<unknown>[] = []
  function db(schema: string) {
    const instance = createDb<unknown>({ url: testResources().databaseUrl, schema })
    dbs.push(instance)
    return instance
  }
  afterAll(() => Promise.all(dbs.map((instance) => instance.destroy())))

  it("creates the service's schema, applies pending migrations once, in name order", async () => {
    const residence = db('residence')
    expect(await migrateToLatest(residence, 'residence', migrations)).toEqual({
      applied: ['20260101T000000_create_register', '20260102T000000_add_entry'],
    })
    expect(await migrateToLatest(residence, 'residence', migrations)).toEqual({ applied: [] })
    await sql`insert into register (entry) values ('x')`.execute(residence)
    const { rows } = await sql<{ table_schema: string }>`
      select table_schema from information_schema.tables where table_name = 'register'`.execute(residence)
    expect(rows).toEqual([{ table_schema: 'residence' }])
  })

  it('keeps each service in its own schema of the city database', async () => {
    const intake = db('intake')
    expect((await migrateToLatest(intake, 'intake', migrations)).applied).toHaveLength(2)
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from register`.execute(intake)
    expect(rows[0]?.n).toBe(0)
  })

  it('lets several replicas migrate at once without harm', async () => {
    const outcomes = await Promise.all(
      [db('gateway'), db('gateway'), db('gateway')].map((instance) => migrateToLatest(instance, 'gateway', migrations)),
    )
    expect(outcomes.flatMap((outcome) => outcome.applied).sort()).toEqual(Object.keys(migrations).sort())
  })
})
