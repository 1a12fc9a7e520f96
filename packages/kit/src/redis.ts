import {
  type ConnectionOptions,
  type Job,
  type Processor,
  Queue,
  type QueueOptions,
  Worker,
  type WorkerOptions,
} from 'bullmq'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Redis, type RedisOptions } from 'ioredis'

export interface RedisConnectionOptions {
  url: string
  /**
   * `command`: connections used while serving a request. They fail fast when Redis is down (no offline queue, one
   * retry) so a handler never hangs; durable work waits in the PostgreSQL outbox instead.
   * `worker`: blocking connections for BullMQ workers, which must retry forever (`maxRetriesPerRequest: null`).
   */
  purpose: 'command' | 'worker'
  connectionName?: string
}

/**
 * Deletes every key under `prefix:` (a city's queues, a test's or a benchmark's keys), scanning rather than KEYS so a
 * large Redis is not blocked; answers how many were deleted.
 */
export async function unlinkKeysUnder(redis: Redis, prefix: string): Promise<number> {
  let removed = 0
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000)
    cursor = next
    if (keys.length > 0) removed += await redis.unlink(...keys)
  } while (cursor !== '0')
  return removed
}

export function createRedis(options: RedisConnectionOptions): Redis {
  const common: RedisOptions = {
    lazyConnect: true,
    connectionName: options.connectionName,
    // Reconnect with a capped backoff for as long as the process lives; Redis coming back must need no restart.
    retryStrategy: (attempt) => Math.min(100 * 2 ** Math.min(attempt, 5), 2000),
    connectTimeout: 3000,
  }
  const redis =
    options.purpose === 'command'
      ? new Redis(options.url, { ...common, enableOfflineQueue: false, maxRetriesPerRequest: 1 })
      : new Redis(options.url, { ...common, enableOfflineQueue: true, maxRetriesPerRequest: null })
  // Connection errors are reported through readiness and metrics; an unhandled 'error' event would crash the process.
  redis.on('error', () => {})
  return redis
}

const WATCHDOG_INTERVAL_MS = 5000
/** Longer than any job of ours takes (deliveries time out in seconds), so a busy worker is never taken for a stuck one. */
const STUCK_AFTER_MS = 20_000

interface Supervised {
  name: string
  /** Undefined until Redis first answers, and while a stuck worker is being replaced. */
  worker?: Worker
  connection?: Redis
  lastProgress: number
  replaced?: number
  make: () => { worker: Worker; connection: Redis }
  /** The caller's listeners, put on every worker made for this queue. */
  listeners: [string, (...args: never[]) => void][]
  ready: (() => void)[]
}

/** A queue's worker as the registry keeps it: made once Redis answers, replaced if it gets stuck. */
export interface SupervisedWorker<Payload> {
  on(event: 'failed', listener: (job: Job<Payload> | undefined, error: Error) => void): void
  on(event: 'completed', listener: (job: Job<Payload>) => void): void
  /** Resolves once a worker is made and connected. */
  waitUntilReady(): Promise<void>
}

/**
 * Typed access to BullMQ queues: `Payloads` maps each queue name to its job payload (one map per service, as in
 * Infisical's queue service). Every queue and worker uses the instance's key prefix, so cities sharing one Redis in the
 * local pilot, and tests sharing one Redis, never see each other's jobs.
 */
export class QueueRegistry<Payloads extends Record<string, unknown>> {
  private readonly queues = new Map<string, Queue>()
  private readonly supervised: Supervised[] = []
  private readonly workerConnections: Redis[] = []
  private closed = false
  private watchdog: NodeJS.Timeout | undefined
  /** Told when the watchdog replaces a stuck worker (for the service's log). */
  onWorkerReplaced: ((queue: string, waiting: number) => void) | undefined

  constructor(
    private readonly connection: Redis,
    private readonly redisUrl: string,
    readonly prefix: string,
  ) {}

  queue<Name extends keyof Payloads & string>(name: Name, options: Omit<QueueOptions, 'connection' | 'prefix'> = {}) {
    let queue = this.queues.get(name)
    if (!queue) {
      queue = new Queue(name, { ...options, connection: this.connection as ConnectionOptions, prefix: this.prefix })
      queue.on('error', () => {})
      this.queues.set(name, queue)
    }
    return queue as Queue<Payloads[Name], unknown, string>
  }

  worker<Name extends keyof Payloads & string>(
    name: Name,
    processor: Processor<Payloads[Name], unknown, string>,
    options: Omit<WorkerOptions, 'connection' | 'prefix'> = {},
  ): SupervisedWorker<Payloads[Name]> {
    const make = () => {
      const connection = createRedis({ url: this.redisUrl, purpose: 'worker', connectionName: `worker:${name}` })
      this.workerConnections.push(connection)
      const worker = new Worker<Payloads[Name], unknown, string>(name, processor, {
        // After a failed job fetch (Redis gone), try again in a second rather than BullMQ's 15 s.
        runRetryDelay: 1000,
        ...options,
        connection: connection as ConnectionOptions,
        prefix: this.prefix,
        autorun: false,
      })
      worker.on('error', () => {})
      return { worker: worker as unknown as Worker, connection }
    }
    const supervised: Supervised = { name, lastProgress: Date.now(), make, listeners: [], ready: [] }
    this.supervised.push(supervised)
    this.bringUp(supervised)
    this.startWatchdog()
    return {
      on: (event, listener) => {
        supervised.listeners.push([event, listener as never])
        supervised.worker?.on(event as never, listener as never)
      },
      waitUntilReady: () =>
        new Promise<void>((resolve) => {
          if (supervised.worker) resolve()
          else supervised.ready.push(resolve)
        }).then(() => supervised.worker?.waitUntilReady().then(() => undefined)),
    }
  }

  /**
   * Makes the worker once Redis answers, and keeps it running for as long as the registry is open. A BullMQ Worker
   * constructed while Redis is unreachable never fetches a job once Redis is back (reproduced with BullMQ 6: a service
   * restarted during a Redis outage sat idle with jobs waiting), so the worker is only made when the registry's
   * connection is ready. BullMQ's run() gives up for good when Redis fails at the wrong moment, so whenever it ends
   * while the registry is open it is started again a second later. Progress (a job started or finished) is noted for
   * the watchdog.
   */
  private bringUp(supervised: Supervised): void {
    if (this.closed) return
    if (this.connection.status !== 'ready') {
      if (this.connection.status === 'wait') this.connection.connect().catch(() => {})
      setTimeout(() => this.bringUp(supervised), 500).unref()
      return
    }
    const { worker, connection } = supervised.make()
    supervised.worker = worker
    supervised.connection = connection
    supervised.lastProgress = Date.now()
    const progress = () => {
      supervised.lastProgress = Date.now()
    }
    // Not 'drained': a stuck worker may keep finding nothing while jobs wait.
    for (const event of ['active', 'completed', 'failed'] as const) worker.on(event, progress)
    for (const [event, listener] of supervised.listeners) worker.on(event as never, listener as never)
    for (const resolve of supervised.ready.splice(0)) resolve()
    const start = () => {
      if (this.closed || worker.closing || worker.isRunning() || supervised.worker !== worker) return
      worker
        .run()
        .catch((error: Error) => worker.emit('error', error))
        .finally(() => {
          if (!this.closed) setTimeout(start, 1000).unref()
        })
    }
    start()
  }

  /**
   * The watchdog: a worker that has made no progress for STUCK_AFTER_MS while its queue has jobs waiting is replaced by
   * a new one on a new connection (the old one is closed without waiting for its jobs, which BullMQ's stalled-job check
   * gives to the new worker). Redis killed and restarted while a worker was busy can leave BullMQ's worker alive but
   * fetching nothing, with jobs waiting, until the process is restarted (BullMQ issues #2466, #2964; the chaos test
   * reproduces it); the maintainers' advice is to recreate the worker, which is what this does, with no operator.
   */
  private startWatchdog(): void {
    if (this.watchdog) return
    this.watchdog = setInterval(() => {
      for (const supervised of this.supervised) void this.checkStuck(supervised)
    }, WATCHDOG_INTERVAL_MS)
    this.watchdog.unref()
  }

  private async checkStuck(supervised: Supervised): Promise<void> {
    if (this.closed || !supervised.worker || Date.now() - supervised.lastProgress < STUCK_AFTER_MS) return
    let waiting: number
    try {
      const queue = this.queue(supervised.name as keyof Payloads & string)
      // An operator may have paused the queue (Bull Board): jobs wait on purpose then.
      if (await queue.isPaused()) return
      const counts = await queue.getJobCounts('wait', 'prioritized')
      waiting = (counts.wait ?? 0) + (counts.prioritized ?? 0)
    } catch {
      return // Redis is down: nothing to judge by, and nothing a new worker could do yet.
    }
    const previous = { worker: supervised.worker, connection: supervised.connection }
    if (waiting === 0 || this.closed || supervised.worker !== previous.worker) return
    if (Date.now() - supervised.lastProgress < STUCK_AFTER_MS) return
    supervised.worker = undefined
    supervised.replaced = (supervised.replaced ?? 0) + 1
    this.onWorkerReplaced?.(supervised.name, waiting)
    await previous.worker?.close(true).catch(() => {})
    previous.connection?.disconnect()
    this.bringUp(supervised)
  }

  get allQueues(): Queue[] {
    return [...this.queues.values()]
  }

  /** Workers first (each finishes its active job), then queues, then the connections they used. */
  async close(): Promise<void> {
    this.closed = true
    clearInterval(this.watchdog)
    await Promise.allSettled(this.supervised.map(({ worker }) => worker?.close()))
    await Promise.allSettled([...this.queues.values()].map((queue) => queue.close()))
    for (const connection of this.workerConnections) connection.disconnect()
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    redis: Redis
    queues: QueueRegistry<Record<string, unknown>>
  }
}

export interface RedisPluginOptions {
  url: string
  prefix: string
  connectionName?: string
  /** False when the instance is built only to print its OpenAPI document. */
  connect?: boolean
}

/** Decorates the instance with a command connection (`redis`) and the queue registry (`queues`). */
export const redisPlugin = fp(
  async (app: FastifyInstance, options: RedisPluginOptions) => {
    const redis = createRedis({ url: options.url, purpose: 'command', connectionName: options.connectionName })
    const queues = new QueueRegistry(redis, options.url, options.prefix)
    queues.onWorkerReplaced = (queue, waiting) =>
      app.log.warn({ queue, waiting }, 'queue worker made no progress with jobs waiting; replaced it with a new one')
    app.decorate('redis', redis)
    app.decorate('queues', queues)
    if (options.connect !== false) {
      app.addHook('onReady', async () => {
        // Not awaited: a service starts (and reports not ready) while Redis is down, and connects when it returns.
        redis.connect().catch(() => {})
      })
    }
    app.addHook('onClose', async () => {
      await queues.close()
      redis.disconnect()
    })
  },
  { name: 'redis' },
)
