import { StrictObject } from '@pilot/schemas'
import { serviceEnv } from '@pilot/testing'
import { Type } from 'typebox'
import { type BuildOptions, buildServiceApp, loadConfig, standardProblemResponses } from '../src/index.ts'

/** A service built with the kit and one route with a body, to exercise what the kit gives every route. */
export const FixtureBody = StrictObject({
  applicant: StrictObject({
    idNumber: Type.String({ pattern: '^[0-9]{17}[0-9X]$' }),
    name: Type.String({ minLength: 1 }),
    phone: Type.Optional(Type.String()),
  }),
  householdSize: Type.Integer({ minimum: 1 }),
})

export async function buildFixtureApp(env: Record<string, string> = {}, options: BuildOptions = {}) {
  const config = loadConfig('intake', {}, serviceEnv('shenzhen', env))
  return buildServiceApp(
    { name: 'intake', title: 'fixture', description: 'kit fixture', version: '0', migrations: {} },
    config,
    async (app) => {
      app.post(
        '/fixture/applications',
        {
          schema: {
            body: FixtureBody,
            response: { 201: StrictObject({ ok: Type.Boolean() }), ...standardProblemResponses() },
          },
        },
        async (request, reply) => {
          // Deliberately log the whole body: redaction must catch it.
          request.log.info({ body: request.body }, 'fixture received an application')
          return reply.status(201).send({ ok: true })
        },
      )
      // Query strings and headers arrive as strings: a default and a conversion, and a header schema with neither.
      app.get(
        '/fixture/search',
        {
          schema: {
            querystring: Type.Object({
              limit: Type.Integer({ minimum: 1, default: 20 }),
              name: Type.Optional(Type.String()),
            }),
            headers: Type.Object({ 'x-fixture-key': Type.String({ pattern: '^[a-z]{3,8}$' }) }),
          },
        },
        async (request) => ({
          query: request.query,
          key: (request.headers as Record<string, string>)['x-fixture-key'],
        }),
      )
      app.get('/fixture/boom', async () => {
        throw new Error('secret internal detail at /srv/app.ts:42')
      })
    },
    options,
  )
}
