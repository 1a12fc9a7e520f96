import { loadConfig, PartnerJwksEnv, partnerJwksOptions, readKeyRing, type ServiceConfig } from '@pilot/kit'
import type { KeyRing } from '@pilot/signing'
import { Type } from 'typebox'

const GatewayEnv = {
  SIGNING_KEY_FILE: Type.String({ minLength: 1, description: "The city's current signing key (private JWK)" }),
  SIGNING_NEXT_KEY_FILE: Type.Optional(
    Type.String({
      minLength: 1,
      description: 'The next signing key (private JWK): published in the JWKS, not yet used',
    }),
  ),
  SIGNING_RETIRED_KEYS_FILE: Type.Optional(
    Type.String({
      minLength: 1,
      description: 'Retired public keys (JWKS) still published until every message they signed has expired',
    }),
  ),
  MESSAGE_LIFETIME_SECONDS: Type.Integer({
    default: 300,
    minimum: 30,
    maximum: 600,
    description: 'exp - iat of the messages and receipts this gateway signs (the protocol allows at most 600)',
  }),
  DELIVERY_MAX_ATTEMPTS: Type.Integer({
    default: 15,
    minimum: 1,
    maximum: 100,
    description: 'Delivery attempts before a message is dead-lettered (network errors, 5xx and 429 are retried)',
  }),
  DELIVERY_BACKOFF_BASE_MS: Type.Integer({ default: 1000, minimum: 10, description: 'First retry delay' }),
  DELIVERY_BACKOFF_MAX_MS: Type.Integer({ default: 300_000, minimum: 100, description: 'Longest retry delay' }),
  DELIVERY_TIMEOUT_MS: Type.Integer({
    default: 10_000,
    minimum: 100,
    description: 'Time allowed for a partner to answer',
  }),
  DELIVERY_CONCURRENCY: Type.Integer({ default: 16, minimum: 1, maximum: 256, description: 'Deliveries in flight' }),
  ...PartnerJwksEnv,
  INBOUND_RATE_LIMIT_PER_MINUTE: Type.Integer({
    default: 6000,
    minimum: 1,
    description: 'Messages accepted from one partner per minute before 429',
  }),
  RELAY_RECHECK_SECONDS: Type.Integer({
    default: 30,
    minimum: 1,
    description: 'After how long a handed-off inbound message is checked again (finished, or lost by Redis)',
  }),
  RELAY_INTERVAL_MS: Type.Integer({
    default: 1000,
    minimum: 50,
    description: 'How often stored inbound messages are checked for hand-off to the local services',
  }),
}

export interface GatewayConfig extends ServiceConfig {
  keys: KeyRing
  messageLifetimeSeconds: number
  delivery: { maxAttempts: number; backoffBaseMs: number; backoffMaxMs: number; timeoutMs: number; concurrency: number }
  partnerJwks: { cacheSeconds: number; refetchMinIntervalMs: number }
  inboundRateLimitPerMinute: number
  relayIntervalMs: number
  relayRecheckSeconds: number
}

export function readGatewayConfig(env: Record<string, string | undefined> = process.env): GatewayConfig {
  const config = loadConfig('gateway', GatewayEnv, env)
  return {
    ...config,
    keys: readKeyRing('SIGNING_*_FILE', {
      currentFile: config.env.SIGNING_KEY_FILE,
      nextFile: config.env.SIGNING_NEXT_KEY_FILE,
      retiredFile: config.env.SIGNING_RETIRED_KEYS_FILE,
    }),
    messageLifetimeSeconds: config.env.MESSAGE_LIFETIME_SECONDS,
    delivery: {
      maxAttempts: config.env.DELIVERY_MAX_ATTEMPTS,
      backoffBaseMs: config.env.DELIVERY_BACKOFF_BASE_MS,
      backoffMaxMs: config.env.DELIVERY_BACKOFF_MAX_MS,
      timeoutMs: config.env.DELIVERY_TIMEOUT_MS,
      concurrency: config.env.DELIVERY_CONCURRENCY,
    },
    partnerJwks: partnerJwksOptions(config.env),
    inboundRateLimitPerMinute: config.env.INBOUND_RATE_LIMIT_PER_MINUTE,
    relayIntervalMs: config.env.RELAY_INTERVAL_MS,
    relayRecheckSeconds: config.env.RELAY_RECHECK_SECONDS,
  }
}
