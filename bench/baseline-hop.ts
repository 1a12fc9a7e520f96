/**
 * The gateway benchmark's floor: the queue and HTTP work any city-to-city delivery of this design must do, and
 * nothing else — no signing or verifying, no PostgreSQL, no schema checks, no receipt. Two processes, as the two
 * gateways are:
 *
 *   MODE=sender    a Worker on `federation.outbound` (the gateway's concurrency and connection settings) POSTs each
 *                  job's message as JSON over a keep-alive node:http agent (the gateway's own client) to RECEIVER_URL
 *                  and, on 202, queues the delivery outcome on `federation.delivery` exactly as the gateway reports it.
 *   MODE=receiver  bare Fastify on PORT: POST /messages queues the message on `federation.inbound` with the gateway's
 *                  hand-off options and answers 202.
 *
 * Each prints `ready` once it takes work. What the real gateways do beyond this is their own cost; what this costs
 * against raw BullMQ add + process bounds what any implementation could reach.
 *
 *   MODE=sender REDIS_URL=… REDIS_PREFIX=… CONCURRENCY=16 RECEIVER_URL=http://127.0.0.1:…/messages tsx bench/baseline-hop.ts
 *   MODE=receiver REDIS_URL=… REDIS_PREFIX=… PORT=… tsx bench/baseline-hop.ts
 */
import { addAgainIfFinished, createRedis, INFRASTRUCTURE_RETRIES, QueueRegistry } from '@pilot/kit'
import type { FederationQueues, OutboundMessage } from '@pilot/schemas'
import Fastify from 'fastify'
import { inboundJobId } from '../services/gateway/src/federation/handoff.ts'
import { PartnerHttpClient } from '../services/gateway/src/federation/http.ts'
import { requiredEnv } from './baseline-common.ts'

const env = requiredEnv
const url = env('REDIS_URL')
const mode = env('MODE')
const redis = createRedis({ url, purpose: 'command', connectionName: `bench-hop-${mode}` })
await redis.connect()
const queues = new QueueRegistry<FederationQueues>(redis, url, env('REDIS_PREFIX'))
let close: () => Promise<void>

if (mode === 'sender') {
  const concurrency = Number(env('CONCURRENCY'))
  const client = new PartnerHttpClient({ maxSockets: concurrency })
  const receiver = new URL(env('RECEIVER_URL'))
  const worker = queues.worker(
    'federation.outbound',
    async (job) => {
      const message = job.data as OutboundMessage
      const answer = await client.post(
        receiver,
        JSON.stringify(message),
        { 'content-type': 'application/json' },
        10_000,
      )
      if (answer.status !== 202) throw new Error(`receiver answered ${answer.status}`)
      await addAgainIfFinished(
        queues.queue('federation.delivery'),
        'delivered',
        { messageId: message.messageId, outcome: 'delivered' } as never,
        {
          jobId: `${message.messageId}-delivered`,
          ...INFRASTRUCTURE_RETRIES,
          removeOnComplete: { age: 24 * 3600 },
          removeOnFail: false,
        },
      )
    },
    { concurrency },
  )
  worker.on('failed', (job, error) => process.stderr.write(`job ${job?.id} failed: ${error.message}\n`))
  await worker.waitUntilReady()
  close = () => queues.close()
} else if (mode === 'receiver') {
  const app = Fastify({ logger: false })
  app.post<{ Body: OutboundMessage }>('/messages', async (request, reply) => {
    await queues.queue('federation.inbound').add(request.body.type, request.body as never, {
      jobId: inboundJobId('shenzhen', request.body.messageId),
      attempts: 10,
      backoff: { type: 'exponential', delay: 1000 },
      removeOnComplete: { age: 24 * 3600 },
      removeOnFail: false,
    })
    return reply.status(202).send({ status: 'accepted' })
  })
  await app.listen({ host: '127.0.0.1', port: Number(env('PORT')) })
  close = async () => {
    await app.close()
    await queues.close()
  }
} else {
  process.stderr.write(`MODE must be sender or receiver, not ${mode}\n`)
  process.exit(64)
}
process.stdout.write('ready\n')

const stop = async () => {
  await close()
  redis.disconnect()
  process.exit(0)
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
