import { decryptPii, encryptPii } from '@pilot/kit'
import { type Kysely, sql } from 'kysely'
import type { IntakeDatabase } from '../db/schema.ts'

/** Personal data at rest: a form is stored as one AES-256-GCM sealed JSON document under the city's data key. */
export function sealForm(key: Buffer, form: unknown): Buffer {
  return encryptPii(key, JSON.stringify(form))
}

export function openForm<T>(key: Buffer, sealed: Buffer): T {
  return JSON.parse(decryptPii(key, sealed)) as T
}

/**
 * Seals the stored submission responses written before they were sealed (migration
 * 20261203T000000_sealed_idempotency_responses), a batch at a time, until none is left; answers how many it sealed.
 * Safe to run on several workers at once: each row is taken under a skip-locked lock and sealed once.
 */
export async function sealLegacyResponses(db: Kysely<IntakeDatabase>, key: Buffer, batchSize = 500): Promise<number> {
  let sealed = 0
  for (;;) {
    const done = await db.transaction().execute(async (trx) => {
      const { rows } = await sql<{ actor: string; key: string; response: unknown }>`
        select actor, key, response from idempotency_keys where response is not null
        limit ${batchSize} for update skip locked`.execute(trx)
      if (rows.length === 0) return 0
      await sql`
        update idempotency_keys set response = null, response_sealed = sealed.response_sealed
        from unnest(${rows.map((row) => row.actor)}::text[], ${rows.map((row) => row.key)}::text[],
                    ${rows.map((row) => sealForm(key, row.response))}::bytea[]) as sealed(actor, key, response_sealed)
        where idempotency_keys.actor = sealed.actor and idempotency_keys.key = sealed.key`.execute(trx)
      return rows.length
    })
    if (done === 0) return sealed
    sealed += done
  }
}
