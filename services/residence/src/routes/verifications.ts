import { AUTH_PROBLEMS, BEARER_SECURITY, problems, standardProblemResponses } from '@pilot/kit'
import {
  compareDates,
  ID_NUMBER_REJECTIONS,
  todayIn,
  VerificationRequest,
  VerificationResult,
  validateIdNumber,
} from '@pilot/schemas'
import type { FastifyInstance } from 'fastify'
import type { ResidenceConfig } from '../config.ts'
import { type VerificationContext, verifyResidence } from '../verifications.ts'

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
    async (request) => {
      const today = todayIn(config.pilot.timeZone)
      const asOf = request.body.asOf ?? today
      // An attestation about a day that has not come yet would vouch for residence nobody has seen.
      if (compareDates(asOf, today) > 0) throw problems.badRequest(`asOf ${asOf} is after today (${today})`)
      const identity = validateIdNumber(request.body.idNumber, today)
      if (!identity.ok) throw problems.invalidField('/idNumber', ID_NUMBER_REJECTIONS[identity.reason])
      return verifyResidence(context, { idNumber: identity.idNumber, hukouCity: request.body.hukouCity, asOf })
    },
  )
}
