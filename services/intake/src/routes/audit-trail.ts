import { AUTH_PROBLEMS, BEARER_SECURITY, type Caller, problems, type Role, standardProblemResponses } from '@pilot/kit'
import { maskIdNumber, StrictObject } from '@pilot/schemas'
import type { FastifyInstance } from 'fastify'
import { type Static, Type } from 'typebox'
import { appendAudit, auditEntryOf } from '../cases/audit.ts'
import type { CaseContext } from '../cases/context.ts'

const AuditQuery = StrictObject({
  caseId: Type.Optional(Type.String({ format: 'uuid', description: 'Only rows about this case' })),
  actor: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 128,
      description: 'Only rows of this actor; a caseworker or reviewer may name only themselves',
    }),
  ),
  limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
  cursor: Type.Optional(
    Type.String({ pattern: '^[1-9][0-9]{0,17}$', description: '`nextCursor` of the previous page, as it was given' }),
  ),
})
type AuditQuery = Static<typeof AuditQuery>

const AuditTrailRow = StrictObject(
  {
    id: Type.String({ pattern: '^[0-9]+$', description: 'The row id (a bigint, as a string)' }),
    at: Type.String({ format: 'date-time' }),
    actor: Type.String({ description: 'Pseudonymous user id, the partner city, or system' }),
    role: Type.String(),
    city: Type.String(),
    action: Type.String({ description: 'What was done, e.g. outgoing.read, application.submit, audit.read' }),
    caseId: Type.Union([Type.String({ format: 'uuid' }), Type.Null()]),
    requestId: Type.Union([Type.String(), Type.Null()]),
    detail: Type.Union(
      [
        Type.Record(Type.String(), Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null()])),
        Type.Null(),
      ],
      { description: 'What else the row recorded; anything shaped like an identity number is shown masked' },
    ),
  },
  { title: 'AuditTrailRow' },
)
const AuditTrailPage = StrictObject(
  { items: Type.Array(AuditTrailRow), nextCursor: Type.Union([Type.String(), Type.Null()]) },
  { title: 'AuditTrailPage' },
)

/** Who reads which rows. Checked in the handler: the route admits all three roles, the rows depend on which. */
const READERS: readonly Role[] = ['auditor', 'caseworker', 'reviewer']

/** The role a read is granted under: an auditor reads as auditor even when the token carries other roles too. */
function readingRole(caller: Caller): Role {
  return READERS.find((role) => caller.roles.includes(role)) as Role
}

// No writer records an identity number on purpose, but some details echo what a caller typed (a filter, say).
const IDENTITY_NUMBER = /(?<![0-9])[0-9]{17}[0-9Xx](?![0-9A-Za-z])/g

function masked(detail: Record<string, string | number | boolean | null> | null) {
  if (!detail) return null
  return Object.fromEntries(
    Object.entries(detail).map(([key, value]) => [
      key,
      typeof value === 'string' ? value.replace(IDENTITY_NUMBER, (found) => maskIdNumber(found)) : value,
    ]),
  )
}

/**
 * This city's audit trail. The policy: an auditor reads every row of this city; a caseworker or a reviewer reads only
 * the rows of what they did themselves (naming another actor is a 403, and is itself audited); nobody reads another
 * city's rows (its tokens are not accepted here, and the rows are filtered by city regardless). Every read is audited.
 */
export async function auditTrailRoutes(app: FastifyInstance, options: { context: CaseContext }) {
  const { context } = options

  app.get<{ Querystring: AuditQuery }>(
    '/v1/audit',
    {
      onRequest: app.authorize(READERS),
      schema: {
        tags: ['audit'],
        summary: 'Read the audit trail: every row for an auditor, only their own for a caseworker or reviewer',
        description:
          'Newest first, cursor pagination, optionally about one case (`caseId`) or one actor (`actor`). An auditor ' +
          "reads every row of this city's audit log. A caseworker or a reviewer reads only the rows where they are " +
          'the actor: without `actor` their own rows are returned; `actor` naming anyone else is refused with 403 ' +
          '(and the attempt is audited). Another city’s rows are never returned. The read itself is written to the ' +
          'audit log (`audit.read`). Identity numbers are masked.',
        security: BEARER_SECURITY,
        querystring: AuditQuery,
        response: {
          200: AuditTrailPage,
          ...standardProblemResponses({
            ...AUTH_PROBLEMS,
            403: "A token of another city, without the route's role, or a caseworker or reviewer naming another actor",
          }),
        },
      },
    },
    async (request) => {
      const caller = request.caller as Caller
      const role = readingRole(caller)
      const { caseId, actor, limit, cursor } = request.query
      const audit = (action: string, detail: Record<string, string | number | null>) =>
        context.db.transaction().execute((trx) =>
          appendAudit(trx, {
            actor: caller.id,
            role,
            city: context.city,
            action,
            caseId: caseId ?? null,
            requestId: request.id,
            detail,
          }),
        )
      if (role !== 'auditor' && actor !== undefined && actor !== caller.id) {
        await audit('audit.read_refused', { actor })
        throw problems.forbidden(`A ${role} reads only their own audit rows, not those of ${actor}`)
      }
      // The actor filter is the policy for everyone but an auditor, not an option.
      const actorFilter = role === 'auditor' ? actor : caller.id

      let query = context.db
        .selectFrom('audit_log')
        .select(['id', 'at', 'actor', 'role', 'city', 'action', 'case_id', 'request_id', 'detail'])
        .where('city', '=', context.city)
        .orderBy('id', 'desc')
        .limit(limit + 1)
      if (actorFilter !== undefined) query = query.where('actor', '=', actorFilter)
      if (caseId) query = query.where('case_id', '=', caseId)
      if (cursor) query = query.where('id', '<', cursor)
      const rows = await query.execute()
      const page = rows.slice(0, limit)
      await audit('audit.read', { actor: actorFilter ?? null, count: page.length })
      const last = page[page.length - 1]
      return {
        items: page.map((row) => ({ ...auditEntryOf({ ...row, id: String(row.id) }), detail: masked(row.detail) })),
        nextCursor: rows.length > limit && last ? String(last.id) : null,
      }
    },
  )
}
