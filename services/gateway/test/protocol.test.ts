import { createPrivateKey, createPublicKey, sign as nodeSign, verify as nodeVerify } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { devSecretsEnv, generateEs256Jwk } from '@pilot/kit'
import { bodyDigest, type Jwks, type PrivateJwk, Signer } from '@pilot/signing'
import { testSecretsDir } from '@pilot/testing'
import { CompactSign } from 'jose'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type CityGateway, gatewayCities, startGateway } from './harness.ts'

const NOW = () => Math.floor(Date.now() / 1000)
const cityKey = (city: string) =>
  JSON.parse(readFileSync(devSecretsEnv(testSecretsDir(), city).SIGNING_KEY_FILE as string, 'utf8')) as PrivateJwk

function claims(overrides: Record<string, unknown> = {}) {
  return {
    iss: 'shenzhen',
    aud: 'zhongshan',
    jti: crypto.randomUUID(),
    iat: NOW(),
    exp: NOW() + 300,
    type: 'case.refused',
    ref: 'SZ-2026-000001',
    body: { reason: 'not_registered_here', detail: 'no registration record' },
    ...overrides,
  }
}

const b64 = (value: unknown) =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')

describe('federation protocol v1: inbound verification', () => {
  let shenzhen: CityGateway
  let zhongshan: CityGateway
  let signer: Signer

  beforeAll(async () => {
    const { gateways } = await gatewayCities(['shenzhen', 'zhongshan'], (profile) => {
      // Zhongshan accepts only transfers from Zhuhai: anything else from Zhuhai is a type it does not take.
      profile.cities.find((city: { id: string }) => city.id === 'zhongshan').federation.acceptsFrom.zhuhai = [
        'case.transfer',
      ]
    })
    shenzhen = gateways.shenzhen as CityGateway
    zhongshan = gateways.zhongshan as CityGateway
    await startGateway(shenzhen)
    await startGateway(zhongshan)
    signer = new Signer(cityKey('shenzhen'))
  })
  afterAll(async () => {
    await shenzhen.app?.close()
    await zhongshan.app?.close()
  })

  async function post(body: string, contentType = 'application/jose') {
    const response = await fetch(`${zhongshan.url}/federation/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': contentType },
      body,
    })
    const text = await response.text()
    return {
      status: response.status,
      contentType: response.headers.get('content-type') ?? '',
      text,
      json: () => JSON.parse(text),
    }
  }
  const signed = (overrides: Record<string, unknown> = {}, by = signer) =>
    by.sign(claims(overrides), { typ: 'pilot-msg+jwt' })
  const inboundCount = async () =>
    (
      await sql<{ n: number }>`select count(*)::int as n from messages where direction = 'inbound'`.execute(
        zhongshan.app?.db as never,
      )
    ).rows[0]?.n

  it('accepts a good message with a signed receipt over its body digest', async () => {
    const message = claims()
    const response = await post(await signer.sign(message, { typ: 'pilot-msg+jwt' }))
    expect(response.status).toBe(202)
    expect(response.contentType).toMatch(/^application\/jose/)
    const receipt = JSON.parse(Buffer.from(response.text.split('.')[1] ?? '', 'base64url').toString('utf8'))
    expect(receipt).toMatchObject({
      iss: 'zhongshan',
      aud: 'shenzhen',
      type: 'receipt',
      ref: message.jti,
      body: { status: 'accepted', digest: bodyDigest(message.body) },
    })
    expect(receipt.exp - receipt.iat).toBeLessThanOrEqual(600)
  })

  const cases: [string, () => Promise<string>, number, string][] = [
    [
      'a bad signature',
      async () => {
        const [h, p, s] = (await signed()).split('.')
        return `${h}.${p}.${s?.startsWith('A') ? `B${s.slice(1)}` : `A${s?.slice(1)}`}`
      },
      401,
      'bad-signature',
    ],
    [
      'a tampered payload',
      async () => {
        const [h, , s] = (await signed()).split('.')
        return `${h}.${b64(claims({ body: { reason: 'x', detail: 'tampered' } }))}.${s}`
      },
      401,
      'bad-signature',
    ],
    [
      'an unknown kid',
      async () => signed({}, new Signer(generateEs256Jwk() as unknown as PrivateJwk)),
      401,
      'unknown-key',
    ],
    ['the key of another partner', async () => signed({}, new Signer(cityKey('zhuhai'))), 401, 'unknown-key'],
    ['alg none', async () => `${b64({ alg: 'none', typ: 'pilot-msg+jwt' })}.${b64(claims())}.`, 401, 'alg-not-allowed'],
    [
      'HS256 keyed with the public key',
      async () => {
        const { d: _d, ...publicKey } = cityKey('shenzhen')
        return new CompactSign(new TextEncoder().encode(JSON.stringify(claims())))
          .setProtectedHeader({ alg: 'HS256', kid: publicKey.kid, typ: 'pilot-msg+jwt' })
          .sign(new TextEncoder().encode(JSON.stringify(publicKey)))
      },
      401,
      'alg-not-allowed',
    ],
    ['a wrong audience', async () => signed({ aud: 'zhuhai' }), 401, 'wrong-audience'],
    ['an unknown issuer', async () => signed({ iss: 'guangzhou' }), 401, 'unknown-issuer'],
    [
      'a type the partner may not send',
      async () => signed({ iss: 'zhuhai', type: 'case.decided' }),
      403,
      'type-not-allowed',
    ],
    [
      'a receipt posted as a message',
      async () => signed({ type: 'receipt', body: { status: 'accepted', digest: 'A'.repeat(43) } }),
      403,
      'type-not-allowed',
    ],
    ['an expired message', async () => signed({ iat: NOW() - 900, exp: NOW() - 600 }), 401, 'expired'],
    [
      'iat in the future beyond the tolerance',
      async () => signed({ iat: NOW() + 120, exp: NOW() + 400 }),
      401,
      'not-yet-valid',
    ],
    ['a lifetime over 600 s', async () => signed({ exp: NOW() + 3600 }), 401, 'lifetime-too-long'],
    [
      'a body failing its schema',
      async () => signed({ body: { reason: 'Not A Code!', detail: 'x' } }),
      400,
      'invalid-body',
    ],
    ['an unknown claim', async () => signed({ extra: true }), 400, 'invalid-body'],
    ['a truncated JWS', async () => (await signed()).split('.').slice(0, 2).join('.'), 400, 'malformed'],
    [
      'a payload that is not JSON',
      async () => `${b64({ alg: 'ES256', typ: 'pilot-msg+jwt' })}.${b64('not json')}.AAAA`,
      400,
      'malformed',
    ],
    ['a wrong typ', async () => signer.sign(claims(), { typ: 'JWT' }), 400, 'malformed'],
    [
      'an oversized message',
      async () => signed({ body: { reason: 'x', detail: 'y'.repeat(1_100_000) } }),
      413,
      'too-large',
    ],
  ]

  it.each(cases)(
    'refuses %s with its status and problem type, storing nothing',
    async (_label, build, status, cause) => {
      const before = await inboundCount()
      const response = await post(await build())
      expect(response.status).toBe(status)
      expect(response.contentType).toMatch(/^application\/problem\+json/)
      expect(response.json().type).toBe(`urn:pilot:problem:federation:${cause}`)
      expect(await inboundCount()).toBe(before)
    },
  )

  it('refuses another content type with 415', async () => {
    const response = await post(JSON.stringify(claims()), 'application/json')
    expect(response.status).toBe(415)
    expect(response.json().type).toBe('urn:pilot:problem:federation:unsupported-media-type')
  })

  it('answers a replay with the same body 202 duplicate and does nothing twice; another body is 409', async () => {
    const message = claims()
    const first = await post(await signer.sign(message, { typ: 'pilot-msg+jwt' }))
    expect(first.status).toBe(202)
    // A retry is re-signed with new times but keeps jti and body.
    const retry = await post(
      await signer.sign({ ...message, iat: NOW() + 1, exp: NOW() + 301 }, { typ: 'pilot-msg+jwt' }),
    )
    expect(retry.status).toBe(202)
    const receipt = JSON.parse(Buffer.from(retry.text.split('.')[1] ?? '', 'base64url').toString('utf8'))
    expect(receipt.body).toEqual({ status: 'duplicate', digest: bodyDigest(message.body) })
    const rows = await sql<{
      n: number
    }>`select count(*)::int as n from messages where message_id = ${message.jti}`.execute(zhongshan.app?.db as never)
    expect(rows.rows[0]?.n).toBe(1)
    const jobs = await zhongshan.app?.queues
      .queue('federation.inbound')
      .getJobs(['waiting', 'active', 'completed', 'delayed'])
    expect(jobs?.filter((job) => (job.data as { messageId: string }).messageId === message.jti)).toHaveLength(1)

    const otherRef = await post(await signer.sign({ ...message, ref: 'SZ-2026-999999' }, { typ: 'pilot-msg+jwt' }))
    expect(otherRef.status).toBe(409)

    const conflicting = await post(
      await signer.sign({ ...message, body: { reason: 'other', detail: 'changed' } }, { typ: 'pilot-msg+jwt' }),
    )
    expect(conflicting.status).toBe(409)
    expect(conflicting.json().type).toBe('urn:pilot:problem:federation:replay-conflict')
  })

  it('stores the raw JWS, the verified claims and the receipt it issued', async () => {
    const jws = await signed()
    const response = await post(jws)
    const jti = JSON.parse(Buffer.from(jws.split('.')[1] ?? '', 'base64url').toString('utf8')).jti
    const { rows } = await sql<{ raw_jws: string; receipt_jws: string; claims: { jti: string } }>`
      select raw_jws, receipt_jws, claims from messages where message_id = ${jti}`.execute(zhongshan.app?.db as never)
    expect(rows[0]).toEqual({
      raw_jws: jws,
      receipt_jws: response.text,
      claims: expect.objectContaining({ jti, iss: 'shenzhen' }),
    })
  })

  describe('interoperability with a JOSE implementation other than jose', () => {
    it("accepts a message signed with Node's crypto alone, and its receipt verifies with Node's crypto alone", async () => {
      const jwk = cityKey('shenzhen')
      const message = claims()
      const input = `${b64({ alg: 'ES256', kid: jwk.kid, typ: 'pilot-msg+jwt' })}.${b64(message)}`
      const signature = nodeSign('sha256', Buffer.from(input), {
        key: createPrivateKey({ key: jwk as never, format: 'jwk' }),
        dsaEncoding: 'ieee-p1363',
      })
      const response = await post(`${input}.${signature.toString('base64url')}`)
      expect(response.status).toBe(202)

      const [header, payload, receiptSignature] = response.text.split('.') as [string, string, string]
      const { kid } = JSON.parse(Buffer.from(header, 'base64url').toString('utf8'))
      const jwks = (await (await fetch(`${zhongshan.url}/.well-known/jwks.json`)).json()) as Jwks
      const key = jwks.keys.find((candidate) => candidate.kid === kid)
      const valid = nodeVerify(
        'sha256',
        Buffer.from(`${header}.${payload}`),
        { key: createPublicKey({ key: key as never, format: 'jwk' }), dsaEncoding: 'ieee-p1363' },
        Buffer.from(receiptSignature, 'base64url'),
      )
      expect(valid).toBe(true)
      expect(JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')).ref).toBe(message.jti)
    })
  })

  it('publishes its JWKS with RFC 7638 kids and no private members', async () => {
    const response = await fetch(`${zhongshan.url}/.well-known/jwks.json`)
    expect(response.headers.get('cache-control')).toMatch(/max-age=\d+/)
    const jwks = (await response.json()) as Jwks
    expect(jwks.keys.map((key) => key.kid)).toEqual([cityKey('zhongshan').kid])
    expect(JSON.stringify(jwks)).not.toMatch(/"d"/)
  })
})
