import { type Kysely, sql } from 'kysely'

// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen in time and do not follow the current types
export async function up(db: Kysely<any>): Promise<void> {
  // The stored answer to a submission is the case view: the applicant's name and birth date among it. It was kept as
  // plain jsonb beside a form sealed for exactly that reason; from now on it is sealed under the same key. Rows
  // written before stay readable until the intake worker seals them (sealLegacyResponses): a migration has no key.
  await db.schema.alterTable('idempotency_keys').addColumn('response_sealed', 'bytea').execute()
  await sql`alter table idempotency_keys alter column response drop not null`.execute(db)
  await sql`alter table idempotency_keys add constraint idempotency_keys_one_response
    check ((response is null) <> (response_sealed is null))`.execute(db)
}
