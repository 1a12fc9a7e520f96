import { AUTH_PROBLEMS, BEARER_SECURITY, HttpProblem, problems, standardProblemResponses } from '@pilot/kit'
import {
  compareDates,
  ID_NUMBER_REJECTIONS,
  todayIn,
  VERIFICATION_BATCH_MAX,
  VerificationBatchRequest,
  VerificationBatchResult,
  VerificationRequest,
  VerificationResult,
  validateIdNumber,
} from '@pilot/schemas'
import type { FastifyInstance } from 'fastify'
import type { ResidenceConfig } from '../config.ts'
import { type VerificationContext, verifyResidence, verifyResidenceMany } from '../verifications.ts'

export async function verificationRoutes(
  app: FastifyInstance,
  options: { config: ResidenceConfig; context: VerificationContext },
) {
  const { config, context } = options
  app.post<{ Body: VerificationRequest }>(
    '/v1/residence/verifications',
    {
      onRequest: app.authorize(['caseworker']),
      schema: {
        tags: ['residence'],
        summary: 'Decide the 3-month residence rule for an applicant and sign the outcome',
        description:
          "Looks up the applicant's residence evidence in this city's records, merges the intervals of the kinds " +
          'this city counts, and decides whether the applicant has lived here continuously for the required months on ' +
          "`asOf`. The answer carries a signed attestation the hukou city can verify with this city's JWKS.",
        security: BEARER_SECURITY,
        body: VerificationRequest,
        response: { 200: VerificationResult, ...standardProblemResponses(AUTH_PROBLEMS) },
      },
    },
    async (request) => verifyResidence(context, checkedRequest(request.body, todayIn(config.pilot.timeZone), '')),
  )

  app.post<{ Body: VerificationBatchRequest }>(
    '/v1/residence/verifications::batch',
    {
      // The city's intake service, asking for the submissions its caseworkers make at the same moment.
      onRequest: app.authorize(['system']),
      schema: {
        tags: ['residence'],
        summary: `Decide the 3-month rule for up to ${VERIFICATION_BATCH_MAX} applicants at once`,
        description:
          'For the city’s own services (role `system`): the intake service gathers the verifications its caseworkers ' +
          'ask for at the same moment into one request, having authorised each caseworker itself. Each request is ' +
          'decided and signed exactly as POST /v1/residence/verifications would; one that is invalid (identity ' +
          'number, asOf) gets its problem in its place and the others are still decided. The results come in the ' +
          'order of the requests.',
        security: BEARER_SECURITY,
        body: VerificationBatchRequest,
        response: { 200: VerificationBatchResult, ...standardProblemResponses(AUTH_PROBLEMS) },
      },
    },
    async (request): Promise<VerificationBatchResult> => {
      const today = todayIn(config.pilot.timeZone)
      const checked = request.body.requests.map((one, index) => {
        try {
          return checkedRequest(one, today, `/requests/${index}`)
        } catch (error) {
          if (!(error instanceof HttpProblem)) throw error
          return error
        }
      })
      const valid = checked.filter((one): one is Exclude<typeof one, HttpProblem> => !(one instanceof HttpProblem))
      const decided = valid.length > 0 ? await verifyResidenceMany(context, valid) : []
      let next = 0
      return {
        results: checked.map((one) =>
          one instanceof HttpProblem
            ? { problem: { ...one.asProblem(), requestId: request.id } }
            : { verification: decided[next++] as VerificationResult },
        ),
      }
    },
  )
}

/** A request's rules the schema cannot express; `at` is its JSON Pointer in the body, for the problem. */
function checkedRequest(
  body: VerificationRequest,
  today: string,
  at: string,
): { idNumber: string; hukouCity: string; asOf: string } {
  const asOf = body.asOf ?? today
  // An attestation about a day that has not come yet would vouch for residence nobody has seen.
  if (compareDates(asOf, today) > 0)
    throw problems.badRequest(`${at ? `${at}: ` : ''}asOf ${asOf} is after today (${today})`)
  const identity = validateIdNumber(body.idNumber, today)
  if (!identity.ok) throw problems.invalidField(`${at}/idNumber`, ID_NUMBER_REJECTIONS[identity.reason])
  return { idNumber: identity.idNumber, hukouCity: body.hukouCity, asOf }
}
