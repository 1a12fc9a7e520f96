import { type Kysely, sql } from 'kysely'

// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen in time and do not follow the current types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('registrations')
    .addColumn('id', 'bigint', (column) => column.primaryKey().generatedAlwaysAsIdentity())
    .addColumn('person_index', 'bytea', (column) => column.notNull())
    .addColumn('id_number_sealed', 'bytea', (column) => column.notNull())
    .addColumn('subject', 'text', (column) => column.notNull())
    .addColumn('city', 'text', (column) => column.notNull())
    .addColumn('household_ref', 'text')
    .addColumn('registered_since', 'date', (column) => column.notNull())
    .addColumn('cancelled_on', 'date')
    .addColumn('source_ref', 'text', (column) => column.notNull())
    .addColumn('import_id', 'uuid', (column) => column.notNull())
    .addColumn('imported_at', 'timestamptz', (column) => column.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (column) => column.notNull().defaultTo(sql`now()`))
    .addCheckConstraint('registrations_dates', sql`cancelled_on is null or cancelled_on >= registered_since`)
    // The import's idempotency key.
    .addUniqueConstraint('registrations_identity', ['person_index', 'source_ref'])
    .execute()

  // A confirmation arrives with the pilot-wide matching hash only, never the number: it looks up by subject.
  await db.schema.createIndex('registrations_subject').on('registrations').column('subject').execute()
}
