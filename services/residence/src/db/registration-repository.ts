import { type Kysely, sql, type Transaction } from 'kysely'
import type { ResidenceDatabase } from './schema.ts'
import { type UpsertOutcome, upsertOutcome } from './upsert-outcome.ts'

type Db = Kysely<ResidenceDatabase> | Transaction<ResidenceDatabase>

/** A registration ready for the store: the identity number only as blind index, ciphertext and matching hash. */
export interface SealedRegistration {
  personIndex: Buffer
  idNumberSealed: Buffer
  subject: string
  registeredSince: string
  cancelledOn: string | null
  householdRef: string | null
  sourceRef: string
}

/**
 * Inserts a batch, idempotent on (person, sourceRef). A row already held as it is stays untouched (re-importing a feed
 * changes nothing); one whose dates or household changed — a registration since cancelled — is updated. The subject
 * is compared too: it only differs if the pilot's matching key was replaced, and then the stored one is stale.
 */
export async function upsertRegistrations(
  db: Db,
  city: string,
  importId: string,
  rows: SealedRegistration[],
): Promise<UpsertOutcome> {
  if (rows.length === 0) return { inserted: 0, updated: 0, unchanged: 0 }
  const { rows: written } = await sql<{ inserted: boolean }>`
    insert into registrations (
      person_index, id_number_sealed, subject, city, household_ref, registered_since, cancelled_on, source_ref,
      import_id
    )
    select
      person_index, id_number_sealed, subject, ${city}, household_ref, registered_since, cancelled_on, source_ref,
      ${importId}::uuid
    from unnest(
      ${rows.map((row) => row.personIndex)}::bytea[],
      ${rows.map((row) => row.idNumberSealed)}::bytea[],
      ${rows.map((row) => row.subject)}::text[],
      ${rows.map((row) => row.householdRef)}::text[],
      ${rows.map((row) => row.registeredSince)}::date[],
      ${rows.map((row) => row.cancelledOn)}::date[],
      ${rows.map((row) => row.sourceRef)}::text[]
    ) as feed(person_index, id_number_sealed, subject, household_ref, registered_since, cancelled_on, source_ref)
    on conflict (person_index, source_ref) do update
      set subject = excluded.subject, household_ref = excluded.household_ref,
        registered_since = excluded.registered_since, cancelled_on = excluded.cancelled_on,
        import_id = excluded.import_id, updated_at = now()
      where (
        registrations.subject, registrations.household_ref, registrations.registered_since, registrations.cancelled_on
      ) is distinct from (excluded.subject, excluded.household_ref, excluded.registered_since, excluded.cancelled_on)
    returning (xmax = 0) as inserted`.execute(db)
  return upsertOutcome(written, rows.length)
}

export interface StandingRegistration {
  registeredSince: string
  householdRef: string | null
}

/**
 * The registration of `subject` that stands on `asOf` (registered on or before it, not cancelled by then), served by
 * the subject index. Should two records overlap, the one registered earliest answers, so the answer does not depend
 * on the order the registry delivered them in.
 */
export async function findStandingRegistration(
  db: Db,
  subject: string,
  asOf: string,
): Promise<StandingRegistration | undefined> {
  return db
    .selectFrom('registrations')
    .select(['registered_since as registeredSince', 'household_ref as householdRef'])
    .where('subject', '=', subject)
    .where('registered_since', '<=', asOf)
    .where((eb) => eb.or([eb('cancelled_on', 'is', null), eb('cancelled_on', '>', asOf)]))
    .orderBy('registered_since')
    .orderBy('source_ref')
    .limit(1)
    .executeTakeFirst()
}
