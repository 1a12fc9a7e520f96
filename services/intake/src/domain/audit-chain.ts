import { createHash } from 'node:crypto'
import { canonicalJson } from '@pilot/signing'

/**
 * The hash chain of the append-only audit log (DESIGN.md, "Personal data"). Each row's hash covers the previous row's
 * hash and the row itself, so a row that is edited, deleted or moved breaks the chain at that row or the next one,
 * and a verifying command can name it. The chain alone cannot show rows deleted from the end, nor a chain rehashed from
 * an edit onwards by someone who can rewrite every later row: both need the head hash kept somewhere else (a
 * checkpoint) and compared with the `head` that verifyChain returns.
 */

export type AuditDetail = Record<string, string | number | boolean | null>

export interface AuditEntry {
  /** The row's bigint id, as a string: JavaScript numbers lose precision above 2^53. */
  id: string
  /** ISO 8601 timestamp, hashed as these exact characters: store and read it back in the same form. */
  at: string
  actor: string
  role: string
  city: string
  action: string
  caseId: string | null
  requestId: string | null
  /** Absent and `{}` hash differently: a row without detail must be read back without it, not as null or `{}`. */
  detail?: AuditDetail
}

export interface AuditRow extends AuditEntry {
  prevHash: string
  hash: string
}

/** The `prevHash` of the first row. */
export const GENESIS_HASH = '0'.repeat(64)

/**
 * Hex SHA-256 of `previousHash + '\n' + canonicalJson(entry)`. Only the fields of AuditEntry are hashed, so a database
 * row with more columns (its own prevHash and hash among them) can be passed as it is. Fields that are undefined are
 * left out, inside `detail` as well, as they would be by JSON storage; canonicalJson rejects anything else that is not
 * JSON (a NaN, a Date), because such a value would not read back as it was hashed.
 */
export function auditHash(previousHash: string, entry: AuditEntry): string {
  const { id, at, actor, role, city, action, caseId, requestId, detail } = entry
  const hashed = definedOnly({
    id,
    at,
    actor,
    role,
    city,
    action,
    caseId,
    requestId,
    detail: detail === undefined ? undefined : definedOnly(detail),
  })
  return createHash('sha256')
    .update(`${previousHash}\n${canonicalJson(hashed)}`, 'utf8')
    .digest('hex')
}

function definedOnly(record: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).filter(([, value]) => value !== undefined))
}

export type ChainVerification =
  | { ok: true; count: number; head: string }
  | { ok: false; brokenAt: string; reason: 'hash_mismatch' | 'prev_hash_mismatch' }

/**
 * Checks rows given in id order. For each row: its prevHash must be the hash of the row before it (GENESIS_HASH, or
 * `previousHash` when verifying from a checkpoint, for the first); then its hash must be the hash of its own content.
 * Stops at the first row that fails, so an edit to a row's content or to its hash names that row, and a deleted or
 * moved row names the row that now follows the gap. `head` is the last hash, to compare with a checkpoint.
 */
export function verifyChain(rows: readonly AuditRow[], previousHash: string = GENESIS_HASH): ChainVerification {
  let expectedPrevious = previousHash
  for (const row of rows) {
    if (row.prevHash !== expectedPrevious) return { ok: false, brokenAt: row.id, reason: 'prev_hash_mismatch' }
    if (auditHash(row.prevHash, row) !== row.hash) return { ok: false, brokenAt: row.id, reason: 'hash_mismatch' }
    expectedPrevious = row.hash
  }
  return { ok: true, count: rows.length, head: expectedPrevious }
}
