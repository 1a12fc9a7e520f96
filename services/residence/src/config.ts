import { loadConfig, readKeyFile, readKeyRing, type ServiceConfig } from '@pilot/kit'
import type { KeyRing } from '@pilot/signing'
import { Type } from 'typebox'

const ResidenceEnv = {
  SIGNING_KEY_FILE: Type.String({
    minLength: 1,
    description: "The city's current signing key (private JWK) for residence attestations; published in the city JWKS",
  }),
  BLIND_INDEX_KEY_FILE: Type.String({ minLength: 1, description: "The city's blind-index key (32 bytes, base64)" }),
  PII_ENCRYPTION_KEY_FILE: Type.String({
    minLength: 1,
    description: "The city's key for identity numbers at rest (32 bytes, base64)",
  }),
  MATCHING_KEY_FILE: Type.String({
    minLength: 1,
    description: 'The pilot-wide matching key (32 bytes, base64) that names a person in attestations across cities',
  }),
  IMPORT_BATCH_SIZE: Type.Integer({ default: 1000, minimum: 1, maximum: 10000, description: 'Rows per insert' }),
}

export interface ResidenceConfig extends ServiceConfig {
  signingKeys: KeyRing
  blindIndexKey: Buffer
  piiKey: Buffer
  matchingKey: Buffer
  importBatchSize: number
}

export function readResidenceConfig(env: Record<string, string | undefined> = process.env): ResidenceConfig {
  const config = loadConfig('residence', ResidenceEnv, env)
  return {
    ...config,
    signingKeys: readKeyRing('SIGNING_KEY_FILE', { currentFile: config.env.SIGNING_KEY_FILE }),
    blindIndexKey: readKeyFile('BLIND_INDEX_KEY_FILE', config.env.BLIND_INDEX_KEY_FILE),
    piiKey: readKeyFile('PII_ENCRYPTION_KEY_FILE', config.env.PII_ENCRYPTION_KEY_FILE),
    matchingKey: readKeyFile('MATCHING_KEY_FILE', config.env.MATCHING_KEY_FILE),
    importBatchSize: config.env.IMPORT_BATCH_SIZE,
  }
}
