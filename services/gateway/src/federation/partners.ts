import { keyPublishersFor } from '@pilot/kit'
import type { CityProfile, MessageType, PilotProfile } from '@pilot/schemas'
import {
  type JwksVerifier,
  type KeyPublisher,
  PartnerKeyRevoked,
  PartnerKeys,
  PartnerKeysUnavailable,
} from '@pilot/signing'

export interface Partner extends KeyPublisher {
  gatewayUrl: string
  /** What we accept from this partner (deny by default). */
  accepts: ReadonlySet<string>
}

// Kept here under their old names: the gateway's problem mapping (inbound.ts) catches them.
export { PartnerKeyRevoked, PartnerKeysUnavailable }

/**
 * The partner cities of the pilot profile, what each may send us, and their public keys (cached, refetched on an
 * unknown kid at a bounded rate, revoked kids refused: see PartnerKeys in @pilot/signing).
 */
export class PartnerDirectory {
  private readonly partners = new Map<string, Partner>()
  private readonly keys: PartnerKeys

  constructor(
    pilot: PilotProfile,
    self: CityProfile,
    options: { cacheSeconds: number; refetchMinIntervalMs: number; fetchTimeoutMs?: number },
  ) {
    this.keys = new PartnerKeys(options)
    const publishers = keyPublishersFor(pilot, self)
    for (const city of pilot.cities) {
      const publisher = publishers.get(city.id)
      if (!publisher) continue
      // Receipts only ever come back as the answer to our own POST; a receipt POSTed to us is refused like any type
      // the partner may not send.
      const accepts = new Set<string>(self.federation.acceptsFrom[city.id] ?? [])
      this.partners.set(city.id, { ...publisher, gatewayUrl: city.federation.gatewayUrl, accepts })
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
   * our cached copy for up to `cacheSeconds` (up to 6 hours while its JWKS cannot be fetched), and a partner may
   * still publish a key we know to be compromised. Used for inbound messages and for partners' receipts alike.
   */
  async verifierFor(partner: Partner, kid: string | undefined): Promise<JwksVerifier> {
    return this.keys.verifierFor(partner, kid)
  }
}
