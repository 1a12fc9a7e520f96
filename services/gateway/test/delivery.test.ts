import { createServer, type Server } from 'node:http'
import { queueOutbound } from '@pilot/kit'
import type { OutboundMessage } from '@pilot/schemas'
import { token as devToken } from '@pilot/testing'
import { Worker } from 'bullmq'
import { Redis } from 'ioredis'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type CityGateway, queuesOf, startGateway, startTwoGateways, until } from './harness.ts'

function transferMessage(to: string, index: number): OutboundMessage {
  return {
    messageId: crypto.randomUUID(),
    to,
    type: 'case.refused',
    ref: `SZ-2026-${String(index).padStart(6, '0')}`,
    body: { reason: 'not_registered_here', detail: `test ${index}` },
  }
}

async function messageRows(gateway: CityGateway, direction: 'inbound' | 'outbound') {
  const { rows } = await sql<{
    message_id: string
    status: string
    attempts: number
    last_error: string | null
    receipt_status: string | null
  }>`
    select message_id, status, attempts, last_error, receipt_status from messages where direction = ${direction}`.execute(
    gateway.app?.db as never,
  )
  return rows
}

/** Collects what the hukou city's local service would receive from its gateway. */
function consumer(redisUrl: string, prefix: string) {
  const received: string[] = []
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null })
  const worker = new Worker(
    'federation.inbound',
    async (job) => {
      received.push((job.data as { messageId: string }).messageId)
    },
    { connection, prefix },
  )
  return {
    received,
    async close() {
      await worker.close()
      connection.disconnect()
    },
  }
}

describe('gateway to gateway delivery over real HTTP', () => {
  let shenzhen: CityGateway
  let zhongshan: CityGateway

  beforeAll(async () => {
    ;({ shenzhen, zhongshan } = await startTwoGateways())
  })
  afterAll(async () => {
    await shenzhen.app?.close()
    await zhongshan.app?.close()
  })

  it('delivers a message, verifies the receipt and hands it off exactly once', async () => {
    const local = consumer(zhongshan.env.REDIS_URL as string, zhongshan.env.REDIS_PREFIX as string)
    try {
      const message = transferMessage('zhongshan', 1)
      await queueOutbound(queuesOf(shenzhen.app as never), message)
      // Queued twice (a relay retrying after a crash): still one delivery.
      await queueOutbound(queuesOf(shenzhen.app as never), message)

      const sent = await until(
        () => messageRows(shenzhen, 'outbound'),
        (rows) => rows[0]?.status === 'delivered',
      )
      expect(sent).toEqual([
        {
          message_id: message.messageId,
          status: 'delivered',
          attempts: 1,
          last_error: null,
          receipt_status: 'accepted',
        },
      ])
      await until(
        async () => local.received.length,
        (n) => n >= 1,
      )
      const stored = await until(
        () => messageRows(zhongshan, 'inbound'),
        (rows) => rows[0]?.status === 'consumed',
      )
      expect(stored).toMatchObject([{ message_id: message.messageId, status: 'consumed' }])
      await new Promise((resolve) => setTimeout(resolve, 600))
      expect(local.received).toEqual([message.messageId])

      const outcome = await queuesOf(shenzhen.app as never)
        .queue('federation.delivery')
        .getJob(`${message.messageId}-delivered`)
      expect(outcome?.data).toMatchObject({
        messageId: message.messageId,
        outcome: 'delivered',
        receiptStatus: 'accepted',
      })
    } finally {
      await local.close()
    }
  })

  it('keeps messages while the partner is down and delivers each once when it returns', async () => {
    await zhongshan.app?.close()
    const messages = Array.from({ length: 10 }, (_, index) => transferMessage('zhongshan', 100 + index))
    for (const message of messages) await queueOutbound(queuesOf(shenzhen.app as never), message)
    const waiting = await until(
      () => messageRows(shenzhen, 'outbound'),
      (rows) =>
        messages.every((message) => rows.some((row) => row.message_id === message.messageId && row.attempts >= 2)),
    )
    expect(
      waiting
        .filter((row) => messages.some((message) => message.messageId === row.message_id))
        .every((row) => row.status === 'pending'),
    ).toBe(true)

    await startGateway(zhongshan)
    const delivered = await until(
      () => messageRows(shenzhen, 'outbound'),
      (rows) =>
        messages.every((message) =>
          rows.some((row) => row.message_id === message.messageId && row.status === 'delivered'),
        ),
      30_000,
    )
    expect(delivered.filter((row) => row.status === 'delivered').length).toBeGreaterThanOrEqual(messages.length)
    const inbound = await messageRows(zhongshan, 'inbound')
    for (const message of messages) {
      expect(inbound.filter((row) => row.message_id === message.messageId)).toHaveLength(1)
    }
  })

  it('dead-letters a message a partner refuses with 400, and an operator redrive delivers it once fixed', async () => {
    await zhongshan.app?.close()
    // A partner with a bug: it answers 400 to everything.
    const broken: Server = createServer((_request, response) => {
      response.writeHead(400, { 'content-type': 'application/problem+json' })
      response.end(
        JSON.stringify({ type: 'urn:example:broken', title: 'Bad request', status: 400, detail: 'partner bug' }),
      )
    })
    await new Promise<void>((resolve) => broken.listen(zhongshan.port, '127.0.0.1', resolve))
    const message = transferMessage('zhongshan', 200)
    await queueOutbound(queuesOf(shenzhen.app as never), message)
    const dead = await until(
      () => messageRows(shenzhen, 'outbound'),
      (rows) => rows.some((row) => row.message_id === message.messageId && row.status === 'dead'),
    )
    const row = dead.find((candidate) => candidate.message_id === message.messageId)
    expect(row).toMatchObject({ status: 'dead', attempts: 1 })
    expect(row?.last_error).toContain('answered 400 urn:example:broken: partner bug')
    const outcome = await queuesOf(shenzhen.app as never)
      .queue('federation.delivery')
      .getJob(`${message.messageId}-dead`)
    expect(outcome?.data).toMatchObject({ outcome: 'dead' })

    await new Promise<void>((resolve) => broken.close(() => resolve()))
    await startGateway(zhongshan)

    const operator = `Bearer ${await devToken('shenzhen', ['operator'])}`
    const list = await shenzhen.app?.inject({
      method: 'GET',
      url: '/ops/v1/messages?direction=outbound&status=dead&partner=zhongshan',
      headers: { authorization: operator },
    })
    expect(list?.statusCode, list?.body).toBe(200)
    const listed = list?.json().items.find((item: { messageId: string }) => item.messageId === message.messageId)
    expect(listed).toMatchObject({ status: 'dead', type: 'case.refused' })
    expect(JSON.stringify(list?.json())).not.toContain('partner bug test')
    expect(JSON.stringify(list?.json())).not.toContain('"body"')

    const redrive = await shenzhen.app?.inject({
      method: 'POST',
      url: `/ops/v1/messages/${listed.id}/redrive`,
      headers: { authorization: operator },
    })
    expect(redrive?.statusCode).toBe(202)
    const again = await shenzhen.app?.inject({
      method: 'POST',
      url: `/ops/v1/messages/${listed.id}/redrive`,
      headers: { authorization: operator },
    })
    expect(again?.statusCode).toBe(409)
    await until(
      () => messageRows(shenzhen, 'outbound'),
      (rows) =>
        rows.some((candidate) => candidate.message_id === message.messageId && candidate.status === 'delivered'),
    )
    const inbound = await messageRows(zhongshan, 'inbound')
    expect(inbound.filter((candidate) => candidate.message_id === message.messageId)).toHaveLength(1)
  })

  it('reports queues and partners to operators only', async () => {
    const operator = `Bearer ${await devToken('shenzhen', ['operator'])}`
    const report = await shenzhen.app?.inject({
      method: 'GET',
      url: '/ops/v1/queues',
      headers: { authorization: operator },
    })
    expect(report?.statusCode).toBe(200)
    expect(report?.json().queues.map((queue: { name: string }) => queue.name)).toEqual([
      'federation.outbound',
      'federation.inbound',
      'federation.delivery',
    ])
    expect(report?.json().partners).toContainEqual(
      expect.objectContaining({ partner: 'zhongshan', direction: 'outbound', dead: 0 }),
    )
    const caseworker = `Bearer ${await devToken('shenzhen', ['caseworker'])}`
    expect(
      (await shenzhen.app?.inject({ method: 'GET', url: '/ops/v1/queues', headers: { authorization: caseworker } }))
        ?.statusCode,
    ).toBe(403)
    expect((await shenzhen.app?.inject({ method: 'GET', url: '/ops/v1/queues' }))?.statusCode).toBe(401)
    const board = await shenzhen.app?.inject({ method: 'GET', url: '/ops/board/' })
    expect(board?.statusCode).toBe(401)
    const boardWithCookie = await shenzhen.app?.inject({
      method: 'GET',
      url: '/ops/board/',
      headers: { cookie: `pilot_ops_token=${encodeURIComponent(operator.slice(7))}` },
    })
    expect(boardWithCookie?.statusCode).toBe(200)
    const metrics = await shenzhen.app?.inject({ method: 'GET', url: '/metrics' })
    expect(metrics?.body).toMatch(/federation_messages_total\{[^}]*direction="outbound"/)
    expect(metrics?.body).toContain('federation_delivery_seconds_bucket')
  })
})
