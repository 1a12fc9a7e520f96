import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { queueOutbound } from '@pilot/kit'
import type { OutboundMessage } from '@pilot/schemas'
import { generateSigningKey, publicJwk, saveKeyFile } from '@pilot/signing'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type CityGateway, gatewayCities, queuesOf, startGateway, until } from './harness.ts'

const message = (index: number): OutboundMessage => ({
  messageId: crypto.randomUUID(),
  to: 'zhongshan',
  type: 'case.withdrawn',
  ref: `SZ-ROT-${index}`,
  body: { withdrawnAt: new Date().toISOString(), reason: `rotation test ${index}` },
})

async function delivered(gateway: CityGateway, ids: string[]) {
  const { rows } = await sql<{ message_id: string; status: string }>`
    select message_id, status from messages where direction = 'outbound'`.execute(gateway.app?.db as never)
  return rows.filter((row) => ids.includes(row.message_id) && row.status === 'delivered').length
}

async function received(gateway: CityGateway, ids: string[]) {
  const { rows } = await sql<{ message_id: string }>`
    select message_id from messages where direction = 'inbound'`.execute(gateway.app?.db as never)
  return rows.filter((row) => ids.includes(row.message_id)).map((row) => row.message_id)
}

/**
 * The documented rotation procedure, carried out while messages flow: (1) publish the next key beside the current
 * one; (2) promote it to current and keep the old key published as retired; nothing sent before, during or after is
 * lost or doubled.
 */
describe('signing key rotation mid-traffic', () => {
  let shenzhen: CityGateway
  let zhongshan: CityGateway
  const dir = mkdtempSync(join(tmpdir(), 'rotation-keys-'))

  beforeAll(async () => {
    const { gateways } = await gatewayCities(['shenzhen', 'zhongshan'])
    shenzhen = gateways.shenzhen as CityGateway
    zhongshan = gateways.zhongshan as CityGateway
    await startGateway(zhongshan)
  })
  afterAll(async () => {
    await shenzhen.app?.close()
    await zhongshan.app?.close()
  })

  it('loses and doubles nothing while the next key is published and then promoted', { timeout: 60_000 }, async () => {
    const first = await generateSigningKey('ES256')
    const second = await generateSigningKey('EdDSA')
    saveKeyFile(join(dir, 'first.jwk.json'), first)
    saveKeyFile(join(dir, 'second.jwk.json'), second)
    saveKeyFile(join(dir, 'retired.jwks.json'), { keys: [publicJwk(first)] })

    // Step 1: the next key is published while the first still signs.
    await startGateway(shenzhen, {
      SIGNING_KEY_FILE: join(dir, 'first.jwk.json'),
      SIGNING_NEXT_KEY_FILE: join(dir, 'second.jwk.json'),
    })
    const published = (await (await fetch(`${shenzhen.url}/.well-known/jwks.json`)).json()) as {
      keys: { kid: string }[]
    }
    expect(published.keys.map((key) => key.kid)).toEqual([first.kid, second.kid])

    const ids: string[] = []
    const send = async (from: number, to: number) => {
      for (let index = from; index < to; index++) {
        const next = message(index)
        ids.push(next.messageId)
        await queueOutbound(queuesOf(shenzhen.app as never), next)
      }
    }
    await send(0, 20)
    await until(
      () => delivered(shenzhen, ids),
      (count) => count >= 10,
    )

    // Step 2: promote mid-traffic (a restart with the new files); messages still queued are signed with the new key.
    await shenzhen.app?.close()
    await startGateway(shenzhen, {
      SIGNING_KEY_FILE: join(dir, 'second.jwk.json'),
      SIGNING_RETIRED_KEYS_FILE: join(dir, 'retired.jwks.json'),
    })
    await send(20, 40)
    const all = await until(
      () => delivered(shenzhen, ids),
      (count) => count >= ids.length,
      30_000,
    )
    expect(all).toBe(ids.length)

    const arrived = await received(zhongshan, ids)
    expect(arrived.length).toBe(ids.length)
    expect(new Set(arrived).size).toBe(ids.length)

    const { rows } = await sql<{ kid: string }>`
      select distinct convert_from(decode(translate(split_part(raw_jws, '.', 1), '-_', '+/') || repeat('=', (4 - length(split_part(raw_jws, '.', 1)) % 4) % 4), 'base64'), 'utf8')::jsonb->>'kid' as kid
      from messages where direction = 'inbound'`.execute(zhongshan.app?.db as never)
    expect(rows.map((row) => row.kid).sort()).toEqual([first.kid, second.kid].sort())
    const after = (await (await fetch(`${shenzhen.url}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] }
    expect(after.keys.map((key) => key.kid).sort()).toEqual([first.kid, second.kid].sort())
  })
})
