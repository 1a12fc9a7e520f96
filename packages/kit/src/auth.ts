import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import { createLocalJWKSet, createRemoteJWKSet, errors, type JWTVerifyGetKey, jwtVerify } from 'jose'
import { addRequestLogFields } from './logger.ts'
import { type HttpProblem, problems } from './problems.ts'

/** The roles a city's identity provider may grant. `system` is a service acting for itself (a queue worker). */
export const ROLES = ['caseworker', 'reviewer', 'operator', 'auditor', 'system'] as const
export type Role = (typeof ROLES)[number]

/** Who is calling, as the city's identity provider vouches. `id` is the IdP's pseudonymous subject. */
export interface Caller {
  id: string
  city: string
  roles: Role[]
}

declare module 'fastify' {
  interface FastifyRequest {
    caller?: Caller
  }
  interface FastifyInstance {
    /**
     * An onRequest hook admitting callers of this city holding at least one of `roles`. With `cookie`, a token in that
     * cookie is accepted too (for pages an operator opens in a browser, which cannot send a bearer header).
     */
    authorize(roles: readonly Role[], options?: { cookie?: string }): onRequestHookHandler
  }
}

export interface AuthOptions {
  city: string
  issuer: string
  audience: string
  /** http(s) URL of the IdP's JWKS (fetched, cached, refetched on an unknown kid), or a file: URL (development). */
  jwksUrl: string
}

const ALGORITHMS = ['ES256', 'EdDSA']

export function keySetFor(jwksUrl: string): JWTVerifyGetKey {
  if (jwksUrl.startsWith('file:')) {
    return createLocalJWKSet(JSON.parse(readFileSync(fileURLToPath(jwksUrl), 'utf8')))
  }
  // A new IdP key is picked up on the first token that names it, at most once every 30 s.
  return createRemoteJWKSet(new URL(jwksUrl), { cooldownDuration: 30_000, cacheMaxAge: 600_000, timeoutDuration: 5000 })
}

function readCookie(request: FastifyRequest, name: string): string | undefined {
  for (const part of (request.headers.cookie ?? '').split(';')) {
    const [key, ...value] = part.trim().split('=')
    if (key === name) return decodeURIComponent(value.join('='))
  }
  return undefined
}

function unauthorized(reply: FastifyReply, detail: string): HttpProblem {
  reply.header('www-authenticate', 'Bearer realm="pilot", error="invalid_token"')
  return problems.unauthorized(detail)
}

/**
 * Bearer-token authentication against the city's identity provider. Every route that touches cases or personal data
 * declares the roles it admits; a missing, expired, forged or foreign token is 401, a valid token of another city or
 * without the role is 403.
 */
export const authPlugin = fp(
  async (app: FastifyInstance, options: AuthOptions) => {
    const keys = keySetFor(options.jwksUrl)
    // A caseworker's screen sends the same token with every request; checking its signature each time cost a
    // verification about a tenth of its CPU. A token once verified is trusted until it expires (tokens cannot be
    // revoked anyway: that is what their short lifetime is for). Bounded, oldest entries dropped first.
    const verified = new Map<string, { payload: Record<string, unknown>; expiresAt: number }>()
    const VERIFIED_MAX = 10_000

    async function authenticate(request: FastifyRequest, reply: FastifyReply, cookie?: string): Promise<Caller> {
      const header = request.headers.authorization
      const token = header?.startsWith('Bearer ')
        ? header.slice(7).trim()
        : cookie
          ? readCookie(request, cookie)
          : undefined
      if (!token) throw unauthorized(reply, 'A bearer token from the city identity provider is required')
      let payload: Record<string, unknown>
      const cached = verified.get(token)
      if (cached && cached.expiresAt > Date.now()) {
        payload = cached.payload
      } else {
        if (cached) verified.delete(token)
        try {
          ;({ payload } = await jwtVerify(token, keys, {
            issuer: options.issuer,
            audience: options.audience,
            algorithms: ALGORITHMS,
            clockTolerance: 60,
            requiredClaims: ['exp', 'sub'],
          }))
        } catch (error) {
          if (error instanceof errors.JWTExpired) throw unauthorized(reply, 'The token has expired')
          if (error instanceof errors.JOSEError) throw unauthorized(reply, 'The token is not valid for this service')
          throw error
        }
        if (verified.size >= VERIFIED_MAX) verified.delete(verified.keys().next().value as string)
        verified.set(token, { payload, expiresAt: (payload.exp as number) * 1000 })
      }
      const roles = Array.isArray(payload.roles)
        ? payload.roles.filter((role): role is Role => (ROLES as readonly unknown[]).includes(role))
        : []
      if (typeof payload.sub !== 'string' || typeof payload.city !== 'string') {
        throw unauthorized(reply, 'The token lacks its subject or city')
      }
      return { id: payload.sub, city: payload.city, roles }
    }

    app.decorate('authorize', (roles: readonly Role[], hookOptions: { cookie?: string } = {}): onRequestHookHandler => {
      return async (request, reply) => {
        const caller = await authenticate(request, reply, hookOptions.cookie)
        if (caller.city !== options.city) {
          throw problems.forbidden(`The token is for ${caller.city}; this service serves ${options.city}`)
        }
        if (!caller.roles.some((role) => roles.includes(role))) {
          throw problems.forbidden(`This action needs the role ${roles.join(' or ')}`)
        }
        request.caller = caller
        // The request already has its own logger; a field on it is cheaper than a child of a child (logger.ts).
        addRequestLogFields(request.log, { caller: caller.id })
      }
    })
  },
  { name: 'auth' },
)
