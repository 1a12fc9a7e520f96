import { readFileSync } from 'node:fs'
import { devSecretsEnv, queueOutbound } from '@pilot/kit'
import type { OutboundMessage } from '@pilot/schemas'
import { bodyDigest, type PrivateJwk, Signer } from '@pilot/signing'
import { testSecretsDir } from '@pilot/testing'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type CityGateway, queuesOf, startTwoGateways, until } from './harness.ts'

const NOW = () => Math.floor(Date.now() / 1000)
const cityKey = (city: string) =>
  JSON.parse(readFileSync(devSecretsEnv(testSecretsDir(), city).SIGNING_KEY_FILE as string, 'utf8')) as PrivateJwk

describe('statements shared by concurrent messages, over real HTTP', () => {
  let shenzhen: CityGateway
  let zhongshan: CityGateway

  beforeAll(async () => {
    ;({ shenzhen, zhongshan } = await startTwoGateways())
  })
  afterAll(async () => {
    await shenzhen.app?.close()
    await zhongshan.app?.close()
  })

  const rows = async (gateway: CityGateway, direction: 'inbound' | 'outbound', ids: string[]) =>
    (
      await sql<{ message_id: string; status: string; attempts: number; raw_jws: string | null; receipt: string }>`
        select message_id, status, attempts, raw_jws, receipt_status as receipt from messages
        where direction = ${direction} and message_id = any(${ids}::uuid[])`.execute(gateway.app?.db as never)
    ).rows

  it('delivers a burst queued at once exactly once, each with its own JWS and receipt, handed off', async () => {
    const messages: OutboundMessage[] = Array.from({ length: 120 }, (_, index) => ({
      messageId: crypto.randomUUID(),
      to: 'zhongshan',
      type: 'case.withdrawn',
      ref: `SZ-BATCH-${index}`,
      body: { withdrawnAt: new Date().toISOString(), reason: `burst ${index}` },
    }))
    // The same message queued twice as well: the job id makes it one delivery.
    await Promise.all(
      [...messages, ...messages.slice(0, 10)].map((m) => queueOutbound(queuesOf(shenzhen.app as never), m)),
    )
    const ids = messages.map((m) => m.messageId)
    const sent = await until(
      () => rows(shenzhen, 'outbound', ids),
      (found) => found.length === ids.length && found.every((row) => row.status === 'delivered'),
      30_000,
    )
    expect(sent.every((row) => row.attempts === 1 && row.receipt === 'accepted')).toBe(true)
    // Each row holds the JWS sent for its own message.
    for (const row of sent) {
      const claims = JSON.parse(Buffer.from((row.raw_jws as string).split('.')[1] ?? '', 'base64url').toString())
      expect(claims.jti).toBe(row.message_id)
    }
    const received = await until(
      () => rows(zhongshan, 'inbound', ids),
      (found) => found.length === ids.length && found.every((row) => row.status === 'handed_off'),
    )
    expect(new Set(received.map((row) => row.message_id)).size).toBe(ids.length)
    const jobs = await queuesOf(zhongshan.app as never)
      .queue('federation.inbound')
      .getJobs(['waiting', 'active', 'completed', 'delayed'])
    const handedOff = jobs.map((job) => (job.data as { messageId: string }).messageId).filter((id) => ids.includes(id))
    expect(handedOff.sort()).toEqual([...ids].sort())
  })

  async function post(jws: string) {
    const response = await fetch(`${zhongshan.url}/federation/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/jose' },
      body: jws,
    })
    const text = await response.text()
    const receipt =
      response.status === 202
        ? (JSON.parse(Buffer.from(text.split('.')[1] ?? '', 'base64url').toString()) as {
            body: { status: string; digest: string }
          })
        : undefined
    return { status: response.status, receipt: receipt?.body, text }
  }

  it('answers one jti sent twice at once accepted and duplicate, or accepted and 409 for another body', async () => {
    const signer = new Signer(cityKey('shenzhen'))
    const claims = (jti: string, detail: string) => ({
      iss: 'shenzhen',
      aud: 'zhongshan',
      jti,
      iat: NOW(),
      exp: NOW() + 300,
      type: 'case.refused',
      ref: 'SZ-2026-000777',
      body: { reason: 'not_registered_here', detail },
    })
    for (let round = 0; round < 10; round++) {
      const same = crypto.randomUUID()
      const conflicting = crypto.randomUUID()
      const [a, b, c, d] = await Promise.all([
        post(await signer.sign(claims(same, 'one'), { typ: 'pilot-msg+jwt' })),
        post(await signer.sign(claims(same, 'one'), { typ: 'pilot-msg+jwt' })),
        post(await signer.sign(claims(conflicting, 'first'), { typ: 'pilot-msg+jwt' })),
        post(await signer.sign(claims(conflicting, 'second'), { typ: 'pilot-msg+jwt' })),
      ])
      expect([a?.receipt?.status, b?.receipt?.status].sort()).toEqual(['accepted', 'duplicate'])
      const pair = [c, d] as { status: number; text: string; receipt?: { status: string; digest: string } }[]
      expect(pair.map((answer) => answer.status).sort()).toEqual([202, 409])
      // The row holds the body the accepted one's receipt vouches for, and that receipt.
      const accepted = pair.find((answer) => answer.status === 202)
      const { rows: stored } = await sql<{ digest: string; receipt_jws: string }>`
        select digest, receipt_jws from messages where direction = 'inbound' and message_id = ${conflicting}`.execute(
        zhongshan.app?.db as never,
      )
      expect(stored).toHaveLength(1)
      expect(stored[0]?.digest).toBe(accepted?.receipt?.digest)
      expect(stored[0]?.receipt_jws).toBe(accepted?.text)
      expect([bodyDigest(claims(conflicting, 'first').body), bodyDigest(claims(conflicting, 'second').body)]).toContain(
        stored[0]?.digest,
      )
    }
  })
})
