import { type Kysely, sql } from 'kysely'

// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen in time and do not follow the current types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('cases')
    .addColumn('id', 'uuid', (column) => column.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('reference', 'text', (column) => column.notNull())
    .addColumn('side', 'text', (column) => column.notNull().check(sql`side in ('outgoing', 'incoming')`))
    .addColumn('partner_city', 'text', (column) => column.notNull())
    .addColumn('status', 'text', (column) => column.notNull())
    .addColumn('category', 'text', (column) => column.notNull())
    .addColumn('applicant_subject', 'text', (column) => column.notNull())
    .addColumn('applicant_index', 'bytea')
    .addColumn('caseworker_id', 'text')
    .addColumn('form_sealed', 'bytea', (column) => column.notNull())
    .addColumn('household_size', 'integer', (column) => column.notNull())
    .addColumn('residence', 'jsonb')
    .addColumn('attestation', 'text')
    .addColumn('review_deadline', 'date')
    .addColumn('review_deadline_provisional', 'boolean', (column) => column.notNull().defaultTo(false))
    .addColumn('partner_latest', 'jsonb')
    .addColumn('decision', 'jsonb')
    .addColumn('open_info_request', 'jsonb')
    .addColumn('submitted_at', 'timestamptz', (column) => column.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (column) => column.notNull().defaultTo(sql`now()`))
    // One case per reference and side: a transfer received twice still makes one incoming case.
    .addUniqueConstraint('cases_reference', ['side', 'reference'])
    .execute()
  await db.schema.createIndex('cases_listing').on('cases').columns(['side', 'submitted_at desc', 'id desc']).execute()
  await db.schema.createIndex('cases_applicant').on('cases').columns(['applicant_subject']).execute()

  await db.schema
    .createTable('case_events')
    .addColumn('id', 'bigint', (column) => column.primaryKey().generatedAlwaysAsIdentity())
    .addColumn('case_id', 'uuid', (column) => column.notNull().references('cases.id'))
    .addColumn('at', 'timestamptz', (column) => column.notNull().defaultTo(sql`clock_timestamp()`))
    .addColumn('action', 'text', (column) => column.notNull())
    .addColumn('from_status', 'text')
    .addColumn('to_status', 'text', (column) => column.notNull())
    .addColumn('actor', 'text', (column) => column.notNull())
    .addColumn('role', 'text', (column) => column.notNull())
    .addColumn('detail', 'jsonb')
    .addColumn('message_id', 'uuid')
    .addUniqueConstraint('case_events_message_once', ['case_id', 'message_id'])
    .execute()
  await db.schema.createIndex('case_events_case').on('case_events').columns(['case_id', 'id']).execute()

  await db.schema
    .createTable('outbox')
    .addColumn('id', 'uuid', (column) => column.primaryKey())
    .addColumn('case_id', 'uuid', (column) => column.references('cases.id'))
    .addColumn('to_city', 'text', (column) => column.notNull())
    .addColumn('type', 'text', (column) => column.notNull())
    .addColumn('ref', 'text', (column) => column.notNull())
    .addColumn('usr', 'text')
    .addColumn('body', 'jsonb', (column) => column.notNull())
    .addColumn('created_at', 'timestamptz', (column) => column.notNull().defaultTo(sql`now()`))
    .addColumn('relayed_at', 'timestamptz')
    .addColumn('outcome', 'text')
    .addColumn('outcome_at', 'timestamptz')
    .addColumn('outcome_reason', 'text')
    .execute()
  await sql`create index outbox_open on outbox (created_at) where outcome is null`.execute(db)

  await db.schema
    .createTable('idempotency_keys')
    .addColumn('actor', 'text', (column) => column.notNull())
    .addColumn('key', 'text', (column) => column.notNull())
    .addColumn('request_hash', 'text', (column) => column.notNull())
    .addColumn('status_code', 'integer', (column) => column.notNull())
    .addColumn('response', 'jsonb', (column) => column.notNull())
    .addColumn('created_at', 'timestamptz', (column) => column.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('idempotency_keys_pk', ['actor', 'key'])
    .execute()

  await db.schema
    .createTable('inbound_processed')
    .addColumn('message_id', 'uuid', (column) => column.primaryKey())
    .addColumn('from_city', 'text', (column) => column.notNull())
    .addColumn('type', 'text', (column) => column.notNull())
    .addColumn('outcome', 'text', (column) => column.notNull())
    .addColumn('processed_at', 'timestamptz', (column) => column.notNull().defaultTo(sql`now()`))
    .execute()

  await db.schema
    .createTable('audit_log')
    .addColumn('id', 'bigint', (column) => column.primaryKey().generatedAlwaysAsIdentity())
    .addColumn('at', 'timestamptz', (column) => column.notNull())
    .addColumn('actor', 'text', (column) => column.notNull())
    .addColumn('role', 'text', (column) => column.notNull())
    .addColumn('city', 'text', (column) => column.notNull())
    .addColumn('action', 'text', (column) => column.notNull())
    .addColumn('case_id', 'uuid')
    .addColumn('request_id', 'text')
    .addColumn('detail', 'jsonb')
    .addColumn('prev_hash', 'text', (column) => column.notNull())
    .addColumn('hash', 'text', (column) => column.notNull().unique())
    .execute()
  await db.schema.createIndex('audit_case').on('audit_log').columns(['case_id', 'id']).execute()
  // Append-only: the service's role may insert and read, never change or delete (a trigger, so it holds for any role
  // that does not first drop it — and dropping it is itself visible in the schema).
  await sql`create function audit_log_append_only() returns trigger language plpgsql as $$
    begin raise exception 'audit_log is append-only'; end $$`.execute(db)
  await sql`create trigger audit_log_no_change before update or delete on audit_log
    for each row execute function audit_log_append_only()`.execute(db)
}
