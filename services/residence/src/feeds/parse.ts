import type { Readable } from 'node:stream'
import { StringDecoder } from 'node:string_decoder'
import { parse as parseCsv } from 'csv-parse'

/** One record of a feed with the line it started on, or why that line could not be read at all. */
export type FeedRecord = { line: number; value: unknown } | { line: number; error: string }

export type FeedFormat = 'ndjson' | 'csv'

const MAX_LINE_BYTES = 64 * 1024

/**
 * NDJSON, one object a line. Reads the stream chunk by chunk (the consumer's pace pulls it: nothing is buffered beyond
 * one chunk and one partial line), so a feed of any size runs in constant memory.
 */
export async function* readNdjson(input: Readable): AsyncGenerator<FeedRecord> {
  // A multi-byte character may straddle two chunks; the decoder holds its first bytes back until the rest arrives.
  const decoder = new StringDecoder('utf8')
  let pending = ''
  let line = 0
  let oversized = false
  for await (const chunk of input) {
    const parts = (pending + (typeof chunk === 'string' ? chunk : decoder.write(chunk as Buffer))).split('\n')
    pending = parts.pop() ?? ''
    for (const text of parts) {
      line++
      if (oversized) {
        oversized = false
        yield { line, error: `line longer than ${MAX_LINE_BYTES} bytes` }
        continue
      }
      const record = parseLine(line, text)
      if (record) yield record
    }
    if (pending.length > MAX_LINE_BYTES) {
      // Drop the rest of an absurd line instead of holding it; it is reported when its newline arrives.
      oversized = true
      pending = ''
    }
  }
  pending += decoder.end()
  if (oversized) yield { line: line + 1, error: `line longer than ${MAX_LINE_BYTES} bytes` }
  else {
    const record = parseLine(line + 1, pending)
    if (record) yield record
  }
}

function parseLine(line: number, text: string): FeedRecord | undefined {
  const trimmed = text.trim()
  if (trimmed === '') return undefined
  try {
    return { line, value: JSON.parse(trimmed) }
  } catch {
    return { line, error: 'not valid JSON' }
  }
}

/**
 * CSV (RFC 4180) with a header row naming the columns. A malformed record is reported by line and skipped; the
 * parser carries on with the next one.
 */
export async function* readCsv(input: Readable): AsyncGenerator<FeedRecord> {
  const skipped: FeedRecord[] = []
  const parser = input.pipe(
    parseCsv({
      columns: (header: string[]) => header.map((name) => name.trim()),
      bom: true,
      trim: true,
      skip_empty_lines: true,
      relax_column_count: false,
      skip_records_with_error: true,
      max_record_size: MAX_LINE_BYTES,
      info: true,
    }),
  )
  parser.on('skip', (error: Error & { lines?: number }) => {
    skipped.push({ line: error.lines ?? 0, error: `not valid CSV (${error.message.replace(/:.*$/, '')})` })
  })
  input.on('error', (error) => parser.destroy(error))
  for await (const { record, info } of parser as AsyncIterable<{
    record: Record<string, string>
    info: { lines: number }
  }>) {
    while (skipped.length > 0) yield skipped.shift() as FeedRecord
    yield { line: info.lines, value: record }
  }
  while (skipped.length > 0) yield skipped.shift() as FeedRecord
}

export function readFeed(format: FeedFormat, input: Readable): AsyncGenerator<FeedRecord> {
  return format === 'csv' ? readCsv(input) : readNdjson(input)
}
