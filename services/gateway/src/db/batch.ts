import { type Batcher, createBatcher } from '@pilot/kit'

export type { Batcher }

/**
 * Group commit for one hot statement (kit's batcher, one statement at a time): callers ask for one row each; the rows
 * asked for while a statement runs go together into the next one (at most 64), so under load many messages share one
 * statement, one round trip and one commit, and alone a row is written at once. Each caller still waits for its own
 * row, and a statement PostgreSQL refuses is tried again row by row, so a refused row fails only its own caller.
 *
 * The gateway's multi-row statements (built on unnest of one array per column) cost PostgreSQL about as much as one
 * single-row statement plus a fraction per extra row; the commit, whose WAL flush was a third of PostgreSQL's CPU per
 * statement in the benchmark, is paid once per statement. Statements never overlap, so a batcher holds at most one
 * pool connection.
 */
export function statementBatcher<Item, Result>(execute: (items: Item[]) => Promise<Result[]>): Batcher<Item, Result> {
  return createBatcher({ run: execute, concurrency: 1, maxSize: 64 })
}
