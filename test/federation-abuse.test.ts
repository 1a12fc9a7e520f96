import { randomUUID } from 'node:crypto'
import { type QueueRegistry, queueOutbound } from '@pilot/kit'
import type { FederationQueues, OutboundMessage } from '@pilot/schemas'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { call, eventually, startCities, stopCities, type TestCity } from './support/cities.ts'
import { applicationBody, idNumber, importFeed, submitApplication } from './support/fixtures.ts'

const applicant = idNumber('44200019850505123')

/**
 * A legitimate partner, correctly signed, sending messages about a case it is not party to. Zhuhai's gateway signs
 * and delivers them like any other message (its intake could have written them to its outbox; here they go straight
 * on its gateway's outbound queue, as the outbox relay puts them): every gateway accepts them (202), and the case
 * service of the receiving city refuses them, changes nothing and audits `federation.refused` naming Zhuhai.
 */
describe('a correctly signed partner sending messages about a case it is not party to', () => {
  let cities: Record<string, TestCity>
  let shenzhen: TestCity
  let zhuhai: TestCity
  let zhongshan: TestCity

  beforeAll(async () => {
    cities = await startCities(['shenzhen', 'zhuhai', 'zhongshan'])
    shenzhen = cities.shenzhen as TestCity
    zhuhai = cities.zhuhai as TestCity
    zhongshan = cities.zhongshan as TestCity
    const evidence = {
      idNumber: applicant,
      kind: 'residence_registration',
      validFrom: '2025-01-01',
      sourceRef: 'SZ-RR',
    }
    expect(await importFeed(shenzhen, 'evidence', [evidence])).toMatchObject({ inserted: 1 })
    const registration = { idNumber: applicant, registeredSince: '1985-05-05', sourceRef: 'ZS-HK' }
    expect(await importFeed(zhongshan, 'registrations', [registration])).toMatchObject({ inserted: 1 })
  }, 120_000)
  afterAll(async () => {
    await stopCities(cities)
  })

  async function query<T>(city: TestCity, text: string, values: unknown[] = []): Promise<T[]> {
    const client = new pg.Client({ connectionString: city.databaseUrl })
    await client.connect()
    try {
      return (await client.query(text, values)).rows as T[]
    } finally {
      await client.end()
    }
  }
  const caseRow = (city: TestCity, side: string, reference: string) =>
    query<{ id: string; status: string }>(city, 'select * from intake.cases where side = $1 and reference = $2', [
      side,
      reference,
    ])
  const eventsOf = (city: TestCity, caseId: string) =>
    query(city, 'select * from intake.case_events where case_id = $1 order by id', [caseId])

  it('leaves the Shenzhen and Zhongshan cases unchanged and audits federation.refused naming Zhuhai', async () => {
    // Shenzhen (residence) transfers a case to Zhongshan (hukou); Zhuhai has nothing to do with it.
    const submitted = await submitApplication(
      shenzhen,
      applicationBody(
        {
          idNumber: applicant,
          name: '郑敏',
          phone: '13800138001',
          address: '深圳市罗湖区某路2号',
          monthlyIncomeFen: 30_000,
        },
        { hukouCity: 'zhongshan', circumstances: 'Lost work.' },
      ),
      'not-party-01',
    )
    expect(submitted.status).toBe(201)
    const { id, reference } = submitted.body as { id: string; reference: string }
    const transferred = await eventually(
      () => call(shenzhen, 'intake', 'GET', `/v1/applications/${id}`, 'caseworker'),
      (view) => view.body.status === 'transferred',
    )
    expect(transferred.body.status).toBe('transferred')
    const incoming = await eventually(
      () => caseRow(zhongshan, 'incoming', reference),
      (rows) => rows[0]?.status === 'received',
    )
    expect(incoming).toHaveLength(1)
    const incomingId = (incoming[0] as { id: string }).id

    const shenzhenBefore = await caseRow(shenzhen, 'outgoing', reference)
    expect(shenzhenBefore).toHaveLength(1)
    const shenzhenCaseId = (shenzhenBefore[0] as { id: string }).id
    const shenzhenEventsBefore = await eventsOf(shenzhen, shenzhenCaseId)
    const zhongshanBefore = await caseRow(zhongshan, 'incoming', reference)
    const zhongshanEventsBefore = await eventsOf(zhongshan, incomingId)

    // Zhuhai pretends to be the hukou city towards Shenzhen (accepts, then approves with an amount) and the residence
    // city towards Zhongshan (withdraws the case). Each body is valid for its type.
    const forged: OutboundMessage[] = [
      {
        messageId: randomUUID(),
        to: 'shenzhen',
        type: 'case.accepted',
        ref: reference,
        body: {
          acceptedAt: new Date().toISOString(),
          reviewDeadline: '2027-02-01',
          reviewDeadlineProvisional: false,
        },
      },
      {
        messageId: randomUUID(),
        to: 'shenzhen',
        type: 'case.decided',
        ref: reference,
        body: {
          outcome: 'approved',
          decidedAt: new Date().toISOString(),
          monthlyAmountFen: 999_900,
          startMonth: '2026-12',
        },
      },
      {
        messageId: randomUUID(),
        to: 'zhongshan',
        type: 'case.withdrawn',
        ref: reference,
        body: { withdrawnAt: new Date().toISOString(), reason: 'withdrawn by someone else' },
      },
    ]
    const zhuhaiQueues = zhuhai.apps.gateway?.queues as unknown as QueueRegistry<FederationQueues>
    for (const message of forged) await queueOutbound(zhuhaiQueues, message)

    // Zhuhai's gateway signed them with its own key and both receiving gateways accepted them (202 and a receipt):
    // the refusal below is the case service's, not the door's.
    const ids = forged.map((message) => message.messageId)
    const delivered = await eventually(
      () =>
        query<{ message_id: string; status: string }>(
          zhuhai,
          `select message_id, status from gateway.messages where direction = 'outbound' and message_id = any($1)`,
          [ids],
        ),
      (rows) => rows.length === ids.length && rows.every((row) => row.status === 'delivered'),
    )
    expect(delivered.map((row) => row.status)).toEqual(['delivered', 'delivered', 'delivered'])

    const processed = async (city: TestCity, messageIds: string[]) =>
      eventually(
        () =>
          query<{ message_id: string; outcome: string }>(
            city,
            'select message_id, outcome from intake.inbound_processed where message_id = any($1) order by message_id',
            [messageIds],
          ),
        (rows) => rows.length === messageIds.length,
      )
    const toShenzhen = forged.filter((message) => message.to === 'shenzhen').map((message) => message.messageId)
    const toZhongshan = forged.filter((message) => message.to === 'zhongshan').map((message) => message.messageId)
    expect((await processed(shenzhen, toShenzhen)).map((row) => row.outcome)).toEqual([
      'not_party_to_case',
      'not_party_to_case',
    ])
    expect((await processed(zhongshan, toZhongshan)).map((row) => row.outcome)).toEqual(['not_party_to_case'])

    // Unchanged: the case rows (status, partner's latest word, decision, updated_at, ...) and their histories.
    expect(await caseRow(shenzhen, 'outgoing', reference)).toEqual(shenzhenBefore)
    expect(await eventsOf(shenzhen, shenzhenCaseId)).toEqual(shenzhenEventsBefore)
    expect(await caseRow(zhongshan, 'incoming', reference)).toEqual(zhongshanBefore)
    expect(await eventsOf(zhongshan, incomingId)).toEqual(zhongshanEventsBefore)
    const view = await call(shenzhen, 'intake', 'GET', `/v1/applications/${id}`, 'caseworker')
    expect(view.body).toMatchObject({ status: 'transferred', partnerCity: 'zhongshan' })
    expect(view.body.decision ?? null).toBeNull()

    // Audited in each receiving city, naming Zhuhai as the actor, one row per message.
    const refusals = (city: TestCity, messageIds: string[]) =>
      query<Record<string, unknown>>(
        city,
        `select actor, role, city, action, case_id, request_id, detail from intake.audit_log
         where action = 'federation.refused' and request_id = any($1) order by id`,
        [messageIds],
      )
    expect(await refusals(shenzhen, toShenzhen)).toEqual(
      forged
        .filter((message) => message.to === 'shenzhen')
        .map((message) => ({
          actor: 'zhuhai',
          role: 'partner',
          city: 'shenzhen',
          action: 'federation.refused',
          case_id: shenzhenCaseId,
          request_id: message.messageId,
          detail: { reason: 'not_party_to_case', type: message.type, ref: reference },
        })),
    )
    expect(await refusals(zhongshan, toZhongshan)).toEqual([
      {
        actor: 'zhuhai',
        role: 'partner',
        city: 'zhongshan',
        action: 'federation.refused',
        case_id: incomingId,
        request_id: toZhongshan[0],
        detail: { reason: 'not_party_to_case', type: 'case.withdrawn', ref: reference },
      },
    ])
  }, 60_000)
})
