import type { FederationQueues, OutboundMessage } from '@pilot/schemas'
import type { JobsOptions, Queue } from 'bullmq'
import type { QueueRegistry } from './redis.ts'

/**
 * Retries for what goes wrong around a job rather than in it (a database connection cut mid-job, Redis restarting):
 * without them BullMQ fails a job at its first error, and the job's id then blocks the same message forever.
 * Deliberate refusals throw UnrecoverableError and are not retried.
 */
export const INFRASTRUCTURE_RETRIES: Pick<JobsOptions, 'attempts' | 'backoff'> = {
  attempts: 10,
  backoff: { type: 'exponential', delay: 1000 },
}

/**
 * Adds a job that a sender may add again because it has not seen the outcome yet (an outbox relay resending, a
 * gateway re-reporting). A job of that id still waiting or running is left alone (it will tell); one that finished
 * (completed, or failed for good) is removed and added anew, because the sender asking again means its outcome never
 * arrived: BullMQ ignores an add whose id exists in any state, which left such a message stuck for good (the long
 * chaos run found 4 of 3,000 so).
 *
 * "Finished" is read from the job's own hash (`finishedOn`, which BullMQ sets when a job completes or fails for good
 * and clears when it is retried or moved back to wait), fetched by getJob anyway. getState would cost a second round
 * trip and, for a job not in a sorted set, an LPOS scan of the waiting list: during a partner outage every resend of
 * the relay scanned the whole backlog (119 µs a call with ten thousand waiting, and growing with it).
 */
export async function addAgainIfFinished<Data>(
  queue: Queue<Data, unknown, string>,
  name: string,
  data: Data,
  options: JobsOptions & { jobId: string },
): Promise<void> {
  const existing = await queue.getJob(options.jobId)
  if (existing) {
    // Waiting, delayed (a retry after a failed attempt) or running: it will run and tell.
    if (!existing.finishedOn) return
    await existing.remove()
  }
  // Two senders racing here both add; BullMQ keeps the first and ignores the second.
  await queue.add(name as never, data as never, options)
}

/**
 * How a local service hands a message to its city's gateway: one job on `federation.outbound` whose id is the message
 * id, so queueing the same message twice while it waits adds nothing. The gateway owns delivery retries and
 * dead-lettering; finished jobs are kept a day. A message queued again after its job finished is queued anew: the
 * gateway's own table decides, and for a message it already delivered it only reports the outcome again.
 */
export async function queueOutbound(queues: QueueRegistry<FederationQueues>, message: OutboundMessage): Promise<void> {
  await addAgainIfFinished(queues.queue('federation.outbound'), message.type, message, outboundJobOptions(message))
}

/**
 * Queues messages the sender is handing over for the first time, all in one round trip (BullMQ's addBulk, one MULTI).
 * For a relay that queues many rows per pass this replaces two round trips per message. An id already present — a pass
 * that queued it and then failed to record so — is left as it is, as BullMQ does with any add: if its job has finished,
 * the gateway has already reported its outcome. A message the sender queued before and is sending again because no
 * outcome came back goes through queueOutbound, which re-adds a finished job.
 */
export async function queueOutboundFirst(
  queues: QueueRegistry<FederationQueues>,
  messages: OutboundMessage[],
): Promise<void> {
  if (messages.length === 0) return
  await queues
    .queue('federation.outbound')
    .addBulk(messages.map((message) => ({ name: message.type, data: message, opts: outboundJobOptions(message) })))
}

function outboundJobOptions(message: OutboundMessage): JobsOptions & { jobId: string } {
  return {
    jobId: message.messageId,
    ...INFRASTRUCTURE_RETRIES,
    removeOnComplete: { age: 24 * 3600 },
    removeOnFail: false,
  }
}
