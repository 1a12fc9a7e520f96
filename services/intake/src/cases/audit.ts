import { type Kysely, sql, type Transaction } from 'kysely'
import type { IntakeDatabase } from '../db/schema.ts'
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

// Any constant works; it only has to be the same for every writer of this city's audit log.
const AUDIT_LOCK = 7_301_102

/**
 * Appends to the hash-chained audit log. Writers take one advisory lock for the rest of their transaction, so the
 * chain stays a line even with many writers; the row commits (or not) with the change it records.
 */
export async function appendAudit(trx: Transaction<IntakeDatabase>, record: AuditRecord): Promise<void> {
  await sql`select pg_advisory_xact_lock(${AUDIT_LOCK})`.execute(trx)
  const last = await trx.selectFrom('audit_log').select(['hash']).orderBy('id', 'desc').limit(1).executeTakeFirst()
  const { id } = await sql<{ id: string }>`select nextval(pg_get_serial_sequence('audit_log', 'id'))::text as id`
    .execute(trx)
    .then((result) => result.rows[0] as { id: string })
  const at = new Date()
  const entry: AuditEntry = {
    id,
    at: at.toISOString(),
    actor: record.actor,
    role: record.role,
    city: record.city,
    action: record.action,
    caseId: record.caseId,
    requestId: record.requestId,
    ...(record.detail ? { detail: record.detail } : {}),
  }
  const prevHash = last?.hash ?? GENESIS_HASH
  await sql`insert into audit_log (id, at, actor, role, city, action, case_id, request_id, detail, prev_hash, hash)
    overriding system value
    values (${id}::bigint, ${at}, ${record.actor}, ${record.role}, ${record.city}, ${record.action}, ${record.caseId},
            ${record.requestId}, ${record.detail ? JSON.stringify(record.detail) : null}::jsonb, ${prevHash},
            ${auditHash(prevHash, entry)})`.execute(trx)
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

/** Reads the whole chain in order and checks it; names the first row that does not verify. */
export async function verifyAuditLog(db: Db): Promise<ReturnType<typeof verifyChain>> {
  const rows = await db.selectFrom('audit_log').selectAll().orderBy('id').execute()
  return verifyChain(
    rows.map((row) => ({
      id: String(row.id),
      at: row.at.toISOString(),
      actor: row.actor,
      role: row.role,
      city: row.city,
      action: row.action,
      caseId: row.case_id,
      requestId: row.request_id,
      ...(row.detail ? { detail: row.detail } : {}),
      prevHash: row.prev_hash,
      hash: row.hash,
    })),
  )
}
