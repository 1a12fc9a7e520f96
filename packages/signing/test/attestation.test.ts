import { createHmac, randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import {
  ATTESTATION_TYP,
  generateSigningKey,
  JwksVerifier,
  matchingHash,
  publishedJwks,
  type ResidenceAttestationClaims,
  Signer,
  signAttestation,
  VerificationError,
  type VerificationFailure,
  verifyAttestation,
} from '../src/index.ts'

const NOW = 1_767_225_600 // 2026-01-01T00:00:00Z
const now = new Date(NOW * 1000)
const matchingKey = randomBytes(32)
// The sample number of GB 11643 itself, not a person's.
const subject = matchingHash('11010519491231002X', matchingKey)

const key = await generateSigningKey('ES256')
const signer = new Signer(key)
const jwks = publishedJwks({ current: key, retired: [] })

function attestation(overrides: Partial<ResidenceAttestationClaims> = {}): ResidenceAttestationClaims {
  return {
    iss: 'zhuhai',
    sub: subject,
    iat: NOW,
    exp: NOW + 30 * 86400,
    jti: '6f1d2c3b-4a59-4e68-9d7c-1b2a3c4d5e6f',
    asOf: '2026-01-01',
    residenceSince: '2025-08-31',
    qualifiesOn: '2025-11-30',
    eligible: true,
    rule: 'residence-3-months/v1',
    hukouCity: 'zhongshan',
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

describe('matchingHash', () => {
  it('names the same person the same way whatever the spacing and case of the check character', () => {
    expect(matchingHash(' 11010519491231002x\n', matchingKey)).toBe(subject)
    expect(subject).toMatch(/^[A-Za-z0-9_-]{43}$/)
  })

  it('depends on the key and on the number', () => {
    expect(matchingHash('11010519491231002X', randomBytes(32))).not.toBe(subject)
    expect(matchingHash('110105194912310029', matchingKey)).not.toBe(subject)
  })

  it('is HMAC-SHA256 under the key given, whichever keys were used before', () => {
    const keys = [matchingKey, randomBytes(32), randomBytes(16), matchingKey]
    for (const key of keys) {
      const expected = createHmac('sha256', key).update('11010519491231002X').digest('base64url')
      expect(matchingHash('11010519491231002X', key)).toBe(expected)
    }
  })

  it('refuses an empty number or a short key', () => {
    expect(() => matchingHash('  ', matchingKey)).toThrow(TypeError)
    expect(() => matchingHash('11010519491231002X', Buffer.alloc(8))).toThrow(TypeError)
  })
})

describe('residence attestations', () => {
  it('round-trips', async () => {
    const jws = await signAttestation(signer, attestation())
    expect(JSON.parse(Buffer.from(jws.split('.')[0] ?? '', 'base64url').toString())).toEqual({
      alg: 'ES256',
      kid: key.kid,
      typ: ATTESTATION_TYP,
    })
    const verified = await verifyAttestation(jws, jwks, { now, expectedIssuer: 'zhuhai', expectedSubject: subject })
    expect(verified).toEqual(attestation())
  })

  it('round-trips a negative answer with null dates, and accepts a reusable verifier', async () => {
    const claims = attestation({ residenceSince: null, qualifiesOn: null, eligible: false })
    const jws = await signAttestation(signer, claims)
    expect(await verifyAttestation(jws, new JwksVerifier(jwks), { now })).toEqual(claims)
  })

  it('signs only the attestation claims, whatever else the object carries', async () => {
    const richer = { ...attestation(), idNumber: '11010519491231002X', name: '张三' }
    const jws = await signAttestation(signer, richer)
    const payload = Buffer.from(jws.split('.')[1] ?? '', 'base64url').toString()
    expect(payload).not.toContain('11010519491231002X')
    expect(Object.keys(JSON.parse(payload)).sort()).toEqual(Object.keys(attestation()).sort())
  })

  it('refuses to sign claims of the wrong shape', async () => {
    for (const bad of [{ asOf: '2026-02-30' }, { eligible: 'yes' }, { sub: '' }, { residenceSince: undefined }]) {
      const claims = { ...attestation(), ...bad } as unknown as ResidenceAttestationClaims
      await expect(signAttestation(signer, claims), JSON.stringify(bad)).rejects.toThrow(TypeError)
    }
  })

  it('accepts exactly the calendar dates as asOf (checked against Date over months 0-13 and days 0-32 of many years)', async () => {
    const isCalendarDate = (value: string) => {
      const parsed = new Date(`${value}T00:00:00Z`)
      return (
        /^\d{4}-\d{2}-\d{2}$/.test(value) && !Number.isNaN(parsed.getTime()) && parsed.toISOString().startsWith(value)
      )
    }
    const candidates = [
      '2024-02-29',
      '2023-02-29',
      '2000-02-29',
      '1900-02-29',
      '2026-04-31',
      '2026-13-01',
      '0000-01-01',
    ]
    for (let year = 1999; year <= 2101; year += 17) {
      for (let month = 0; month <= 13; month++) {
        for (let day = 0; day <= 32; day++) {
          candidates.push(`${year}-${String(month).padStart(2, '0')}-${String(day).padStart(2, '0')}`)
        }
      }
    }
    for (const asOf of [...candidates, '2026-1-01', '2026-01-01 ', '２０２６-01-01']) {
      const signed = () => signAttestation(signer, attestation({ asOf }))
      // Year 0 is a Date year but no calendar date (civil dates start at 0001-01-01).
      if (isCalendarDate(asOf) && !asOf.startsWith('0000')) await expect(signed(), asOf).resolves.toBeTypeOf('string')
      else await expect(signed(), asOf).rejects.toThrow(TypeError)
    }
  })

  it('fails when tampered with', async () => {
    const [header, , signature] = (await signAttestation(signer, attestation({ eligible: false }))).split('.')
    const forged = `${header}.${Buffer.from(JSON.stringify(attestation())).toString('base64url')}.${signature}`
    expect(await failure(verifyAttestation(forged, jwks, { now }))).toBe('bad_signature')
  })

  it('fails when expired, allowing 60 s of clock skew', async () => {
    const jws = await signAttestation(signer, attestation({ iat: NOW - 3600, exp: NOW - 61 }))
    expect(await failure(verifyAttestation(jws, jwks, { now }))).toBe('expired')
    const justInside = await signAttestation(signer, attestation({ iat: NOW - 3600, exp: NOW - 59 }))
    await expect(verifyAttestation(justInside, jwks, { now })).resolves.toBeDefined()
  })

  it('fails for another subject or issuer', async () => {
    const jws = await signAttestation(signer, attestation())
    const other = matchingHash('110105194912310029', matchingKey)
    expect(await failure(verifyAttestation(jws, jwks, { now, expectedSubject: other }))).toBe('wrong_subject')
    expect(await failure(verifyAttestation(jws, jwks, { now, expectedIssuer: 'shenzhen' }))).toBe('wrong_issuer')
  })

  it('fails for a token of another kind signed by the same key', async () => {
    const message = await signer.sign({ ...attestation() }, { typ: 'pilot-msg+jwt' })
    expect(await failure(verifyAttestation(message, jwks, { now }))).toBe('wrong_typ')
  })

  it('fails as malformed when a signed attestation has claims of the wrong type', async () => {
    for (const bad of [{ eligible: 'yes' }, { residenceSince: 20250831 }, { hukouCity: null }, { asOf: '1/1/2026' }]) {
      const jws = await signer.sign({ ...attestation(), ...bad }, { typ: ATTESTATION_TYP })
      expect(await failure(verifyAttestation(jws, jwks, { now })), JSON.stringify(bad)).toBe('malformed')
    }
  })

  it('fails for a key the issuer never published', async () => {
    const stranger = new Signer(await generateSigningKey('EdDSA'))
    const jws = await signAttestation(stranger, attestation())
    expect(await failure(verifyAttestation(jws, jwks, { now }))).toBe('unknown_kid')
  })
})
