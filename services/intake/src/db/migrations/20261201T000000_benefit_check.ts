import { type Kysely, sql } from 'kysely'

// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen in time and do not follow the current types
export async function up(db: Kysely<any>): Promise<void> {
  // Every household member's matching hash, so that another city's duplicate-benefit check finds a case by any of them.
  await db.schema
    .alterTable('cases')
    .addColumn('household_subjects', sql`text[]`, (column) => column.notNull().defaultTo(sql`'{}'::text[]`))
    .addColumn('benefit_check', 'jsonb')
    .execute()
  // The other members of existing cases are only in the sealed forms, which a migration cannot open; their applicants
  // at least are found.
  await sql`update cases set household_subjects = array[applicant_subject]`.execute(db)
  await sql`create index cases_household_subjects on cases using gin (household_subjects)`.execute(db)
}
