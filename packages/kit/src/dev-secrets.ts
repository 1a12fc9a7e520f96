import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { jwkThumbprint } from '@pilot/signing'
import { importJWK, SignJWT } from 'jose'
import type { Role } from './auth.ts'

/**
 * Development secrets: everything a city's services need that must never be committed — signing keys, the development
 * identity provider's key, the blind-index and encryption keys, the pilot-wide matching key. Generated on this machine
 * into a directory outside git (.pilot/keys for the pilot, a temporary directory for tests). A real deployment mounts
 * its own files at the same variables.
 */

type Jwk = Record<string, string>

/** A new ES256 private JWK whose kid is its thumbprint (synchronous, unlike @pilot/signing's generateSigningKey). */
export function generateEs256Jwk(): Jwk {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const jwk = privateKey.export({ format: 'jwk' }) as Jwk
  return { ...jwk, kid: jwkThumbprint(jwk), alg: 'ES256', use: 'sig' }
}

function publicOnly(jwk: Jwk): Jwk {
  const { d: _d, ...rest } = jwk
  return rest
}

function writeOnce(path: string, content: () => string): void {
  if (!existsSync(path)) writeFileSync(path, content(), { mode: 0o600 })
}

export const devIssuer = (city: string) => `https://idp.${city}.pilot.invalid/dev`
export const devAudience = (city: string) => `pilot-${city}`

/** Creates whatever is missing under `dir` for `cities`; existing files are kept, so data stays readable. */
export function ensureDevSecrets(dir: string, cities: readonly string[]): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  writeOnce(join(dir, 'matching.key'), () => randomBytes(32).toString('base64'))
  for (const city of cities) {
    const cityDir = join(dir, city)
    mkdirSync(cityDir, { recursive: true, mode: 0o700 })
    writeOnce(join(cityDir, 'signing-current.jwk.json'), () => JSON.stringify(generateEs256Jwk(), null, 2))
    writeOnce(join(cityDir, 'idp-private.jwk.json'), () => JSON.stringify(generateEs256Jwk(), null, 2))
    writeOnce(join(cityDir, 'idp-jwks.json'), () => {
      const idp = JSON.parse(readFileSync(join(cityDir, 'idp-private.jwk.json'), 'utf8')) as Jwk
      return JSON.stringify({ keys: [publicOnly(idp)] }, null, 2)
    })
    writeOnce(join(cityDir, 'blind-index.key'), () => randomBytes(32).toString('base64'))
    writeOnce(join(cityDir, 'pii.key'), () => randomBytes(32).toString('base64'))
  }
}

/** The environment variables that point a city's services at its development secrets. */
export function devSecretsEnv(dir: string, city: string): Record<string, string> {
  const cityDir = join(dir, city)
  return {
    AUTH_ISSUER: devIssuer(city),
    AUTH_AUDIENCE: devAudience(city),
    AUTH_JWKS_URL: pathToFileURL(join(cityDir, 'idp-jwks.json')).toString(),
    SIGNING_KEY_FILE: join(cityDir, 'signing-current.jwk.json'),
    BLIND_INDEX_KEY_FILE: join(cityDir, 'blind-index.key'),
    PII_ENCRYPTION_KEY_FILE: join(cityDir, 'pii.key'),
    MATCHING_KEY_FILE: join(dir, 'matching.key'),
    // In development the IdP's own key signs service tokens; in production the IdP trusts the service's key.
    SERVICE_IDENTITY_KEY_FILE: join(cityDir, 'idp-private.jwk.json'),
  }
}

export interface DevTokenOptions {
  roles: readonly Role[]
  /** Pseudonymous user id; defaults to `<city>-<first role>-1`. */
  subject?: string
  ttlSeconds?: number
  /** Override the `city` claim (tests of cross-city refusal). */
  cityClaim?: string
  /** Sign with this key instead of the city's development IdP key (tests of forged tokens). */
  signingJwk?: Jwk
  issuedAt?: number
}

/** Mints a token from the city's development identity provider. */
export async function mintDevToken(dir: string, city: string, options: DevTokenOptions): Promise<string> {
  const jwk = options.signingJwk ?? (JSON.parse(readFileSync(join(dir, city, 'idp-private.jwk.json'), 'utf8')) as Jwk)
  const issuedAt = options.issuedAt ?? Math.floor(Date.now() / 1000)
  return new SignJWT({ city: options.cityClaim ?? city, roles: [...options.roles] })
    .setProtectedHeader({ alg: 'ES256', kid: jwk.kid, typ: 'JWT' })
    .setIssuer(devIssuer(city))
    .setAudience(devAudience(city))
    .setSubject(options.subject ?? `${city}-${options.roles[0] ?? 'nobody'}-1`)
    .setIssuedAt(issuedAt)
    .setExpirationTime(issuedAt + (options.ttlSeconds ?? 8 * 3600))
    .sign(await importJWK(jwk, 'ES256'))
}
