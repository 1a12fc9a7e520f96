import { type PeriodicPass, startPeriodicPass } from '@pilot/kit'
import { type Kysely, sql } from 'kysely'
import type { IntakeDatabase } from '../db/schema.ts'
import { sealLegacyResponses } from './sealing.ts'

/** How often the housekeeping pass runs (and how soon it is tried again after a failure). */
const PASS_INTERVAL_MS = 3600_000

/**
 * Deletes the Idempotency-Keys older than `retentionDays`, a batch at a time; answers how many. A key is there so that
 * a caseworker's retry — after a timeout, a crash between commit and answer — gets the first answer; retries come
 * within minutes, and a key kept for ever would keep the sealed answer (the applicant's name) for ever too. The
 * statement scans the table: it runs once an hour, where an index on created_at would cost every submission.
 */
export async function purgeExpiredIdempotencyKeys(
  db: Kysely<IntakeDatabase>,
  retentionDays: number,
  batchSize = 1000,
): Promise<number> {
  let purged = 0
  for (;;) {
    const { numAffectedRows } = await sql`
      delete from idempotency_keys where (actor, key) in (
        select actor, key from idempotency_keys where created_at < now() - make_interval(days => ${retentionDays})
        limit ${batchSize})`.execute(db)
    const deleted = Number(numAffectedRows ?? 0)
    purged += deleted
    if (deleted < batchSize) return purged
  }
}

/**
 * The intake worker's care of stored submission answers, at start and then hourly: seal those written before answers
 * were sealed, and delete the expired ones. A failed pass is logged and tried again at the next.
 */
export function startIdempotencyHousekeeping(
  db: Kysely<IntakeDatabase>,
  options: { piiKey: Buffer; retentionDays: number },
  log: { info: (object: object, message: string) => void; warn: (object: object, message: string) => void },
): PeriodicPass {
  const housekeeping = startPeriodicPass(
    async () => {
      const sealed = await sealLegacyResponses(db, options.piiKey)
      if (sealed > 0) log.info({ sealed }, 'sealed stored submission answers written before sealing')
      const purged = await purgeExpiredIdempotencyKeys(db, options.retentionDays)
      if (purged > 0) log.info({ purged, retentionDays: options.retentionDays }, 'deleted expired Idempotency-Keys')
    },
    PASS_INTERVAL_MS,
    (error) => log.warn({ err: error.message }, 'Idempotency-Key housekeeping failed; trying again at the next pass'),
  )
  void housekeeping.now()
  return housekeeping
}
