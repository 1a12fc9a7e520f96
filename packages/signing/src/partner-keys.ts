import { JwksVerifier } from './jws.ts'
import type { Jwks } from './keys.ts'

/** Where a pilot city publishes its public keys, and which of its kids our operators revoked. */
export interface KeyPublisher {
  id: string
  jwksUrl: string
  /** Kids our operators revoked for this city (profile `federation.revokedKids`): never trusted, whatever its JWKS says. */
  revokedKids: ReadonlySet<string>
}

export interface PartnerKeysOptions {
  /** How long a fetched JWKS is trusted before it is fetched again. */
  cacheSeconds: number
  /** The least time between two fetches of one city's JWKS prompted by a kid we have not seen. */
  refetchMinIntervalMs: number
  fetchTimeoutMs?: number
  /** How long the last fetched JWKS may stand in while the city's JWKS endpoint cannot be reached. */
  maxStaleMs?: number
}

/** The city's keys cannot be had: neither fetched now nor held from a recent enough fetch. Try again later. */
export class PartnerKeysUnavailable extends Error {}

/** The JWS names a key our operators revoked for this city. */
export class PartnerKeyRevoked extends Error {}

interface CachedKeys {
  verifier: JwksVerifier
  kids: Set<string>
  fetchedAt: number
}

const DEFAULT_MAX_STALE_MS = 6 * 3600 * 1000

/**
 * The public keys of the other pilot cities, as the gateway (messages, receipts) and the intake service (residence
 * attestations inside a transfer) both need them. A city's JWKS is fetched on first need, trusted for `cacheSeconds`,
 * and fetched again early when a JWS names a kid we have not seen — so a key the city has just started signing with
 * verifies at once — but at most once every `refetchMinIntervalMs`, so a stream of forged kids cannot turn us into a
 * load generator against the city. A revoked kid is refused before the cache or the JWKS is consulted, and revoked
 * keys are left out of the verifier too, so no path that skips that check can use them.
 */
export class PartnerKeys {
  private readonly keys = new Map<string, CachedKeys>()
  private readonly lastFetch = new Map<string, number>()
  private readonly inflight = new Map<string, Promise<CachedKeys>>()

  constructor(private readonly options: PartnerKeysOptions) {}

  async verifierFor(city: KeyPublisher, kid: string | undefined): Promise<JwksVerifier> {
    if (kid !== undefined && city.revokedKids.has(kid)) {
      throw new PartnerKeyRevoked(`kid ${JSON.stringify(kid)} of ${city.id} is revoked (revokedKids)`)
    }
    const now = Date.now()
    let cached = this.keys.get(city.id)
    const stale = !cached || now - cached.fetchedAt > this.options.cacheSeconds * 1000
    const unknownKid = kid !== undefined && cached !== undefined && !cached.kids.has(kid)
    const mayRefetch = now - (this.lastFetch.get(city.id) ?? 0) >= this.options.refetchMinIntervalMs
    if (stale || (unknownKid && mayRefetch)) {
      try {
        cached = await this.fetch(city)
      } catch (error) {
        // Keep verifying with the keys we have while the city's JWKS endpoint is down, but not for ever: a key the
        // city has withdrawn (compromised) must stop being trusted even if we cannot hear that it was withdrawn.
        const tooOld = cached && now - cached.fetchedAt > (this.options.maxStaleMs ?? DEFAULT_MAX_STALE_MS)
        if (!cached || tooOld) throw new PartnerKeysUnavailable((error as Error).message)
      }
    }
    if (!cached) throw new PartnerKeysUnavailable(`no keys for ${city.id}`)
    return cached.verifier
  }

  private fetch(city: KeyPublisher): Promise<CachedKeys> {
    const running = this.inflight.get(city.id)
    if (running) return running
    this.lastFetch.set(city.id, Date.now())
    const fetching = (async () => {
      const response = await fetch(city.jwksUrl, {
        signal: AbortSignal.timeout(this.options.fetchTimeoutMs ?? 5000),
        // A JWKS is fetched from the URL in the pilot profile and nowhere else.
        redirect: 'error',
      })
      if (!response.ok) throw new Error(`${city.jwksUrl} answered ${response.status}`)
      const jwks = (await response.json()) as Jwks
      if (!Array.isArray(jwks?.keys)) throw new Error(`${city.jwksUrl} is not a JWKS`)
      const keys = jwks.keys.filter((key) => !city.revokedKids.has(key?.kid))
      const entry = {
        verifier: new JwksVerifier({ keys }),
        kids: new Set(keys.map((key) => key.kid)),
        fetchedAt: Date.now(),
      }
      this.keys.set(city.id, entry)
      return entry
    })()
    this.inflight.set(city.id, fetching)
    fetching.then(
      () => this.inflight.delete(city.id),
      () => this.inflight.delete(city.id),
    )
    return fetching
  }
}
