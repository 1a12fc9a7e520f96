import { type Kysely, sql } from 'kysely'

/**
 * A case.transfer outbox row no longer stores its message body: the body is built from the case (cases/transfer.ts),
 * by the submission when it hands the message to the gateway and by the relay when it has to send it again. The body
 * was a plaintext copy of the applicant's and household's personal data beside the sealed form, and 1.7 kB of every
 * submission's writes.
 *
 * Every other message keeps its body (a reviewer's decision, say, is not derivable from anything else), which the
 * check enforces. Transfers that already have a delivery outcome are never read again (the relay sends only rows
 * without one), so their stored bodies are dropped here; those still waiting keep theirs, and the relay uses a stored
 * body when there is one.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen in time and do not follow the current types
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table outbox alter column body drop not null`.execute(db)
  await sql`alter table outbox add constraint outbox_body_or_transfer
    check (body is not null or (type = 'case.transfer' and case_id is not null))`.execute(db)
  await sql`update outbox set body = null
    where type = 'case.transfer' and case_id is not null and outcome is not null`.execute(db)
}
