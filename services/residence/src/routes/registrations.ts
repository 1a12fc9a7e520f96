import { AUTH_PROBLEMS, BEARER_SECURITY, problems, standardProblemResponses } from '@pilot/kit'
import { compareDates, RegistrationConfirmRequest, RegistrationConfirmResult, todayIn } from '@pilot/schemas'
import type { FastifyInstance } from 'fastify'
import type { Kysely } from 'kysely'
import type { ResidenceConfig } from '../config.ts'
import { findStandingRegistration } from '../db/registration-repository.ts'
import type { ResidenceDatabase } from '../db/schema.ts'

export async function registrationRoutes(app: FastifyInstance, options: { config: ResidenceConfig }) {
  const { config } = options
  app.post<{ Body: RegistrationConfirmRequest }>(
    '/v1/residence/registrations::confirm',
    {
      // The intake worker asks for an incoming transfer (system), a reviewer while deciding it.
      onRequest: app.authorize(['system', 'reviewer']),
      schema: {
        tags: ['residence'],
        summary: 'Confirm that a person holds a household registration (hukou) in this city',
        description:
          'The person is named only by the pilot-wide matching hash of their identity number, as an incoming ' +
          'transfer names them, so the number never crosses cities. Registered when a record of that subject began ' +
          'on or before `asOf` and was not cancelled by then. The answer says whether, since when and in which ' +
          'household; nothing else about the person.',
        security: BEARER_SECURITY,
        body: RegistrationConfirmRequest,
        response: { 200: RegistrationConfirmResult, ...standardProblemResponses(AUTH_PROBLEMS) },
      },
    },
    async (request): Promise<RegistrationConfirmResult> => {
      const today = todayIn(config.pilot.timeZone)
      const asOf = request.body.asOf ?? today
      // Whether a registration still stands on a day to come is not known yet; it may be cancelled before then.
      if (compareDates(asOf, today) > 0) throw problems.badRequest(`asOf ${asOf} is after today (${today})`)
      const standing = await findStandingRegistration(app.db as Kysely<ResidenceDatabase>, request.body.subject, asOf)
      return {
        registered: standing !== undefined,
        registeredSince: standing?.registeredSince ?? null,
        householdRef: standing?.householdRef ?? null,
      }
    },
  )
}
