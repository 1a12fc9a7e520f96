import { checkCharacter } from '@pilot/schemas'
import pg from 'pg'
import { expect } from 'vitest'
import { call, eventually, type TestCity } from './cities.ts'

/** A valid identity number: the first 17 characters and their GB 11643 check character. */
export const idNumber = (first17: string) => first17 + checkCharacter(first17)

/** Who applies, as an application names them; every field but the identity number has a test default. */
export interface Applicant {
  idNumber: string
  name?: string
  phone?: string
  address?: string
  monthlyIncomeFen?: number
}

export interface ApplicationOptions {
  hukouCity: string
  household?: { idNumber: string; name: string; relation: string; monthlyIncomeFen?: number; assetsFen?: number }[]
  circumstances?: string
  medicalFen?: number
  recordedBy?: string
  recordedAt?: string
  documents?: { name: string; mediaType: string; sha256: string }[]
}

/**
 * A POST /v1/applications body that passes validation: the tests' one template, so that a change to the application
 * schema is made here once. Names, phone numbers and addresses are invented.
 */
export function applicationBody(applicant: Applicant, options: ApplicationOptions) {
  return {
    applicant: {
      idNumber: applicant.idNumber,
      name: applicant.name ?? '林晓',
      phone: applicant.phone ?? '13800138000',
      address: applicant.address ?? '深圳市南山区某街道1号',
      monthlyIncomeFen: applicant.monthlyIncomeFen ?? 40_000,
      assetsFen: 0,
    },
    hukouCity: options.hukouCity,
    category: 'subsistence_allowance',
    household: (options.household ?? []).map((member) => ({ monthlyIncomeFen: 0, assetsFen: 0, ...member })),
    circumstances: options.circumstances ?? 'Lost work after an illness.',
    rigidExpenditures: { medicalFen: options.medicalFen ?? 0, educationFen: 0, otherFen: 0 },
    consent: {
      economicCheckAuthorised: true,
      recordedBy: options.recordedBy ?? 'shenzhen-caseworker-1',
      recordedAt: options.recordedAt ?? '2026-11-30T09:00:00+08:00',
    },
    documents: options.documents ?? [],
  }
}

/**
 * POSTs a signed message straight to a city's gateway (as a partner would), expects it accepted, and waits for the
 * city's intake to apply it: answers the outcome intake recorded for that message id.
 */
export async function deliverAndApply(city: TestCity, jws: string, messageId: string): Promise<string> {
  const sent = await fetch(`${city.url.gateway}/federation/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/jose' },
    body: jws,
  })
  expect(sent.status).toBe(202)
  const client = new pg.Client({ connectionString: city.databaseUrl })
  await client.connect()
  try {
    const processed = await eventually(
      async () =>
        (await client.query('select outcome from intake.inbound_processed where message_id = $1', [messageId])).rows,
      (rows) => rows.length > 0,
    )
    return processed[0].outcome
  } finally {
    await client.end()
  }
}

/**
 * Runs `work` while `sender`'s gateway gives up after two delivery attempts and `receiver`'s gateway is down, so that
 * what the sender sends goes dead. `work` gets a function that starts the receiver's gateway again (the cause fixed).
 * Afterwards both gateways run as usual, whatever happened.
 */
export async function withDeadDeliveries(
  sender: TestCity,
  receiver: TestCity,
  work: (bringReceiverBack: () => Promise<void>) => Promise<void>,
): Promise<void> {
  await sender.stop('gateway')
  await sender.start('gateway', { DELIVERY_MAX_ATTEMPTS: '2' })
  await receiver.stop('gateway')
  try {
    await work(async () => {
      await receiver.start('gateway')
    })
  } finally {
    if (!receiver.apps.gateway) await receiver.start('gateway')
    await sender.stop('gateway')
    await sender.start('gateway')
  }
}

/** An operator's redrive of the dead outbound message of `type` about case `reference` to `partner`, in `city`. */
export async function redriveDead(city: TestCity, type: string, reference: string, partner: string): Promise<void> {
  const dead = await call(
    city,
    'gateway',
    'GET',
    `/ops/v1/messages?direction=outbound&status=dead&type=${type}&partner=${partner}&limit=100`,
    'operator',
  )
  const message = (dead.body.items as { id: string; ref: string }[]).find((item) => item.ref === reference)
  expect(message, `a dead ${type} for ${reference}`).toBeDefined()
  expect((await call(city, 'gateway', 'POST', `/ops/v1/messages/${message?.id}/redrive`, 'operator')).status).toBe(202)
}

/** Imports feed records (NDJSON) into a city's residence service as an operator; answers the import's summary. */
export async function importFeed(city: TestCity, kind: 'evidence' | 'registrations', records: object[]) {
  const ndjson = `${records.map((record) => JSON.stringify(record)).join('\n')}\n`
  return (await call(city, 'residence', 'POST', `/v1/residence/${kind}:import`, 'operator', ndjson)).body
}

/** POSTs an application to a city's intake as its caseworker, under `idempotencyKey`; answers status and body. */
export function submitApplication(city: TestCity, body: unknown, idempotencyKey: string) {
  return call(city, 'intake', 'POST', '/v1/applications', 'caseworker', body, { 'idempotency-key': idempotencyKey })
}
