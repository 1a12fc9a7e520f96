import type { FederationQueues, OutboundMessage } from '@pilot/schemas'
import type { QueueRegistry } from './redis.ts'

/**
 * How a local service hands a message to its city's gateway: one job on `federation.outbound` whose id is the message
 * id, so queueing the same message twice (a relay retrying after a crash) adds nothing. The gateway owns retries and
 * dead-lettering; finished jobs are kept a day so a late duplicate is still recognised.
 */
export async function queueOutbound(queues: QueueRegistry<FederationQueues>, message: OutboundMessage): Promise<void> {
  await queues.queue('federation.outbound').add(message.type, message, {
    jobId: message.messageId,
    removeOnComplete: { age: 24 * 3600 },
    removeOnFail: false,
  })
}
