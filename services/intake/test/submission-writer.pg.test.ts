import { randomBytes, randomUUID } from 'node:crypto'
import { createDb, createRedis, migrateToLatest, QueueRegistry } from '@pilot/kit'
import type { FederationQueues } from '@pilot/schemas'
import { freePort, freshDatabase, testResources } from '@pilot/testing'
import type { Kysely } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { CaseContext } from '../src/cases/context.ts'
import { sealForm } from '../src/cases/sealing.ts'
import { createSubmissionWriter, type SubmissionWrite } from '../src/cases/submission-writer.ts'
import { type ApplicationForm, transferBodyOf } from '../src/cases/transfer.ts'
import { migrations } from '../src/db/migrations/index.ts'
import type { IntakeDatabase } from '../src/db/schema.ts'
import { relayOutbox } from '../src/workers/federation.ts'

// The batched submission statement against real PostgreSQL and Redis: what arrives while a statement runs is written
// together in the next, a key already taken writes nothing, a submission PostgreSQL refuses fails alone, and the
// transfers reach the gateway's queue — straight after the commit, or through the relay when Redis did not answer.

const noLog = { warn: () => {} }
const piiKey = randomBytes(32)

/** An application's form as a submission seals it (two people; the numbers only need their birth dates here). */
function formOf(n: number): ApplicationForm {
  return {
    applicant: {
      idNumber: '44030119900307002X',
      birthDate: '1990-03-07',
      name: `申请人${n}`,
      phone: '13800000000',
      address: '深圳市南山区',
      monthlyIncomeFen: 90_000 + n,
      assetsFen: 0,
    },
    hukouCity: 'zhongshan',
    category: 'subsistence_allowance',
    household: [
      { idNumber: '442000199201150021', name: `配偶${n}`, relation: 'spouse', monthlyIncomeFen: 0, assetsFen: 5_000 },
    ],
    circumstances: `case ${n}`,
    rigidExpenditures: { medicalFen: 100, educationFen: 0, otherFen: 0 },
    consent: { recordedBy: 'shenzhen-caseworker-1', recordedAt: '2026-11-30T08:00:00.000Z' },
    documents: [],
  } as unknown as ApplicationForm
}

function write(n: number, overrides: Partial<SubmissionWrite> = {}): SubmissionWrite {
  const at = new Date()
  const id = randomUUID()
  const form = formOf(n)
  const written: SubmissionWrite = {
    actor: 'shenzhen-caseworker-1',
    role: 'caseworker',
    key: `writer-key-${n}-${randomUUID()}`,
    requestHash: `hash-${n}`,
    responseSealed: randomBytes(64),
    row: {
      id,
      reference: `440300-20261130-W${n}-${randomUUID().slice(0, 8)}`,
      side: 'outgoing',
      partner_city: 'zhongshan',
      status: 'queued',
      category: 'subsistence_allowance',
      applicant_subject: `subject-${n}`,
      applicant_index: randomBytes(32),
      caseworker_id: 'shenzhen-caseworker-1',
      form_sealed: sealForm(piiKey, form),
      household_size: 2,
      household_subjects: [`subject-${n}`, `spouse-${n}`],
      residence: { eligible: true, reasons: [], residenceSince: '2024-01-01', qualifiesOn: '2024-04-01' },
      attestation: 'header.payload.signature',
      review_deadline: '2027-01-20',
      review_deadline_provisional: true,
      partner_latest: null,
      decision: null,
      open_info_request: null,
      benefit_check: null,
      submitted_at: at,
      updated_at: at,
    },
    action: 'residence_verified',
    verified: { reasons: [], residenceSince: '2024-01-01' },
    transfer: null,
    requestId: `request-${n}`,
    ...overrides,
  }
  // The transfer body as the submission builds it, from the row and the form as they are written.
  if (!('transfer' in overrides))
    written.transfer = { id: randomUUID(), body: transferBodyOf('shenzhen', written.row, form) }
  return written
}

describe('the submission writer', () => {
  const { redisUrl, redisPrefix } = testResources()
  let db: Kysely<IntakeDatabase>
  let pool: pg.Pool
  const redis = createRedis({ url: redisUrl, purpose: 'command' })
  let queues: QueueRegistry<FederationQueues>

  beforeAll(async () => {
    const url = await freshDatabase('intake_writer')
    db = createDb<IntakeDatabase>({ url, schema: 'intake', poolMax: 4 })
    await migrateToLatest(db as Kysely<unknown>, 'intake', migrations)
    pool = new pg.Pool({ connectionString: url, max: 4, options: '-c search_path=intake' })
    await redis.connect()
    queues = new QueueRegistry<FederationQueues>(redis, redisUrl, `${redisPrefix}:writer`)
  })
  afterAll(async () => {
    await queues.close()
    redis.disconnect()
    await pool.end()
    await db.destroy()
  })

  /** A writer with one statement in flight, and the size of each batch it sends. */
  const writerOneStatementAtATime = () => {
    const sizes: number[] = []
    const writer = createSubmissionWriter(pool, queues, 'shenzhen', noLog, {
      concurrency: 1,
      maxSize: 64,
      onBatch: (size) => sizes.push(size),
    })
    return { writer, sizes }
  }

  const queuedIds = async () =>
    (await queues.queue('federation.outbound').getJobs(['waiting', 'delayed'])).map((job) => job.id)

  it('writes what arrives during a statement together, a key once, and hands the transfers over after commit', async () => {
    const { writer, sizes } = writerOneStatementAtATime()
    const writes = [write(1), write(2), write(3), write(4)]
    // The same caseworker and key as the second, in the same batch: only the first of the two is written.
    const repeat = write(5, { key: (writes[1] as SubmissionWrite).key })
    const answers = await Promise.all([...writes, repeat].map((one) => writer.add(one)))
    await writer.settled()

    expect(sizes).toEqual([1, 4])
    expect(answers).toEqual([true, true, true, true, false])
    const ids = writes.map((one) => one.row.id)
    const cases = await db
      .selectFrom('cases')
      .select(['id', 'status', 'household_subjects'])
      .where('id', 'in', ids)
      .execute()
    expect(cases).toHaveLength(4)
    expect(cases.find((row) => row.id === ids[0])?.household_subjects).toEqual(['subject-1', 'spouse-1'])
    expect(await db.selectFrom('cases').select('id').where('id', '=', repeat.row.id).execute()).toEqual([])
    // Each case's history in order: the submission, then the residence decision.
    for (const id of ids) {
      const events = await db
        .selectFrom('case_events')
        .select(['action'])
        .where('case_id', '=', id)
        .orderBy('id')
        .execute()
      expect(events.map((event) => event.action)).toEqual(['submit', 'residence_verified'])
    }
    const audit = await db.selectFrom('audit_log').select(['case_id', 'action']).where('case_id', 'in', ids).execute()
    expect(audit).toHaveLength(4)
    const outbox = await db.selectFrom('outbox').select(['id', 'relayed_at']).where('case_id', 'in', ids).execute()
    expect(outbox).toHaveLength(4)
    expect(outbox.every((row) => row.relayed_at !== null)).toBe(true)
    expect(await queuedIds()).toEqual(expect.arrayContaining(writes.map((one) => one.transfer?.id)))

    // A key already taken by a finished submission writes nothing more.
    const again = write(6, { key: (writes[0] as SubmissionWrite).key })
    expect(await writer.add(again)).toBe(false)
    expect(await db.selectFrom('cases').select('id').where('id', '=', again.row.id).execute()).toEqual([])
  })

  it('fails only the submission PostgreSQL refuses when it shares a statement with others', async () => {
    const { writer, sizes } = writerOneStatementAtATime()
    const taken = write(10)
    expect(await writer.add(taken)).toBe(true)
    // Same reference as a case already written: the unique (side, reference) refuses it, and so its whole statement.
    const clash = write(11, { row: { ...write(11).row, reference: taken.row.reference } })
    const blocker = writer.add(write(12))
    const batch = [write(13), clash, write(14)].map((one) =>
      writer.add(one).then(String, (error: Error) => error.message),
    )
    await blocker
    const answers = await Promise.all(batch)
    expect(answers[0]).toBe('true')
    expect(answers[1]).toMatch(/cases_reference/)
    expect(answers[2]).toBe('true')
    // The three (and perhaps the blocker) went together into one statement, refused as a whole, then each alone.
    expect(Math.max(...sizes)).toBeGreaterThanOrEqual(3)
    expect(await db.selectFrom('cases').select('id').where('id', '=', clash.row.id).execute()).toEqual([])
  })

  it('leaves the transfers to the relay when Redis does not answer, and the relay queues them', async () => {
    const deadRedisUrl = `redis://127.0.0.1:${await freePort()}`
    const deadConnection = createRedis({ url: deadRedisUrl, purpose: 'command' })
    const deadQueues = new QueueRegistry<FederationQueues>(deadConnection, deadRedisUrl, `${redisPrefix}:dead`)
    const warnings: string[] = []
    const writer = createSubmissionWriter(
      pool,
      deadQueues,
      'shenzhen',
      { warn: (_object, message) => warnings.push(message) },
      { concurrency: 1, maxSize: 64 },
    )
    const writes = [write(20), write(21)]
    // The submissions are answered: the hand-off does not hold up the response.
    expect(await Promise.all(writes.map((one) => writer.add(one)))).toEqual([true, true])
    await writer.settled()
    await deadQueues.close().catch(() => {})
    deadConnection.disconnect()
    expect(warnings).toContain('transfers not handed to the gateway queue; the outbox relay will queue them')
    const ids = writes.map((one) => one.transfer?.id as string)
    const rows = await db.selectFrom('outbox').select(['id', 'relayed_at']).where('id', 'in', ids).execute()
    expect(rows.map((row) => row.relayed_at)).toEqual([null, null])

    // The outbox rows hold no body (the personal data at rest is the sealed form)...
    const stored = await db.selectFrom('outbox').select(['body']).where('id', 'in', ids).execute()
    expect(stored).toEqual([{ body: null }, { body: null }])

    // ...Redis answers again (here: the working registry); the relay's next pass queues both, once, each with the body
    // the submission would have handed over, rebuilt from its case.
    const relayed = await relayOutbox({ db, queues, piiKey, city: 'shenzhen' } as unknown as CaseContext, 60)
    expect(relayed).toBeGreaterThanOrEqual(2)
    expect(await queuedIds()).toEqual(expect.arrayContaining(ids))
    for (const one of writes) {
      const job = await queues.queue('federation.outbound').getJob(one.transfer?.id as string)
      expect(job?.data).toEqual({
        messageId: one.transfer?.id,
        to: 'zhongshan',
        type: 'case.transfer',
        ref: one.row.reference,
        usr: one.actor,
        body: one.transfer?.body,
      })
    }
    const after = await db.selectFrom('outbox').select(['relayed_at']).where('id', 'in', ids).execute()
    expect(after.every((row) => row.relayed_at !== null)).toBe(true)
  })

  it('relays what is due, never-queued rows first, and leaves a row queued within the resend period alone', async () => {
    const writer = createSubmissionWriter(pool, queues, 'shenzhen', noLog, { concurrency: 1, maxSize: 64 })
    const [recent, resend, never] = [write(25), write(26), write(27)]
    for (const one of [recent, resend, never]) expect(await writer.add(one)).toBe(true)
    await writer.settled()
    const idOf = (one: SubmissionWrite) => one.transfer?.id as string
    // Queued two minutes ago with no outcome since (Redis may have lost it), and one whose hand-off never happened.
    await pool.query(`update outbox set relayed_at = now() - interval '2 minutes' where id = $1`, [idOf(resend)])
    await pool.query('update outbox set relayed_at = null where id = $1', [idOf(never)])
    const relayedAt = async () =>
      Object.fromEntries(
        (
          await pool.query<{ id: string; relayed_at: Date | null }>(
            'select id, relayed_at from outbox where id = any($1::uuid[])',
            [[recent, resend, never].map(idOf)],
          )
        ).rows.map((row) => [row.id, row.relayed_at?.getTime() ?? null]),
      )
    const before = await relayedAt()

    const context = { db, queues, piiKey, city: 'shenzhen' } as unknown as CaseContext
    // One row a pass: the never-queued row goes first, then the one due for a resend, then nothing is due.
    expect(await relayOutbox(context, 60, 1)).toBe(1)
    const first = await relayedAt()
    expect(first[idOf(never)]).not.toBeNull()
    expect(first[idOf(resend)]).toBe(before[idOf(resend)])
    expect(await relayOutbox(context, 60, 1)).toBe(1)
    const second = await relayedAt()
    expect(second[idOf(resend)]).toBeGreaterThan(before[idOf(resend)] as number)
    expect(await relayOutbox(context, 60, 1)).toBe(0)
    expect((await relayedAt())[idOf(recent)]).toBe(before[idOf(recent)])
    // The resent message's job was still waiting on the queue: it is left as it is, one job, not a second.
    expect(await queuedIds()).toEqual(expect.arrayContaining([idOf(resend), idOf(never)]))
    expect((await queuedIds()).filter((id) => id === idOf(resend))).toHaveLength(1)
  })

  it('relays the transfers it can build and names one whose form cannot be opened, which waits', async () => {
    const deadRedisUrl = `redis://127.0.0.1:${await freePort()}`
    const deadConnection = createRedis({ url: deadRedisUrl, purpose: 'command' })
    const deadQueues = new QueueRegistry<FederationQueues>(deadConnection, deadRedisUrl, `${redisPrefix}:dead2`)
    const writer = createSubmissionWriter(pool, deadQueues, 'shenzhen', noLog, { concurrency: 1, maxSize: 64 })
    const good = write(30)
    // Sealed under a key this worker does not have.
    const unreadable = write(31)
    unreadable.row.form_sealed = sealForm(randomBytes(32), formOf(31))
    expect(await Promise.all([good, unreadable].map((one) => writer.add(one)))).toEqual([true, true])
    await writer.settled()
    await deadQueues.close().catch(() => {})
    deadConnection.disconnect()

    const unreadableId = unreadable.transfer?.id as string
    await expect(relayOutbox({ db, queues, piiKey, city: 'shenzhen' } as unknown as CaseContext, 60)).rejects.toThrow(
      unreadableId,
    )
    expect(await queuedIds()).toContain(good.transfer?.id)
    expect(await queuedIds()).not.toContain(unreadableId)
    const rows = await db
      .selectFrom('outbox')
      .select(['id', 'relayed_at'])
      .where('id', 'in', [good.transfer?.id as string, unreadableId])
      .execute()
    const relayedAt = Object.fromEntries(rows.map((row) => [row.id, row.relayed_at]))
    expect(relayedAt[good.transfer?.id as string]).not.toBeNull()
    expect(relayedAt[unreadableId]).toBeNull()
  })
})
