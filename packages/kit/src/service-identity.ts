import { readFileSync } from 'node:fs'
import { importJWK, SignJWT } from 'jose'

/**
 * A service acting for itself (a queue worker confirming a registration, say) presents a short-lived token with the
 * role `system`, signed with the service's own key. The city's identity provider publishes that key's public half in
 * its JWKS (the JWT-bearer client pattern), so the called service checks it like any other token; in development the
 * development IdP's key plays that part.
 */
export class ServiceIdentity {
  private cached: { token: string; expiresAt: number } | undefined
  private readonly jwk: Record<string, string>

  constructor(
    keyFile: string,
    private readonly claims: { issuer: string; audience: string; city: string; service: string },
    private readonly ttlSeconds = 300,
  ) {
    this.jwk = JSON.parse(readFileSync(keyFile, 'utf8')) as Record<string, string>
  }

  async token(): Promise<string> {
    const now = Math.floor(Date.now() / 1000)
    if (this.cached && this.cached.expiresAt - 60 > now) return this.cached.token
    const alg = this.jwk.alg ?? 'ES256'
    const token = await new SignJWT({ city: this.claims.city, roles: ['system'] })
      .setProtectedHeader({ alg, kid: this.jwk.kid, typ: 'JWT' })
      .setIssuer(this.claims.issuer)
      .setAudience(this.claims.audience)
      .setSubject(`svc:${this.claims.service}`)
      .setIssuedAt(now)
      .setExpirationTime(now + this.ttlSeconds)
      .sign(await importJWK(this.jwk, alg))
    this.cached = { token, expiresAt: now + this.ttlSeconds }
    return token
  }
}
