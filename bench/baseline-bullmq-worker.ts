/**
 * The gateway benchmark's queue baseline: what BullMQ alone costs on this machine. One Worker with an empty processor
 * on `federation.outbound`, with the gateway's delivery concurrency and exactly the gateway's connection settings (the
 * kit's QueueRegistry), in a process of its own as the gateway's worker is. Prints `ready` once it takes jobs.
 *
 *   REDIS_URL=… REDIS_PREFIX=bench:… CONCURRENCY=16 tsx bench/baseline-bullmq-worker.ts
 */
import { createRedis, QueueRegistry } from '@pilot/kit'
import { requiredEnv } from './baseline-common.ts'

const env = requiredEnv

const url = env('REDIS_URL')
const redis = createRedis({ url, purpose: 'command', connectionName: 'bench-bullmq-baseline' })
await redis.connect()
const queues = new QueueRegistry<Record<string, unknown>>(redis, url, env('REDIS_PREFIX'))
const worker = queues.worker('federation.outbound', async () => {}, { concurrency: Number(env('CONCURRENCY')) })
await worker.waitUntilReady()
process.stdout.write('ready\n')

const close = async () => {
  await queues.close()
  redis.disconnect()
  process.exit(0)
}
process.on('SIGTERM', close)
process.on('SIGINT', close)
