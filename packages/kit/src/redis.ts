import { type ConnectionOptions, type Processor, Queue, type QueueOptions, Worker, type WorkerOptions } from 'bullmq'
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

/**
 * Typed access to BullMQ queues: `Payloads` maps each queue name to its job payload (one map per service, as in
 * Infisical's queue service). Every queue and worker uses the instance's key prefix, so cities sharing one Redis in the
 * local pilot, and tests sharing one Redis, never see each other's jobs.
 */
export class QueueRegistry<Payloads extends Record<string, unknown>> {
  private readonly queues = new Map<string, Queue>()
  private readonly workers: Worker[] = []
  private readonly workerConnections: Redis[] = []

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
  ): Worker<Payloads[Name], unknown, string> {
    const connection = createRedis({ url: this.redisUrl, purpose: 'worker', connectionName: `worker:${name}` })
    this.workerConnections.push(connection)
    const worker = new Worker<Payloads[Name], unknown, string>(name, processor, {
      ...options,
      connection: connection as ConnectionOptions,
      prefix: this.prefix,
    })
    worker.on('error', () => {})
    this.workers.push(worker as unknown as Worker)
    return worker
  }

  get allQueues(): Queue[] {
    return [...this.queues.values()]
  }

  /** Workers first (each finishes its active job), then queues, then the connections they used. */
  async close(): Promise<void> {
    await Promise.allSettled(this.workers.map((worker) => worker.close()))
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
