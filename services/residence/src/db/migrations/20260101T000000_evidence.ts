import { type Kysely, sql } from 'kysely'

// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen in time and do not follow the current types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('imports')
    .addColumn('id', 'uuid', (column) => column.primaryKey())
    .addColumn('record_type', 'text', (column) => column.notNull())
    .addColumn('format', 'text', (column) => column.notNull())
    .addColumn('actor', 'text', (column) => column.notNull())
    .addColumn('started_at', 'timestamptz', (column) => column.notNull().defaultTo(sql`now()`))
    .addColumn('finished_at', 'timestamptz')
    .addColumn('received', 'integer', (column) => column.notNull().defaultTo(0))
    .addColumn('inserted', 'integer', (column) => column.notNull().defaultTo(0))
    .addColumn('updated', 'integer', (column) => column.notNull().defaultTo(0))
    .addColumn('unchanged', 'integer', (column) => column.notNull().defaultTo(0))
    .addColumn('rejected', 'integer', (column) => column.notNull().defaultTo(0))
    .execute()

  await db.schema
    .createTable('evidence')
    .addColumn('id', 'bigint', (column) => column.primaryKey().generatedAlwaysAsIdentity())
    .addColumn('person_index', 'bytea', (column) => column.notNull())
    .addColumn('id_number_sealed', 'bytea', (column) => column.notNull())
    .addColumn('city', 'text', (column) => column.notNull())
    .addColumn('kind', 'text', (column) =>
      column
        .notNull()
        .check(sql`kind in ('residence_registration', 'residence_permit', 'social_insurance', 'rental_registration')`),
    )
    .addColumn('valid_from', 'date', (column) => column.notNull())
    .addColumn('valid_to', 'date')
    .addColumn('source_ref', 'text', (column) => column.notNull())
    .addColumn('import_id', 'uuid', (column) => column.notNull())
    .addColumn('imported_at', 'timestamptz', (column) => column.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (column) => column.notNull().defaultTo(sql`now()`))
    .addCheckConstraint('evidence_dates', sql`valid_to is null or valid_to >= valid_from`)
    // The import's idempotency key, and (person_index first) the index every verification looks up by.
    .addUniqueConstraint('evidence_identity', ['person_index', 'kind', 'source_ref'])
    .execute()
}
