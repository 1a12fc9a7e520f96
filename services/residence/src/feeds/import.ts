import { randomUUID } from 'node:crypto'
import type { Readable } from 'node:stream'
import { todayIn } from '@pilot/schemas'
import type { Kysely } from 'kysely'
import type { ResidenceDatabase } from '../db/schema.ts'
import type { UpsertOutcome } from '../db/upsert-outcome.ts'
import { type FeedFormat, readFeed } from './parse.ts'

export interface BadLine {
  line: number
  reason: string
}

export interface ImportSummary {
  importId: string
  format: FeedFormat
  received: number
  inserted: number
  updated: number
  unchanged: number
  rejected: number
  /** The first `MAX_LISTED_ERRORS` bad lines; `rejected` counts them all. */
  errors: BadLine[]
  errorsTruncated: boolean
}

/** The keys a record type seals an identity number with, and what a row is checked against. */
export interface SealingContext {
  city: string
  /** Today in the pilot's time zone: an identity number cannot carry a birth date after it. */
  today: string
  blindIndexKey: Buffer
  piiKey: Buffer
  matchingKey: Buffer
}

export type PreparedRow<Sealed> = { ok: true; key: string; row: Sealed } | { ok: false; reason: string }

/**
 * What differs between the kinds of records a feed can carry; reading the feed, batching, reporting bad lines and
 * keeping the books in `imports` are the same for all of them (importFeed).
 */
export interface FeedRecordType<Sealed> {
  /** Recorded as the import's record_type. */
  name: string
  /**
   * Checks one record read from the feed; a good one comes back as the store keeps it (no identity number in clear)
   * with its idempotency key, so that a feed repeating a record within one batch keeps its last version.
   */
  prepare(value: unknown, context: SealingContext): PreparedRow<Sealed>
  /** Writes one batch in one statement, idempotently; a record already held unchanged is counted as unchanged. */
  upsert(db: Kysely<ResidenceDatabase>, city: string, importId: string, rows: Sealed[]): Promise<UpsertOutcome>
}

export interface ImportContext extends Omit<SealingContext, 'today'> {
  db: Kysely<ResidenceDatabase>
  timeZone: string
  batchSize: number
  actor: string
  /** Called with every bad line, including those past the listed ones (the command-line tool writes them all). */
  onReject?: (bad: BadLine) => void
}

export const MAX_LISTED_ERRORS = 1000

/**
 * Loads a registry feed: every good row is stored (idempotently), every bad row is named by line with its reason.
 * Rows are written in batches as they stream in, so memory stays flat whatever the feed's size. Each batch commits on
 * its own: a feed cut off half-way keeps what was loaded, and sending it again completes it without duplicates.
 */
export async function importFeed<Sealed>(
  context: ImportContext,
  records: FeedRecordType<Sealed>,
  format: FeedFormat,
  input: Readable,
  onBatch: (summary: ImportSummary) => void = () => {},
): Promise<ImportSummary> {
  const importId = randomUUID()
  const sealing: SealingContext = {
    city: context.city,
    today: todayIn(context.timeZone),
    blindIndexKey: context.blindIndexKey,
    piiKey: context.piiKey,
    matchingKey: context.matchingKey,
  }
  const summary: ImportSummary = {
    importId,
    format,
    received: 0,
    inserted: 0,
    updated: 0,
    unchanged: 0,
    rejected: 0,
    errors: [],
    errorsTruncated: false,
  }
  await context.db
    .insertInto('imports')
    .values({
      id: importId,
      record_type: records.name,
      format,
      actor: context.actor,
      finished_at: null,
      received: 0,
      inserted: 0,
      updated: 0,
      unchanged: 0,
      rejected: 0,
    })
    .execute()

  // Keyed by the idempotency key: one statement cannot update the same row twice.
  let batch = new Map<string, Sealed>()
  const reject = (line: number, reason: string) => {
    summary.rejected++
    context.onReject?.({ line, reason })
    if (summary.errors.length < MAX_LISTED_ERRORS) summary.errors.push({ line, reason })
    else summary.errorsTruncated = true
  }
  const flush = async () => {
    const rows = [...batch.values()]
    batch = new Map()
    const outcome = await records.upsert(context.db, context.city, importId, rows)
    summary.inserted += outcome.inserted
    summary.updated += outcome.updated
    summary.unchanged += outcome.unchanged
    onBatch(summary)
  }

  for await (const record of readFeed(format, input)) {
    summary.received++
    if ('error' in record) {
      reject(record.line, record.error)
      continue
    }
    const prepared = records.prepare(record.value, sealing)
    if (!prepared.ok) {
      reject(record.line, prepared.reason)
      continue
    }
    if (batch.has(prepared.key)) summary.unchanged++
    batch.set(prepared.key, prepared.row)
    if (batch.size >= context.batchSize) await flush()
  }
  await flush()

  await context.db
    .updateTable('imports')
    .set({
      finished_at: new Date(),
      received: summary.received,
      inserted: summary.inserted,
      updated: summary.updated,
      unchanged: summary.unchanged,
      rejected: summary.rejected,
    })
    .where('id', '=', importId)
    .execute()
  // A CSV parser reports a malformed record as soon as it reads it, which may be before earlier rows reach us.
  summary.errors.sort((a, b) => a.line - b.line)
  return summary
}
