import type { Migrations } from '@pilot/kit'

/** Timestamp-named migrations, applied in name order. Each takes Kysely<any>: it is frozen in time. */
export const migrations: Migrations = {}
