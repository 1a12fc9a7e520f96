import { randomUUID } from 'node:crypto'
import { AUTH_PROBLEMS, BEARER_SECURITY, problems, standardProblemResponses } from '@pilot/kit'
import { CaseView, DecisionRequest, InfoRequest, RefuseRequest, StrictObject } from '@pilot/schemas'
import type { FastifyInstance } from 'fastify'
import { type Static, type TSchema, Type } from 'typebox'
import { actorOf, type CaseContext } from '../cases/context.ts'
import { recommendationFor } from '../cases/recommendation.ts'
import { actOnCase, type CaseActionInput, readCase } from '../cases/workflows.ts'
import { caseListRoute } from './case-list.ts'

const IdParams = StrictObject({ id: Type.String({ format: 'uuid' }) })
const tags = ['incoming cases']

/** The hukou city's side: reviewers work the cases other cities transferred here. */
export async function incomingRoutes(app: FastifyInstance, options: { context: CaseContext }) {
  const { context } = options
  const reviewer = app.authorize(['reviewer'])

  await app.register(caseListRoute, { context, side: 'incoming', path: '/v1/incoming-cases', role: 'reviewer', tags })

  app.get<{ Params: Static<typeof IdParams> }>(
    '/v1/incoming-cases/:id',
    {
      onRequest: reviewer,
      schema: {
        tags,
        summary: 'An incoming case with its history and deadline',
        security: BEARER_SECURITY,
        params: IdParams,
        response: { 200: CaseView, ...standardProblemResponses(AUTH_PROBLEMS) },
      },
    },
    async (request) =>
      readCase(context, 'incoming', request.params.id, actorOf(request.caller as never, 'reviewer', request.id)),
  )

  const action = <B extends TSchema>(
    path: string,
    summary: string,
    body: B,
    toInput: (body: Static<B>) => CaseActionInput,
  ) =>
    app.post<{ Params: Static<typeof IdParams>; Body: Static<B> }>(
      `/v1/incoming-cases/:id/${path}`,
      {
        onRequest: reviewer,
        schema: {
          tags,
          summary,
          security: BEARER_SECURITY,
          params: IdParams,
          body,
          response: {
            200: CaseView,
            ...standardProblemResponses({ ...AUTH_PROBLEMS, 409: 'Not possible in this state' }),
          },
        },
      },
      async (request) =>
        actOnCase(
          context,
          'incoming',
          request.params.id,
          actorOf(request.caller as never, 'reviewer', request.id),
          toInput(request.body as Static<B>),
        ),
    )

  action(
    'accept',
    'Accept the case for review (the residence city is told, with the review deadline)',
    StrictObject({}),
    () => ({
      action: 'accept',
      messageBody: (row) => ({
        acceptedAt: new Date().toISOString(),
        reviewDeadline: row.review_deadline,
        reviewDeadlineProvisional: row.review_deadline_provisional,
      }),
    }),
  )
  action(
    'start-review',
    'Start the review (the household economic check) of an accepted case',
    StrictObject({}),
    () => ({
      action: 'start_review',
    }),
  )
  action('refuse', 'Refuse the case, with a reason code and explanation', RefuseRequest, (body) => ({
    action: 'refuse',
    messageBody: body,
    detail: { reason: body.reason },
  }))
  action('request-info', 'Ask the residence city for missing information', InfoRequest, (body) => {
    const requestId = randomUUID()
    return {
      action: 'request_info',
      messageBody: { requestId, missing: body.missing },
      changes: { open_info_request: { requestId, missing: body.missing } },
      detail: { requestId, missing: body.missing },
    }
  })
  action(
    'decide',
    'Decide: approved with amount, start month and review date, or rejected with a reason',
    DecisionRequest,
    (body) => {
      const decision = { ...body, decidedAt: new Date().toISOString() }
      return { action: 'decide', messageBody: decision, changes: { decision }, detail: { outcome: body.outcome } }
    },
  )
}
