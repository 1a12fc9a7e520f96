import type { CityProfile, MessageType, PilotProfile } from '@pilot/schemas'
import { type Jwks, JwksVerifier } from '@pilot/signing'

export interface Partner {
  id: string
  gatewayUrl: string
  jwksUrl: string
  /** What we accept from this partner (deny by default). */
  accepts: ReadonlySet<string>
  /** Kids of this partner our operators revoked (profile `revokedKids`): never trusted, whatever its JWKS says. */
  revokedKids: ReadonlySet<string>
}

interface CachedKeys {
  verifier: JwksVerifier
  kids: Set<string>
  fetchedAt: number
}

export class PartnerKeysUnavailable extends Error {}

/** The message names a key our operators revoked for this partner. */
export class PartnerKeyRevoked extends Error {}

/** How long a partner's last fetched JWKS may stand in while its JWKS endpoint cannot be reached. */
const MAX_STALE_MS = 6 * 3600 * 1000

/**
 * The partner cities of the pilot profile and their public keys. A partner's JWKS is fetched on first need, trusted
 * for `cacheSeconds`, and fetched again early when a message names a kid we have not seen — at most once every
 * `refetchMinIntervalMs`, so a stream of forged kids cannot turn us into a load generator against the partner.
 */
export class PartnerDirectory {
  private readonly partners = new Map<string, Partner>()
  private readonly keys = new Map<string, CachedKeys>()
  private readonly lastFetch = new Map<string, number>()
  private readonly inflight = new Map<string, Promise<CachedKeys>>()

  constructor(
    pilot: PilotProfile,
    self: CityProfile,
    private readonly options: { cacheSeconds: number; refetchMinIntervalMs: number; fetchTimeoutMs?: number },
  ) {
    for (const city of pilot.cities) {
      if (city.id === self.id) continue
      // Receipts only ever come back as the answer to our own POST; a receipt POSTed to us is refused like any type
      // the partner may not send.
      const accepts = new Set<string>(self.federation.acceptsFrom[city.id] ?? [])
      this.partners.set(city.id, {
        id: city.id,
        gatewayUrl: city.federation.gatewayUrl,
        jwksUrl: city.federation.jwksUrl,
        accepts,
        revokedKids: new Set(self.federation.revokedKids?.[city.id] ?? []),
      })
    }
  }

  get(id: string): Partner | undefined {
    return this.partners.get(id)
  }

  all(): Partner[] {
    return [...this.partners.values()]
  }

  accepts(partner: Partner, type: MessageType | string): boolean {
    return partner.accepts.has(type)
  }

  /**
   * A verifier holding the partner's keys, refreshed when stale or when `kid` is unknown (rate-limited). A revoked
   * `kid` is refused first, before the cache or the partner's JWKS is consulted: a key the partner withdrew stays in
   * our cached copy for up to `cacheSeconds` (up to MAX_STALE_MS while its JWKS cannot be fetched), and a partner may
   * still publish a key we know to be compromised. Used for inbound messages and for partners' receipts alike.
   */
  async verifierFor(partner: Partner, kid: string | undefined): Promise<JwksVerifier> {
    if (kid !== undefined && partner.revokedKids.has(kid)) {
      throw new PartnerKeyRevoked(`kid ${JSON.stringify(kid)} of ${partner.id} is revoked (revokedKids)`)
    }
    const now = Date.now()
    let cached = this.keys.get(partner.id)
    const stale = !cached || now - cached.fetchedAt > this.options.cacheSeconds * 1000
    const unknownKid = kid !== undefined && cached !== undefined && !cached.kids.has(kid)
    const mayRefetch = now - (this.lastFetch.get(partner.id) ?? 0) >= this.options.refetchMinIntervalMs
    if (stale || (unknownKid && mayRefetch)) {
      try {
        cached = await this.fetch(partner)
      } catch (error) {
        // Keep verifying with the keys we have while the partner's JWKS endpoint is down, but not for ever: a key the
        // partner has withdrawn (compromised) must stop being trusted even if we cannot hear that it was withdrawn.
        const tooOld = cached && now - cached.fetchedAt > MAX_STALE_MS
        if (!cached || tooOld) throw new PartnerKeysUnavailable((error as Error).message)
      }
    }
    if (!cached) throw new PartnerKeysUnavailable(`no keys for ${partner.id}`)
    return cached.verifier
  }

  private fetch(partner: Partner): Promise<CachedKeys> {
    const running = this.inflight.get(partner.id)
    if (running) return running
    this.lastFetch.set(partner.id, Date.now())
    const fetching = (async () => {
      const response = await fetch(partner.jwksUrl, {
        signal: AbortSignal.timeout(this.options.fetchTimeoutMs ?? 5000),
      })
      if (!response.ok) throw new Error(`${partner.jwksUrl} answered ${response.status}`)
      const jwks = (await response.json()) as Jwks
      if (!Array.isArray(jwks?.keys)) throw new Error(`${partner.jwksUrl} is not a JWKS`)
      // Revoked keys are left out of the verifier too, so no path that skips the kid check above can use them.
      const keys = jwks.keys.filter((key) => !partner.revokedKids.has(key?.kid))
      const entry = {
        verifier: new JwksVerifier({ keys }),
        kids: new Set(keys.map((key) => key.kid)),
        fetchedAt: Date.now(),
      }
      this.keys.set(partner.id, entry)
      return entry
    })()
    this.inflight.set(partner.id, fetching)
    fetching.then(
      () => this.inflight.delete(partner.id),
      () => this.inflight.delete(partner.id),
    )
    return fetching
  }
}
