import { generateEs256Jwk } from '@pilot/kit'
import { PROBLEM_TYPES } from '@pilot/schemas'
import { token } from '@pilot/testing'
import type { FastifyInstance } from 'fastify'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { idNumber, ndjson, residenceApp } from './helpers.ts'

const verification = { idNumber: idNumber('440304', '19850315', 11), hukouCity: 'zhongshan', asOf: '2023-01-01' }
const feed = (sourceRef: string) =>
  ndjson([{ idNumber: verification.idNumber, kind: 'residence_registration', validFrom: '2022-01-01', sourceRef }])

describe('who may call the residence service', () => {
  let app: FastifyInstance
  beforeAll(async () => {
    app = await residenceApp('shenzhen')
  })
  afterAll(() => app.close())

  const verify = (authorization?: string) =>
    app.inject({
      method: 'POST',
      url: '/v1/residence/verifications',
      headers: authorization ? { authorization } : {},
      payload: verification,
    })
  const importAs = (authorization: string, sourceRef: string) =>
    app.inject({
      method: 'POST',
      url: '/v1/residence/evidence:import',
      headers: { authorization, 'content-type': 'application/x-ndjson' },
      payload: feed(sourceRef),
    })

  it('admits a caseworker of this city to verifications and an operator to imports', async () => {
    expect((await verify(`Bearer ${await token('shenzhen', ['caseworker'])}`)).statusCode).toBe(200)
    expect((await importAs(`Bearer ${await token('shenzhen', ['operator'])}`, 'A-1')).statusCode).toBe(200)
  })

  it.each([
    ['no token', async () => undefined],
    ['a malformed header', async () => 'Basic dXNlcjpwYXNz'],
    [
      'an expired token',
      async () =>
        `Bearer ${await token('shenzhen', ['caseworker'], { issuedAt: Math.floor(Date.now() / 1000) - 9 * 3600, ttlSeconds: 3600 })}`,
    ],
    ["another city's identity provider", async () => `Bearer ${await token('zhuhai', ['caseworker'])}`],
    [
      'a key the identity provider never had',
      async () => `Bearer ${await token('shenzhen', ['caseworker'], { signingJwk: generateEs256Jwk() })}`,
    ],
    ['garbage', async () => 'Bearer not.a.token'],
  ])('answers 401 to %s', async (_label, authorization) => {
    const response = await verify(await authorization())
    expect(response.statusCode).toBe(401)
    expect(response.headers['www-authenticate']).toMatch(/^Bearer/)
    expect(response.json().type).toBe(PROBLEM_TYPES.unauthorized)
  })

  it.each([
    ['a token whose city claim is another city', () => token('shenzhen', ['caseworker'], { cityClaim: 'zhuhai' })],
    ['a reviewer', () => token('shenzhen', ['reviewer'])],
    ['an operator', () => token('shenzhen', ['operator'])],
    ['no role at all', () => token('shenzhen', [])],
  ])('answers 403 to %s asking for a verification', async (_label, mint) => {
    const response = await verify(`Bearer ${await mint()}`)
    expect(response.statusCode).toBe(403)
    expect(response.json().type).toBe(PROBLEM_TYPES.forbidden)
  })

  it('answers 403 to a caseworker importing evidence, and loads nothing', async () => {
    const response = await importAs(`Bearer ${await token('shenzhen', ['caseworker'])}`, 'A-2')
    expect(response.statusCode).toBe(403)
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from evidence where source_ref = 'A-2'`.execute(
      app.db,
    )
    expect(rows[0]?.n).toBe(0)
  })
})
