import { createDb, migrateToLatest } from '@pilot/kit'
import { testResources } from '@pilot/testing'
import { type Kysely, sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { appendAudit, chainAuditLog, verifyAuditLog } from '../src/cases/audit.ts'
import { migrations } from '../src/db/migrations/index.ts'
import type { IntakeDatabase } from '../src/db/schema.ts'

// The audit log on real PostgreSQL: rows written unchained inside their own transactions, in any commit order, are
// linked by chainers running side by side into one chain that verifies; the trigger lets nothing else change a row.

const record = (n: number) => ({
  actor: `caseworker-${n % 7}`,
  role: 'caseworker',
  city: 'shenzhen',
  action: 'outgoing.read',
  caseId: null,
  requestId: `req-${n}`,
  ...(n % 3 === 0 ? { detail: { n, note: `row ${n}` } } : {}),
})

describe('the audit log in PostgreSQL', () => {
  let db: Kysely<IntakeDatabase>
  beforeAll(async () => {
    db = createDb<IntakeDatabase>({ url: testResources().databaseUrl, schema: 'intake', poolMax: 20 })
    await migrateToLatest(db as Kysely<unknown>, 'intake', migrations)
  })
  afterAll(() => db.destroy())

  it('links rows committed out of id order, by racing chainers, into one chain that verifies', async () => {
    // Every third writer holds its transaction open after inserting, so later ids commit first; two chainers poll
    // throughout and must take turns.
    let writing = true
    const chainers = [0, 1].map(async () => {
      while (writing) {
        await chainAuditLog(db, 7)
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
    })
    await Promise.all(
      Array.from({ length: 60 }, (_, n) =>
        db.transaction().execute(async (trx) => {
          await appendAudit(trx, record(n))
          if (n % 3 === 0) await sql`select pg_sleep(0.05)`.execute(trx)
        }),
      ),
    )
    // A writer that rolls back leaves nothing to link.
    await db
      .transaction()
      .execute(async (trx) => {
        await appendAudit(trx, record(999))
        throw new Error('rolled back')
      })
      .catch(() => {})
    writing = false
    await Promise.all(chainers)
    while ((await chainAuditLog(db)) > 0) {}

    const result = await verifyAuditLog(db)
    expect(result).toMatchObject({ ok: true, count: 60, unchained: 0 })
    const order = await sql<{ id: string; chain_seq: string }>`
      select id::text, chain_seq::text from intake.audit_log order by audit_log.chain_seq`.execute(db)
    expect(order.rows.map((row) => Number(row.chain_seq))).toEqual(Array.from({ length: 60 }, (_, n) => n + 1))
    // The case this is about happened: some rows were linked after rows with later ids.
    const ids = order.rows.map((row) => Number(row.id))
    expect(ids.some((id, index) => index > 0 && id < (ids[index - 1] as number))).toBe(true)
    expect(await sql`select 1 from intake.audit_log where request_id = 'req-999'`.execute(db)).toMatchObject({
      rows: [],
    })
  })

  it('counts rows not linked yet without calling the chain broken', async () => {
    await db.transaction().execute((trx) => appendAudit(trx, record(100)))
    const result = await verifyAuditLog(db)
    expect(result).toMatchObject({ ok: true, count: 60, unchained: 1 })
    expect(result.oldestUnchainedAt).toBeInstanceOf(Date)
    expect(await chainAuditLog(db)).toBe(1)
    expect(await verifyAuditLog(db)).toMatchObject({ ok: true, count: 61, unchained: 0 })
  })

  it('refuses every change but the one-time link, linked or not', async () => {
    await db.transaction().execute((trx) => appendAudit(trx, record(200)))
    const attempts = [
      sql`update intake.audit_log set actor = 'someone-else' where chain_seq = 3`,
      sql`update intake.audit_log set hash = repeat('0', 64) where chain_seq = 3`,
      sql`update intake.audit_log set chain_seq = 9999 where chain_seq = 3`,
      sql`delete from intake.audit_log where chain_seq = 3`,
      // An unlinked row may not be edited either, and its link may not change what it says.
      sql`update intake.audit_log set actor = 'someone-else' where chain_seq is null`,
      sql`update intake.audit_log set chain_seq = 500, prev_hash = 'x', hash = 'y', detail = '{}'
          where chain_seq is null`,
      sql`delete from intake.audit_log where chain_seq is null`,
    ]
    for (const attempt of attempts) {
      await expect(attempt.execute(db)).rejects.toThrow(/append-only/)
    }
    // Half a link is refused by the table's check.
    await expect(sql`update intake.audit_log set chain_seq = 500 where chain_seq is null`.execute(db)).rejects.toThrow(
      /audit_log_chained_whole/,
    )
    expect(await chainAuditLog(db)).toBe(1)
    expect(await verifyAuditLog(db)).toMatchObject({ ok: true, count: 62, unchained: 0 })
  })

  it('names a linked row edited by someone who switched the trigger off', async () => {
    const { rows } = await sql<{ id: string }>`select id::text from intake.audit_log where chain_seq = 10`.execute(db)
    await db.connection().execute(async (connection) => {
      await sql`set session_replication_role = replica`.execute(connection)
      await sql`update intake.audit_log set detail = '{"n": 1}' where chain_seq = 10`.execute(connection)
      await sql`set session_replication_role = origin`.execute(connection)
    })
    expect(await verifyAuditLog(db)).toMatchObject({ ok: false, brokenAt: rows[0]?.id, reason: 'hash_mismatch' })
  })
})
