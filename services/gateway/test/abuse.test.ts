import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { devSecretsEnv, migrateToLatest } from '@pilot/kit'
import { generateSigningKey, type PrivateJwk, publicJwk, Signer, saveKeyFile } from '@pilot/signing'
import { testSecretsDir } from '@pilot/testing'
import type { FastifyInstance } from 'fastify'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp, gatewayService } from '../src/app.ts'
import { readGatewayConfig } from '../src/config.ts'
import { type CityGateway, gatewayCities, queuesOf, startGateway } from './harness.ts'

/**
 * A partner abusing the inbound endpoint, over real HTTP against real gateways (PostgreSQL, Redis): a flood, a
 * captured message replayed hours later, a message signed with a key that was revoked after our gateway cached it.
 *
 * Zhongshan is the receiving gateway under test. It is built with an injected clock (`buildApp(config, { clock })`)
 * so that "hours later" and "the next rate-limit minute" are real for the gateway without the test sleeping; every
 * message to Zhongshan is signed with Zhongshan's clock, as a sender synchronised with it would.
 */

const RATE_LIMIT = 20
const FLOOD = 200
const OTHER = 10
const HOURS_LATER = 3

const PROBLEM = (cause: string) => `urn:pilot:problem:federation:${cause}`
const cityKey = (city: string) =>
  JSON.parse(readFileSync(devSecretsEnv(testSecretsDir(), city).SIGNING_KEY_FILE as string, 'utf8')) as PrivateJwk

interface Sent {
  status: number
  contentType: string
  retryAfter: string | null
  text: string
  sentAt: number
  answeredAt: number
}

async function post(gateway: CityGateway, jws: string): Promise<Sent> {
  const sentAt = performance.now()
  const response = await fetch(`${gateway.url}/federation/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/jose' },
    body: jws,
  })
  const text = await response.text()
  return {
    status: response.status,
    contentType: response.headers.get('content-type') ?? '',
    retryAfter: response.headers.get('retry-after'),
    text,
    sentAt,
    answeredAt: performance.now(),
  }
}

const problemType = (sent: Sent) => (JSON.parse(sent.text) as { type: string }).type
const receiptStatus = (sent: Sent) =>
  (JSON.parse(Buffer.from(sent.text.split('.')[1] ?? '', 'base64url').toString('utf8')) as { body: { status: string } })
    .body.status

describe('federation abuse: flood, late replay, revoked key', () => {
  let shenzhen: CityGateway
  let zhuhai: CityGateway
  let zhongshan: CityGateway
  // Shenzhen rotated away from a key that was then compromised: `compromised` is still published (retired) when the
  // tests start; `current` signs Shenzhen's genuine messages.
  let compromised: PrivateJwk
  let current: PrivateJwk
  const keyDir = mkdtempSync(join(tmpdir(), 'abuse-keys-'))

  // Zhongshan's clock: real time plus an offset the tests move forward.
  let offsetMs = 0
  const clock = () => new Date(Date.now() + offsetMs)
  const zhongshanSeconds = () => Math.floor(clock().getTime() / 1000)
  /** Moves Zhongshan's clock to 1 s into the next minute: a fresh rate-limit window with 59 s of room. */
  const nextMinute = () => {
    const now = clock().getTime()
    offsetMs += (Math.floor(now / 60_000) + 1) * 60_000 + 1000 - now
  }

  beforeAll(async () => {
    compromised = (await generateSigningKey('ES256')) as PrivateJwk
    current = (await generateSigningKey('EdDSA')) as PrivateJwk
    saveKeyFile(join(keyDir, 'current.jwk.json'), current)
    saveKeyFile(join(keyDir, 'retired.jwks.json'), { keys: [publicJwk(compromised)] })

    const { gateways } = await gatewayCities(['shenzhen', 'zhuhai', 'zhongshan'], (profile) => {
      // Zhongshan's operators revoked the compromised Shenzhen key; Zhuhai's have not (yet).
      profile.cities.find((city: { id: string }) => city.id === 'zhongshan').federation.revokedKids = {
        shenzhen: [compromised.kid],
      }
    })
    shenzhen = gateways.shenzhen as CityGateway
    zhuhai = gateways.zhuhai as CityGateway
    zhongshan = gateways.zhongshan as CityGateway
    await startGateway(shenzhen, {
      SIGNING_KEY_FILE: join(keyDir, 'current.jwk.json'),
      SIGNING_RETIRED_KEYS_FILE: join(keyDir, 'retired.jwks.json'),
    })
    await startGateway(zhuhai)
    const app = await buildApp(
      readGatewayConfig({ ...zhongshan.env, INBOUND_RATE_LIMIT_PER_MINUTE: String(RATE_LIMIT) }),
      { clock },
    )
    await migrateToLatest(app.db, 'gateway', gatewayService.migrations)
    await app.listen({ host: '127.0.0.1', port: zhongshan.port })
    zhongshan.app = app
  })
  afterAll(async () => {
    for (const gateway of [shenzhen, zhuhai, zhongshan]) await gateway?.app?.close()
  })

  const signers = {
    zhuhai: () => new Signer(cityKey('zhuhai')),
    shenzhen: () => new Signer(current),
    compromised: () => new Signer(compromised),
  }
  /** A valid message from `from` to `to`, issued at `iat` (seconds) and living 300 s. */
  async function message(signer: Signer, from: string, to: string, iat: number): Promise<{ jti: string; jws: string }> {
    const jti = crypto.randomUUID()
    const claims = {
      iss: from,
      aud: to,
      jti,
      iat,
      exp: iat + 300,
      type: 'case.withdrawn',
      ref: `${from.slice(0, 2).toUpperCase()}-ABUSE-${jti.slice(0, 8)}`,
      body: { withdrawnAt: new Date(iat * 1000).toISOString(), reason: 'abuse test' },
    }
    return { jti, jws: await signer.sign(claims, { typ: 'pilot-msg+jwt' }) }
  }

  /** What a gateway holds for inbound message ids: stored rows (the replay record) and hand-off jobs. */
  async function held(gateway: CityGateway, jtis: string[]) {
    const { rows } = await sql<{ message_id: string }>`
      select message_id from messages where direction = 'inbound' and message_id = any(${jtis}::uuid[])`.execute(
      (gateway.app as FastifyInstance).db as never,
    )
    const jobs = await queuesOf(gateway.app as FastifyInstance)
      .queue('federation.inbound')
      .getJobs(['waiting', 'active', 'completed', 'delayed', 'failed', 'prioritized'])
    const wanted = new Set(jtis)
    return {
      stored: rows.map((row) => row.message_id).sort(),
      handedOff: jobs
        .map((job) => (job?.data as { messageId?: string } | undefined)?.messageId)
        .filter((id): id is string => id !== undefined && wanted.has(id))
        .sort(),
    }
  }

  it(`answers a flood of ${FLOOD} 429 beyond ${RATE_LIMIT}/min; meanwhile another partner is accepted`, {
    timeout: 60_000,
  }, async () => {
    nextMinute()
    const at = zhongshanSeconds()
    const hostile = await Promise.all(
      Array.from({ length: FLOOD }, () => message(signers.zhuhai(), 'zhuhai', 'zhongshan', at)),
    )
    const other = await Promise.all(
      Array.from({ length: OTHER }, () => message(signers.shenzhen(), 'shenzhen', 'zhongshan', at)),
    )

    // One queue of requests, taken in order by 8 concurrent clients: 30 from Zhuhai, then one from Shenzhen before
    // every 12 from Zhuhai, then the rest of Zhuhai's flood. When Shenzhen's first is taken, at least 23 of Zhuhai's
    // have been answered, so with a limit of 20 Zhuhai is already refused (asserted below from the times).
    type Job = { from: 'zhuhai' | 'shenzhen'; index: number }
    const jobs: Job[] = []
    let nextHostile = 0
    const pushHostile = (count: number) => {
      for (let i = 0; i < count && nextHostile < FLOOD; i++) jobs.push({ from: 'zhuhai', index: nextHostile++ })
    }
    pushHostile(30)
    for (let index = 0; index < OTHER; index++) {
      jobs.push({ from: 'shenzhen', index })
      pushHostile(12)
    }
    pushHostile(FLOOD)

    const results = { zhuhai: new Array<Sent>(FLOOD), shenzhen: new Array<Sent>(OTHER) }
    let cursor = 0
    const client = async () => {
      while (cursor < jobs.length) {
        const job = jobs[cursor++] as Job
        if (job.from === 'shenzhen') {
          results.shenzhen[job.index] = await post(zhongshan, (other[job.index] as { jws: string }).jws)
        } else {
          results.zhuhai[job.index] = await post(zhongshan, (hostile[job.index] as { jws: string }).jws)
        }
      }
    }
    await Promise.all(Array.from({ length: 8 }, client))
    // The whole flood fell into one rate-limit minute of Zhongshan's clock.
    expect(Math.floor(clock().getTime() / 60_000)).toBe(Math.floor((at * 1000) / 60_000))

    const hostileAccepted = results.zhuhai.filter((sent) => sent.status === 202)
    const hostileLimited = results.zhuhai.filter((sent) => sent.status === 429)
    expect(hostileAccepted).toHaveLength(RATE_LIMIT)
    expect(hostileLimited).toHaveLength(FLOOD - RATE_LIMIT)
    for (const sent of hostileLimited) {
      expect(sent.contentType).toMatch(/^application\/problem\+json/)
      expect(JSON.parse(sent.text)).toMatchObject({ type: PROBLEM('rate-limited'), status: 429 })
      // Seconds to the next minute of Zhongshan's clock, which stood at 1 s into a minute when the flood began.
      expect(Number(sent.retryAfter)).toBeGreaterThanOrEqual(1)
      expect(Number(sent.retryAfter)).toBeLessThanOrEqual(60)
    }
    // The other partner, throughout the flood: every message accepted, each sent after Zhuhai was over its limit
    // and before Zhuhai's last request of the flood was sent.
    expect(results.shenzhen.map((sent) => sent.status)).toEqual(new Array(OTHER).fill(202))
    expect(results.shenzhen.map(receiptStatus)).toEqual(new Array(OTHER).fill('accepted'))
    const firstLimitedAnswer = Math.min(...hostileLimited.map((sent) => sent.answeredAt))
    const lastHostileSent = Math.max(...results.zhuhai.map((sent) => sent.sentAt))
    for (const sent of results.shenzhen) {
      expect(sent.sentAt).toBeGreaterThan(firstLimitedAnswer)
      expect(sent.sentAt).toBeLessThan(lastHostileSent)
    }

    // A rate-limited message left nothing behind: no stored row (which is also the replay record), no hand-off.
    const ids = (messages: { jti: string }[]) => messages.map((sent) => sent.jti)
    const acceptedIds = ids(hostile.filter((_, index) => results.zhuhai[index]?.status === 202)).sort()
    const limitedIds = ids(hostile.filter((_, index) => results.zhuhai[index]?.status === 429))
    expect(await held(zhongshan, ids(hostile))).toEqual({ stored: acceptedIds, handedOff: acceptedIds })
    expect(await held(zhongshan, limitedIds)).toEqual({ stored: [], handedOff: [] })
    expect((await held(zhongshan, ids(other))).handedOff).toHaveLength(OTHER)

    // So the sender's retry in the next minute is new to the receiver: 202 `accepted`, not `duplicate`.
    nextMinute()
    const retried = limitedIds[0] as string
    const retry = await post(zhongshan, hostile.find((m) => m.jti === retried)?.jws as string)
    expect(retry.status).toBe(202)
    expect(receiptStatus(retry)).toBe('accepted')
    expect(await held(zhongshan, [retried])).toEqual({ stored: [retried], handedOff: [retried] })
  })

  it(`refuses a captured message replayed ${HOURS_LATER} h later as expired; nothing handed off again`, async () => {
    nextMinute()
    // Captured on the wire and delivered: accepted once; the same bytes within its lifetime are a duplicate.
    const captured = await message(signers.zhuhai(), 'zhuhai', 'zhongshan', zhongshanSeconds())
    const first = await post(zhongshan, captured.jws)
    expect(first.status).toBe(202)
    expect(receiptStatus(first)).toBe('accepted')
    const again = await post(zhongshan, captured.jws)
    expect(again.status).toBe(202)
    expect(receiptStatus(again)).toBe('duplicate')

    // Hours later on Zhongshan's clock, the exact same bytes: expired (step 12 comes before the replay check).
    offsetMs += HOURS_LATER * 3600_000
    const late = await post(zhongshan, captured.jws)
    expect(late.status).toBe(401)
    expect(late.contentType).toMatch(/^application\/problem\+json/)
    expect(problemType(late)).toBe(PROBLEM('expired'))
    expect(await held(zhongshan, [captured.jti])).toEqual({ stored: [captured.jti], handedOff: [captured.jti] })

    // Captured hours ago and never delivered (the attacker held it back): issued hours before Zhongshan's now.
    const withheld = await message(signers.zhuhai(), 'zhuhai', 'zhongshan', zhongshanSeconds() - HOURS_LATER * 3600)
    const replayed = await post(zhongshan, withheld.jws)
    expect(replayed.status).toBe(401)
    expect(problemType(replayed)).toBe(PROBLEM('expired'))
    expect(await held(zhongshan, [withheld.jti])).toEqual({ stored: [], handedOff: [] })
  })

  it('refuses a revoked partner key 401 revoked-key whatever its JWKS or our copy says; stores nothing', async () => {
    nextMinute()
    const now = () => Math.floor(Date.now() / 1000)
    const jwksKids = async () =>
      ((await (await fetch(`${shenzhen.url}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] }).keys.map(
        (key) => key.kid,
      )
    expect((await jwksKids()).sort()).toEqual([compromised.kid, current.kid].sort())

    // Both receivers fetch and cache Shenzhen's JWKS, which still lists the compromised key.
    const genuine = await message(signers.shenzhen(), 'shenzhen', 'zhongshan', zhongshanSeconds())
    expect((await post(zhongshan, genuine.jws)).status).toBe(202)
    expect((await post(zhuhai, (await message(signers.shenzhen(), 'shenzhen', 'zhuhai', now())).jws)).status).toBe(202)

    const forgeries: string[] = []
    const forge = async () => {
      const forged = await message(signers.compromised(), 'shenzhen', 'zhongshan', zhongshanSeconds())
      forgeries.push(forged.jti)
      return post(zhongshan, forged.jws)
    }
    const expectRevoked = (sent: Sent) => {
      expect(sent.status).toBe(401)
      expect(sent.contentType).toMatch(/^application\/problem\+json/)
      expect(problemType(sent)).toBe(PROBLEM('revoked-key'))
    }

    // Still published by Shenzhen: refused all the same.
    expectRevoked(await forge())

    // Shenzhen withdraws the key (a restart without the retired file).
    await shenzhen.app?.close()
    await startGateway(shenzhen, { SIGNING_KEY_FILE: join(keyDir, 'current.jwk.json') })
    expect(await jwksKids()).toEqual([current.kid])

    // Zhuhai, which has not revoked it, still trusts the withdrawn key from its cached copy of the JWKS (for up to
    // PARTNER_JWKS_CACHE_SECONDS; a kid it holds triggers no refetch): the gap the revocation list closes.
    const cached = await post(zhuhai, (await message(signers.compromised(), 'shenzhen', 'zhuhai', now())).jws)
    expect(cached.status).toBe(202)

    // Zhongshan fetched the same JWKS at the same time and its copy is as fresh: it refuses. The problem type shows the
    // revocation refused it, not a refetch (which would say unknown-key).
    expectRevoked(await forge())

    // With Shenzhen's JWKS unreachable Zhongshan keeps its stale copy for Shenzhen's other keys, never for this one.
    await shenzhen.app?.close()
    shenzhen.app = undefined
    expectRevoked(await forge())
    const stillTrusted = await message(signers.shenzhen(), 'shenzhen', 'zhongshan', zhongshanSeconds())
    expect((await post(zhongshan, stillTrusted.jws)).status).toBe(202)

    expect(await held(zhongshan, forgeries)).toEqual({ stored: [], handedOff: [] })
    // Nor anything else signed with the revoked key, whatever its message id.
    const { rows } = await sql<{ n: number }>`
      select count(*)::int as n from messages where direction = 'inbound'
        and convert_from(decode(translate(split_part(raw_jws, '.', 1), '-_', '+/')
          || repeat('=', (4 - length(split_part(raw_jws, '.', 1)) % 4) % 4), 'base64'), 'utf8')::jsonb->>'kid'
          = ${compromised.kid}`.execute(zhongshan.app?.db as never)
    expect(rows[0]?.n).toBe(0)
  })
})
