import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { devSecretsEnv } from '@pilot/kit'
import { matchingHash, Signer } from '@pilot/signing'
import { testSecretsDir } from '@pilot/testing'
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

// P: registered in Zhuhai and, later, also in Zhongshan; lives in Shenzhen. S: P's spouse, registered in Zhuhai.
const person = { idNumber: idNumber('44040219750315123'), name: '黄志强', phone: '13912345678' }
const spouse = { idNumber: idNumber('44040219770420246'), name: '吴秀英', phone: '13787654321' }
const address = '深圳市福田区莲花路88号'

const application = (
  applicant: { idNumber: string; name: string; phone: string },
  hukouCity: string,
  household: { idNumber: string; name: string; relation: string }[] = [],
) => applicationBody({ ...applicant, address }, { hukouCity, household, circumstances: 'Lost work after an accident.' })

interface CheckView {
  asked: string[]
  answered: string[]
  matches: Record<string, unknown>[]
  resolved: Record<string, unknown> | null
}

describe('duplicate-benefit check across three cities, with real services over HTTP', () => {
  let cities: Record<string, TestCity>
  let shenzhen: TestCity
  let zhuhai: TestCity
  let zhongshan: TestCity
  // The case Zhongshan decided, with its check, for the tests after the walk.
  let checkedCase: { id: string; reference: string; checkId: string } | undefined

  beforeAll(async () => {
    cities = await startCities(['shenzhen', 'zhuhai', 'zhongshan'])
    shenzhen = cities.shenzhen as TestCity
    zhuhai = cities.zhuhai as TestCity
    zhongshan = cities.zhongshan as TestCity
    const evidence = [person, spouse].map((who, index) => ({
      idNumber: who.idNumber,
      kind: 'residence_registration',
      validFrom: '2025-01-01',
      sourceRef: `SZ-RR-${index}`,
    }))
    expect(await importFeed(shenzhen, 'evidence', evidence)).toMatchObject({ inserted: 2 })
    const registrations = [person, spouse].map((who, index) => ({
      idNumber: who.idNumber,
      registeredSince: '1990-01-01',
      sourceRef: `ZH-HK-${index}`,
    }))
    expect(await importFeed(zhuhai, 'registrations', registrations)).toMatchObject({ inserted: 2 })
  }, 120_000)
  afterAll(async () => {
    await stopCities(cities)
  })

  const submit = async (body: ReturnType<typeof application>, key: string) => {
    const submitted = await submitApplication(shenzhen, body, key)
    expect(submitted.status).toBe(201)
    expect(submitted.body.status).toBe('queued')
    return submitted.body as { id: string; reference: string }
  }
  const incomingCase = async (city: TestCity, reference: string) => {
    const found = await eventually(
      async () =>
        (await call(city, 'intake', 'GET', '/v1/incoming-cases?limit=200', 'reviewer')).body.items.find(
          (item: { reference: string }) => item.reference === reference,
        ) as { id: string; status: string } | undefined,
      (item) => item?.status === 'received',
    )
    expect(found?.status).toBe('received')
    return found?.id as string
  }
  const view = async (city: TestCity, id: string) =>
    (await call(city, 'intake', 'GET', `/v1/incoming-cases/${id}`, 'reviewer')).body
  const act = (city: TestCity, id: string, path: string, body: unknown = {}) =>
    call(city, 'intake', 'POST', `/v1/incoming-cases/${id}/${path}`, 'reviewer', body)
  const answeredBy = async (city: TestCity, id: string, partners: string[]) => {
    const answered = await eventually(
      () => view(city, id),
      (current) => partners.every((partner) => current.benefitCheck?.answered.includes(partner)),
    )
    expect([...answered.benefitCheck.answered].sort()).toEqual([...partners].sort())
    return answered
  }
  const decidedInShenzhen = (applicationId: string) =>
    eventually(
      async () => (await call(shenzhen, 'intake', 'GET', `/v1/applications/${applicationId}`, 'caseworker')).body,
      (current) => current.status === 'decided',
    )

  it('shows the Zhongshan reviewer the Zhuhai benefit before the decision, and approves only once it is resolved', async () => {
    // P applies in Shenzhen for Zhuhai; Zhuhai's own check finds nothing, and Zhuhai approves.
    const first = await submit(application(person, 'zhuhai'), 'duplicate-benefit-zhuhai-01')
    const zhuhaiCase = await incomingCase(zhuhai, first.reference)
    const acceptedInZhuhai = await act(zhuhai, zhuhaiCase, 'accept')
    expect(acceptedInZhuhai.body).toMatchObject({
      status: 'accepted',
      benefitCheck: { asked: ['shenzhen', 'zhongshan'], answered: [], matches: [], resolved: null },
    })
    const checkedInZhuhai = await answeredBy(zhuhai, zhuhaiCase, ['shenzhen', 'zhongshan'])
    expect(checkedInZhuhai.benefitCheck.matches).toEqual([])
    expect(checkedInZhuhai.allowedActions).not.toContain('resolve_benefit_matches')
    const approvedInZhuhai = await act(zhuhai, zhuhaiCase, 'decide', {
      outcome: 'approved',
      monthlyAmountFen: checkedInZhuhai.recommendation?.recommendations?.subsistenceMonthlyFen ?? 85_000,
      startMonth: '2026-12',
      reviewDate: '2027-11-30',
    })
    expect(approvedInZhuhai.status).toBe(200)
    await decidedInShenzhen(first.id)

    // P's hukou turns out to be registered in Zhongshan as well; meanwhile the spouse applied for Zhuhai.
    expect(
      await importFeed(zhongshan, 'registrations', [
        { idNumber: person.idNumber, registeredSince: '2000-01-01', sourceRef: 'ZS-HK-1' },
      ]),
    ).toMatchObject({ inserted: 1 })
    const spouseCase = await submit(application(spouse, 'zhuhai'), 'duplicate-benefit-spouse-01')
    await incomingCase(zhuhai, spouseCase.reference)

    const second = await submit(
      application(person, 'zhongshan', [{ idNumber: spouse.idNumber, name: spouse.name, relation: 'spouse' }]),
      'duplicate-benefit-zhongshan-01',
    )
    const zhongshanCase = await incomingCase(zhongshan, second.reference)
    expect((await view(zhongshan, zhongshanCase)).benefitCheck).toBeNull()
    const accepted = await act(zhongshan, zhongshanCase, 'accept')
    expect(accepted.body.benefitCheck).toMatchObject({ asked: ['shenzhen', 'zhuhai'], answered: [] })

    // Before deciding, the reviewer sees what the other cities hold about the household, by city and reference only.
    const checked = await answeredBy(zhongshan, zhongshanCase, ['shenzhen', 'zhuhai'])
    const check = checked.benefitCheck as CheckView
    expect(check.matches).toHaveLength(3)
    expect(check.matches).toEqual(
      expect.arrayContaining([
        {
          city: 'zhuhai',
          member: { name: person.name, relation: 'self' },
          kind: 'active_benefit',
          category: 'subsistence_allowance',
          caseReference: first.reference,
          activeFrom: '2026-12',
          activeUntil: '2027-11-30',
        },
        {
          city: 'zhuhai',
          member: { name: spouse.name, relation: 'spouse' },
          kind: 'open_application',
          category: 'subsistence_allowance',
          caseReference: spouseCase.reference,
          activeFrom: null,
          activeUntil: null,
        },
        {
          city: 'shenzhen',
          member: { name: spouse.name, relation: 'spouse' },
          kind: 'open_application',
          category: 'subsistence_allowance',
          caseReference: spouseCase.reference,
          activeFrom: null,
          activeUntil: null,
        },
      ]),
    )
    expect(check.resolved).toBeNull()
    expect(checked.allowedActions).toContain('resolve_benefit_matches')
    const answers = (checked.events as { action: string; detail: Record<string, unknown> }[])
      .filter((event) => event.action === 'benefit_check_answered')
      .map((event) => event.detail)
    expect(answers).toEqual(
      expect.arrayContaining([
        { city: 'zhuhai', matches: 2 },
        { city: 'shenzhen', matches: 1 },
      ]),
    )

    // Approving is refused until the reviewer resolves the matches; the case does not move.
    const approval = {
      outcome: 'approved',
      monthlyAmountFen: checked.recommendation?.recommendations?.subsistenceMonthlyFen ?? 100_000,
      startMonth: '2027-01',
      reviewDate: '2027-12-31',
    }
    const refused = await act(zhongshan, zhongshanCase, 'decide', approval)
    expect(refused.status).toBe(409)
    expect(refused.body.type).toBe('urn:pilot:problem:benefit-matches-unresolved')
    expect(refused.body.detail).toContain(`zhuhai: active_benefit subsistence_allowance (${first.reference})`)
    expect(refused.body.matches).toHaveLength(3)
    expect((await view(zhongshan, zhongshanCase)).status).toBe('accepted')

    expect((await act(zhongshan, zhongshanCase, 'resolve-benefit-matches', { note: '' })).status).toBe(400)
    const note = 'Zhuhai benefit ends when this one starts; spouse application in Zhuhai withdrawn by phone.'
    const resolved = await act(zhongshan, zhongshanCase, 'resolve-benefit-matches', { note })
    expect(resolved.status).toBe(200)
    expect(resolved.body.status).toBe('accepted')
    expect(resolved.body.benefitCheck.resolved).toMatchObject({ by: 'zhongshan-reviewer-1', note, matches: 3 })
    expect(resolved.body.allowedActions).not.toContain('resolve_benefit_matches')
    expect((await act(zhongshan, zhongshanCase, 'resolve-benefit-matches', { note })).status).toBe(409)

    const approved = await act(zhongshan, zhongshanCase, 'decide', approval)
    expect(approved.status).toBe(200)
    expect(approved.body.status).toBe('decided')
    const steps = (approved.body.events as { action: string }[]).map((event) => event.action)
    expect(steps.indexOf('resolve_benefit_matches')).toBeLessThan(steps.indexOf('decide'))
    expect((await decidedInShenzhen(second.id)).decision).toMatchObject({ outcome: 'approved' })

    const client = new pg.Client({ connectionString: zhongshan.databaseUrl })
    await client.connect()
    const stored = await client.query(`select benefit_check->>'checkId' as "checkId" from intake.cases where id = $1`, [
      zhongshanCase,
    ])
    await client.end()
    checkedCase = { id: zhongshanCase, reference: second.reference, checkId: stored.rows[0].checkId }

    // Zhuhai's audit log shows it answered Zhongshan, without naming anyone.
    const zhuhaiDb = new pg.Client({ connectionString: zhuhai.databaseUrl })
    await zhuhaiDb.connect()
    try {
      const { rows } = await zhuhaiDb.query(
        `select detail from intake.audit_log where action = 'benefit.check_answered' and detail->>'ref' = $1`,
        [second.reference],
      )
      expect(rows).toEqual([{ detail: { askingCity: 'zhongshan', ref: second.reference, matches: 2 } }])
    } finally {
      await zhuhaiDb.end()
    }
  }, 120_000)

  it('shows a city its check could not reach as undelivered, and asks it again once an operator redrives', async () => {
    // P is registered in Zhongshan since the first test.
    const submitted = await submit(
      application(person, 'zhongshan', [{ idNumber: spouse.idNumber, name: spouse.name, relation: 'spouse' }]),
      'duplicate-benefit-redrive-01',
    )
    const target = await incomingCase(zhongshan, submitted.reference)
    await withDeadDeliveries(zhongshan, zhuhai, async (bringZhuhaiBack) => {
      expect((await act(zhongshan, target, 'accept')).body.status).toBe('accepted')
      const unreached = await eventually(
        () => view(zhongshan, target),
        (current) => current.benefitCheck?.undelivered.includes('zhuhai'),
      )
      expect(unreached.benefitCheck.undelivered).toEqual(['zhuhai'])

      await bringZhuhaiBack()
      await redriveDead(zhongshan, 'benefit.check', submitted.reference, 'zhuhai')
      const checked = await answeredBy(zhongshan, target, ['shenzhen', 'zhuhai'])
      expect(checked.benefitCheck.undelivered).toEqual([])
      expect(checked.benefitCheck.matches.some((match: { city: string }) => match.city === 'zhuhai')).toBe(true)
      // Not only hidden by the answer: the case no longer records the check as undelivered.
      const client = new pg.Client({ connectionString: zhongshan.databaseUrl })
      await client.connect()
      try {
        const { rows } = await client.query(
          `select benefit_check->'undelivered' as undelivered from intake.cases where id = $1`,
          [target],
        )
        expect(rows).toEqual([{ undelivered: [] }])
      } finally {
        await client.end()
      }
    })
  }, 60_000)

  it('ignores an answer to a check that was not asked, keeping the matches as they were', async () => {
    const target = checkedCase as NonNullable<typeof checkedCase>
    const key = JSON.parse(readFileSync(devSecretsEnv(testSecretsDir(), 'zhuhai').SIGNING_KEY_FILE as string, 'utf8'))
    const now = Math.floor(Date.now() / 1000)
    const jti = randomUUID()
    const forged = await new Signer(key).sign(
      {
        iss: 'zhuhai',
        aud: 'zhongshan',
        jti,
        iat: now,
        exp: now + 300,
        type: 'benefit.check_result',
        ref: target.reference,
        body: { checkId: randomUUID(), matches: [] },
      },
      { typ: 'pilot-msg+jwt' },
    )
    expect(await deliverAndApply(zhongshan, forged, jti)).toBe('unknown_check')
    const after = await view(zhongshan, target.id)
    expect(after.benefitCheck.matches).toHaveLength(3)
    expect(after.benefitCheck.matches.filter((match: { city: string }) => match.city === 'zhuhai')).toHaveLength(2)
  })

  it('sent no identity number, phone or address in any federation message of the run, in any city', async () => {
    const secrets = devSecretsEnv(testSecretsDir(), 'zhongshan')
    const matchingKey = Buffer.from(readFileSync(secrets.MATCHING_KEY_FILE as string, 'utf8').trim(), 'base64')
    const forbidden = [
      ...[person, spouse].flatMap((who) => [who.idNumber, who.idNumber.slice(0, 17), who.phone]),
      address,
    ]
    const payload = (jws: string) => Buffer.from(jws.split('.')[1] ?? '', 'base64url').toString('utf8')
    const seen = new Map<string, number>()
    let checkBodies = 0
    for (const city of [shenzhen, zhuhai, zhongshan]) {
      const client = new pg.Client({ connectionString: city.databaseUrl })
      await client.connect()
      try {
        const { rows } = await client.query(
          'select direction, type, raw_jws, body, claims, receipt_jws from gateway.messages order by created_at',
        )
        for (const row of rows) {
          seen.set(row.type, (seen.get(row.type) ?? 0) + 1)
          const texts = [
            row.raw_jws ? payload(row.raw_jws) : '',
            row.receipt_jws ? payload(row.receipt_jws) : '',
            JSON.stringify(row.body),
            JSON.stringify(row.claims),
          ]
          for (const text of texts) {
            for (const secret of forbidden) expect(text.toUpperCase(), `${city.id} ${row.type}`).not.toContain(secret)
          }
          if (row.type.startsWith('benefit.')) {
            const body = row.direction === 'inbound' ? row.claims.body : row.body
            expect(JSON.stringify(body)).not.toContain(person.name)
            expect(JSON.stringify(body)).not.toContain(spouse.name)
          }
          if (row.type === 'benefit.check' && row.direction === 'outbound' && city.id === 'zhongshan') {
            // The household is named by matching hash only.
            expect(row.body.subjects).toEqual([
              matchingHash(person.idNumber, matchingKey),
              matchingHash(spouse.idNumber, matchingKey),
            ])
            checkBodies++
          }
        }
      } finally {
        await client.end()
      }
    }
    // The inspection saw the run: every message type of the walk, each sent and received; two cases accepted in
    // Zhongshan, each checked with the two other cities.
    expect(checkBodies).toBe(4)
    for (const type of ['case.transfer', 'case.accepted', 'case.decided', 'benefit.check', 'benefit.check_result']) {
      expect(seen.get(type), type).toBeGreaterThanOrEqual(2)
    }
  }, 30_000)
})
