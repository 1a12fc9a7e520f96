import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { devSecretsEnv } from '@pilot/kit'
import {
  generateSigningKey,
  matchingHash,
  type PrivateJwk,
  publicJwk,
  Signer,
  saveKeyFile,
  signAttestation,
} from '@pilot/signing'
import { repoRoot, testSecretsDir } from '@pilot/testing'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { call, eventually, startCities, stopCities, type TestCity } from './support/cities.ts'
import {
  applicationBody,
  deliverAndApply,
  idNumber,
  importFeed,
  redriveDead,
  submitApplication,
  withDeadDeliveries,
} from './support/fixtures.ts'

const registeredInZhongshan = idNumber('44200019800101123')
const notRegistered = idNumber('44200019810202456')
const spouse = idNumber('44200019820303789')

const application = (applicantId: string, hukouCity = 'zhongshan') =>
  applicationBody(
    { idNumber: applicantId, monthlyIncomeFen: 50_000 },
    {
      hukouCity,
      household: [{ idNumber: spouse, name: '陈伟', relation: 'spouse', monthlyIncomeFen: 30_000, assetsFen: 100_000 }],
      medicalFen: 120_000,
      documents: [{ name: 'hospital-bill.pdf', mediaType: 'application/pdf', sha256: 'a'.repeat(64) }],
    },
  )

describe('a case across two cities, with real services over HTTP', () => {
  let cities: Record<string, TestCity>
  let shenzhen: TestCity
  let zhongshan: TestCity

  // A Shenzhen key its gateway still publishes (as retired) but Zhongshan's operators revoked: an attestation it signs
  // must be refused even inside a message signed with Shenzhen's good key.
  let revoked: PrivateJwk

  beforeAll(async () => {
    revoked = await generateSigningKey('ES256')
    const keyDir = mkdtempSync(join(tmpdir(), 'cross-city-keys-'))
    saveKeyFile(join(keyDir, 'retired.jwks.json'), { keys: [publicJwk(revoked)] })
    cities = await startCities(
      ['shenzhen', 'zhongshan'],
      {},
      {
        editProfile: (profile) => {
          profile.cities.find((city: { id: string }) => city.id === 'zhongshan').federation.revokedKids = {
            shenzhen: [revoked.kid],
          }
        },
        cityEnv: { shenzhen: { SIGNING_RETIRED_KEYS_FILE: join(keyDir, 'retired.jwks.json') } },
      },
    )
    shenzhen = cities.shenzhen as TestCity
    zhongshan = cities.zhongshan as TestCity
    const evidence = [registeredInZhongshan, notRegistered].map((id, index) => ({
      idNumber: id,
      kind: 'residence_registration',
      validFrom: '2025-01-01',
      sourceRef: `SZ-RR-${index}`,
    }))
    expect(await importFeed(shenzhen, 'evidence', evidence)).toMatchObject({ inserted: 2 })
    const registration = { idNumber: registeredInZhongshan, registeredSince: '1980-01-01', sourceRef: 'ZS-HK-1' }
    expect(await importFeed(zhongshan, 'registrations', [registration])).toMatchObject({ inserted: 1 })
  }, 120_000)
  afterAll(async () => {
    await stopCities(cities)
  })

  const incomingByReference = async (reference: string) => {
    const list = await call(zhongshan, 'intake', 'GET', '/v1/incoming-cases?limit=200', 'reviewer')
    return (list.body.items as { id: string; reference: string; status: string }[]).find(
      (item) => item.reference === reference,
    )
  }
  /** Submits an application in Shenzhen and waits for it to arrive in Zhongshan. */
  const submitAndReceive = async (idempotencyKey: string) => {
    const submitted = await submitApplication(shenzhen, application(registeredInZhongshan), idempotencyKey)
    const incoming = await eventually(
      () => incomingByReference(submitted.body.reference),
      (found) => found?.status === 'received',
    )
    return { submitted, incoming }
  }
  const application$ = (id: string) => call(shenzhen, 'intake', 'GET', `/v1/applications/${id}`, 'caseworker')

  it('goes from submission in Shenzhen to a decision in Zhongshan, every step shown once, in order, in both cities', async () => {
    const submitted = await submitApplication(shenzhen, application(registeredInZhongshan), 'walkthrough-0001')
    expect(submitted.status).toBe(201)
    expect(submitted.body).toMatchObject({ status: 'queued', partnerCity: 'zhongshan', residence: { eligible: true } })
    expect(submitted.body.applicant.idNumberMasked).toBe(
      `${registeredInZhongshan.slice(0, 4)}**********${registeredInZhongshan.slice(14)}`,
    )
    expect(JSON.stringify(submitted.body)).not.toContain(registeredInZhongshan)
    const { id, reference } = submitted.body

    const incoming = await eventually(
      () => incomingByReference(reference),
      (found) => found?.status === 'received',
    )
    expect(incoming).toMatchObject({ status: 'received' })
    const incomingId = incoming?.id as string
    const view = await call(zhongshan, 'intake', 'GET', `/v1/incoming-cases/${incomingId}`, 'reviewer')
    expect(view.body).toMatchObject({
      side: 'incoming',
      partnerCity: 'shenzhen',
      householdSize: 2,
      applicant: { name: '林晓', idNumberMasked: null },
    })

    const act = (path: string, body: unknown = {}) =>
      call(zhongshan, 'intake', 'POST', `/v1/incoming-cases/${incomingId}/${path}`, 'reviewer', body)
    expect((await act('accept')).body.status).toBe('accepted')
    await eventually(
      () => application$(id),
      (answer) => answer.body.status === 'accepted',
    )

    const asked = await act('request-info', { missing: ['Proof of the hospital stay'] })
    expect(asked.body.status).toBe('info_requested')
    const waiting = await eventually(
      () => application$(id),
      (answer) => answer.body.status === 'info_requested',
    )
    const requestId = waiting.body.openInfoRequest.requestId
    expect(waiting.body.openInfoRequest.missing).toEqual(['Proof of the hospital stay'])

    const supplied = await call(shenzhen, 'intake', 'POST', `/v1/applications/${id}/supply-info`, 'caseworker', {
      requestId,
      note: 'Discharge letter attached.',
      documents: [{ name: 'discharge.pdf', mediaType: 'application/pdf', sha256: 'b'.repeat(64) }],
    })
    expect(supplied.body.status).toBe('info_supplied')
    await eventually(
      async () => (await call(zhongshan, 'intake', 'GET', `/v1/incoming-cases/${incomingId}`, 'reviewer')).body.status,
      (status) => status === 'info_supplied',
    )

    // The reviewer sees the policy's recommendation: Zhongshan's standard (the hukou city's, 1160 yuan) for two people
    // less their 800 yuan income.
    const before = await call(zhongshan, 'intake', 'GET', `/v1/incoming-cases/${incomingId}`, 'reviewer')
    expect(before.body.recommendation).toMatchObject({
      policy: { city: 'zhongshan', effectiveFrom: '2022-01-01' },
      recommendations: { subsistenceMonthlyFen: 152_000 },
    })
    const departing = await act('decide', {
      outcome: 'approved',
      monthlyAmountFen: 116_000,
      startMonth: '2026-12',
      reviewDate: '2027-12-01',
    })
    expect(departing.status).toBe(400)
    expect(departing.body.errors).toEqual([expect.objectContaining({ pointer: '/departureReason' })])
    const decided = await act('decide', {
      outcome: 'approved',
      monthlyAmountFen: 116_000,
      startMonth: '2026-12',
      reviewDate: '2027-12-01',
      departureReason: 'Spouse income verified lower than declared; partial month.',
    })
    expect(decided.body.status).toBe('decided')
    const final = await eventually(
      () => application$(id),
      (answer) => answer.body.status === 'decided',
    )
    expect(final.body.decision).toMatchObject({ outcome: 'approved', monthlyAmountFen: 116_000, startMonth: '2026-12' })
    expect(final.body.decision.departureReason).toBeUndefined()
    expect(final.body.partnerLatest).toMatchObject({ type: 'case.decided' })

    const steps = (final.body.events as { action: string }[]).map((event) => event.action)
    const expected = [
      'submit',
      'residence_verified',
      'partner_accepted',
      'partner_requested_info',
      'supply_info',
      'partner_decided',
    ]
    for (const step of expected) expect(steps.filter((action) => action === step)).toHaveLength(1)
    expect(steps.filter((action) => expected.includes(action))).toEqual(expected)
    expect(steps.filter((action) => action === 'transfer_delivered').length).toBeLessThanOrEqual(1)

    const hukouSteps = (
      await call(zhongshan, 'intake', 'GET', `/v1/incoming-cases/${incomingId}`, 'reviewer')
    ).body.events.map((event: { action: string }) => event.action)
    expect(hukouSteps).toEqual(['receive', 'accept', 'request_info', 'partner_supplied_info', 'decide'])
  }, 60_000)

  it('is refused with not_registered_here by a city where the applicant is not registered, and the residence case shows it', async () => {
    const submitted = await submitApplication(shenzhen, application(notRegistered), 'not-registered-01')
    expect(submitted.body.status).toBe('queued')
    const refused = await eventually(
      () => application$(submitted.body.id),
      (answer) => answer.body.status === 'refused',
    )
    expect(refused.body.partnerLatest).toMatchObject({
      type: 'case.refused',
      detail: { reason: 'not_registered_here' },
    })
  }, 30_000)

  it('records an ineligible applicant as residence_rejected with the reasons, and sends nothing', async () => {
    const stranger = idNumber('44030419900505111')
    const submitted = await submitApplication(shenzhen, application(stranger), 'ineligible-0001')
    expect(submitted.status).toBe(201)
    expect(submitted.body).toMatchObject({
      status: 'residence_rejected',
      residence: { eligible: false, reasons: ['no_residence_record'] },
    })
    // The 201 (serialised by the service itself) is the case as a read shows it (through the response schema).
    expect((await application$(submitted.body.id)).body).toEqual(submitted.body)
    const client = new pg.Client({ connectionString: shenzhen.databaseUrl })
    await client.connect()
    const { rows } = await client.query(`select count(*)::int as n from intake.outbox where ref = $1`, [
      submitted.body.reference,
    ])
    await client.end()
    expect(rows[0].n).toBe(0)
  })

  it('creates one case for 20 concurrent submissions with one key, answers a retry with the same case, and 422 for another body', async () => {
    const body = application(registeredInZhongshan)
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => submitApplication(shenzhen, body, 'concurrent-key-01')),
    )
    expect(answers.map((answer) => answer.status)).toEqual(Array(20).fill(201))
    expect(new Set(answers.map((answer) => answer.body.id)).size).toBe(1)
    const client = new pg.Client({ connectionString: shenzhen.databaseUrl })
    await client.connect()
    const { rows } = await client.query(`select count(*)::int as n from intake.cases where id = $1`, [
      answers[0]?.body.id,
    ])
    expect(rows[0].n).toBe(1)
    // The stored response is the case view, the applicant's name in it: sealed like the form, never in the clear.
    const stored = await client.query(
      `select response, response_sealed from intake.idempotency_keys where key = 'concurrent-key-01'`,
    )
    expect(stored.rows).toHaveLength(1)
    expect(stored.rows[0].response).toBeNull()
    expect(stored.rows[0].response_sealed.includes(Buffer.from(body.applicant.name))).toBe(false)

    // A retry after a crash between commit and response: the stored response comes back.
    const retry = await submitApplication(shenzhen, body, 'concurrent-key-01')
    expect(retry.body).toEqual(answers[0]?.body)
    const other = await submitApplication(shenzhen, { ...body, circumstances: 'different' }, 'concurrent-key-01')
    expect(other.status).toBe(422)
    expect(other.body.type).toBe('urn:pilot:problem:idempotency-key-reused')
    await client.end()
  }, 60_000)

  it.each([
    ['tampered', 'invalid_attestation'],
    ['expired', 'invalid_attestation'],
    ['signed with a revoked key', 'invalid_attestation'],
    ['ineligible', 'residence_not_attested'],
  ])('refuses a transfer whose residence attestation is %s, creating no case', async (kind, reason) => {
    const key = JSON.parse(readFileSync(devSecretsEnv(testSecretsDir(), 'shenzhen').SIGNING_KEY_FILE as string, 'utf8'))
    const signer = new Signer(key)
    const matchingKey = Buffer.from(
      readFileSync(devSecretsEnv(testSecretsDir(), 'shenzhen').MATCHING_KEY_FILE as string, 'utf8').trim(),
      'base64',
    )
    const subject = matchingHash(registeredInZhongshan, matchingKey)
    const now = Math.floor(Date.now() / 1000)
    const claims = {
      iss: 'shenzhen',
      sub: subject,
      iat: kind === 'expired' ? now - 40 * 86400 : now,
      exp: kind === 'expired' ? now - 10 * 86400 : now + 30 * 86400,
      jti: randomUUID(),
      asOf: '2026-11-01',
      residenceSince: '2025-01-01',
      qualifiesOn: '2025-04-01',
      eligible: kind !== 'ineligible',
      rule: 'residence-continuous-months/1',
      hukouCity: 'zhongshan',
    }
    if (kind === 'signed with a revoked key') {
      // Shenzhen's JWKS does list it, so only the revocation can refuse it.
      const published = (await (await fetch(`${shenzhen.url.gateway}/.well-known/jwks.json`)).json()) as {
        keys: { kid: string }[]
      }
      expect(published.keys.map((key) => key.kid)).toContain(revoked.kid)
    }
    let attestation = await signAttestation(kind === 'signed with a revoked key' ? new Signer(revoked) : signer, claims)
    if (kind === 'tampered') {
      const [header, , signature] = attestation.split('.')
      const forged = Buffer.from(JSON.stringify({ ...claims, residenceSince: '2020-01-01' })).toString('base64url')
      attestation = `${header}.${forged}.${signature}`
    }
    const reference = `440300-TEST-${kind.toUpperCase().replaceAll(' ', '-')}`
    const body = {
      residenceCity: 'shenzhen',
      hukouCity: 'zhongshan',
      category: 'subsistence_allowance',
      submittedAt: new Date().toISOString(),
      applicant: { subject, name: '林晓', birthDate: '1980-01-01' },
      household: [
        { subject, name: '林晓', relation: 'self', birthDate: '1980-01-01', monthlyIncomeFen: 0, assetsFen: 0 },
      ],
      circumstances: '',
      rigidExpenditures: { medicalFen: 0, educationFen: 0, otherFen: 0 },
      consent: { recordedBy: 'x', recordedAt: new Date().toISOString() },
      documents: [],
      attestation,
    }
    const jti = randomUUID()
    const jws = await signer.sign(
      { iss: 'shenzhen', aud: 'zhongshan', jti, iat: now, exp: now + 300, type: 'case.transfer', ref: reference, body },
      { typ: 'pilot-msg+jwt' },
    )
    expect(await deliverAndApply(zhongshan, jws, jti)).toBe(reason)
    const client = new pg.Client({ connectionString: zhongshan.databaseUrl })
    await client.connect()
    try {
      expect(
        (await client.query('select count(*)::int as n from intake.cases where reference = $1', [reference])).rows[0].n,
      ).toBe(0)
      const refusal = await client.query('select type, body from intake.outbox where ref = $1', [reference])
      expect(refusal.rows).toEqual([{ type: 'case.refused', body: expect.objectContaining({ reason }) }])
      if (kind === 'signed with a revoked key') expect(refusal.rows[0].body.detail).toMatch(/revoked key/)
    } finally {
      await client.end()
    }
  })

  it('lists the cases past their review deadline', async () => {
    const { incoming } = await submitAndReceive('overdue-case-01')
    const overdue = async () =>
      (await call(zhongshan, 'intake', 'GET', '/v1/incoming-cases?overdue=true&limit=200', 'reviewer')).body.items.map(
        (item: { id: string }) => item.id,
      )
    expect(await overdue()).not.toContain(incoming?.id)
    const client = new pg.Client({ connectionString: zhongshan.databaseUrl })
    await client.connect()
    await client.query(`update intake.cases set review_deadline = current_date - 1 where id = $1`, [incoming?.id])
    await client.end()
    expect(await overdue()).toContain(incoming?.id)
    expect(
      (await call(zhongshan, 'intake', 'GET', `/v1/incoming-cases/${incoming?.id}`, 'reviewer')).body.overdue,
    ).toBe(true)
    await call(zhongshan, 'intake', 'POST', `/v1/incoming-cases/${incoming?.id}/refuse`, 'reviewer', {
      reason: 'duplicate_application',
      detail: 'already decided',
    })
    expect(await overdue()).not.toContain(incoming?.id)
  }, 30_000)

  it('answers an illegal transition with 409 and changes nothing', async () => {
    const { incoming } = await submitAndReceive('illegal-move-01')
    const decide = await call(zhongshan, 'intake', 'POST', `/v1/incoming-cases/${incoming?.id}/decide`, 'reviewer', {
      outcome: 'rejected',
      reason: 'too early',
    })
    expect(decide.status).toBe(409)
    expect(decide.body).toMatchObject({ type: 'urn:pilot:problem:illegal-transition', caseStatus: 'received' })
    const after = await call(zhongshan, 'intake', 'GET', `/v1/incoming-cases/${incoming?.id}`, 'reviewer')
    expect(after.body.status).toBe('received')
    expect(after.body.events.map((event: { action: string }) => event.action)).toEqual(['receive'])
  }, 30_000)

  it('moves a transfer that went dead on to transferred once an operator redrives it, each step once', async () => {
    await withDeadDeliveries(shenzhen, zhongshan, async (bringZhongshanBack) => {
      const submitted = await submitApplication(shenzhen, application(registeredInZhongshan), 'dead-then-redriven-01')
      expect(submitted.status).toBe(201)
      const { id, reference } = submitted.body
      const failed = await eventually(
        () => application$(id),
        (answer) => answer.body.events.some((event: { action: string }) => event.action === 'delivery_failed'),
      )
      expect(failed.body.status).toBe('queued')

      // The cause is fixed (Zhongshan is back) and an operator redrives the message.
      await bringZhongshanBack()
      await redriveDead(shenzhen, 'case.transfer', reference, 'zhongshan')
      const moved = await eventually(
        () => application$(id),
        (answer) => answer.body.status === 'transferred',
      )
      expect(moved.body.status).toBe('transferred')
      const actions = moved.body.events.map((event: { action: string }) => event.action)
      expect(actions).toEqual(['submit', 'residence_verified', 'delivery_failed', 'transfer_delivered'])
      const arrived = await eventually(
        () => incomingByReference(reference),
        (found) => found?.status === 'received',
      )
      expect(arrived?.status).toBe('received')
      const client = new pg.Client({ connectionString: shenzhen.databaseUrl })
      await client.connect()
      try {
        const outbox = await client.query('select outcome, outcome_reason from intake.outbox where ref = $1', [
          reference,
        ])
        expect(outbox.rows).toEqual([{ outcome: 'delivered', outcome_reason: null }])
      } finally {
        await client.end()
      }
    })
  }, 60_000)

  it('records a reviewer’s message that went dead, then its delivery once redriven, and the residence case moves', async () => {
    const { submitted, incoming } = await submitAndReceive('dead-answer-redriven-01')
    await withDeadDeliveries(zhongshan, shenzhen, async (bringShenzhenBack) => {
      const incoming$ = () => call(zhongshan, 'intake', 'GET', `/v1/incoming-cases/${incoming?.id}`, 'reviewer')
      const accepted = await call(
        zhongshan,
        'intake',
        'POST',
        `/v1/incoming-cases/${incoming?.id}/accept`,
        'reviewer',
        {},
      )
      expect(accepted.body.status).toBe('accepted')
      const failed = await eventually(incoming$, (answer) =>
        answer.body.events.some((event: { action: string }) => event.action === 'delivery_failed'),
      )
      expect(failed.body.events.at(-1)).toMatchObject({ action: 'delivery_failed', detail: { type: 'case.accepted' } })

      await bringShenzhenBack()
      await redriveDead(zhongshan, 'case.accepted', submitted.body.reference, 'shenzhen')
      const recovered = await eventually(incoming$, (answer) =>
        answer.body.events.some((event: { action: string }) => event.action === 'delivery_recovered'),
      )
      const actions = recovered.body.events.map((event: { action: string }) => event.action)
      expect(actions.filter((action: string) => action.startsWith('delivery_'))).toEqual([
        'delivery_failed',
        'delivery_recovered',
      ])
      const residenceSide = await eventually(
        () => application$(submitted.body.id),
        (answer) => answer.body.status === 'accepted',
      )
      expect(residenceSide.body.status).toBe('accepted')
    })
  }, 60_000)

  it('names the edited row when an audit row is changed in the database', async () => {
    const run = promisify(execFile)
    const verify = () =>
      run(process.execPath, ['--import', 'tsx', 'services/intake/src/cli/verify-audit.ts'], {
        cwd: repoRoot,
        env: { PATH: process.env.PATH ?? '', ...shenzhen.env('intake') },
      }).then(
        (result) => ({ code: 0, out: result.stdout }),
        (error: { code: number; stdout: string }) => ({ code: error.code, out: error.stdout }),
      )
    const clean = await verify()
    expect(clean.code).toBe(0)
    expect(clean.out).toMatch(/audit log verifies: \d+ rows/)

    const client = new pg.Client({ connectionString: shenzhen.databaseUrl })
    await client.connect()
    // Rows are linked into the chain moments after they commit; edit one that is linked.
    await eventually(
      () => client.query(`select count(*)::int as n from intake.audit_log where chain_seq is null`),
      (result) => result.rows[0].n === 0,
    )
    const { rows } = await client.query(`select id::text from intake.audit_log order by chain_seq limit 1 offset 2`)
    const target = rows[0].id as string
    // The table refuses updates; someone with superuser rights can still switch triggers off, which is what this is.
    await client.query(`set session_replication_role = replica`)
    await client.query(`update intake.audit_log set actor = 'someone-else' where id = $1`, [target])
    await client.end()
    const broken = await verify()
    expect(broken.code).toBe(1)
    expect(broken.out).toContain(`BROKEN at row ${target}`)
  }, 30_000)
})
