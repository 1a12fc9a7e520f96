import { type Kysely, sql } from 'kysely'

/**
 * Audit rows are written unchained inside the transaction of the change they record, and one chainer links them
 * afterwards (cases/audit.ts). Before this, every writer took one advisory lock per city to read the chain's head, so
 * all case traffic of a city queued on a single lock for the rest of its transaction.
 *
 * `chain_seq` is the row's place in the chain. It is not `id`: ids are handed out when rows are inserted, but rows
 * commit in another order, and the chainer links each row once it is committed and visible.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen in time and do not follow the current types
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table audit_log
    alter column prev_hash drop not null,
    alter column hash drop not null,
    add column chain_seq bigint unique`.execute(db)
  // Rows written so far were chained in id order, as they were inserted under the lock.
  await sql`alter table audit_log disable trigger audit_log_no_change`.execute(db)
  await sql`update audit_log set chain_seq = id`.execute(db)
  await sql`alter table audit_log enable trigger audit_log_no_change`.execute(db)
  await sql`alter table audit_log add constraint audit_log_chained_whole
    check ((chain_seq is null and prev_hash is null and hash is null)
        or (chain_seq is not null and prev_hash is not null and hash is not null))`.execute(db)
  await sql`create index audit_log_unchained on audit_log (id) where chain_seq is null`.execute(db)

  // Still append-only: no delete, and the only update is the chainer's one-time link of an unchained row, which may set
  // chain_seq, prev_hash and hash and nothing else.
  await sql`create or replace function audit_log_append_only() returns trigger language plpgsql as $$
    begin
      if tg_op = 'UPDATE' and old.chain_seq is null and new.chain_seq is not null
         and (new.id, new.at, new.actor, new.role, new.city, new.action, new.case_id, new.request_id, new.detail)
             is not distinct from
             (old.id, old.at, old.actor, old.role, old.city, old.action, old.case_id, old.request_id, old.detail)
      then
        return new;
      end if;
      raise exception 'audit_log is append-only';
    end $$`.execute(db)
}
