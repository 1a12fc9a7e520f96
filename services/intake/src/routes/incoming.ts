import { randomUUID } from 'node:crypto'
import { AUTH_PROBLEMS, BEARER_SECURITY, problems, standardProblemResponses } from '@pilot/kit'
import {
  CaseView,
  DecisionRequest,
  InfoRequest,
  RefuseRequest,
  ResolveBenefitMatchesRequest,
  StrictObject,
} from '@pilot/schemas'
import type { FastifyInstance } from 'fastify'
import { type Static, type TSchema, Type } from 'typebox'
import { askOtherCities, requireMatchesResolved, resolveBenefitMatches } from '../cases/benefit-check.ts'
import { actorOf, type CaseContext } from '../cases/context.ts'
import { recommendationFor } from '../cases/recommendation.ts'
import { caseView } from '../cases/views.ts'
import { actOnCase, type CaseActionInput, loadEvents, readCase } from '../cases/workflows.ts'
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
    docs: { description?: string; conflict?: string } = {},
  ) =>
    app.post<{ Params: Static<typeof IdParams>; Body: Static<B> }>(
      `/v1/incoming-cases/:id/${path}`,
      {
        onRequest: reviewer,
        schema: {
          tags,
          summary,
          ...(docs.description ? { description: docs.description } : {}),
          security: BEARER_SECURITY,
          params: IdParams,
          body,
          response: {
            200: CaseView,
            ...standardProblemResponses({ ...AUTH_PROBLEMS, 409: docs.conflict ?? 'Not possible in this state' }),
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
      alongside: (trx, row, actor) => askOtherCities(context, trx, row, actor),
    }),
    {
      description:
        'With the acceptance, every other pilot city is asked (`benefit.check`, members named only by their matching ' +
        'hash) whether a household member has an active benefit or an open application there; the answers appear in ' +
        '`benefitCheck` as they arrive.',
    },
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
      const { departureReason, ...decision } = { ...body, decidedAt: new Date().toISOString() } as DecisionRequest & {
        decidedAt: string
        departureReason?: string
      }
      return {
        action: 'decide',
        // The reason for departing from the recommendation stays in this city's record; the residence city gets the
        // decision (and the partner's strict schema would refuse the extra field).
        messageBody: decision,
        changes: { decision: { ...decision, ...(departureReason ? { departureReason } : {}) } },
        detail: { outcome: body.outcome, ...(departureReason ? { departureReason } : {}) },
        check: (row) => {
          if (body.outcome !== 'approved') return
          requireMatchesResolved(row)
          if (row.category !== 'subsistence_allowance') return
          const recommended = recommendationFor(context, row)?.recommendations.subsistenceMonthlyFen
          if (recommended !== undefined && recommended !== body.monthlyAmountFen && !departureReason) {
            throw problems.invalidField(
              '/departureReason',
              `is required: the amount differs from the recommended ${recommended} fen a month`,
            )
          }
        },
      }
    },
    {
      description:
        'Approving is refused with 409 `urn:pilot:problem:benefit-matches-unresolved`, naming the matches, while the ' +
        'duplicate-benefit check has matches the reviewer has not resolved. Cities that have not answered the check ' +
        'do not block a decision (a city that is down must not freeze one); `benefitCheck` shows which are missing.',
      conflict: 'Not possible in this state, or (approving) benefit matches not resolved',
    },
  )

  app.post<{ Params: Static<typeof IdParams>; Body: Static<typeof ResolveBenefitMatchesRequest> }>(
    '/v1/incoming-cases/:id/resolve-benefit-matches',
    {
      onRequest: reviewer,
      schema: {
        tags,
        summary:
          'Resolve the duplicate-benefit matches other cities reported, with a note, so that approving may go on',
        description:
          'Not a lifecycle step: the status stays. The note is kept in this city’s record of the case and is not ' +
          'sent to any other city. 409 when the case has no matches, they are already resolved, or it is final. A ' +
          'later answer that brings new matches reopens the resolution.',
        security: BEARER_SECURITY,
        params: IdParams,
        body: ResolveBenefitMatchesRequest,
        response: {
          200: CaseView,
          ...standardProblemResponses({ ...AUTH_PROBLEMS, 409: 'No matches to resolve, or already resolved' }),
        },
      },
    },
    async (request) => {
      const actor = actorOf(request.caller as never, 'reviewer', request.id)
      const row = await resolveBenefitMatches(context, request.params.id, actor, request.body.note)
      return caseView(context, row, await loadEvents(context.db, row.id), actor.role)
    },
  )
}
