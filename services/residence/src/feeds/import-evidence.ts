import { randomUUID } from 'node:crypto'
import type { Readable } from 'node:stream'
import { blindIndex, encryptPii } from '@pilot/kit'
import { todayIn } from '@pilot/schemas'
import type { Kysely } from 'kysely'
import { type SealedEvidence, upsertEvidence } from '../db/evidence-repository.ts'
import type { ResidenceDatabase } from '../db/schema.ts'
import { checkEvidenceRow } from '../domain/evidence-row.ts'
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

export interface ImportContext {
  db: Kysely<ResidenceDatabase>
  city: string
  timeZone: string
  blindIndexKey: Buffer
  piiKey: Buffer
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
export async function importEvidence(
  context: ImportContext,
  format: FeedFormat,
  input: Readable,
  onBatch: (summary: ImportSummary) => void = () => {},
): Promise<ImportSummary> {
  const importId = randomUUID()
  const today = todayIn(context.timeZone)
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
      record_type: 'evidence',
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

  // Keyed by the idempotency key: a feed that repeats a row within one batch keeps its last version.
  let batch = new Map<string, SealedEvidence>()
  const reject = (line: number, reason: string) => {
    summary.rejected++
    context.onReject?.({ line, reason })
    if (summary.errors.length < MAX_LISTED_ERRORS) summary.errors.push({ line, reason })
    else summary.errorsTruncated = true
  }
  const flush = async () => {
    const rows = [...batch.values()]
    batch = new Map()
    const outcome = await upsertEvidence(context.db, context.city, importId, rows)
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
    const checked = checkEvidenceRow(record.value, context.city, today)
    if (!checked.ok) {
      reject(record.line, checked.reason)
      continue
    }
    const { row } = checked
    const personIndex = blindIndex(context.blindIndexKey, row.idNumber)
    const key = `${personIndex.toString('base64')}|${row.kind}|${row.sourceRef}`
    if (batch.has(key)) summary.unchanged++
    batch.set(key, {
      personIndex,
      idNumberSealed: encryptPii(context.piiKey, row.idNumber),
      kind: row.kind,
      validFrom: row.validFrom,
      validTo: row.validTo,
      sourceRef: row.sourceRef,
    })
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
