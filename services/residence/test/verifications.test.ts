import { PROBLEM_TYPES } from '@pilot/schemas'
import { matchingHash, verifyAttestation } from '@pilot/signing'
import { token } from '@pilot/testing'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readResidenceConfig } from '../src/config.ts'
import { idNumber, importFeed, ndjson, profileWith, residenceApp } from './helpers.ts'

/**
 * The 3-month rule through the HTTP API, against real PostgreSQL: evidence is loaded through the import endpoint and
 * decided through the verification endpoint, as a caseworker's system would.
 */
const person = {
  monthEnd2021: idNumber('440304', '19850315', 11),
  leapYear: idNumber('442000', '19900101', 23),
  touching: idNumber('440402', '19781111', 35),
  oneDayGap: idNumber('440306', '19920229', 47),
  moved: idNumber('440305', '19700101', 59),
  rentalOnly: idNumber('440303', '19880808', 61),
  nobody: idNumber('440301', '19990909', 73),
}

const feed = [
  {
    idNumber: person.monthEnd2021,
    kind: 'residence_registration',
    validFrom: '2021-11-30',
    validTo: null,
    sourceRef: 'RR-1',
  },
  { idNumber: person.leapYear, kind: 'residence_registration', validFrom: '2023-11-30', sourceRef: 'RR-2' },
  {
    idNumber: person.touching,
    kind: 'residence_registration',
    validFrom: '2023-01-01',
    validTo: '2023-01-31',
    sourceRef: 'RR-3',
  },
  { idNumber: person.touching, kind: 'social_insurance', validFrom: '2023-02-01', validTo: null, sourceRef: 'SI-3' },
  {
    idNumber: person.oneDayGap,
    kind: 'residence_registration',
    validFrom: '2023-01-01',
    validTo: '2023-01-31',
    sourceRef: 'RR-4',
  },
  {
    idNumber: person.oneDayGap,
    kind: 'residence_registration',
    validFrom: '2023-02-02',
    validTo: null,
    sourceRef: 'RR-5',
  },
  {
    idNumber: person.moved,
    kind: 'residence_registration',
    validFrom: '2020-01-01',
    validTo: '2023-06-30',
    sourceRef: 'RR-6',
  },
  {
    idNumber: person.rentalOnly,
    kind: 'rental_registration',
    validFrom: '2022-01-01',
    validTo: null,
    sourceRef: 'RENT-7',
  },
]

describe('residence verification over HTTP', () => {
  let app: FastifyInstance
  /** Same city and database, but a policy with gapToleranceDays 1 that does not count rental registration. */
  let lenient: FastifyInstance
  let caseworker: string

  beforeAll(async () => {
    app = await residenceApp('shenzhen')
    lenient = await residenceApp('shenzhen', {
      PILOT_CONFIG: await profileWith('shenzhen', {
        gapToleranceDays: 1,
        countedEvidenceKinds: ['residence_registration', 'social_insurance'],
      }),
    })
    caseworker = await token('shenzhen', ['caseworker'])
    const loaded = await importFeed(app, 'shenzhen', ndjson(feed))
    expect(loaded.json()).toMatchObject({ inserted: feed.length, rejected: 0 })
  })
  afterAll(async () => {
    await Promise.all([app.close(), lenient.close()])
  })

  async function verify(idNumber: string, asOf?: string, hukouCity = 'zhongshan', instance = app) {
    const response = await instance.inject({
      method: 'POST',
      url: '/v1/residence/verifications',
      headers: { authorization: `Bearer ${caseworker}` },
      payload: { idNumber, hukouCity, ...(asOf ? { asOf } : {}) },
    })
    expect(response.statusCode).toBe(200)
    return response.json()
  }

  it('S = 2021-11-30 qualifies on 2022-02-28 and not on 2022-02-27', async () => {
    expect(await verify(person.monthEnd2021, '2022-02-28')).toMatchObject({
      eligible: true,
      reasons: [],
      residenceSince: '2021-11-30',
      qualifiesOn: '2022-02-28',
      monthsResided: 3,
    })
    expect(await verify(person.monthEnd2021, '2022-02-27')).toMatchObject({
      eligible: false,
      reasons: ['residence_too_short'],
      qualifiesOn: '2022-02-28',
      monthsResided: 2,
    })
  })

  it('S = 2023-11-30 qualifies on 2024-02-29', async () => {
    expect(await verify(person.leapYear, '2024-02-29')).toMatchObject({ eligible: true, qualifiesOn: '2024-02-29' })
    expect(await verify(person.leapYear, '2024-02-28')).toMatchObject({ eligible: false })
  })

  it('two touching intervals of different kinds count as one', async () => {
    const result = await verify(person.touching, '2023-04-01')
    expect(result).toMatchObject({ eligible: true, residenceSince: '2023-01-01' })
    expect(result.evidenceUsed).toEqual([
      { kind: 'residence_registration', validFrom: '2023-01-01', validTo: '2023-01-31', sourceRef: 'RR-3' },
      { kind: 'social_insurance', validFrom: '2023-02-01', validTo: null, sourceRef: 'SI-3' },
    ])
  })

  it('a one-day gap breaks continuity with gapToleranceDays 0 and not with 1', async () => {
    expect(await verify(person.oneDayGap, '2023-04-15')).toMatchObject({
      eligible: false,
      reasons: ['residence_too_short'],
      residenceSince: '2023-02-02',
    })
    expect(await verify(person.oneDayGap, '2023-04-15', 'zhongshan', lenient)).toMatchObject({
      eligible: true,
      residenceSince: '2023-01-01',
    })
  })

  it('an interval that ended before asOf gives not_resident_on_date', async () => {
    expect(await verify(person.moved, '2023-08-01')).toMatchObject({
      eligible: false,
      reasons: ['not_resident_on_date'],
      residenceSince: null,
      qualifiesOn: null,
      evidenceUsed: [],
    })
  })

  it('ignores kinds the city does not count', async () => {
    expect(await verify(person.rentalOnly, '2023-01-01')).toMatchObject({ eligible: true })
    expect(await verify(person.rentalOnly, '2023-01-01', 'zhongshan', lenient)).toMatchObject({
      eligible: false,
      reasons: ['no_residence_record'],
    })
  })

  it('says why a case is not cross-city', async () => {
    expect((await verify(person.monthEnd2021, '2023-01-01', 'shenzhen')).reasons).toEqual(['same_city'])
    expect((await verify(person.monthEnd2021, '2023-01-01', 'guangzhou')).reasons).toEqual(['hukou_city_not_in_pilot'])
    expect((await verify(person.nobody, '2023-01-01')).reasons).toEqual(['no_residence_record'])
  })

  it('decides for today in Asia/Shanghai when asOf is omitted, and refuses a future asOf', async () => {
    const result = await verify(person.monthEnd2021)
    expect(result.asOf).toBe(new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Shanghai' }).format(new Date()))
    const future = await app.inject({
      method: 'POST',
      url: '/v1/residence/verifications',
      headers: { authorization: `Bearer ${caseworker}` },
      payload: { idNumber: person.monthEnd2021, hukouCity: 'zhongshan', asOf: '2999-01-01' },
    })
    expect(future.statusCode).toBe(400)
    expect(future.json().type).toBe(PROBLEM_TYPES.badRequest)
  })

  it('rejects a malformed request naming the field, and an identity number that fails its checksum', async () => {
    const response = await app.inject({
      method: 'POST',
      url: '/v1/residence/verifications',
      headers: { authorization: `Bearer ${caseworker}` },
      payload: { idNumber: '44030419850315011', hukouCity: 'zhongshan', asOf: '2023-02-29', extra: 1 },
    })
    expect(response.statusCode).toBe(400)
    const pointers = response.json().errors.map((issue: { pointer: string }) => issue.pointer)
    expect(pointers).toEqual(expect.arrayContaining(['/idNumber', '/asOf', '/extra']))

    const badChecksum = `${person.monthEnd2021.slice(0, 17)}${person.monthEnd2021.endsWith('0') ? '1' : '0'}`
    const checksum = await app.inject({
      method: 'POST',
      url: '/v1/residence/verifications',
      headers: { authorization: `Bearer ${caseworker}` },
      payload: { idNumber: badChecksum, hukouCity: 'zhongshan' },
    })
    expect(checksum.statusCode).toBe(400)
    expect(checksum.json().detail).toContain('check character')
  })

  describe('the attestation', () => {
    it("verifies with the city's published JWKS and names the person only by the matching hash", async () => {
      const result = await verify(person.monthEnd2021, '2022-03-01')
      const jwks = (await app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json()
      const config = readResidenceConfig((await import('@pilot/testing')).serviceEnv('shenzhen'))
      const claims = await verifyAttestation(result.attestation, jwks, {
        expectedIssuer: 'shenzhen',
        expectedSubject: matchingHash(person.monthEnd2021, config.matchingKey),
      })
      expect(claims).toMatchObject({
        iss: 'shenzhen',
        eligible: true,
        asOf: '2022-03-01',
        residenceSince: '2021-11-30',
        qualifiesOn: '2022-02-28',
        hukouCity: 'zhongshan',
      })
      expect(claims.exp - claims.iat).toBe(30 * 24 * 3600)
      expect(result.attestation).not.toContain(person.monthEnd2021)
      const payload = Buffer.from(result.attestation.split('.')[1] ?? '', 'base64url').toString('utf8')
      expect(payload).not.toContain(person.monthEnd2021)
      expect(payload).not.toContain('RR-1')
    })

    it('fails when tampered with or expired', async () => {
      const result = await verify(person.moved, '2023-08-01')
      const jwks = (await app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json()
      const [header, payload, signature] = result.attestation.split('.')
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'))
      const forged = `${header}.${Buffer.from(JSON.stringify({ ...claims, eligible: true })).toString('base64url')}.${signature}`
      await expect(verifyAttestation(forged, jwks)).rejects.toMatchObject({ code: 'bad_signature' })
      const later = new Date(Date.now() + 31 * 24 * 3600 * 1000)
      await expect(verifyAttestation(result.attestation, jwks, { now: later })).rejects.toMatchObject({
        code: 'expired',
      })
    })
  })
  describe("the batch route for the city's own services", () => {
    const batch = async (requests: unknown[], bearer: string) =>
      app.inject({
        method: 'POST',
        url: '/v1/residence/verifications:batch',
        headers: { authorization: `Bearer ${bearer}` },
        payload: { requests },
      })

    it('decides each request as the single route does, in order, and gives an invalid one its own problem', async () => {
      const system = await token('shenzhen', ['system'])
      const requests = [
        { idNumber: person.monthEnd2021, hukouCity: 'zhongshan', asOf: '2022-02-28' },
        { idNumber: `${person.nobody.slice(0, 17)}${person.nobody.endsWith('0') ? '1' : '0'}`, hukouCity: 'zhongshan' },
        { idNumber: person.moved, hukouCity: 'zhongshan', asOf: '2023-08-01' },
        { idNumber: person.nobody, hukouCity: 'zhongshan', asOf: '2099-01-01' },
        { idNumber: person.monthEnd2021, hukouCity: 'zhongshan', asOf: '2022-02-27' },
        { idNumber: person.rentalOnly, hukouCity: 'zhongshan', asOf: '2023-01-01' },
      ]
      const response = await batch(requests, system)
      expect(response.statusCode).toBe(200)
      const { results } = response.json()
      expect(results).toHaveLength(requests.length)
      // Each valid request answers what the single route answers, attestation aside (a new one is signed each time).
      for (const index of [0, 2, 4, 5]) {
        const request = requests[index] as { idNumber: string; hukouCity: string; asOf: string }
        const { attestation, ...single } = await verify(request.idNumber, request.asOf, request.hukouCity)
        expect(results[index].problem).toBeUndefined()
        expect({ ...results[index].verification, attestation: undefined }).toEqual({
          ...single,
          attestation: undefined,
        })
        const jwks = (await app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json()
        await expect(verifyAttestation(results[index].verification.attestation, jwks)).resolves.toMatchObject({
          eligible: single.eligible,
          asOf: request.asOf,
        })
      }
      expect(results[0].verification).toMatchObject({ eligible: true, qualifiesOn: '2022-02-28' })
      expect(results[2].verification).toMatchObject({ eligible: false, reasons: ['not_resident_on_date'] })
      expect(results[4].verification).toMatchObject({ eligible: false, reasons: ['residence_too_short'] })
      expect(results[1]).toEqual({
        problem: expect.objectContaining({
          type: PROBLEM_TYPES.validation,
          status: 400,
          errors: [expect.objectContaining({ pointer: '/requests/1/idNumber' })],
        }),
      })
      expect(results[3].problem).toMatchObject({ status: 400, detail: expect.stringContaining('/requests/3: asOf') })
    })

    it('is for services only: a caseworker is refused, and so is an empty or oversized batch', async () => {
      const system = await token('shenzhen', ['system'])
      const one = { idNumber: person.monthEnd2021, hukouCity: 'zhongshan' }
      expect((await batch([one], caseworker)).statusCode).toBe(403)
      expect((await batch([], system)).statusCode).toBe(400)
      const tooMany = await batch(
        Array.from({ length: 101 }, () => one),
        system,
      )
      expect(tooMany.statusCode).toBe(400)
      expect(tooMany.headers['content-type']).toContain('application/problem+json')
    })
  })
})
