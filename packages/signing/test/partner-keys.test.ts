import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  generateSigningKey,
  type Jwks,
  kidOf,
  PartnerKeyRevoked,
  PartnerKeys,
  PartnerKeysUnavailable,
  publishedJwks,
  Signer,
  VerificationError,
} from '../src/index.ts'

const TYP = 'test+jwt'
const current = await generateSigningKey('ES256')
const compromised = await generateSigningKey('ES256')
const next = await generateSigningKey('ES256')

/** A city's JWKS endpoint on loopback whose answer the test changes, counting the fetches it serves. */
let published: Jwks = publishedJwks({ current, retired: [compromised] })
let up = true
let fetches = 0
let server: Server
let jwksUrl: string

beforeAll(async () => {
  server = createServer((_request, response) => {
    fetches += 1
    if (!up) {
      response.writeHead(503).end()
      return
    }
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(published))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`
})
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))

const city = () => ({ id: 'shenzhen', jwksUrl, revokedKids: new Set([compromised.kid]) })
const sign = (key: typeof current) => new Signer(key).sign({ iss: 'shenzhen', iat: 1, exp: 2 }, { typ: TYP })

async function verifyWith(keys: PartnerKeys, jws: string) {
  return (await keys.verifierFor(city(), kidOf(jws))).verify(jws, { typ: TYP })
}

describe('PartnerKeys: other cities’ public keys', () => {
  it('verifies with the published key and refuses a revoked kid before any fetch, though the JWKS lists it', async () => {
    published = publishedJwks({ current, retired: [compromised] })
    up = true
    const keys = new PartnerKeys({ cacheSeconds: 300, refetchMinIntervalMs: 0 })
    const before = fetches
    await expect(verifyWith(keys, await sign(compromised))).rejects.toBeInstanceOf(PartnerKeyRevoked)
    expect(fetches).toBe(before)
    expect((await verifyWith(keys, await sign(current))).claims.iss).toBe('shenzhen')
    // Nor can a caller that skips the kid check use it: the verifier never held the revoked key.
    const verifier = await keys.verifierFor(city(), current.kid)
    await expect(verifier.verify(await sign(compromised), { typ: TYP })).rejects.toMatchObject({ code: 'unknown_kid' })
  })

  it('fetches again for a kid it has not seen, at most once per interval', async () => {
    published = publishedJwks({ current, retired: [] })
    up = true
    const keys = new PartnerKeys({ cacheSeconds: 300, refetchMinIntervalMs: 60_000 })
    await verifyWith(keys, await sign(current))
    // The city starts signing with its next key: not in our copy yet.
    published = publishedJwks({ current: next, retired: [current] })
    const fresh = await sign(next)
    // The first fetch was moments ago: within the interval an unknown kid is refused without another fetch.
    const before = fetches
    await expect(verifyWith(keys, fresh)).rejects.toBeInstanceOf(VerificationError)
    expect(fetches).toBe(before)

    const eager = new PartnerKeys({ cacheSeconds: 300, refetchMinIntervalMs: 0 })
    published = publishedJwks({ current, retired: [] })
    await verifyWith(eager, await sign(current))
    published = publishedJwks({ current: next, retired: [current] })
    expect((await verifyWith(eager, fresh)).header.kid).toBe(next.kid)
    // A stream of forged kids costs the city one fetch per interval, not one per JWS.
    const limited = new PartnerKeys({ cacheSeconds: 300, refetchMinIntervalMs: 60_000 })
    await verifyWith(limited, fresh)
    const afterFirst = fetches
    const forged = await sign(await generateSigningKey('ES256'))
    for (let i = 0; i < 20; i++) await expect(verifyWith(limited, forged)).rejects.toBeInstanceOf(VerificationError)
    expect(fetches).toBe(afterFirst)
  })

  it('keeps a recent copy while the endpoint is down, and reports the keys unavailable when it has none', async () => {
    published = publishedJwks({ current, retired: [] })
    up = true
    const keys = new PartnerKeys({ cacheSeconds: 1, refetchMinIntervalMs: 0, maxStaleMs: 60_000 })
    await verifyWith(keys, await sign(current))
    up = false
    await new Promise((resolve) => setTimeout(resolve, 1100))
    // Stale by cacheSeconds, the refetch fails: the copy stands in.
    expect((await verifyWith(keys, await sign(current))).header.kid).toBe(current.kid)

    const tooStale = new PartnerKeys({ cacheSeconds: 1, refetchMinIntervalMs: 0, maxStaleMs: 0 })
    up = true
    await verifyWith(tooStale, await sign(current))
    up = false
    await new Promise((resolve) => setTimeout(resolve, 1100))
    await expect(verifyWith(tooStale, await sign(current))).rejects.toBeInstanceOf(PartnerKeysUnavailable)

    const never = new PartnerKeys({ cacheSeconds: 300, refetchMinIntervalMs: 0 })
    await expect(verifyWith(never, await sign(current))).rejects.toBeInstanceOf(PartnerKeysUnavailable)
    up = true
  })
})

describe('kidOf', () => {
  it('reads the kid of a compact JWS and nothing from what is not one', async () => {
    expect(kidOf(await sign(current))).toBe(current.kid)
    for (const junk of ['', 'a.b.c', '..', 'x', `${Buffer.from('{"kid":1}').toString('base64url')}.e30.`]) {
      expect(kidOf(junk)).toBeUndefined()
    }
  })
})
