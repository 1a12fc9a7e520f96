import { binaryArray, type PeriodicPass, startPeriodicPass } from '@pilot/kit'
import { type Kysely, type Selectable, sql, type Transaction } from 'kysely'
import type { AuditTable, IntakeDatabase } from '../db/schema.ts'
import { type AuditEntry, auditHash, GENESIS_HASH, verifyChain } from '../domain/audit-chain.ts'

type Db = Kysely<IntakeDatabase> | Transaction<IntakeDatabase>

export interface AuditRecord {
  actor: string
  role: string
  city: string
  action: string
  caseId: string | null
  requestId: string | null
  detail?: Record<string, string | number | boolean | null>
}

// Any constant works; it only has to be the same for every chainer of this city's audit log.
const AUDIT_LOCK = 7_301_102

/**
 * Appends a row to the audit log, inside the transaction of the change it records, so the row commits (or not) with
 * that change. The row is written unchained: linking it into the hash chain needs the chain's head, and reading the
 * head under a lock in every request made all of a city's case traffic queue on one lock. `chainAuditLog` links rows
 * shortly after they commit; until then the trigger lets nobody change them except to link them once.
 */
export async function appendAudit(trx: Transaction<IntakeDatabase>, record: AuditRecord): Promise<void> {
  await sql`insert into audit_log (at, actor, role, city, action, case_id, request_id, detail)
    values (${new Date()}, ${record.actor}, ${record.role}, ${record.city}, ${record.action}, ${record.caseId},
            ${record.requestId}, ${record.detail ? JSON.stringify(record.detail) : null}::jsonb)`.execute(trx)
}

/** An audit_log row's own columns (not its place in the chain), as PostgreSQL returns them. */
export type AuditRowFields = Omit<Selectable<AuditTable>, 'chain_seq' | 'prev_hash' | 'hash'>

/** The row as the chain hashes it (and as the audit trail shows it): detail left out when there is none. */
export function auditEntryOf(row: AuditRowFields): AuditEntry {
  return {
    id: String(row.id),
    at: row.at.toISOString(),
    actor: row.actor,
    role: row.role,
    city: row.city,
    action: row.action,
    caseId: row.case_id,
    requestId: row.request_id,
    ...(row.detail ? { detail: row.detail } : {}),
  }
}

/**
 * Links committed, unchained rows into the hash chain, oldest id first, up to `batch` rows; returns how many. Chainers
 * of one city take turns on an advisory lock, so any number of intake workers may run it. A row whose transaction
 * commits after a later id was linked is linked after it: the chain's order is `chain_seq`, the order rows were
 * linked in, and that is the order the verifier walks.
 */
export async function chainAuditLog(db: Kysely<IntakeDatabase>, batch = 1000): Promise<number> {
  return db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(${AUDIT_LOCK})`.execute(trx)
    const { rows } = await sql<AuditRowFields>`
      select id::text as id, at, actor, role, city, action, case_id, request_id, detail from audit_log
      where chain_seq is null order by id limit ${batch}`.execute(trx)
    if (rows.length === 0) return 0
    const head = await sql<{ seq: string; hash: string }>`
      select chain_seq::text as seq, hash from audit_log where chain_seq is not null
      order by chain_seq desc limit 1`.execute(trx)
    let seq = BigInt(head.rows[0]?.seq ?? '0')
    let previous = head.rows[0]?.hash ?? GENESIS_HASH
    const ids: string[] = []
    const seqs: string[] = []
    const prevs: string[] = []
    const hashes: string[] = []
    for (const row of rows) {
      seq += 1n
      const hash = auditHash(previous, auditEntryOf(row))
      ids.push(row.id)
      seqs.push(String(seq))
      prevs.push(previous)
      hashes.push(hash)
      previous = hash
    }
    // Binary arrays (kit's binaryArray): up to a thousand rows' hashes, not escaped into literals and parsed back.
    await sql`update audit_log set chain_seq = linked.seq, prev_hash = linked.prev, hash = linked.hash
      from unnest(${binaryArray('int8', ids)}::bigint[], ${binaryArray('int8', seqs)}::bigint[],
                  ${binaryArray('text', prevs)}::text[], ${binaryArray('text', hashes)}::text[])
        as linked (id, seq, prev, hash)
      where audit_log.id = linked.id`.execute(trx)
    return rows.length
  })
}

/** Keeps linking new audit rows in the background; `now` links what is there without waiting for the timer. */
export function startAuditChainer(
  db: Kysely<IntakeDatabase>,
  intervalMs: number,
  onError: (error: Error) => void,
): PeriodicPass {
  return startPeriodicPass(
    async () => {
      // A full batch means more may be waiting: keep going rather than wait for the timer.
      while ((await chainAuditLog(db)) === 1000) {}
    },
    intervalMs,
    onError,
  )
}

/** An audit writer for what a partner city's message did, inside the transaction that applies it. */
export function partnerAudit(
  trx: Transaction<IntakeDatabase>,
  city: string,
  message: { from: string; messageId: string },
) {
  return (action: string, caseId: string | null, detail: Record<string, string | number | boolean | null>) =>
    appendAudit(trx, {
      actor: message.from,
      role: 'partner',
      city,
      action,
      caseId,
      requestId: message.messageId,
      detail,
    })
}

export type AuditVerification = ReturnType<typeof verifyChain> & {
  /** Rows not linked yet (written in the last moments, or waiting for a chainer that is not running). */
  unchained: number
  /** When the oldest unlinked row was written. */
  oldestUnchainedAt: Date | null
}

/**
 * Reads the whole chain in chain order and checks it; names the first row that does not verify. Rows not yet linked
 * are counted, not verified: they have no hash yet.
 */
export async function verifyAuditLog(db: Db): Promise<AuditVerification> {
  const rows = await db
    .selectFrom('audit_log')
    .selectAll()
    .where('chain_seq', 'is not', null)
    .orderBy('chain_seq')
    .execute()
  const pending = await db
    .selectFrom('audit_log')
    .select((eb) => [eb.fn.countAll<string>().as('count'), eb.fn.min('at').as('oldest')])
    .where('chain_seq', 'is', null)
    .executeTakeFirstOrThrow()
  const result = verifyChain(
    rows.map((row) => ({
      ...auditEntryOf({ ...row, id: String(row.id) }),
      prevHash: row.prev_hash as string,
      hash: row.hash as string,
    })),
  )
  return { ...result, unchained: Number(pending.count), oldestUnchainedAt: pending.oldest ?? null }
}
