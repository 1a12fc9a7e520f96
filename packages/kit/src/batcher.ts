import { Histogram, type Registry } from 'prom-client'

/**
 * Group commit for work that arrives one item at a time (a request each) but costs far less per item when written
 * together: one statement that inserts the rows of many submissions costs PostgreSQL and the driver much less per
 * submission than one statement each, and saves a round trip (a socket write and a wake-up on each side) per item.
 *
 * No timer: an item is sent at once while fewer than `concurrency` batches are in flight, so a lone request waits for
 * nothing. Items that arrive while every slot is busy wait for the next free slot and go together (up to `maxSize`),
 * so batches grow with the load by themselves.
 *
 * A failed batch is tried again one item at a time, so an item that cannot be written fails alone and the others
 * succeed as they would have without batching. `run` must therefore be all-or-nothing for a batch (one statement, or
 * one transaction), which makes trying its items again safe. Where a batch fails only as a whole (a call to a service
 * that answers for each item separately, and fails only when it is unreachable), `retryEach: false` fails its items
 * at once rather than calling an unreachable service once more per item.
 */
export interface BatcherOptions<T, R> {
  /** Writes a batch, all or nothing; answers one result per item, in the items' order. */
  run: (items: T[]) => Promise<R[]>
  /** Batches in flight at once (e.g. a share of the connection pool). */
  concurrency: number
  /** The largest batch. */
  maxSize: number
  /** Whether a failed batch of several items is tried again item by item (default true). */
  retryEach?: boolean
  /** Told the size of each batch as it is sent (a metric: how much the batching saves under the present load). */
  onBatch?: (size: number) => void
}

export interface Batcher<T, R> {
  /** Adds an item to the next batch; resolves with its result, or rejects with its batch's (or its own) error. */
  add(item: T): Promise<R>
  /** Items waiting for a slot, and batches in flight (for metrics and tests). */
  readonly waiting: number
  readonly inFlight: number
}

interface Pending<T, R> {
  item: T
  resolve: (result: R) => void
  reject: (error: unknown) => void
}

export function createBatcher<T, R>(options: BatcherOptions<T, R>): Batcher<T, R> {
  if (!(options.concurrency >= 1) || !(options.maxSize >= 1)) {
    throw new RangeError('a batcher needs a concurrency and a largest batch of at least 1')
  }
  const queue: Pending<T, R>[] = []
  let inFlight = 0

  const runChecked = async (items: T[]): Promise<R[]> => {
    const results = await options.run(items)
    if (results.length !== items.length) {
      throw new Error(`a batch of ${items.length} answered ${results.length} results`)
    }
    return results
  }

  const settle = async (batch: Pending<T, R>[]) => {
    try {
      const results = await runChecked(batch.map((pending) => pending.item))
      batch.forEach((pending, index) => {
        pending.resolve(results[index] as R)
      })
    } catch (error) {
      if (batch.length === 1 || options.retryEach === false) {
        for (const pending of batch) pending.reject(error)
        return
      }
      // Which item failed is not known: each goes again on its own, in this slot.
      for (const pending of batch) {
        try {
          pending.resolve(((await runChecked([pending.item])) as R[])[0] as R)
        } catch (own) {
          pending.reject(own)
        }
      }
    }
  }

  const pump = () => {
    while (inFlight < options.concurrency && queue.length > 0) {
      const batch = queue.splice(0, options.maxSize)
      inFlight++
      options.onBatch?.(batch.length)
      void settle(batch).finally(() => {
        inFlight--
        pump()
      })
    }
  }

  return {
    add: (item) =>
      new Promise<R>((resolve, reject) => {
        queue.push({ item, resolve, reject })
        pump()
      }),
    get waiting() {
      return queue.length
    },
    get inFlight() {
      return inFlight
    },
  }
}

/** A histogram of batch sizes, one series per batcher, in a service's metrics registry. */
export function batchSizeMetric(registry: Registry): (batcher: string) => (size: number) => void {
  const sizes = new Histogram({
    name: 'batch_size',
    help: 'Items per batch written or sent together (1: no other item was waiting)',
    labelNames: ['batcher'],
    buckets: [1, 2, 4, 8, 16, 32, 64, 128],
    registers: [registry],
  })
  return (batcher) => (size) => sizes.observe({ batcher }, size)
}
