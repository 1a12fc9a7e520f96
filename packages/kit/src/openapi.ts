import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { Problem } from '@pilot/schemas'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { PROBLEM_CONTENT_TYPE } from './problems.ts'

export interface OpenApiOptions {
  title: string
  description: string
  version: string
}

const STANDARD_PROBLEMS = {
  400: 'Malformed JSON, an unknown property or a field failing its schema; `errors` names each field',
  404: 'No such resource',
  413: 'Request body over the limit',
  415: 'Content type not accepted',
  500: 'Unexpected error; quote `requestId` to an operator',
} as const

/**
 * Response entries for problem+json statuses, for a route's `response` schema: documents them in OpenAPI and makes
 * Fastify serialize problem bodies by the shared Problem schema.
 */
export function problemResponses(descriptions: Record<number, string>) {
  const responses: Record<number, { description: string; content: Record<string, { schema: typeof Problem }> }> = {}
  for (const [status, description] of Object.entries(descriptions)) {
    responses[Number(status)] = { description, content: { [PROBLEM_CONTENT_TYPE]: { schema: Problem } } }
  }
  return responses
}

/** The `security` and problem responses of a route that needs a bearer token. */
export const AUTH_PROBLEMS = {
  401: 'No token, or an expired, forged or foreign one',
  403: "A token of another city, or without the route's role",
} as const
export const BEARER_SECURITY = [{ bearerAuth: [] }]

/** The problems any route with a JSON body can answer with, plus the given ones. */
export function standardProblemResponses(extra: Record<number, string> = {}) {
  return problemResponses({ ...STANDARD_PROBLEMS, ...extra })
}

/**
 * OpenAPI 3.1 generated from the route schemas (the only source: openapi/*.yaml is written from this and checked for
 * drift in CI), and Swagger UI at /docs.
 */
export const openApiPlugin = fp(
  async (app: FastifyInstance, options: OpenApiOptions) => {
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: { title: options.title, description: options.description, version: options.version },
        components: {
          schemas: {},
          securitySchemes: {
            bearerAuth: {
              type: 'http',
              scheme: 'bearer',
              bearerFormat: 'JWT',
              description:
                "A token from the city's identity provider: iss and aud of this city, a `city` claim equal to this " +
                'city and a `roles` claim (caseworker, reviewer, operator, auditor; system for a service acting for itself).',
            },
          },
        },
      },
      // Third-party UIs mounted on a service (Bull Board) have no schemas; every API route of ours is tagged.
      hideUntagged: true,
    })
    await app.register(swaggerUi, { routePrefix: '/docs', logLevel: 'warn' })
  },
  { name: 'openapi' },
)
