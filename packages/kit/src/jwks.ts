import { type KeyRing, publishedJwks } from '@pilot/signing'
import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'

const PublicJwk = Type.Object(
  {
    kty: Type.String(),
    crv: Type.String(),
    x: Type.String(),
    y: Type.Optional(Type.String()),
    kid: Type.String({ description: 'RFC 7638 thumbprint' }),
    alg: Type.String(),
    use: Type.Optional(Type.String()),
  },
  { title: 'PublicJwk' },
)

/**
 * The city's public keys: the current signing key, the next one (published before it signs, so partners have it when
 * it does) and retired ones (kept until every message they signed has expired).
 */
export async function jwksRoutes(
  app: FastifyInstance,
  options: { keys: KeyRing; cacheSeconds: number; summary: string },
) {
  const jwks = publishedJwks(options.keys)
  app.get(
    '/.well-known/jwks.json',
    {
      schema: {
        tags: ['keys'],
        summary: options.summary,
        security: [],
        response: { 200: Type.Object({ keys: Type.Array(PublicJwk) }, { title: 'Jwks' }) },
      },
    },
    async (_request, reply) => {
      reply.header('cache-control', `public, max-age=${options.cacheSeconds}`)
      return jwks
    },
  )
}
