import { testResources } from '@pilot/testing'
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { afterAll, describe, expect, it } from 'vitest'
import { createRedis, QueueRegistry } from '../src/index.ts'

interface Payloads extends Record<string, unknown> {
  'transfer.outbound': { messageId: string; partner: string }
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
})
