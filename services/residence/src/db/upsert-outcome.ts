/** What a batch upsert did to each of its rows. */
export interface UpsertOutcome {
  inserted: number
  updated: number
  unchanged: number
}

/**
 * Counts a batch from the rows an `insert … on conflict do update … where <changed> returning (xmax = 0) as inserted`
 * wrote: a fresh row has no xmax, an updated one has; a row left alone is not returned at all.
 */
export function upsertOutcome(written: readonly { inserted: boolean }[], batchSize: number): UpsertOutcome {
  const inserted = written.filter((row) => row.inserted).length
  return { inserted, updated: written.length - inserted, unchanged: batchSize - written.length }
}
