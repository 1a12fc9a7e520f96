import {
  AUTH_PROBLEMS,
  BEARER_SECURITY,
  decodeCursor,
  encodeCursor,
  problems,
  type QueueRegistry,
  queueOutbound,
  standardProblemResponses,
} from '@pilot/kit'
import { type FederationQueues, type OutboundMessage, StrictObject } from '@pilot/schemas'
import type { FastifyInstance } from 'fastify'
import { type Kysely, sql } from 'kysely'
import { type Static, Type } from 'typebox'
import type { GatewayDatabase } from '../db/schema.ts'

const QUEUE_NAMES = ['federation.outbound', 'federation.inbound', 'federation.delivery'] as const

const QueueState = StrictObject({
  name: Type.String(),
  waiting: Type.Integer(),
  active: Type.Integer(),
  delayed: Type.Integer(),
  failed: Type.Integer(),
  oldestWaitingSeconds: Type.Union([Type.Number(), Type.Null()]),
})
const PartnerState = StrictObject({
  partner: Type.String(),
  direction: Type.Enum(['inbound', 'outbound']),
  open: Type.Integer({ description: 'Outbound pending, or inbound not yet consumed by the local services' }),
  dead: Type.Integer(),
  done: Type.Integer(),
  oldestOpenSeconds: Type.Union([Type.Number(), Type.Null()]),
})
const QueuesReport = StrictObject(
  { queues: Type.Array(QueueState), partners: Type.Array(PartnerState) },
  { title: 'QueuesReport' },
)

const MessageSummary = StrictObject(
  {
    id: Type.String({ format: 'uuid' }),
    direction: Type.Enum(['inbound', 'outbound']),
    partner: Type.String(),
    messageId: Type.String({ format: 'uuid' }),
    type: Type.String(),
    ref: Type.String(),
    status: Type.String(),
    attempts: Type.Integer(),
    lastError: Type.Union([Type.String(), Type.Null()]),
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
  },
  { title: 'MessageSummary', description: 'Metadata only: bodies are never listed' },
)
const MessagePage = StrictObject(
  { items: Type.Array(MessageSummary), nextCursor: Type.Union([Type.String(), Type.Null()]) },
  { title: 'MessagePage' },
)
const MessageQuery = StrictObject({
  direction: Type.Optional(Type.Enum(['inbound', 'outbound'])),
  status: Type.Optional(Type.Enum(['received', 'handed_off', 'consumed', 'pending', 'delivered', 'dead'])),
  partner: Type.Optional(Type.String({ pattern: '^[a-z]{1,32}$' })),
  type: Type.Optional(Type.String({ pattern: '^[a-z_.]{1,64}$' })),
  limit: Type.Integer({ minimum: 1, maximum: 500, default: 50 }),
  cursor: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{1,200}$' })),
})

/** What operators use to keep transfer queues healthy. Metadata only: no message body leaves through here. */
export async function opsRoutes(app: FastifyInstance, options: { db: Kysely<GatewayDatabase> }) {
  const { db } = options
  const queues = app.queues as unknown as QueueRegistry<FederationQueues>
  const operatorOnly = app.authorize(['operator'])
  const secured = { security: BEARER_SECURITY, tags: ['operations'] }

  app.get(
    '/ops/v1/queues',
    {
      onRequest: operatorOnly,
      schema: {
        ...secured,
        summary: 'Queue depths, and per partner the open, dead and delivered messages with the oldest open age',
        response: { 200: QueuesReport, ...standardProblemResponses(AUTH_PROBLEMS) },
      },
    },
    async () => {
      const queueStates = await Promise.all(
        QUEUE_NAMES.map(async (name) => {
          const queue = queues.queue(name)
          const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'failed')
          const [oldest] = await queue.getJobs(['waiting'], -1, -1, true)
          return {
            name,
            waiting: counts.waiting ?? 0,
            active: counts.active ?? 0,
            delayed: counts.delayed ?? 0,
            failed: counts.failed ?? 0,
            oldestWaitingSeconds: oldest ? (Date.now() - oldest.timestamp) / 1000 : null,
          }
        }),
      )
      const { rows } = await sql<{
        partner: string
        direction: 'inbound' | 'outbound'
        open: number
        dead: number
        done: number
        oldest_open_seconds: number | null
      }>`
        select partner, direction,
          count(*) filter (where status in ('pending', 'received', 'handed_off'))::int as open,
          count(*) filter (where status = 'dead')::int as dead,
          count(*) filter (where status in ('delivered', 'consumed'))::int as done,
          extract(epoch from now() - min(created_at) filter (where status in ('pending', 'received', 'handed_off')))::float8
            as oldest_open_seconds
        from messages group by partner, direction order by partner, direction`.execute(db)
      return {
        queues: queueStates,
        partners: rows.map((row) => ({
          partner: row.partner,
          direction: row.direction,
          open: row.open,
          dead: row.dead,
          done: row.done,
          oldestOpenSeconds: row.oldest_open_seconds,
        })),
      }
    },
  )

  app.get<{ Querystring: Static<typeof MessageQuery> }>(
    '/ops/v1/messages',
    {
      onRequest: operatorOnly,
      schema: {
        ...secured,
        summary: 'Messages by direction, status, partner and type, newest first (cursor pagination, metadata only)',
        querystring: MessageQuery,
        response: { 200: MessagePage, ...standardProblemResponses(AUTH_PROBLEMS) },
      },
    },
    async (request) => {
      const { direction, status, partner, type, limit, cursor } = request.query
      let query = db
        .selectFrom('messages')
        .select([
          'id',
          'direction',
          'partner',
          'message_id',
          'type',
          'ref',
          'status',
          'attempts',
          'last_error',
          'created_at',
          'updated_at',
        ])
        .orderBy('created_at', 'desc')
        .orderBy('id', 'desc')
        .limit(limit + 1)
      if (direction) query = query.where('direction', '=', direction)
      if (status) query = query.where('status', '=', status)
      if (partner) query = query.where('partner', '=', partner)
      if (type) query = query.where('type', '=', type)
      if (cursor) {
        const [createdAt, id] = decodeCursor(cursor)
        query = query.where(sql<boolean>`(created_at, id) < (${createdAt}::timestamptz, ${id}::uuid)`)
      }
      const rows = await query.execute()
      const page = rows.slice(0, limit)
      const last = page[page.length - 1]
      return {
        items: page.map((row) => ({
          id: row.id,
          direction: row.direction,
          partner: row.partner,
          messageId: row.message_id,
          type: row.type,
          ref: row.ref,
          status: row.status,
          attempts: row.attempts,
          lastError: row.last_error,
          createdAt: row.created_at.toISOString(),
          updatedAt: row.updated_at.toISOString(),
        })),
        nextCursor: rows.length > limit && last ? encodeCursor(last.created_at, last.id) : null,
      }
    },
  )

  app.post<{ Params: { id: string } }>(
    '/ops/v1/messages/:id/redrive',
    {
      onRequest: operatorOnly,
      schema: {
        ...secured,
        summary: 'Send a dead outbound message again (after its cause is fixed)',
        params: StrictObject({ id: Type.String({ format: 'uuid' }) }),
        response: {
          202: StrictObject({ id: Type.String(), status: Type.Literal('pending') }),
          ...standardProblemResponses({ ...AUTH_PROBLEMS, 409: 'The message is not a dead outbound message' }),
        },
      },
    },
    async (request, reply) => {
      const row = await db
        .updateTable('messages')
        .set({ status: 'pending', attempts: 0, last_error: null, updated_at: new Date() })
        .where('id', '=', request.params.id)
        .where('direction', '=', 'outbound')
        .where('status', '=', 'dead')
        .returning(['partner', 'message_id', 'type', 'ref', 'usr', 'body'])
        .executeTakeFirst()
      if (!row) {
        const exists = await db
          .selectFrom('messages')
          .select('status')
          .where('id', '=', request.params.id)
          .executeTakeFirst()
        if (!exists) throw problems.notFound(`no message ${request.params.id}`)
        throw problems.conflict(
          `message ${request.params.id} is ${exists.status}; only dead outbound messages are redriven`,
        )
      }
      const queue = queues.queue('federation.outbound')
      // The failed job keeps its id in Redis; remove it so the id can be queued again.
      await queue.remove(row.message_id).catch(() => 0)
      await queueOutbound(queues, {
        messageId: row.message_id,
        to: row.partner,
        type: row.type as OutboundMessage['type'],
        ref: row.ref,
        ...(row.usr ? { usr: row.usr } : {}),
        body: row.body,
      })
      request.log.info({ message: request.params.id }, 'message redriven by operator')
      return reply.status(202).send({ id: request.params.id, status: 'pending' as const })
    },
  )
}
