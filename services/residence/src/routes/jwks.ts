import { type KeyRing, publishedJwks } from '@pilot/signing'
import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'

export async function jwksRoutes(app: FastifyInstance, options: { keys: KeyRing }) {
  const jwks = publishedJwks(options.keys)
  app.get(
    '/.well-known/jwks.json',
    {
      schema: {
        tags: ['keys'],
        summary: "Public keys of this service's residence attestations (also published in the city gateway's JWKS)",
        response: { 200: Type.Object({ keys: Type.Array(Type.Object({}, { additionalProperties: true })) }) },
      },
    },
    async (_request, reply) => {
      reply.header('cache-control', 'public, max-age=300')
      return jwks
    },
  )
}
