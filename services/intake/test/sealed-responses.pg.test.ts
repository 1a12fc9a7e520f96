import { randomBytes } from 'node:crypto'
import { createDb, migrateToLatest } from '@pilot/kit'
import { freshDatabase } from '@pilot/testing'
import { type Kysely, sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { purgeExpiredIdempotencyKeys } from '../src/cases/idempotency-housekeeping.ts'
import { openForm, sealLegacyResponses } from '../src/cases/sealing.ts'
import { migrations } from '../src/db/migrations/index.ts'
import type { IntakeDatabase } from '../src/db/schema.ts'

// Stored submission responses hold the applicant's name and birth date. Rows written before they were sealed (plain
// jsonb) are sealed by the worker in batches, exactly once, by however many workers run at once; the table then holds
// no response in the clear, and each sealed one opens to what was stored.

describe('sealing stored submission responses written before they were sealed', () => {
  let db: Kysely<IntakeDatabase>
  const key = randomBytes(32)
  beforeAll(async () => {
    db = createDb<IntakeDatabase>({ url: await freshDatabase('intake_sealing'), schema: 'intake', poolMax: 10 })
    await migrateToLatest(db as Kysely<unknown>, 'intake', migrations)
  })
  afterAll(() => db.destroy())

  it('seals every legacy row once, with workers racing, and leaves no name in the clear', async () => {
    const legacy = Array.from({ length: 1234 }, (_, n) => ({
      actor: `caseworker-${n % 9}`,
      key: `legacy-key-${n}`,
      request_hash: `hash-${n}`,
      status_code: 201,
      response: JSON.stringify({ id: `case-${n}`, applicant: { name: `林晓${n}`, birthDate: '1980-01-01' } }),
      response_sealed: null,
    }))
    for (let i = 0; i < legacy.length; i += 500) {
      await db
        .insertInto('idempotency_keys')
        .values(legacy.slice(i, i + 500))
        .execute()
    }

    const counts = await Promise.all([0, 1, 2].map(() => sealLegacyResponses(db, key, 100)))
    expect(counts.reduce((sum, n) => sum + n, 0)).toBe(legacy.length)
    expect(await sealLegacyResponses(db, key)).toBe(0)

    const rows = await db.selectFrom('idempotency_keys').selectAll().orderBy('key').execute()
    expect(rows).toHaveLength(legacy.length)
    for (const row of rows) {
      expect(row.response).toBeNull()
      const sealed = row.response_sealed as Buffer
      expect(sealed.includes(Buffer.from('林晓'))).toBe(false)
      const n = Number(row.key.replace('legacy-key-', ''))
      expect(openForm(key, sealed)).toEqual({
        id: `case-${n}`,
        applicant: { name: `林晓${n}`, birthDate: '1980-01-01' },
      })
    }
  })

  it('refuses a row with both or neither of the plain and the sealed response', async () => {
    const row = { actor: 'a', request_hash: 'h', status_code: 201 }
    await expect(
      db
        .insertInto('idempotency_keys')
        .values({ ...row, key: 'neither-key', response: null, response_sealed: null })
        .execute(),
    ).rejects.toThrow(/idempotency_keys_one_response/)
    await expect(
      db
        .insertInto('idempotency_keys')
        .values({ ...row, key: 'both-keys', response: '{}', response_sealed: Buffer.from('x') })
        .execute(),
    ).rejects.toThrow(/idempotency_keys_one_response/)
    expect(
      (await sql<{ n: number }>`select count(*)::int as n from idempotency_keys where actor = 'a'`.execute(db)).rows[0]
        ?.n,
    ).toBe(0)
  })

  it('deletes the keys older than the retention, in batches, and keeps the others', async () => {
    await sql`delete from idempotency_keys`.execute(db)
    const row = (n: number, ageDays: number) => ({
      actor: 'caseworker-1',
      key: `retention-key-${n}`,
      request_hash: `hash-${n}`,
      status_code: 201,
      response: null,
      response_sealed: Buffer.from([n % 256]),
      created_at: new Date(Date.now() - ageDays * 86400_000),
    })
    // 2,500 expired (31 and 400 days old), 30 kept (29 days, and today).
    const rows = [
      ...Array.from({ length: 2500 }, (_, n) => row(n, n % 2 === 0 ? 31 : 400)),
      ...Array.from({ length: 30 }, (_, n) => row(10_000 + n, n % 2 === 0 ? 29 : 0)),
    ]
    for (let i = 0; i < rows.length; i += 500) {
      await db
        .insertInto('idempotency_keys')
        .values(rows.slice(i, i + 500))
        .execute()
    }
    expect(await purgeExpiredIdempotencyKeys(db, 30, 1000)).toBe(2500)
    const left = await db.selectFrom('idempotency_keys').select('key').execute()
    expect(left.map((kept) => kept.key).sort()).toEqual(
      rows
        .slice(2500)
        .map((kept) => kept.key)
        .sort(),
    )
    expect(await purgeExpiredIdempotencyKeys(db, 30)).toBe(0)
  })
})
