import {
  AUTH_PROBLEMS,
  BEARER_SECURITY,
  decodeCursor,
  encodeCursor,
  type Role,
  standardProblemResponses,
} from '@pilot/kit'
import { CaseListQuery, CasePage, todayIn } from '@pilot/schemas'
import type { FastifyInstance } from 'fastify'
import { sql } from 'kysely'
import { appendAudit } from '../cases/audit.ts'
import type { CaseContext } from '../cases/context.ts'
import { isOverdue } from '../cases/views.ts'
import { isFinal } from '../domain/lifecycle.ts'

/** Newest first, filtered by status, partner city and overdue, with cursor pagination; summaries only. */
export async function caseListRoute(
  app: FastifyInstance,
  options: { context: CaseContext; side: 'outgoing' | 'incoming'; path: string; role: Role; tags: string[] },
) {
  const { context, side } = options
  app.get<{ Querystring: CaseListQuery }>(
    options.path,
    {
      onRequest: app.authorize([options.role]),
      schema: {
        tags: options.tags,
        summary: `List ${side === 'outgoing' ? 'applications' : 'incoming cases'} (filters, cursor pagination)`,
        security: BEARER_SECURITY,
        querystring: CaseListQuery,
        response: { 200: CasePage, ...standardProblemResponses(AUTH_PROBLEMS) },
      },
    },
    async (request) => {
      const { status, partnerCity, overdue, limit, cursor } = request.query
      let query = context.db
        .selectFrom('cases')
        .select(['id', 'reference', 'status', 'partner_city', 'category', 'submitted_at', 'review_deadline', 'side'])
        .where('side', '=', side)
        .orderBy('submitted_at', 'desc')
        .orderBy('id', 'desc')
        .limit(limit + 1)
      if (status) query = query.where('status', '=', status)
      if (partnerCity) query = query.where('partner_city', '=', partnerCity)
      if (overdue !== undefined) {
        const today = todayIn(context.timeZone)
        const finals = ['residence_rejected', 'refused', 'decided', 'withdrawn'].filter((value) =>
          isFinal(side, value as never),
        )
        query = overdue
          ? query.where('review_deadline', '<', today).where('status', 'not in', finals)
          : query.where((eb) =>
              eb.or([
                eb('review_deadline', '>=', today),
                eb('review_deadline', 'is', null),
                eb('status', 'in', finals),
              ]),
            )
      }
      if (cursor) {
        const [at, id] = decodeCursor(cursor)
        query = query.where(sql<boolean>`(submitted_at, id) < (${at}::timestamptz, ${id}::uuid)`)
      }
      const rows = await query.execute()
      const page = rows.slice(0, limit)
      await context.db.transaction().execute((trx) =>
        appendAudit(trx, {
          actor: request.caller?.id ?? 'unknown',
          role: options.role,
          city: context.city,
          action: `${side}.list`,
          caseId: null,
          requestId: request.id,
          detail: { count: page.length },
        }),
      )
      const last = page[page.length - 1]
      return {
        items: page.map((row) => ({
          id: row.id,
          reference: row.reference,
          status: row.status,
          partnerCity: row.partner_city,
          category: row.category as never,
          submittedAt: row.submitted_at.toISOString(),
          reviewDeadline: row.review_deadline,
          overdue: isOverdue(context, row),
        })),
        nextCursor: rows.length > limit && last ? encodeCursor(last.submitted_at, last.id) : null,
      }
    },
  )
}
