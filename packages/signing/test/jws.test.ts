import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type JsonWebKey,
  sign as nodeSign,
  verify as nodeVerify,
} from 'node:crypto'
import { CompactSign, calculateJwkThumbprint, decodeProtectedHeader, importJWK } from 'jose'
import { describe, expect, it } from 'vitest'
import {
  ALLOWED_ALGS,
  checkTimes,
  generateSigningKey,
  JwksVerifier,
  jwkThumbprint,
  type PrivateJwk,
  type PublicJwk,
  publicJwk,
  Signer,
  type SigningAlg,
  VerificationError,
  type VerificationFailure,
} from '../src/index.ts'

const TYP = 'pilot-msg+jwt'
const NOW = 1_767_225_600 // 2026-01-01T00:00:00Z

function b64(value: unknown): string {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value), 'utf8').toString('base64url')
}

function claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    iss: 'zhuhai',
    aud: 'zhongshan',
    jti: 'b3d5c1e0-5f0e-4b7a-9a43-0f6f2b7c9d11',
    iat: NOW,
    exp: NOW + 600,
    ...overrides,
  }
}

async function failure(promise: Promise<unknown>): Promise<VerificationFailure> {
  try {
    await promise
  } catch (error) {
    if (error instanceof VerificationError) return error.code
    throw error
  }
  throw new Error('verification succeeded')
}

function failureOf(action: () => void): VerificationFailure {
  try {
    action()
  } catch (error) {
    if (error instanceof VerificationError) return error.code
    throw error
  }
  throw new Error('check succeeded')
}

const keys: Record<SigningAlg, PrivateJwk> = {
  ES256: await generateSigningKey('ES256'),
  EdDSA: await generateSigningKey('EdDSA'),
}
const jwks = { keys: [publicJwk(keys.ES256), publicJwk(keys.EdDSA)] }
const verifier = new JwksVerifier(jwks)
const signer = new Signer(keys.ES256)

describe('keys', () => {
  it.each(ALLOWED_ALGS)('generates %s keys whose kid is the RFC 7638 thumbprint', async (alg) => {
    const jwk = await generateSigningKey(alg)
    expect(jwk).toMatchObject({ alg, use: 'sig', d: expect.any(String), x: expect.any(String) })
    expect(jwk.kid).toBe(await calculateJwkThumbprint(publicJwk(jwk), 'sha256'))
    expect(jwkThumbprint(jwk)).toBe(jwk.kid)
  })

  it('defaults to ES256 on P-256', async () => {
    expect(await generateSigningKey()).toMatchObject({ alg: 'ES256', kty: 'EC', crv: 'P-256', y: expect.any(String) })
  })

  it('keeps only public members in a public JWK', () => {
    const withExtras = { ...keys.ES256, p: 'p', q: 'q', dp: 'dp', dq: 'dq', qi: 'qi', k: 'k' } as PrivateJwk
    const pub = publicJwk(withExtras)
    expect(Object.keys(pub).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y'])
    expect(Object.keys(publicJwk(keys.EdDSA)).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x'])
  })
})

describe('signing and verifying', () => {
  it.each(ALLOWED_ALGS)('round-trips %s', async (alg) => {
    const key = keys[alg]
    const s = new Signer(key)
    expect(s).toMatchObject({ alg, kid: key.kid })
    const jws = await s.sign(claims(), { typ: TYP })
    expect(decodeProtectedHeader(jws)).toEqual({ alg, kid: key.kid, typ: TYP })
    // Nothing is added to the claims: the payload is exactly their JSON.
    expect(jws.split('.')[1]).toBe(b64(claims()))
    const verified = await verifier.verify(jws, { typ: TYP })
    expect(verified).toEqual({ header: { alg, kid: key.kid, typ: TYP }, claims: claims() })
  })

  it('signs with the current key of a key ring', async () => {
    const ringSigner = new Signer({ current: keys.EdDSA, next: keys.ES256, retired: [] })
    expect(ringSigner.kid).toBe(keys.EdDSA.kid)
    const jws = await ringSigner.sign(claims(), { typ: TYP })
    expect((await verifier.verify(jws, { typ: TYP })).header.kid).toBe(keys.EdDSA.kid)
  })

  it('compares typ as RFC 7515 says: ignoring case and an application/ prefix', async () => {
    const jws = await signer.sign(claims(), { typ: 'application/Pilot-Msg+JWT' })
    await expect(verifier.verify(jws, { typ: TYP })).resolves.toBeDefined()
  })

  it('refuses to build a signer from a public key', () => {
    expect(() => new Signer(publicJwk(keys.ES256) as PrivateJwk)).toThrow(/private/)
  })
})

describe('verification failures', () => {
  it('bad_signature: tampered payload', async () => {
    const [header, , signature] = (await signer.sign(claims(), { typ: TYP })).split('.')
    const forged = `${header}.${b64(claims({ aud: 'shenzhen' }))}.${signature}`
    expect(await failure(verifier.verify(forged, { typ: TYP }))).toBe('bad_signature')
  })

  it('bad_signature: tampered or empty signature', async () => {
    const jws = await signer.sign(claims(), { typ: TYP })
    const [header, payload, signature = ''] = jws.split('.')
    const flipped = `${signature.slice(0, 10)}${signature[10] === 'A' ? 'B' : 'A'}${signature.slice(11)}`
    expect(await failure(verifier.verify(`${header}.${payload}.${flipped}`, { typ: TYP }))).toBe('bad_signature')
    expect(await failure(verifier.verify(`${header}.${payload}.`, { typ: TYP }))).toBe('bad_signature')
  })
  it('bad_signature: an ES256 signature in DER form, or of the wrong length', async () => {
    const [header, payload, signature = ''] = (await signer.sign(claims(), { typ: TYP })).split('.')
    const key = createPrivateKey({ key: { ...keys.ES256 } as JsonWebKey, format: 'jwk' })
    const der = nodeSign('sha256', Buffer.from(`${header}.${payload}`), key).toString('base64url')
    const raw = Buffer.from(signature, 'base64url')
    for (const wrong of [
      der,
      raw.subarray(0, 63).toString('base64url'),
      Buffer.concat([raw, raw]).toString('base64url'),
    ]) {
      expect(await failure(verifier.verify(`${header}.${payload}.${wrong}`, { typ: TYP }))).toBe('bad_signature')
    }
  })

  it('bad_signature: a header alg that does not fit the key named by kid', async () => {
    // Signed by the Ed25519 key but naming the P-256 key: the kid resolves, the key cannot serve EdDSA.
    const jws = await new CompactSign(Buffer.from(JSON.stringify(claims())))
      .setProtectedHeader({ alg: 'EdDSA', kid: keys.ES256.kid, typ: TYP })
      .sign(await importPrivate(keys.EdDSA))
    expect(await failure(verifier.verify(jws, { typ: TYP }))).toBe('bad_signature')
  })

  it('unknown_kid: a key of another ring, or no kid at all', async () => {
    const stranger = new Signer(await generateSigningKey('ES256'))
    const jws = await stranger.sign(claims(), { typ: TYP })
    expect(await failure(verifier.verify(jws, { typ: TYP }))).toBe('unknown_kid')

    const noKid = await new CompactSign(Buffer.from(JSON.stringify(claims())))
      .setProtectedHeader({ alg: 'ES256', typ: TYP })
      .sign(await importPrivate(keys.ES256))
    expect(await failure(verifier.verify(noKid, { typ: TYP }))).toBe('unknown_kid')
  })

  it('alg_not_allowed: an unsecured token (alg none)', async () => {
    const jws = `${b64({ alg: 'none', kid: keys.ES256.kid, typ: TYP })}.${b64(claims())}.`
    expect(await failure(verifier.verify(jws, { typ: TYP }))).toBe('alg_not_allowed')
    const noAlg = `${b64({ kid: keys.ES256.kid, typ: TYP })}.${b64(claims())}.`
    expect(await failure(verifier.verify(noAlg, { typ: TYP }))).toBe('alg_not_allowed')
  })

  it('alg_not_allowed: HS256 keyed with the public key as JSON or PEM, before any key is touched', async () => {
    const pub = publicJwk(keys.ES256)
    const pem = createPublicKey({ key: { ...pub }, format: 'jwk' }).export({ format: 'pem', type: 'spki' })
    // A JWKS whose key cannot even be imported: reaching it would give bad_signature, not alg_not_allowed.
    const broken = new JwksVerifier({ keys: [{ ...pub, x: 'not-a-coordinate' }] })
    for (const secret of [JSON.stringify(pub), pem.toString()]) {
      const jws = await new CompactSign(Buffer.from(JSON.stringify(claims())))
        .setProtectedHeader({ alg: 'HS256', kid: pub.kid, typ: TYP })
        .sign(Buffer.from(secret))
      expect(await failure(verifier.verify(jws, { typ: TYP }))).toBe('alg_not_allowed')
      expect(await failure(broken.verify(jws, { typ: TYP }))).toBe('alg_not_allowed')
    }
    const es256 = await signer.sign(claims(), { typ: TYP })
    expect(await failure(broken.verify(es256, { typ: TYP }))).toBe('bad_signature')
  })

  it('alg_not_allowed: an algorithm the caller narrowed away', async () => {
    const jws = await signer.sign(claims(), { typ: TYP })
    expect(await failure(verifier.verify(jws, { typ: TYP, algorithms: ['EdDSA'] }))).toBe('alg_not_allowed')
  })

  it('wrong_typ: a token of another kind, or none', async () => {
    const jws = await signer.sign(claims(), { typ: 'residence-attestation+jwt' })
    expect(await failure(verifier.verify(jws, { typ: TYP }))).toBe('wrong_typ')
    const noTyp = await new CompactSign(Buffer.from(JSON.stringify(claims())))
      .setProtectedHeader({ alg: 'ES256', kid: keys.ES256.kid })
      .sign(await importPrivate(keys.ES256))
    expect(await failure(verifier.verify(noTyp, { typ: TYP }))).toBe('wrong_typ')
  })

  it('malformed: truncated, not base64url, or not JSON objects', async () => {
    const jws = await signer.sign(claims(), { typ: TYP })
    const [header, payload, signature] = jws.split('.')
    const cases = [
      jws.slice(0, jws.lastIndexOf('.')),
      `${header}.${payload}`,
      `${jws}.extra`,
      '',
      'not a jws',
      `${header}.${payload}.${signature}=`,
      `${header}.${payload}!.${signature}`,
      `${b64('not json')}.${payload}.${signature}`,
      `${b64([1, 2])}.${payload}.${signature}`,
      `${header}.${b64('[1,2]')}.${signature}`,
      `${header}.${b64('null')}.${signature}`,
      `${header}.${b64('{"iss":')}.${signature}`,
      `${header}.${Buffer.from([0xff, 0xfe, 0x7b, 0x7d]).toString('base64url')}.${signature}`,
      `${b64({ alg: 'ES256', kid: keys.ES256.kid, typ: TYP, crit: ['exp'], exp: 1 })}.${payload}.${signature}`,
    ]
    for (const token of cases) {
      expect(await failure(verifier.verify(token, { typ: TYP })), token).toBe('malformed')
    }
    expect(await failure(verifier.verify(42 as unknown as string, { typ: TYP }))).toBe('malformed')
  })

  it('checks in the stated order: a malformed payload wins over a refused alg', async () => {
    const jws = `${b64({ alg: 'none', typ: 'other' })}.${b64('[]')}.`
    expect(await failure(verifier.verify(jws, { typ: TYP }))).toBe('malformed')
    const wrongEverything = `${b64({ alg: 'ES256', kid: 'nobody', typ: 'other' })}.${b64({})}.AAAA`
    expect(await failure(verifier.verify(wrongEverything, { typ: TYP }))).toBe('wrong_typ')
  })
})

describe('checkTimes', () => {
  const now = new Date(NOW * 1000)

  it('accepts a token inside its lifetime and within tolerance at either end', () => {
    expect(() => checkTimes(claims(), { now, maxLifetimeSeconds: 600 })).not.toThrow()
    expect(() => checkTimes(claims({ iat: NOW + 60, exp: NOW + 120 }), { now })).not.toThrow()
    expect(() => checkTimes(claims({ iat: NOW - 700, exp: NOW - 59 }), { now })).not.toThrow()
  })

  it('expired: at exp plus tolerance and after', () => {
    expect(failureOf(() => checkTimes(claims({ iat: NOW - 700, exp: NOW - 60 }), { now }))).toBe('expired')
    expect(failureOf(() => checkTimes(claims({ iat: NOW - 1000, exp: NOW - 400 }), { now }))).toBe('expired')
    expect(() => checkTimes(claims({ exp: NOW + 1 }), { now, toleranceSeconds: 0 })).not.toThrow()
    expect(failureOf(() => checkTimes(claims({ exp: NOW }), { now, toleranceSeconds: 0 }))).toBe('expired')
  })

  it('not_yet_valid: iat more than the tolerance in the future, or a future nbf', () => {
    expect(failureOf(() => checkTimes(claims({ iat: NOW + 61, exp: NOW + 300 }), { now }))).toBe('not_yet_valid')
    expect(failureOf(() => checkTimes(claims({ iat: NOW + 10, exp: NOW + 300 }), { now, toleranceSeconds: 5 }))).toBe(
      'not_yet_valid',
    )
    expect(failureOf(() => checkTimes(claims({ nbf: NOW + 120 }), { now }))).toBe('not_yet_valid')
  })

  it('missing_times: iat or exp absent or not integers', () => {
    for (const bad of [
      { iat: undefined },
      { exp: undefined },
      { iat: String(NOW) },
      { exp: NOW + 0.5 },
      { nbf: 'x' },
    ]) {
      expect(failureOf(() => checkTimes(claims(bad), { now }))).toBe('missing_times')
    }
  })

  it('lifetime_too_long: exp - iat above the maximum', () => {
    expect(failureOf(() => checkTimes(claims({ exp: NOW + 601 }), { now, maxLifetimeSeconds: 600 }))).toBe(
      'lifetime_too_long',
    )
    expect(() => checkTimes(claims({ exp: NOW + 601 }), { now })).not.toThrow()
  })
})

describe('interoperability with node:crypto', () => {
  it('verifies an ES256 JWS built by hand with crypto.sign', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const exported = publicKey.export({ format: 'jwk' })
    const pub = { ...exported, kid: jwkThumbprint(exported), alg: 'ES256' } as PublicJwk
    const input = `${b64({ alg: 'ES256', kid: pub.kid, typ: TYP })}.${b64(claims())}`
    const signature = nodeSign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' })
    const verified = await new JwksVerifier({ keys: [pub] }).verify(`${input}.${signature.toString('base64url')}`, {
      typ: TYP,
    })
    expect(verified.claims).toEqual(claims())
  })

  it('verifies an Ed25519 JWS built by hand with crypto.sign', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519')
    const exported = publicKey.export({ format: 'jwk' })
    // No alg member: the key's type and curve are enough to choose EdDSA.
    const pub = { ...exported, kid: jwkThumbprint(exported) } as PublicJwk
    const input = `${b64({ alg: 'EdDSA', kid: pub.kid, typ: TYP })}.${b64(claims())}`
    const signature = nodeSign(null, Buffer.from(input), privateKey)
    const verified = await new JwksVerifier({ keys: [pub] }).verify(`${input}.${signature.toString('base64url')}`, {
      typ: TYP,
    })
    expect(verified.header).toEqual({ alg: 'EdDSA', kid: pub.kid, typ: TYP })
  })

  it.each(ALLOWED_ALGS)('a %s JWS from Signer verifies with crypto.verify', async (alg) => {
    const jws = await new Signer(keys[alg]).sign(claims(), { typ: TYP })
    const [header, payload, signature = ''] = jws.split('.')
    const key = createPublicKey({ key: { ...publicJwk(keys[alg]) }, format: 'jwk' })
    const data = Buffer.from(`${header}.${payload}`)
    const ok =
      alg === 'ES256'
        ? nodeVerify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature, 'base64url'))
        : nodeVerify(null, data, key, Buffer.from(signature, 'base64url'))
    expect(ok).toBe(true)
  })
})

function importPrivate(jwk: PrivateJwk) {
  return importJWK({ ...jwk }, jwk.alg)
}
