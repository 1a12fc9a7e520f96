/**
 * Group commit for one hot statement: callers ask for one row each; the rows asked for while a statement runs go
 * together into the next one (at most `maxRows`), so under load many messages share one statement, one round trip and
 * one commit, and alone a row is written at once. Each caller still waits for its own row, and sees the statement's
 * failure as its own.
 *
 * The gateway's multi-row statements (built on unnest of one array per column) cost PostgreSQL about as much as one
 * single-row statement plus a fraction per extra row; the commit, whose WAL flush was a third of PostgreSQL's CPU per
 * statement in the benchmark, is paid once per statement.
 *
 * A failed statement of several rows is tried again row by row before anyone is answered, so a row PostgreSQL refuses
 * fails only its own caller. Statements never overlap, so a batch holds at most one pool connection.
 */
interface Waiting<Item, Result> {
  item: Item
  resolve: (result: Result) => void
  reject: (error: unknown) => void
}

export class Batcher<Item, Result> {
  #waiting: Waiting<Item, Result>[] = []
  #running = false

  constructor(
    /** Runs one statement for these items, answering one result per item, in their order. */
    private readonly execute: (items: Item[]) => Promise<Result[]>,
    private readonly maxRows = 64,
  ) {}

  run(item: Item): Promise<Result> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ item, resolve, reject })
      if (!this.#running) void this.#drain()
    })
  }

  async #drain(): Promise<void> {
    this.#running = true
    try {
      while (this.#waiting.length > 0) await this.#settle(this.#waiting.splice(0, this.maxRows))
    } finally {
      this.#running = false
    }
  }

  async #settle(batch: Waiting<Item, Result>[]): Promise<void> {
    try {
      const results = await this.execute(batch.map((waiting) => waiting.item))
      for (const [index, waiting] of batch.entries()) waiting.resolve(results[index] as Result)
    } catch (error) {
      const [only] = batch
      if (batch.length === 1 && only) return only.reject(error)
      await Promise.all(
        batch.map((waiting) =>
          this.execute([waiting.item]).then(([result]) => waiting.resolve(result as Result), waiting.reject),
        ),
      )
    }
  }
}
