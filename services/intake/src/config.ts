import { dirname, join } from 'node:path'
import { loadConfig, PartnerJwksEnv, partnerJwksOptions, readKeyFile, type ServiceConfig } from '@pilot/kit'
import { Type } from 'typebox'

const IntakeEnv = {
  BLIND_INDEX_KEY_FILE: Type.String({ minLength: 1, description: "The city's blind-index key (32 bytes, base64)" }),
  PII_ENCRYPTION_KEY_FILE: Type.String({
    minLength: 1,
    description: "The city's key for personal data at rest: application forms are stored sealed (32 bytes, base64)",
  }),
  MATCHING_KEY_FILE: Type.String({ minLength: 1, description: 'The pilot-wide matching key (32 bytes, base64)' }),
  SERVICE_IDENTITY_KEY_FILE: Type.String({
    minLength: 1,
    description: "This service's key for its own `system` tokens (its public half is in the city IdP's JWKS)",
  }),
  RESIDENCE_URL: Type.Optional(
    Type.String({
      pattern: '^https?://',
      description: "The city's residence service; defaults to the pilot profile's",
    }),
  ),
  WORKING_DAY_CALENDAR: Type.Optional(
    Type.String({
      minLength: 1,
      description: 'Working-day calendar JSON; defaults to data/cn-workdays.json beside the profile',
    }),
  ),
  OUTBOX_RELAY_INTERVAL_MS: Type.Integer({ default: 500, minimum: 20, description: 'How often the outbox is relayed' }),
  OUTBOX_RESEND_AFTER_SECONDS: Type.Integer({
    default: 60,
    minimum: 1,
    description: 'A relayed message with no delivery outcome after this long is queued again (Redis may have lost it)',
  }),
  AUDIT_CHAIN_INTERVAL_MS: Type.Integer({
    default: 200,
    minimum: 20,
    description: 'How often new audit rows are linked into the hash chain (the longest a row stays unlinked)',
  }),
  IDEMPOTENCY_KEY_RETENTION_DAYS: Type.Integer({
    default: 30,
    minimum: 1,
    description:
      'How long a submission is answered again for its Idempotency-Key; older keys (and their sealed answers) are deleted',
  }),
  // Residence attestations inside incoming transfers are checked against the residence city's JWKS.
  ...PartnerJwksEnv,
  RESIDENCE_TIMEOUT_MS: Type.Integer({
    default: 5000,
    minimum: 100,
    description: 'Time allowed for the residence service',
  }),
  // Group commit: fewer batches in flight make larger batches under load, each costing about what one item did.
  SUBMISSION_WRITE_CONCURRENCY: Type.Integer({
    default: 2,
    minimum: 1,
    maximum: 100,
    description:
      'Statements writing submissions at once (from the pool); submissions arriving meanwhile go together into the next',
  }),
  RESIDENCE_VERIFY_CONCURRENCY: Type.Integer({
    default: 1,
    minimum: 1,
    maximum: 100,
    description:
      'Calls to the residence batch route at once; verifications asked for meanwhile go together into the next call',
  }),
}

export interface IntakeConfig extends ServiceConfig {
  blindIndexKey: Buffer
  piiKey: Buffer
  matchingKey: Buffer
  serviceIdentityKeyFile: string
  residenceUrl: string
  calendarFile: string
  outboxRelayIntervalMs: number
  outboxResendAfterSeconds: number
  auditChainIntervalMs: number
  residenceTimeoutMs: number
  partnerJwks: { cacheSeconds: number; refetchMinIntervalMs: number }
  idempotencyRetentionDays: number
  submissionWriteConcurrency: number
  residenceVerifyConcurrency: number
}

export function readIntakeConfig(env: Record<string, string | undefined> = process.env): IntakeConfig {
  const config = loadConfig('intake', IntakeEnv, env)
  return {
    ...config,
    blindIndexKey: readKeyFile('BLIND_INDEX_KEY_FILE', config.env.BLIND_INDEX_KEY_FILE),
    piiKey: readKeyFile('PII_ENCRYPTION_KEY_FILE', config.env.PII_ENCRYPTION_KEY_FILE),
    matchingKey: readKeyFile('MATCHING_KEY_FILE', config.env.MATCHING_KEY_FILE),
    serviceIdentityKeyFile: config.env.SERVICE_IDENTITY_KEY_FILE,
    residenceUrl: config.env.RESIDENCE_URL ?? config.cityProfile.services.residence.url,
    calendarFile: config.env.WORKING_DAY_CALENDAR ?? join(dirname(config.pilotConfigPath), 'data/cn-workdays.json'),
    outboxRelayIntervalMs: config.env.OUTBOX_RELAY_INTERVAL_MS,
    outboxResendAfterSeconds: config.env.OUTBOX_RESEND_AFTER_SECONDS,
    auditChainIntervalMs: config.env.AUDIT_CHAIN_INTERVAL_MS,
    residenceTimeoutMs: config.env.RESIDENCE_TIMEOUT_MS,
    partnerJwks: partnerJwksOptions(config.env),
    idempotencyRetentionDays: config.env.IDEMPOTENCY_KEY_RETENTION_DAYS,
    submissionWriteConcurrency: config.env.SUBMISSION_WRITE_CONCURRENCY,
    residenceVerifyConcurrency: config.env.RESIDENCE_VERIFY_CONCURRENCY,
  }
}
