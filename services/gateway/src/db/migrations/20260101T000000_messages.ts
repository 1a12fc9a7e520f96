import { type Kysely, sql } from 'kysely'

// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen in time and do not follow the current types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('messages')
    .addColumn('id', 'uuid', (column) => column.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('direction', 'text', (column) => column.notNull().check(sql`direction in ('inbound', 'outbound')`))
    .addColumn('partner', 'text', (column) => column.notNull())
    .addColumn('message_id', 'uuid', (column) => column.notNull())
    .addColumn('type', 'text', (column) => column.notNull())
    .addColumn('ref', 'text', (column) => column.notNull())
    .addColumn('usr', 'text')
    .addColumn('status', 'text', (column) =>
      column.notNull().check(sql`status in ('received', 'handed_off', 'consumed', 'pending', 'delivered', 'dead')`),
    )
    .addColumn('digest', 'text', (column) => column.notNull())
    .addColumn('body', 'jsonb')
    .addColumn('raw_jws', 'text')
    .addColumn('claims', 'jsonb')
    .addColumn('receipt_jws', 'text')
    .addColumn('receipt_status', 'text')
    .addColumn('attempts', 'integer', (column) => column.notNull().defaultTo(0))
    .addColumn('last_error', 'text')
    .addColumn('created_at', 'timestamptz', (column) => column.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (column) => column.notNull().defaultTo(sql`now()`))
    .addColumn('delivered_at', 'timestamptz')
    .addColumn('handed_off_at', 'timestamptz')
    .addColumn('consumed_at', 'timestamptz')
    // The replay record: a partner's message id is accepted once, whatever happens after.
    .addUniqueConstraint('messages_once', ['direction', 'partner', 'message_id'])
    .execute()
  await db.schema.createIndex('messages_listing').on('messages').columns(['created_at desc', 'id desc']).execute()
  await sql`create index messages_open on messages (direction, status, created_at)
    where status in ('received', 'handed_off', 'pending')`.execute(db)
}
