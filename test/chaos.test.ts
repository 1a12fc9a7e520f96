import { writeFileSync } from 'node:fs'
import { addMonths, CITY_IDS, checkCharacter, todayIn } from '@pilot/schemas'
import { extraDatabases, freePort, freshDatabase, serviceEnv, token } from '@pilot/testing'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { OwnRedis, pooled, Restartable, sleep } from './support/chaos.ts'
import { applicationBody } from './support/fixtures.ts'
import { profileOnFreePorts } from './support/profile.ts'

/**
 * The pilot on its worst day. Three cities run as real processes (the services' own entry points, as `pnpm pilot` and
 * the deployments run them) against the test's own Redis. While caseworkers submit applications in all six directions,
 * the test kills -9 a partner gateway, kills -9 a worker in the middle of its jobs, kills Redis (losing every queue)
 * and brings it back ten seconds later, and terminates every service connection to PostgreSQL. Then it counts, in
 * every city's databases, that each application reached its hukou city exactly once: one case, one message, one receipt.
 *
 * CI runs 500 applications; `pnpm chaos` runs a longer profile (CHAOS_APPLICATIONS, CHAOS_RATE).
 */

const APPLICATIONS = Number(process.env.CHAOS_APPLICATIONS ?? 500)
/** Submissions started per second (each retried with its own Idempotency-Key until it is answered). */
const RATE = Number(process.env.CHAOS_RATE ?? 25)
const RECOVERY_TIMEOUT_MS = Number(process.env.CHAOS_RECOVERY_TIMEOUT_MS ?? 240_000)

const REGION: Record<string, string> = { shenzhen: '440304', zhuhai: '440402', zhongshan: '442000' }
const DIRECTIONS = CITY_IDS.flatMap((from) => CITY_IDS.filter((to) => to !== from).map((to) => ({ from, to })))

interface Applicant {
  index: number
  idNumber: string
  residenceCity: string
  hukouCity: string
  key: string
  caseworker: string
}

function applicants(): Applicant[] {
  return Array.from({ length: APPLICATIONS }, (_, index) => {
    const { from, to } = DIRECTIONS[index % DIRECTIONS.length] as { from: string; to: string }
    // Born 1950–1989, order codes 100–999: distinct, valid identity numbers registered in the hukou city's region.
    const year = 1950 + (index % 40)
    const day = String((Math.floor(index / 40) % 28) + 1).padStart(2, '0')
    const month = String((Math.floor(index / 1120) % 12) + 1).padStart(2, '0')
    const order = String(100 + (Math.floor(index / 13440) % 900)).padStart(3, '0')
    const first17 = `${REGION[to]}${year}${month}${day}${order}`
    return {
      index,
      idNumber: first17 + checkCharacter(first17),
      residenceCity: from,
      hukouCity: to,
      key: `chaos-application-${index}`,
      caseworker: `${from}-chaos-caseworker-${index % 5}`,
    }
  })
}

const application = (applicant: Applicant) =>
  applicationBody(
    {
      idNumber: applicant.idNumber,
      name: `混沌测试${applicant.index}`,
      phone: `139${String(applicant.index).padStart(8, '0')}`,
      address: `测试路${applicant.index}号`,
    },
    {
      hukouCity: applicant.hukouCity,
      circumstances: 'Chaos test application.',
      recordedBy: applicant.caseworker,
      recordedAt: '2026-11-01T09:00:00+08:00',
    },
  )

interface FaultLog {
  fault: string
  at: number
  until?: number
}

describe('chaos: faults while applications cross the pilot', () => {
  const people = applicants()
  const databases: Record<string, string> = {}
  const processes: Record<string, Restartable> = {}
  const urls: Record<string, { intake: string; residence: string }> = {}
  let redis: OwnRedis
  let admin: pg.Client

  beforeAll(async () => {
    const { path: profile, ports } = await profileOnFreePorts()
    redis = await OwnRedis.start()
    admin = new pg.Client({ connectionString: inject('adminDatabaseUrl') })
    await admin.connect()
    const logDir = inject('logDir')
    const env = (city: string, name: string, port: number, extra: Record<string, string> = {}) =>
      serviceEnv(city, {
        PILOT_CONFIG: profile,
        DATABASE_URL: databases[city] as string,
        REDIS_URL: redis.url,
        REDIS_PREFIX: `chaos:${city}`,
        PORT: String(port),
        MIGRATE_ON_START: 'true',
        // Thirteen processes beside the rest of the suite: PostgreSQL's 100 connections must go round.
        DATABASE_POOL_MAX: '4',
        LOG_LEVEL: 'info',
        LOG_FILE: `${logDir}/chaos-${city}-${name}.ndjson`,
        // Faster than production, so that recovery fits a CI run; the mechanisms are the same.
        DELIVERY_MAX_ATTEMPTS: '100',
        DELIVERY_BACKOFF_BASE_MS: '200',
        DELIVERY_BACKOFF_MAX_MS: '2000',
        RELAY_INTERVAL_MS: '500',
        RELAY_RECHECK_SECONDS: '5',
        OUTBOX_RELAY_INTERVAL_MS: '250',
        OUTBOX_RESEND_AFTER_SECONDS: '5',
        PARTNER_JWKS_REFETCH_MIN_INTERVAL_MS: '0',
        INBOUND_RATE_LIMIT_PER_MINUTE: '100000',
        ...extra,
      })
    for (const city of CITY_IDS) {
      databases[city] = await freshDatabase(`chaos_${city}`)
      const cityPorts = ports[city] as { residence: number; intake: number; gateway: number }
      urls[city] = {
        intake: `http://127.0.0.1:${cityPorts.intake}`,
        residence: `http://127.0.0.1:${cityPorts.residence}`,
      }
      processes[`${city}-residence`] = new Restartable(
        `${city}-residence`,
        'residence',
        env(city, 'residence', cityPorts.residence),
      )
    }
    // Shenzhen's gateway runs its API and its delivery worker as separate processes, Zhuhai its intake: so that a
    // worker can be killed on its own, in the middle of its jobs. The others run both in one process.
    const split = { shenzhen: 'gateway', zhuhai: 'intake' } as Record<string, string>
    for (const city of CITY_IDS) {
      const cityPorts = ports[city] as { residence: number; intake: number; gateway: number }
      for (const service of ['gateway', 'intake'] as const) {
        if (split[city] === service) {
          processes[`${city}-${service}`] = new Restartable(
            `${city}-${service}`,
            service,
            env(city, service, cityPorts[service], { SERVICE_MODE: 'api' }),
          )
          processes[`${city}-${service}-worker`] = new Restartable(
            `${city}-${service}-worker`,
            service,
            env(city, `${service}-worker`, await freePort(), { SERVICE_MODE: 'worker' }),
          )
        } else {
          processes[`${city}-${service}`] = new Restartable(
            `${city}-${service}`,
            service,
            env(city, service, cityPorts[service]),
          )
        }
      }
    }
    // Residence first (intake asks it), in parallel within each tier to keep start-up short on two cores.
    await Promise.all(
      Object.values(processes)
        .filter((p) => p.service === 'residence')
        .map((p) => p.start()),
    )
    await Promise.all(
      Object.values(processes)
        .filter((p) => p.service !== 'residence')
        .map((p) => p.start()),
    )

    // Every applicant: three years of residence in the residence city, household registration in the hukou city.
    const since = addMonths(todayIn('Asia/Shanghai'), -36)
    for (const city of CITY_IDS) {
      const operator = await token(city, ['operator'], { subject: `${city}-chaos-loader` })
      const feeds = {
        evidence: people
          .filter((person) => person.residenceCity === city)
          .map((person) => ({
            idNumber: person.idNumber,
            kind: 'residence_registration',
            validFrom: since,
            validTo: null,
            sourceRef: `CHAOS-${person.index}`,
          })),
        registrations: people
          .filter((person) => person.hukouCity === city)
          .map((person) => ({
            idNumber: person.idNumber,
            registeredSince: '2000-01-01',
            householdRef: `HH-CHAOS-${person.index}`,
            sourceRef: `HK-CHAOS-${person.index}`,
          })),
      }
      for (const [records, rows] of Object.entries(feeds)) {
        const response = await fetch(`${urls[city]?.residence}/v1/residence/${records}:import`, {
          method: 'POST',
          headers: { authorization: `Bearer ${operator}`, 'content-type': 'application/x-ndjson' },
          body: rows.map((row) => JSON.stringify(row)).join('\n'),
        })
        const summary = (await response.json()) as { inserted: number; rejected: number }
        if (response.status !== 200 || summary.rejected)
          throw new Error(`${city} ${records}: ${JSON.stringify(summary)}`)
      }
    }
  }, 300_000)

  afterAll(async () => {
    await Promise.allSettled(Object.values(processes).map((p) => p.stop()))
    await redis?.kill()
    await admin?.end()
    // The city databases are dropped by the per-file setup.
    void extraDatabases
  })

  it(`brings every one of ${APPLICATIONS} applications to its hukou city exactly once through the faults`, {
    timeout: 900_000,
  }, async () => {
    const started = Date.now()
    const at = () => Date.now() - started
    const faults: FaultLog[] = []
    let submitAttempts = 0
    const answered = new Map<string, { id: string; reference: string }>()
    const refusals: string[] = []

    const tokens = new Map<string, string>()
    const caseworkerToken = async (person: Applicant) => {
      const cached = tokens.get(person.caseworker)
      if (cached) return cached
      const minted = await token(person.residenceCity, ['caseworker'], { subject: person.caseworker, ttlSeconds: 7200 })
      tokens.set(person.caseworker, minted)
      return minted
    }

    // A caseworker's client: retries a submission with the same Idempotency-Key until it is answered (the service
    // may be between restarts, or lose its database connection mid-request).
    const submit = async (person: Applicant) => {
      await sleep(Math.max(0, (person.index * 1000) / RATE - at()))
      const body = JSON.stringify(application(person))
      for (;;) {
        submitAttempts++
        try {
          const response = await fetch(`${urls[person.residenceCity]?.intake}/v1/applications`, {
            method: 'POST',
            headers: {
              authorization: `Bearer ${await caseworkerToken(person)}`,
              'content-type': 'application/json',
              'idempotency-key': person.key,
            },
            body,
            signal: AbortSignal.timeout(15_000),
          })
          const answer = (await response.json()) as { id: string; reference: string; status: string; type?: string }
          if (response.status === 201 || response.status === 200) {
            answered.set(person.key, { id: answer.id, reference: answer.reference })
            return
          }
          if (response.status < 500 && response.status !== 429) {
            refusals.push(`${person.key}: ${response.status} ${answer.type} ${JSON.stringify(answer)}`)
            return
          }
        } catch {
          // connection refused or reset, or timed out: the same key again
        }
        await sleep(300)
      }
    }

    const injectFaults = async () => {
      const fault = async (
        name: string,
        begin: number,
        action: () => Promise<void>,
        end?: [number, () => Promise<void>],
      ) => {
        await sleep(Math.max(0, begin - at()))
        const entry: FaultLog = { fault: name, at: at() }
        faults.push(entry)
        await action()
        if (end) {
          await sleep(Math.max(0, end[0] - at()))
          await end[1]()
          entry.until = at()
        }
      }
      const load = (APPLICATIONS * 1000) / RATE
      const zhongshanGateway = processes['zhongshan-gateway'] as Restartable
      const shenzhenDelivery = processes['shenzhen-gateway-worker'] as Restartable
      const zhuhaiIntakeWorker = processes['zhuhai-intake-worker'] as Restartable
      await Promise.all([
        fault(
          'kill -9 the zhongshan gateway (partner of both other cities), restart 4 s later',
          load * 0.1,
          () => zhongshanGateway.kill(),
          [load * 0.1 + 4000, () => zhongshanGateway.start()],
        ),
        fault(
          'kill -9 the shenzhen gateway delivery worker mid-delivery, restart 3 s later',
          load * 0.2,
          () => shenzhenDelivery.kill(),
          [load * 0.2 + 3000, () => shenzhenDelivery.start()],
        ),
        fault(
          'kill -9 the zhuhai intake worker (outbox relay, inbound consumer), restart 3 s later',
          load * 0.3,
          () => zhuhaiIntakeWorker.kill(),
          [load * 0.3 + 3000, () => zhuhaiIntakeWorker.start()],
        ),
        fault('kill -9 Redis (every queue lost), start it again 10 s later', load * 0.45, () => redis.kill(), [
          load * 0.45 + 10_000,
          () => redis.up(),
        ]),
        fault('pg_terminate_backend: every service connection to the three city databases', load * 0.75, async () => {
          const { rowCount } = await admin.query(
            `select pg_terminate_backend(pid) from pg_stat_activity
                where datname = any($1) and pid <> pg_backend_pid()`,
            [Object.values(databases).map((url) => new URL(url).pathname.slice(1))],
          )
          faults.push({ fault: `  (${rowCount} connections terminated)`, at: at() })
        }),
      ])
    }

    await Promise.all([
      pooled(
        64,
        people.map((person) => () => submit(person)),
      ),
      injectFaults(),
    ])
    const faultsOver = Math.max(...faults.map((fault) => fault.until ?? fault.at))
    const submittedBy = at()
    expect(refusals).toEqual([])
    expect(answered.size).toBe(APPLICATIONS)

    // Recovery: until every application is an incoming case in its hukou city and its residence case knows the
    // transfer was delivered.
    const clients = Object.fromEntries(
      await Promise.all(
        CITY_IDS.map(async (city) => {
          const client = new pg.Client({ connectionString: databases[city] })
          await client.connect()
          return [city, client] as const
        }),
      ),
    ) as Record<string, pg.Client>
    const expectedIncoming = new Map<string, Set<string>>(CITY_IDS.map((city) => [city, new Set()]))
    for (const person of people) {
      expectedIncoming.get(person.hukouCity)?.add(answered.get(person.key)?.reference as string)
    }
    const progress = async () => {
      let arrived = 0
      let transferred = 0
      for (const city of CITY_IDS) {
        const client = clients[city] as pg.Client
        const incoming = await client.query(
          `select count(distinct reference)::int as n from intake.cases where side = 'incoming'`,
        )
        arrived += incoming.rows[0].n
        const outgoing = await client.query(
          `select count(*)::int as n from intake.cases where side = 'outgoing' and status = 'transferred'`,
        )
        transferred += outgoing.rows[0].n
      }
      return { arrived, transferred }
    }
    let state = await progress()
    while (
      (state.arrived < APPLICATIONS || state.transferred < APPLICATIONS) &&
      at() - faultsOver < RECOVERY_TIMEOUT_MS
    ) {
      await sleep(500)
      state = await progress()
    }
    const recoveredAt = at()
    // Where the work stands in every city, for the summary (and for whoever reads a failed run).
    const whereWorkIs: Record<string, unknown> = {}
    for (const city of CITY_IDS) {
      const client = clients[city] as pg.Client
      const rows = async (text: string) => (await client.query(text)).rows
      whereWorkIs[city] = {
        outbox: await rows(`select type, coalesce(outcome, 'none') as outcome, relayed_at is not null as relayed,
            count(*)::int as n from intake.outbox group by 1, 2, 3 order by 1, 2, 3`),
        gateway: await rows(`select direction, type, status, count(*)::int as n from gateway.messages
            group by 1, 2, 3 order by 1, 2, 3`),
        cases: await rows(`select side, status, count(*)::int as n from intake.cases group by 1, 2 order by 1, 2`),
        queues: redis.queueCounts(`chaos:${city}`),
      }
    }

    // The count: for every application, exactly one of each thing, in every city's own database.
    const problems: string[] = []
    const once = (what: string, rows: { key: string; n: number }[], expected: Set<string>) => {
      const seen = new Map(rows.map((row) => [row.key, row.n]))
      for (const key of expected) {
        const n = seen.get(key) ?? 0
        if (n !== 1) problems.push(`${what} ${key}: ${n}`)
      }
      for (const key of seen.keys()) if (!expected.has(key)) problems.push(`${what} ${key}: not sent by this test`)
    }
    const counts = { cases: 0, messages: 0, receipts: 0 }
    for (const city of CITY_IDS) {
      const client = clients[city] as pg.Client
      const sentHere = new Set(
        people
          .filter((person) => person.residenceCity === city)
          .map((person) => answered.get(person.key)?.reference as string),
      )
      const q = async (text: string) => (await client.query<{ key: string; n: number }>(text)).rows
      once(
        `${city} outgoing case`,
        await q(`select reference as key, count(*)::int as n from intake.cases
            where side = 'outgoing' group by reference`),
        sentHere,
      )
      once(
        `${city} outgoing case transferred`,
        await q(`select reference as key, count(*)::int as n from intake.cases
            where side = 'outgoing' and status = 'transferred' group by reference`),
        sentHere,
      )
      once(
        `${city} outbox case.transfer delivered`,
        await q(`select ref as key, count(*)::int as n from intake.outbox
            where type = 'case.transfer' and outcome = 'delivered' group by ref`),
        sentHere,
      )
      once(
        `${city} gateway outbound case.transfer with a verified receipt`,
        await q(`select ref as key,
            count(*)::int as n from gateway.messages where direction = 'outbound' and type = 'case.transfer'
            and status = 'delivered' and receipt_jws is not null group by ref`),
        sentHere,
      )
      once(
        `${city} gateway outbound case.transfer, any status`,
        await q(`select ref as key, count(*)::int as n
            from gateway.messages where direction = 'outbound' and type = 'case.transfer' group by ref`),
        sentHere,
      )
      const receivedHere = expectedIncoming.get(city) as Set<string>
      once(
        `${city} incoming case`,
        await q(`select reference as key, count(*)::int as n from intake.cases
            where side = 'incoming' group by reference`),
        receivedHere,
      )
      once(
        `${city} gateway inbound case.transfer with our receipt`,
        await q(`select ref as key, count(*)::int as n
            from gateway.messages where direction = 'inbound' and type = 'case.transfer' and receipt_jws is not null
            group by ref`),
        receivedHere,
      )
      once(
        `${city} gateway inbound case.transfer, any`,
        await q(`select ref as key, count(*)::int as n
            from gateway.messages where direction = 'inbound' and type = 'case.transfer' group by ref`),
        receivedHere,
      )
      once(
        `${city} case.transfer applied by intake`,
        await q(`select c.reference as key, count(*)::int as n
            from intake.inbound_processed p join gateway.messages m on m.message_id = p.message_id
            and m.direction = 'inbound' join intake.cases c on c.reference = m.ref and c.side = 'incoming'
            where p.type = 'case.transfer' group by c.reference`),
        receivedHere,
      )
      counts.cases += (await q(`select '' as key, count(*)::int as n from intake.cases`))[0]?.n ?? 0
      counts.messages += (await q(`select '' as key, count(*)::int as n from gateway.messages`))[0]?.n ?? 0
      counts.receipts +=
        (
          await q(`select '' as key, count(*)::int as n from gateway.messages
            where receipt_jws is not null`)
        )[0]?.n ?? 0
    }
    await Promise.all(Object.values(clients).map((client) => client.end()))

    const summary = {
      applications: APPLICATIONS,
      directions: DIRECTIONS.length,
      rate: RATE,
      submitAttempts,
      submittedBySeconds: submittedBy / 1000,
      faults,
      faultsOverSeconds: faultsOver / 1000,
      recoveredAtSeconds: recoveredAt / 1000,
      recoverySeconds: (recoveredAt - faultsOver) / 1000,
      arrived: state.arrived,
      transferred: state.transferred,
      lost: APPLICATIONS - state.arrived,
      problems: problems.length,
      rowsCounted: counts,
      whereWorkIs,
    }
    writeFileSync(`${inject('logDir')}/chaos-summary.json`, `${JSON.stringify(summary, null, 2)}\n`)
    console.log(`chaos summary: ${JSON.stringify(summary, null, 2)}`)
    expect(problems.slice(0, 20)).toEqual([])
    expect(state).toEqual({ arrived: APPLICATIONS, transferred: APPLICATIONS })
  })
})
