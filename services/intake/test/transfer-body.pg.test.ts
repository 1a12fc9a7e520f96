import { randomUUID } from 'node:crypto'
import { createDb, migrateToLatest } from '@pilot/kit'
import { freshDatabase } from '@pilot/testing'
import { type Kysely, sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { migrations } from '../src/db/migrations/index.ts'

// Migration 20261205: a case.transfer's outbox row stores no body (it is built from the case). Transfers that already
// have a delivery outcome lose their stored copy of the applicant's data; one still waiting keeps it for the relay;
// every other message keeps its body, and a row without one that is not a transfer is refused.

const LATEST = '20261205T000000_transfer_body_from_case'

describe('migration 20261205: transfer bodies built from the case', () => {
  // biome-ignore lint/suspicious/noExplicitAny: the schema as it was before the migration
  let db: Kysely<any>
  const caseId = randomUUID()
  const rows = {
    delivered: randomUUID(),
    waiting: randomUUID(),
    decision: randomUUID(),
  }
  const body = (name: string) => JSON.stringify({ applicant: { name }, attestation: 'h.p.s' })

  beforeAll(async () => {
    db = createDb({ url: await freshDatabase('intake_transfer_body'), schema: 'intake', poolMax: 2 })
    const before = Object.fromEntries(Object.entries(migrations).filter(([name]) => name < LATEST))
    await migrateToLatest(db as Kysely<unknown>, 'intake', before)
    await sql`insert into cases (id, reference, side, partner_city, status, category, applicant_subject, form_sealed,
        household_size)
      values (${caseId}, 'REF-1', 'outgoing', 'zhongshan', 'transferred', 'subsistence_allowance', 's', '\\x00', 1)`.execute(
      db,
    )
    await sql`insert into outbox (id, case_id, to_city, type, ref, body, outcome) values
      (${rows.delivered}, ${caseId}, 'zhongshan', 'case.transfer', 'REF-1', ${body('林晓')}, 'delivered'),
      (${rows.waiting}, ${caseId}, 'zhongshan', 'case.transfer', 'REF-1', ${body('林晓')}, null),
      (${rows.decision}, ${caseId}, 'zhongshan', 'case.withdrawn', 'REF-1', '{"reason":"moved"}', 'delivered')`.execute(
      db,
    )
    await migrateToLatest(db as Kysely<unknown>, 'intake', migrations)
  })
  afterAll(() => db?.destroy())

  it('drops the stored body of a delivered transfer and keeps every body still needed', async () => {
    const stored = await db.selectFrom('outbox').select(['id', 'body']).execute()
    const byId = Object.fromEntries(stored.map((row: { id: string; body: unknown }) => [row.id, row.body]))
    expect(byId[rows.delivered]).toBeNull()
    expect(byId[rows.waiting]).toEqual(JSON.parse(body('林晓')))
    expect(byId[rows.decision]).toEqual({ reason: 'moved' })
  })

  it('refuses a message without a body unless it is a case’s transfer', async () => {
    const insert = (type: string, withCase: boolean) =>
      sql`insert into outbox (id, case_id, to_city, type, ref, body)
        values (${randomUUID()}, ${withCase ? caseId : null}, 'zhongshan', ${type}, 'REF-1', null)`.execute(db)
    await expect(insert('case.accepted', true)).rejects.toThrow(/outbox_body_or_transfer/)
    await expect(insert('case.transfer', false)).rejects.toThrow(/outbox_body_or_transfer/)
    await expect(insert('case.transfer', true)).resolves.toBeDefined()
  })
})
