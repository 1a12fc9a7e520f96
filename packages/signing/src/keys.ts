import { createHash, createPrivateKey, createPublicKey, randomBytes, sign, verify } from 'node:crypto'
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { exportJWK, generateKeyPair } from 'jose'

/** The only algorithms the pilot signs or accepts (DESIGN.md, "Federation protocol v1"). */
export type SigningAlg = 'ES256' | 'EdDSA'

export const ALLOWED_ALGS: readonly SigningAlg[] = Object.freeze(['ES256', 'EdDSA'] as const)

/** Each algorithm is bound to one key type and curve, so a key can never be used under an algorithm it was not for. */
const KEY_TYPES: Record<SigningAlg, { kty: string; crv: string }> = {
  ES256: { kty: 'EC', crv: 'P-256' },
  EdDSA: { kty: 'OKP', crv: 'Ed25519' },
}

export interface PublicJwk {
  kty: string
  crv: string
  x: string
  /** EC keys only. */
  y?: string
  /** RFC 7638 thumbprint (SHA-256) of the key. */
  kid: string
  alg?: SigningAlg
  use?: 'sig'
}

export interface PrivateJwk extends PublicJwk {
  d: string
  alg: SigningAlg
  use: 'sig'
}

export interface Jwks {
  keys: PublicJwk[]
}

/**
 * A city's keys. `next` is published before it signs so partners' JWKS caches know it by the time it does; `retired`
 * keys stay published, public part only, until every message they signed has expired (DESIGN.md, rotation).
 */
export interface KeyRing {
  current: PrivateJwk
  next?: PrivateJwk
  retired: PublicJwk[]
}

/** JWK members that hold secret material, for every key type (RFC 7518 section 6). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const

export function isSigningAlg(value: unknown): value is SigningAlg {
  return typeof value === 'string' && (ALLOWED_ALGS as readonly string[]).includes(value)
}

/** The algorithm a key can serve, judged from its type and curve alone (its `alg` member is a claim to be checked). */
export function keyAlgorithm(jwk: { kty?: unknown; crv?: unknown }): SigningAlg | undefined {
  return ALLOWED_ALGS.find((alg) => KEY_TYPES[alg].kty === jwk.kty && KEY_TYPES[alg].crv === jwk.crv)
}

/**
 * RFC 7638 thumbprint with SHA-256, base64url. Computed here rather than with jose's calculateJwkThumbprint because
 * that one is async and key files are loaded synchronously at start; the tests check that both agree.
 */
export function jwkThumbprint(jwk: { kty?: unknown; crv?: unknown; x?: unknown; y?: unknown }): string {
  if (typeof jwk.crv !== 'string' || typeof jwk.x !== 'string') throw new Error('JWK lacks crv or x')
  // Required members only, in lexicographic order, no whitespace (RFC 7638 section 3.2).
  let members: Record<string, string>
  if (jwk.kty === 'EC') {
    if (typeof jwk.y !== 'string') throw new Error('EC JWK lacks y')
    members = { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }
  } else if (jwk.kty === 'OKP') {
    members = { crv: jwk.crv, kty: jwk.kty, x: jwk.x }
  } else {
    throw new Error(`unsupported key type ${JSON.stringify(jwk.kty)}`)
  }
  return createHash('sha256').update(JSON.stringify(members), 'utf8').digest('base64url')
}

/** A new key pair for signing; the private JWK carries its own public part, so it is the only thing to store. */
export async function generateSigningKey(alg: SigningAlg = 'ES256'): Promise<PrivateJwk> {
  if (!isSigningAlg(alg)) throw new TypeError(`unsupported signing algorithm ${JSON.stringify(alg)}`)
  const { privateKey } = await generateKeyPair(alg, { extractable: true })
  const { kty, crv, x, y, d } = await exportJWK(privateKey)
  if (kty !== KEY_TYPES[alg].kty || crv !== KEY_TYPES[alg].crv || x === undefined || d === undefined) {
    throw new Error(`generated ${alg} key is not a ${KEY_TYPES[alg].crv} key`)
  }
  const jwk: PrivateJwk = { kty, crv, x, ...(y === undefined ? {} : { y }), d, alg, kid: '', use: 'sig' }
  jwk.kid = jwkThumbprint(jwk)
  return jwk
}

/**
 * The publishable part of a key. It copies the public members it knows instead of deleting the private ones it
 * knows, so a member nobody thought of cannot leak into a JWKS.
 */
export function publicJwk(jwk: PublicJwk | PrivateJwk): PublicJwk {
  const out: PublicJwk = { kty: jwk.kty, crv: jwk.crv, x: jwk.x, kid: jwk.kid }
  if (jwk.y !== undefined) out.y = jwk.y
  if (jwk.alg !== undefined) out.alg = jwk.alg
  if (jwk.use !== undefined) out.use = jwk.use
  return out
}

/** Current, next and retired public keys, each kid once: what `/.well-known/jwks.json` serves. */
export function publishedJwks(ring: KeyRing): Jwks {
  const keys = new Map<string, PublicJwk>()
  for (const jwk of [ring.current, ...(ring.next ? [ring.next] : []), ...ring.retired]) {
    if (!keys.has(jwk.kid)) keys.set(jwk.kid, publicJwk(jwk))
  }
  return { keys: [...keys.values()] }
}

export interface KeyRingFiles {
  /** Private JWK that signs now. */
  currentFile: string
  /** Private JWK announced in the JWKS, to sign after the next rotation. */
  nextFile?: string
  /** JWKS `{ keys: [...] }` of public keys that no longer sign but must still verify. */
  retiredFile?: string
}

/**
 * Reads and checks a city's key files at start, so a bad key stops the process with the file's name instead of
 * failing the first signature or, worse, publishing a private key.
 */
export function loadKeyRing(files: KeyRingFiles): KeyRing {
  const current = checkPrivateKey(readJson(files.currentFile), files.currentFile)
  const ring: KeyRing = { current, retired: [] }
  if (files.nextFile !== undefined) {
    ring.next = checkPrivateKey(readJson(files.nextFile), files.nextFile)
    if (ring.next.kid === current.kid) throw new Error(`${files.nextFile}: the next key is the current key`)
  }
  if (files.retiredFile !== undefined) {
    const file = files.retiredFile
    const jwks = readJson(file)
    if (!isRecord(jwks) || !Array.isArray(jwks.keys)) throw new Error(`${file}: not a JWKS ({ "keys": [...] })`)
    ring.retired = jwks.keys.map((key: unknown, index: number) => checkPublicKey(key, `${file}: keys[${index}]`))
  }
  return ring
}

/**
 * Writes a key file readable by its owner only. It goes to a temporary file first and is renamed into place, so the
 * mode holds even when replacing an existing, more open file, and a crash never leaves half a key behind.
 */
export function saveKeyFile(path: string, jwk: PrivateJwk | PublicJwk | Jwks): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
  const temporary = join(dirname(path), `.${randomBytes(6).toString('hex')}.tmp`)
  try {
    writeFileSync(temporary, `${JSON.stringify(jwk, null, 2)}\n`, { mode: 0o600, flag: 'wx' })
    renameSync(temporary, path)
  } catch (error) {
    rmSync(temporary, { force: true })
    throw error
  }
}

function readJson(file: string): unknown {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    throw new Error(`${file}: cannot read key file: ${(error as Error).message}`, { cause: error })
  }
  try {
    return JSON.parse(text)
  } catch (error) {
    // The parser's message may quote the file's content, which is a private key: say only that it is not JSON.
    throw new Error(`${file}: not valid JSON`, { cause: error })
  }
}

function checkPrivateKey(value: unknown, where: string): PrivateJwk {
  const key = checkPublicMembers(value, where)
  if (!isRecord(value) || typeof value.d !== 'string' || value.d === '') {
    throw new Error(`${where}: not a private key (no "d" member)`)
  }
  const jwk: PrivateJwk = { ...key, d: value.d, use: 'sig' }
  // A private part that does not belong to the public one would sign under a kid whose key cannot verify it. Node
  // keeps the x and y it is given next to d without checking them, so the pair is tested by signing, not by export.
  let matches: boolean
  try {
    const { d, ...pub } = jwk
    const probe = Buffer.from('key pair check')
    const digest = jwk.alg === 'ES256' ? 'sha256' : null
    const signature = sign(digest, probe, createPrivateKey({ key: { ...jwk }, format: 'jwk' }))
    matches = verify(digest, probe, createPublicKey({ key: pub, format: 'jwk' }), signature)
  } catch (error) {
    throw new Error(`${where}: not a usable ${jwk.alg} private key`, { cause: error })
  }
  if (!matches) throw new Error(`${where}: the private part "d" does not belong to the public key (x, y)`)
  return jwk
}

function checkPublicKey(value: unknown, where: string): PublicJwk {
  if (isRecord(value)) {
    const secret = PRIVATE_MEMBERS.filter((member) => member in value)
    if (secret.length > 0) {
      throw new Error(`${where}: holds private key material (${secret.join(', ')}); publish only the public part`)
    }
  }
  return checkPublicMembers(value, where)
}

/** The checks common to private and public key files; returns the public members only. */
function checkPublicMembers(value: unknown, where: string): PublicJwk & { alg: SigningAlg } {
  if (!isRecord(value)) throw new Error(`${where}: not a JWK object`)
  const { kty, crv, x, y, kid, alg, use } = value
  if (!isSigningAlg(alg)) {
    throw new Error(`${where}: "alg" is ${JSON.stringify(alg)}; it must be one of ${ALLOWED_ALGS.join(', ')}`)
  }
  const expected = KEY_TYPES[alg]
  if (kty !== expected.kty || crv !== expected.crv) {
    throw new Error(`${where}: an ${alg} key must have kty ${expected.kty} and crv ${expected.crv}`)
  }
  if (typeof x !== 'string' || (kty === 'EC' ? typeof y !== 'string' : y !== undefined)) {
    throw new Error(`${where}: missing or unexpected public key coordinates`)
  }
  if (use !== undefined && use !== 'sig') throw new Error(`${where}: "use" is ${JSON.stringify(use)}, not "sig"`)
  const thumbprint = jwkThumbprint({ kty, crv, x, y })
  if (kid !== thumbprint) {
    throw new Error(`${where}: "kid" ${JSON.stringify(kid)} is not the key's RFC 7638 thumbprint ${thumbprint}`)
  }
  return { kty, crv, x, ...(typeof y === 'string' ? { y } : {}), kid: thumbprint, alg, use: 'sig' }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
