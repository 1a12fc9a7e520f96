import { AUTH_PROBLEMS, BEARER_SECURITY, problems, standardProblemResponses } from '@pilot/kit'
import { ApplicationRequest, CaseView, InfoSupplied, StrictObject, WithdrawRequest } from '@pilot/schemas'
import type { FastifyInstance } from 'fastify'
import { type Static, Type } from 'typebox'
import { actorOf, type CaseContext } from '../cases/context.ts'
import { actOnCase, readCase, submitApplication } from '../cases/workflows.ts'
import { caseListRoute } from './case-list.ts'

const IdParams = StrictObject({ id: Type.String({ format: 'uuid' }) })
const tags = ['applications']

/** The residence city's side: caseworkers submit applications and follow them. */
export async function applicationRoutes(app: FastifyInstance, options: { context: CaseContext }) {
  const { context } = options
  const caseworker = app.authorize(['caseworker'])

  app.post<{ Body: ApplicationRequest; Headers: { 'idempotency-key': string } }>(
    '/v1/applications',
    {
      onRequest: caseworker,
      schema: {
        tags,
        summary: 'Submit an application for a resident whose household registration is in another pilot city',
        description:
          'Requires an Idempotency-Key header: the same key with the same body returns the original response; with a ' +
          'different body, 422. A key is kept for IDEMPOTENCY_KEY_RETENTION_DAYS (30 by default) and then forgotten. ' +
          'The residence service decides the 3-month rule; an ineligible applicant gives a case ' +
          'in `residence_rejected` with the reasons, an eligible one a case `queued` for transfer to the hukou city.',
        security: BEARER_SECURITY,
        headers: Type.Object({
          'idempotency-key': Type.String({
            pattern: '^[A-Za-z0-9._:-]{8,128}$',
            description: 'Unique per application attempt',
          }),
        }),
        body: ApplicationRequest,
        response: {
          201: CaseView,
          ...standardProblemResponses({
            ...AUTH_PROBLEMS,
            422: 'Idempotency-Key reused with another body',
            503: 'The residence service is unavailable; nothing was saved',
          }),
        },
      },
    },
    async (request, reply) => {
      const outcome = await submitApplication(
        context,
        actorOf(request.caller as NonNullable<typeof request.caller>, 'caseworker', request.id),
        request.headers['idempotency-key'],
        request.body,
      )
      reply.status(outcome.statusCode)
      // A first submission's view comes serialised (the same bytes are stored, sealed, for repeats); a JSON string with
      // its content type set is sent as it is. It is built by caseViewOf, as a read of the case is, whose answers go
      // through the response schema's serialiser; the cross-city test compares the two.
      if (outcome.json !== undefined) return reply.type('application/json; charset=utf-8').send(outcome.json)
      return reply.send(outcome.body)
    },
  )

  app.get<{ Params: Static<typeof IdParams> }>(
    '/v1/applications/:id',
    {
      onRequest: caseworker,
      schema: {
        tags,
        summary: 'An application: status, full event history, the partner city’s latest word, deadline',
        security: BEARER_SECURITY,
        params: IdParams,
        response: { 200: CaseView, ...standardProblemResponses(AUTH_PROBLEMS) },
      },
    },
    async (request) =>
      readCase(context, 'outgoing', request.params.id, actorOf(request.caller as never, 'caseworker', request.id)),
  )

  await app.register(caseListRoute, { context, side: 'outgoing', path: '/v1/applications', role: 'caseworker', tags })

  app.post<{ Params: Static<typeof IdParams>; Body: Static<typeof InfoSupplied> }>(
    '/v1/applications/:id/supply-info',
    {
      onRequest: caseworker,
      schema: {
        tags,
        summary: 'Answer the hukou city’s request for information',
        security: BEARER_SECURITY,
        params: IdParams,
        body: InfoSupplied,
        response: {
          200: CaseView,
          ...standardProblemResponses({ ...AUTH_PROBLEMS, 409: 'Not possible in this state' }),
        },
      },
    },
    async (request) =>
      actOnCase(context, 'outgoing', request.params.id, actorOf(request.caller as never, 'caseworker', request.id), {
        action: 'supply_info',
        messageBody: request.body,
        changes: { open_info_request: null },
        detail: { requestId: request.body.requestId, documents: request.body.documents.length },
        check: (row) => {
          if (row.open_info_request && row.open_info_request.requestId !== request.body.requestId) {
            throw problems.conflict(
              `the open request is ${row.open_info_request.requestId}, not ${request.body.requestId}`,
            )
          }
        },
      }),
  )

  app.post<{ Params: Static<typeof IdParams>; Body: Static<typeof WithdrawRequest> }>(
    '/v1/applications/:id/withdraw',
    {
      onRequest: caseworker,
      schema: {
        tags,
        summary: 'Withdraw an application that is not yet final',
        security: BEARER_SECURITY,
        params: IdParams,
        body: WithdrawRequest,
        response: {
          200: CaseView,
          ...standardProblemResponses({ ...AUTH_PROBLEMS, 409: 'Not possible in this state' }),
        },
      },
    },
    async (request) =>
      actOnCase(context, 'outgoing', request.params.id, actorOf(request.caller as never, 'caseworker', request.id), {
        action: 'withdraw',
        messageBody: { withdrawnAt: new Date().toISOString(), reason: request.body.reason },
        detail: { reason: request.body.reason },
      }),
  )
}
