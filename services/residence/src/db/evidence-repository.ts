import { binaryArray } from '@pilot/kit'
import type { EvidenceKind } from '@pilot/schemas'
import { type Kysely, sql, type Transaction } from 'kysely'
import type pg from 'pg'
import type { ResidenceDatabase } from './schema.ts'
import { type UpsertOutcome, upsertOutcome } from './upsert-outcome.ts'

type Db = Kysely<ResidenceDatabase> | Transaction<ResidenceDatabase>

/** A feed row ready for the store: the identity number only as blind index and ciphertext. */
export interface SealedEvidence {
  personIndex: Buffer
  idNumberSealed: Buffer
  kind: EvidenceKind
  validFrom: string
  validTo: string | null
  sourceRef: string
}

/**
 * Inserts a batch, idempotent on (person, kind, sourceRef). A row already held with the same dates is left alone
 * (re-importing a feed changes nothing); one whose dates changed — a registration that has since ended — is
 * updated. One statement per batch: arrays are unnested server-side.
 */
export async function upsertEvidence(
  db: Db,
  city: string,
  importId: string,
  rows: SealedEvidence[],
): Promise<UpsertOutcome> {
  if (rows.length === 0) return { inserted: 0, updated: 0, unchanged: 0 }
  const { rows: written } = await sql<{ inserted: boolean }>`
    insert into evidence (person_index, id_number_sealed, city, kind, valid_from, valid_to, source_ref, import_id)
    select person_index, id_number_sealed, ${city}, kind, valid_from, valid_to, source_ref, ${importId}::uuid
    from unnest(
      ${rows.map((row) => row.personIndex)}::bytea[],
      ${rows.map((row) => row.idNumberSealed)}::bytea[],
      ${rows.map((row) => row.kind)}::text[],
      ${rows.map((row) => row.validFrom)}::date[],
      ${rows.map((row) => row.validTo)}::date[],
      ${rows.map((row) => row.sourceRef)}::text[]
    ) as feed(person_index, id_number_sealed, kind, valid_from, valid_to, source_ref)
    on conflict (person_index, kind, source_ref) do update
      set valid_from = excluded.valid_from, valid_to = excluded.valid_to, import_id = excluded.import_id, updated_at = now()
      where (evidence.valid_from, evidence.valid_to) is distinct from (excluded.valid_from, excluded.valid_to)
    returning (xmax = 0) as inserted`.execute(db)
  return upsertOutcome(written, rows.length)
}

export interface StoredEvidence {
  kind: EvidenceKind
  validFrom: string
  validTo: string | null
  sourceRef: string
}

/**
 * Every record of the given kinds of one or many people (a verification, or a batch of them): one statement, served by
 * the (person_index, kind, source_ref) index and prepared by name on each connection (it runs on every verification).
 * Keyed by the hex of each person's blind index; a person without records has no entry.
 */
export async function findEvidenceOfMany(
  pool: pg.Pool,
  personIndexes: Buffer[],
  kinds: readonly string[],
): Promise<Map<string, StoredEvidence[]>> {
  const { rows } = await pool.query<StoredEvidence & { person: string }>({
    name: 'residence-find-evidence-many',
    text: `select encode(person_index, 'hex') as person, kind, valid_from as "validFrom", valid_to as "validTo",
             source_ref as "sourceRef"
           from evidence where person_index = any($1::bytea[]) and kind = any($2::text[])
           order by person_index, valid_from`,
    // Binary arrays: no hex-escaped array literal to build here or to parse in PostgreSQL (see kit's binaryArray).
    values: [binaryArray('bytea', personIndexes), binaryArray('text', kinds)],
  })
  const byPerson = new Map<string, StoredEvidence[]>()
  for (const { person, ...evidence } of rows) {
    const records = byPerson.get(person)
    if (records) records.push(evidence)
    else byPerson.set(person, [evidence])
  }
  return byPerson
}
