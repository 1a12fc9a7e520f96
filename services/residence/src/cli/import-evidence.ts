/**
 * Loads a registry feed from a file, with a progress bar: the same importer as POST /v1/residence/evidence:import
 * (or registrations:import with --records registrations), run directly against the city database (same environment
 * variables as the service).
 *
 *   pnpm --filter @pilot/residence import:evidence <file.ndjson|file.csv> [--records evidence|registrations]
 *     [--format ndjson|csv] [--errors bad.ndjson]
 *
 * Exit code: 0 when every line loaded, 2 when some lines were rejected (listed in --errors or on stderr), 1 on failure,
 * 64 on a usage error.
 */
import { createReadStream, createWriteStream, statSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { ConfigError, createDb } from '@pilot/kit'
import { SingleBar } from 'cli-progress'
import { readResidenceConfig } from '../config.ts'
import type { ResidenceDatabase } from '../db/schema.ts'
import { importFeed } from '../feeds/import.ts'
import type { FeedFormat } from '../feeds/parse.ts'
import { FEED_RECORD_TYPES, type FeedRecordName } from '../feeds/records.ts'

const USAGE =
  'usage: import-evidence <file> [--records evidence|registrations] [--format ndjson|csv] [--errors bad-lines.ndjson]\n'

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { records: { type: 'string', default: 'evidence' }, format: { type: 'string' }, errors: { type: 'string' } },
})
const file = positionals[0]
if (!file || !Object.hasOwn(FEED_RECORD_TYPES, values.records)) {
  process.stderr.write(USAGE)
  process.exit(64)
}
const records = FEED_RECORD_TYPES[values.records as FeedRecordName]
const format: FeedFormat = values.format === 'csv' || (!values.format && file.endsWith('.csv')) ? 'csv' : 'ndjson'

let config: ReturnType<typeof readResidenceConfig>
try {
  config = readResidenceConfig()
} catch (error) {
  if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`)
    process.exit(78)
  }
  throw error
}

const db = createDb<ResidenceDatabase>({ url: config.databaseUrl, schema: 'residence', poolMax: 2 })
const size = statSync(file).size
const input = createReadStream(file, { highWaterMark: 256 * 1024 })
const errorsOut = values.errors ? createWriteStream(values.errors) : undefined
const bar = new SingleBar({
  format: `importing ${records.name} {bar} {percentage}% | {received} rows | {rejected} rejected | eta {eta_formatted}`,
  hideCursor: true,
  noTTYOutput: true,
  notTTYSchedule: 5000,
})
bar.start(size, 0, { received: 0, rejected: 0 })

try {
  const summary = await importFeed(
    {
      db,
      city: config.city,
      timeZone: config.pilot.timeZone,
      blindIndexKey: config.blindIndexKey,
      piiKey: config.piiKey,
      matchingKey: config.matchingKey,
      batchSize: config.importBatchSize,
      actor: `cli:${process.env.USER ?? 'operator'}`,
      onReject: (bad) => {
        if (errorsOut) errorsOut.write(`${JSON.stringify(bad)}\n`)
        else process.stderr.write(`line ${bad.line}: ${bad.reason}\n`)
      },
    },
    records,
    format,
    input,
    (progress) => bar.update(input.bytesRead, { received: progress.received, rejected: progress.rejected }),
  )
  bar.update(size)
  bar.stop()
  errorsOut?.end()
  const { errors: _listed, ...totals } = summary
  process.stdout.write(`${JSON.stringify(totals)}\n`)
  process.exitCode = summary.rejected > 0 ? 2 : 0
} catch (error) {
  bar.stop()
  process.stderr.write(`import failed: ${(error as Error).message}\n`)
  process.exitCode = 1
} finally {
  await db.destroy()
}
