import { testResources } from '@pilot/testing'
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { afterAll, describe, expect, it } from 'vitest'
import { addAgainIfFinished, createRedis, QueueRegistry } from '../src/index.ts'

interface Payloads extends Record<string, unknown> {
  'transfer.outbound': { messageId: string; partner: string }
  'resend.probe': { messageId: string; version: number }
}

describe('queue registry', () => {
  const { redisUrl, redisPrefix } = testResources()
  const connection = createRedis({ url: redisUrl, purpose: 'command' })
  afterAll(() => connection.disconnect())

  it('processes each job under its id once, under the prefix, and finishes the active job on close', async () => {
    await connection.connect()
    const registry = new QueueRegistry<Payloads>(connection, redisUrl, `${redisPrefix}:q`)
    const seen: string[] = []
    let release: () => void = () => {}
    const gate = new Promise<void>((resolve) => {
      release = resolve
    })
    registry.worker('transfer.outbound', async (job) => {
      seen.push(job.data.messageId)
      if (job.data.messageId === 'm-slow') await gate
    })
    const queue = registry.queue('transfer.outbound')
    await queue.add('deliver', { messageId: 'm-1', partner: 'zhuhai' }, { jobId: 'm-1' })
    // The same jobId again is the same job: a relay that re-sends after a crash adds nothing.
    await queue.add('deliver', { messageId: 'm-1', partner: 'zhuhai' }, { jobId: 'm-1' })
    await queue.add('deliver', { messageId: 'm-slow', partner: 'zhuhai' }, { jobId: 'm-slow' })
    while (!seen.includes('m-slow')) await new Promise((resolve) => setTimeout(resolve, 20))

    const closing = registry.close()
    setTimeout(release, 200)
    await closing
    expect(seen).toEqual(['m-1', 'm-slow'])

    // Looked at afresh after the close: the job that was running when close began was finished, not abandoned.
    const probe = new Redis(redisUrl)
    const inspector = new Queue('transfer.outbound', { connection: probe, prefix: `${redisPrefix}:q` })
    expect(await inspector.getJobState('m-slow')).toBe('completed')
    expect(await inspector.getJobCounts('completed')).toEqual({ completed: 2 })
    await inspector.close()
    probe.disconnect()
  })

  it('fails fast instead of hanging when Redis is unreachable', async () => {
    const dead = createRedis({ url: 'redis://127.0.0.1:1', purpose: 'command' })
    dead.connect().catch(() => {})
    // A command connection rejects at once rather than queueing the command until Redis returns.
    await expect(dead.ping()).rejects.toThrow(/enableOfflineQueue|ECONNREFUSED|Connection is closed/)
    dead.disconnect()
  })

  it('adds a job again only once it has finished: completed or failed for good, not waiting, retrying or re-run', async () => {
    if (connection.status === 'wait') await connection.connect()
    const registry = new QueueRegistry<Payloads>(connection, redisUrl, `${redisPrefix}:again`)
    const queue = registry.queue('resend.probe')
    const processed: string[] = []
    // Jobs whose id starts with "fail" fail every attempt; the others complete.
    const worker = registry.worker('resend.probe', async (job) => {
      processed.push(`${job.id}@${job.data.version}`)
      if (job.id?.startsWith('fail')) throw new Error('refused')
    })
    await worker.waitUntilReady()
    const add = (id: string, version: number, options: { attempts?: number } = {}) =>
      addAgainIfFinished(queue, 'probe', { messageId: id, version }, { jobId: id, ...options })
    const settled = async (id: string, state: string) => {
      for (let i = 0; i < 250 && (await queue.getJobState(id)) !== state; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      expect(await queue.getJobState(id)).toBe(state)
    }

    await add('done', 1)
    await add('fail-final', 1, { attempts: 1 })
    // Fails its first attempt and waits a minute for the second: not finished.
    await queue.add(
      'probe',
      { messageId: 'fail-retrying', version: 1 },
      {
        jobId: 'fail-retrying',
        attempts: 2,
        backoff: { type: 'fixed', delay: 60_000 },
      },
    )
    await settled('done', 'completed')
    await settled('fail-final', 'failed')
    await settled('fail-retrying', 'delayed')
    await add('rerun', 1)
    await settled('rerun', 'completed')
    // From here the worker takes nothing: what is waiting stays waiting.
    await queue.pause()
    await add('waiting', 1)
    // Completed, then retried by an operator (bull-board's retry): waiting to run again, not finished.
    await (await queue.getJob('rerun'))?.retry('completed')
    await settled('waiting', 'waiting')
    await settled('rerun', 'waiting')

    for (const id of ['done', 'fail-final', 'fail-retrying', 'waiting', 'rerun']) await add(id, 2)

    const version = async (id: string) => (await queue.getJob(id))?.data.version
    // Finished: removed and added anew with the sender's data, to run again.
    expect(await version('done')).toBe(2)
    expect(await version('fail-final')).toBe(2)
    // Not finished: left as they were.
    expect(await version('fail-retrying')).toBe(1)
    expect(await version('waiting')).toBe(1)
    expect(await version('rerun')).toBe(1)
    await queue.resume()
    await settled('done', 'completed')
    expect(processed.filter((entry) => entry.startsWith('done@'))).toEqual(['done@1', 'done@2'])
    await registry.close()
  })
})
