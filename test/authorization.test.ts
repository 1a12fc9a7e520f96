import { createHmac, createPrivateKey, sign } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { devAudience, devIssuer, generateEs256Jwk } from '@pilot/kit'
import { repoRoot, testSecretsDir, token } from '@pilot/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { call, eventually, startCities, stopCities, type TestCity } from './support/cities.ts'
import { applicationBody, idNumber, submitApplication } from './support/fixtures.ts'
import type { ServiceName } from './support/profile.ts'

/**
 * Who may call what, route by route, for every service of a city: each documented operation against no token, a token
 * of each role from this city's identity provider and from another city's, and tokens that are expired, forged,
 * tampered with or meant for someone else. The table below is written out by hand from the policy, not read from the
 * code under test; the OpenAPI documents only say which operations must be in it.
 */

type Role = 'caseworker' | 'reviewer' | 'operator' | 'auditor' | 'system'
const ROLES: readonly Role[] = ['caseworker', 'reviewer', 'operator', 'auditor', 'system']
const SERVICES: readonly ServiceName[] = ['residence', 'intake', 'gateway']

/** The city whose services are under test, and the other city whose tokens must not open them. */
const HOME = 'shenzhen'
const OTHER = 'zhongshan'

/** Lives in Shenzhen (evidence seeded below), registered nowhere: the transfer to Zhongshan becomes a refused case. */
const resident = idNumber('44200019800101123')
/** No residence evidence anywhere: an application for them is residence_rejected at once and never changes. */
const stranger = idNumber('44030419900505111')
const spouse = idNumber('44200019820303789')

const application = (applicantId: string) =>
  applicationBody(
    { idNumber: applicantId, monthlyIncomeFen: 50_000 },
    {
      hukouCity: OTHER,
      household: [{ idNumber: spouse, name: '陈伟', relation: 'spouse', monthlyIncomeFen: 30_000, assetsFen: 100_000 }],
      medicalFen: 120_000,
      documents: [{ name: 'hospital-bill.pdf', mediaType: 'application/pdf', sha256: 'a'.repeat(64) }],
    },
  )

const feed = (record: Record<string, string>) => `${JSON.stringify(record)}\n`
const evidenceFeed = feed({
  idNumber: resident,
  kind: 'residence_registration',
  validFrom: '2025-01-01',
  sourceRef: 'SZ-RR-AUTH-1',
})
const registrationFeed = feed({ idNumber: stranger, registeredSince: '1990-05-05', sourceRef: 'SZ-HK-AUTH-1' })
/** Submitted once before the matrix; the matrix's own submission repeats it (same key, same body): 201 every time. */
const REJECTED_SUBMISSION = { key: 'authz-matrix-submission', body: application(stranger) }

/** Ids the table's requests need, known once the cities have some cases. */
interface Fixtures {
  /** A Shenzhen application in residence_rejected: final, so every action on it is 409. */
  rejectedId: string
  /** A Shenzhen application that was transferred, and the id Zhongshan's intake gave the incoming case. */
  transferredId: string
  zhongshanIncomingId: string
}

interface Request {
  /** Replaces `{id}` in the documented path. */
  id?: string
  query?: string
  json?: unknown
  /** A raw body (a feed, a JWS) and its content type. */
  raw?: { body: string; contentType: string }
  headers?: Record<string, string>
}

/** A route that needs no token: it answers `status` whatever the caller sends as credentials. */
interface PublicRoute {
  public: true
  status: number
  request?: (fixtures: Fixtures) => Request
}
/** A route for the `roles` of this city only: with the request below, one of them gets `ok`. */
interface ProtectedRoute {
  public?: false
  roles: readonly Role[]
  ok: number
  request?: (fixtures: Fixtures) => Request
}
type Route = PublicRoute | ProtectedRoute

const open = (status = 200, request?: PublicRoute['request']): PublicRoute => ({ public: true, status, request })
const unknownId = '00000000-0000-4000-8000-000000000000'

/** THE TABLE: every documented operation of every service, keyed as the OpenAPI document names it. */
const TABLE: Record<ServiceName, Record<string, Route>> = {
  residence: {
    'GET /metrics': open(),
    'GET /health/live': open(),
    'GET /health/ready': open(),
    'GET /.well-known/jwks.json': open(),
    'POST /v1/residence/verifications': {
      roles: ['caseworker'],
      ok: 200,
      request: () => ({ json: { idNumber: stranger, hukouCity: OTHER } }),
    },
    'POST /v1/residence/verifications:batch': {
      // The city's intake service, asking for its caseworkers' submissions together.
      roles: ['system'],
      ok: 200,
      request: () => ({ json: { requests: [{ idNumber: stranger, hukouCity: OTHER }] } }),
    },
    'POST /v1/residence/evidence:import': {
      roles: ['operator'],
      ok: 200,
      request: () => ({ raw: { body: evidenceFeed, contentType: 'application/x-ndjson' } }),
    },
    'POST /v1/residence/registrations:import': {
      roles: ['operator'],
      ok: 200,
      request: () => ({ raw: { body: registrationFeed, contentType: 'application/x-ndjson' } }),
    },
    'POST /v1/residence/registrations:confirm': {
      // The intake worker asks for an incoming transfer (system); a reviewer may ask while deciding.
      roles: ['system', 'reviewer'],
      ok: 200,
      request: () => ({ json: { subject: 'A'.repeat(43) } }),
    },
  },
  intake: {
    'GET /metrics': open(),
    'GET /health/live': open(),
    'GET /health/ready': open(),
    'POST /v1/applications': {
      roles: ['caseworker'],
      ok: 201,
      request: () => ({
        json: REJECTED_SUBMISSION.body,
        headers: { 'idempotency-key': REJECTED_SUBMISSION.key },
      }),
    },
    'GET /v1/applications': { roles: ['caseworker'], ok: 200, request: () => ({ query: 'limit=1' }) },
    'GET /v1/applications/{id}': { roles: ['caseworker'], ok: 200, request: (f) => ({ id: f.rejectedId }) },
    'POST /v1/applications/{id}/supply-info': {
      roles: ['caseworker'],
      ok: 409,
      request: (f) => ({ id: f.rejectedId, json: { requestId: unknownId, note: '', documents: [] } }),
    },
    'POST /v1/applications/{id}/withdraw': {
      roles: ['caseworker'],
      ok: 409,
      request: (f) => ({ id: f.rejectedId, json: { reason: 'moved away' } }),
    },
    'GET /v1/incoming-cases': { roles: ['reviewer'], ok: 200, request: () => ({ query: 'limit=1' }) },
    // The incoming-case routes are given an application's id: not an incoming case, so 404 once admitted.
    'GET /v1/incoming-cases/{id}': { roles: ['reviewer'], ok: 404, request: (f) => ({ id: f.rejectedId }) },
    'POST /v1/incoming-cases/{id}/accept': {
      roles: ['reviewer'],
      ok: 404,
      request: (f) => ({ id: f.rejectedId, json: {} }),
    },
    'POST /v1/incoming-cases/{id}/start-review': {
      roles: ['reviewer'],
      ok: 404,
      request: (f) => ({ id: f.rejectedId, json: {} }),
    },
    'POST /v1/incoming-cases/{id}/refuse': {
      roles: ['reviewer'],
      ok: 404,
      request: (f) => ({ id: f.rejectedId, json: { reason: 'duplicate_application', detail: 'already decided' } }),
    },
    'POST /v1/incoming-cases/{id}/request-info': {
      roles: ['reviewer'],
      ok: 404,
      request: (f) => ({ id: f.rejectedId, json: { missing: ['Proof of the hospital stay'] } }),
    },
    'POST /v1/incoming-cases/{id}/decide': {
      roles: ['reviewer'],
      ok: 404,
      request: (f) => ({ id: f.rejectedId, json: { outcome: 'rejected', reason: 'income above the standard' } }),
    },
    'POST /v1/incoming-cases/{id}/resolve-benefit-matches': {
      roles: ['reviewer'],
      ok: 404,
      request: (f) => ({ id: f.rejectedId, json: { note: 'the other benefit ended last month' } }),
    },
    // Policy: auditors read every row of their city, caseworkers and reviewers their own rows (tested below).
    'GET /v1/audit': { roles: ['auditor', 'caseworker', 'reviewer'], ok: 200, request: () => ({ query: 'limit=1' }) },
  },
  gateway: {
    'GET /metrics': open(),
    'GET /health/live': open(),
    'GET /health/ready': open(),
    'GET /.well-known/jwks.json': open(),
    // Partners authenticate by the message's own signature, not by a token: a bearer token neither helps nor hurts.
    'POST /federation/v1/messages': open(400, () => ({ raw: { body: 'not-a-jws', contentType: 'application/jose' } })),
    'GET /ops/v1/queues': { roles: ['operator'], ok: 200 },
    'GET /ops/v1/messages': { roles: ['operator'], ok: 200, request: () => ({ query: 'limit=1' }) },
    'POST /ops/v1/messages/{id}/redrive': { roles: ['operator'], ok: 404, request: () => ({ id: unknownId }) },
  },
}

// ---------------------------------------------------------------------------------------------------------------------
// Tokens

type Jwk = Record<string, string>
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')

function idpKey(city: string): Jwk {
  return JSON.parse(readFileSync(join(testSecretsDir(), city, 'idp-private.jwk.json'), 'utf8')) as Jwk
}

/** A JWT built by hand, so each defect can be made on its own; signed ES256 with `jwk` unless `alg` says otherwise. */
function handmade(claims: Record<string, unknown>, options: { jwk?: Jwk; alg?: 'none' | 'HS256' } = {}): string {
  const jwk = options.jwk ?? idpKey(HOME)
  const alg = options.alg ?? 'ES256'
  const input = `${b64({ alg, kid: jwk.kid, typ: 'JWT' })}.${b64(claims)}`
  if (alg === 'none') return `${input}.`
  if (alg === 'HS256') {
    // The classic confusion: the IdP's public key used as an HMAC secret.
    const { d: _private, ...publicJwk } = jwk
    return `${input}.${createHmac('sha256', JSON.stringify(publicJwk)).update(input).digest('base64url')}`
  }
  const signature = sign('sha256', Buffer.from(input), {
    key: createPrivateKey({ key: jwk, format: 'jwk' }),
    dsaEncoding: 'ieee-p1363',
  })
  return `${input}.${signature.toString('base64url')}`
}

function claimsFor(roles: readonly Role[], overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000)
  return {
    iss: devIssuer(HOME),
    aud: devAudience(HOME),
    sub: `${HOME}-${roles[0]}-handmade`,
    city: HOME,
    roles,
    iat: now,
    exp: now + 3600,
    ...overrides,
  }
}

const bearer = (value: string) => ({ authorization: `Bearer ${value}` })

/**
 * One column of the matrix: what a caller sends, and the status the table then expects. `admitted` is a role the
 * route admits, so that a refusal in the defect columns can only be the defect's doing.
 */
interface Column {
  name: string
  credentials: (admitted: Role, refused: Role | undefined, roles: readonly Role[]) => Promise<Record<string, string>>
  expected: (route: ProtectedRoute) => number
}

const COLUMNS: Column[] = [
  { name: 'no token', credentials: async () => ({}), expected: () => 401 },
  ...ROLES.map(
    (role): Column => ({
      name: `${HOME} ${role}`,
      credentials: async () => bearer(await token(HOME, [role])),
      expected: (route) => (route.roles.includes(role) ? route.ok : 403),
    }),
  ),
  ...ROLES.map(
    (role): Column => ({
      name: `${OTHER} ${role}`,
      credentials: async () => bearer(await token(OTHER, [role])),
      expected: () => 401,
    }),
  ),
  {
    // The control for the hand-made columns below: built the same way, nothing wrong with it.
    name: 'hand-made, sound',
    credentials: async (admitted) => bearer(handmade(claimsFor([admitted]))),
    expected: (route) => route.ok,
  },
  {
    name: 'expired an hour ago',
    credentials: async (admitted) =>
      bearer(await token(HOME, [admitted], { issuedAt: Math.floor(Date.now() / 1000) - 7200, ttlSeconds: 3600 })),
    expected: () => 401,
  },
  {
    name: 'signed by a key not in the JWKS',
    credentials: async (admitted) => bearer(await token(HOME, [admitted], { signingJwk: generateEs256Jwk() })),
    expected: () => 401,
  },
  {
    name: "signed by another key under the IdP's kid",
    credentials: async (admitted) =>
      bearer(await token(HOME, [admitted], { signingJwk: { ...generateEs256Jwk(), kid: idpKey(HOME).kid as string } })),
    expected: () => 401,
  },
  {
    name: "signed by the other city's IdP, claiming to be this city's",
    credentials: async (admitted) => bearer(handmade(claimsFor([admitted]), { jwk: idpKey(OTHER) })),
    expected: () => 401,
  },
  {
    name: 'alg none',
    credentials: async (admitted) => bearer(handmade(claimsFor([admitted]), { alg: 'none' })),
    expected: () => 401,
  },
  {
    name: 'alg HS256 keyed with the public key',
    credentials: async (admitted) => bearer(handmade(claimsFor([admitted]), { alg: 'HS256' })),
    expected: () => 401,
  },
  {
    // A sound token of a role the route refuses, its payload rewritten to grant the route's roles.
    name: 'payload tampered to add the role',
    credentials: async (_admitted, refused, roles) => {
      const [header, payload, signature] = (await token(HOME, [refused ?? 'system'])).split('.') as [
        string,
        string,
        string,
      ]
      const sound = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>
      return bearer(`${header}.${b64({ ...sound, roles })}.${signature}`)
    },
    expected: () => 401,
  },
  {
    name: "the other city's audience",
    credentials: async (admitted) => bearer(handmade(claimsFor([admitted], { aud: devAudience(OTHER) }))),
    expected: () => 401,
  },
  {
    name: "the other city's issuer",
    credentials: async (admitted) => bearer(handmade(claimsFor([admitted], { iss: devIssuer(OTHER) }))),
    expected: () => 401,
  },
  {
    name: 'no subject',
    credentials: async (admitted) => bearer(handmade(claimsFor([admitted], { sub: undefined }))),
    expected: () => 401,
  },
  {
    name: 'no expiry',
    credentials: async (admitted) => bearer(handmade(claimsFor([admitted], { exp: undefined }))),
    expected: () => 401,
  },
  {
    // This city's IdP vouching for a user of another city (a shared IdP would): authentic, but not ours to serve.
    name: 'city claim of the other city',
    credentials: async (admitted) => bearer(await token(HOME, [admitted], { cityClaim: OTHER })),
    expected: () => 403,
  },
  {
    // Only the queue dashboard takes its token from a cookie; the API does not.
    name: 'sound token in a cookie only',
    credentials: async (admitted) => ({ cookie: `pilot_ops_token=${await token(HOME, [admitted])}` }),
    expected: () => 401,
  },
  {
    name: 'Basic scheme',
    credentials: async () => ({ authorization: `Basic ${Buffer.from('caseworker:secret').toString('base64')}` }),
    expected: () => 401,
  },
]

// ---------------------------------------------------------------------------------------------------------------------

async function send(
  city: TestCity,
  service: ServiceName,
  operation: string,
  request: Request,
  credentials: Record<string, string>,
): Promise<number> {
  const [method, documentedPath] = operation.split(' ') as [string, string]
  const path = documentedPath.replace('{id}', request.id ?? unknownId)
  const body = request.raw ? request.raw.body : request.json === undefined ? undefined : JSON.stringify(request.json)
  const contentType = request.raw?.contentType ?? (request.json === undefined ? undefined : 'application/json')
  const response = await fetch(`${city.url[service]}${path}${request.query ? `?${request.query}` : ''}`, {
    method,
    headers: { ...credentials, ...(contentType ? { 'content-type': contentType } : {}), ...request.headers },
    body,
  })
  await response.arrayBuffer()
  return response.status
}

function documentedOperations(service: ServiceName): Record<string, boolean> {
  const document = parse(readFileSync(join(repoRoot, 'openapi', `${service}.yaml`), 'utf8')) as {
    paths: Record<string, Record<string, { security?: unknown[] }>>
    security?: unknown[]
  }
  const operations: Record<string, boolean> = {}
  for (const [path, item] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(item)) {
      if (!['get', 'put', 'post', 'patch', 'delete', 'head', 'options', 'trace'].includes(method)) continue
      // true: the document says it needs a bearer token.
      operations[`${method.toUpperCase()} ${path}`] = (operation.security ?? document.security ?? []).length > 0
    }
  }
  return operations
}

describe('the authorisation table covers the API', () => {
  it.each(SERVICES)(
    '%s: every documented operation has a row, every row is documented, and public means public',
    (service) => {
      const documented = documentedOperations(service)
      expect(Object.keys(TABLE[service]).sort()).toEqual(Object.keys(documented).sort())
      for (const [operation, route] of Object.entries(TABLE[service])) {
        expect({ operation, needsToken: documented[operation] }).toEqual({ operation, needsToken: !route.public })
      }
    },
  )
})

describe('authorisation, with real services of two cities over HTTP', () => {
  let cities: Record<string, TestCity>
  let home: TestCity
  let other: TestCity
  const fixtures: Fixtures = { rejectedId: '', transferredId: '', zhongshanIncomingId: '' }
  const as = (subject: string) => ({ subject })
  const get = async (city: TestCity, path: string, credentials: Record<string, string>) => {
    const response = await fetch(`${city.url.intake}${path}`, { headers: credentials })
    const text = await response.text()
    // biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON a service answered
    return { status: response.status, body: (text ? JSON.parse(text) : undefined) as any }
  }

  beforeAll(async () => {
    cities = await startCities([HOME, OTHER])
    home = cities[HOME] as TestCity
    other = cities[OTHER] as TestCity
    expect(
      (await call(home, 'residence', 'POST', '/v1/residence/evidence:import', 'operator', evidenceFeed)).status,
    ).toBe(200)
    const rejected = await submitApplication(home, REJECTED_SUBMISSION.body, REJECTED_SUBMISSION.key)
    expect(rejected.body.status).toBe('residence_rejected')
    fixtures.rejectedId = rejected.body.id
    const transferred = await submitApplication(home, application(resident), 'authz-transferred')
    expect(transferred.body.status).toBe('queued')
    fixtures.transferredId = transferred.body.id
    const incoming = await eventually(
      async () =>
        (await call(other, 'intake', 'GET', '/v1/incoming-cases?limit=200', 'reviewer')).body.items.find(
          (item: { reference: string }) => item.reference === transferred.body.reference,
        ) as { id: string } | undefined,
      (found) => found !== undefined,
    )
    fixtures.zhongshanIncomingId = incoming?.id as string
    expect(fixtures.zhongshanIncomingId).toMatch(/^[0-9a-f-]{36}$/)
  }, 60_000)
  let cells = 0
  afterAll(async () => {
    console.info(`authorisation matrix: ${cells} cells checked (${COLUMNS.length} callers a route)`)
    await stopCities(cities)
  })

  for (const service of SERVICES) {
    describe(`${HOME} ${service}`, () => {
      it.each(Object.keys(TABLE[service]))('%s answers each caller exactly as the table says', async (operation) => {
        const route = TABLE[service][operation] as Route
        const request = route.request?.(fixtures) ?? {}
        const roles = route.public ? (['operator'] as const) : route.roles
        const admitted = roles[0] as Role
        const refused = ROLES.find((role) => !roles.includes(role))
        const expected: Record<string, number> = {}
        const actual: Record<string, number> = {}
        // One at a time: the admitted calls have side effects the next column must see settled.
        for (const column of COLUMNS) {
          expected[column.name] = route.public ? route.status : column.expected(route)
          actual[column.name] = await send(
            home,
            service,
            operation,
            request,
            await column.credentials(admitted, refused, roles),
          )
          cells++
        }
        expect(actual).toEqual(expected)
      })
    })
  }

  it('answers HEAD, which Fastify adds to every GET, exactly as the GET', async () => {
    const expected: Record<string, number> = {}
    const actual: Record<string, number> = {}
    for (const service of SERVICES) {
      for (const [operation, route] of Object.entries(TABLE[service])) {
        if (route.public || !operation.startsWith('GET ')) continue
        const head = operation.replace(/^GET /, 'HEAD ')
        const refused = ROLES.find((role) => !route.roles.includes(role)) as Role
        const callers: [string, Record<string, string>, number][] = [
          ['no token', {}, 401],
          [OTHER, bearer(await token(OTHER, [route.roles[0] as Role])), 401],
          [refused, bearer(await token(HOME, [refused])), 403],
          [route.roles[0] as Role, bearer(await token(HOME, [route.roles[0] as Role])), route.ok],
        ]
        for (const [name, credentials, status] of callers) {
          expected[`${service} ${head} ${name}`] = status
          actual[`${service} ${head} ${name}`] = await send(
            home,
            service,
            head,
            route.request?.(fixtures) ?? {},
            credentials,
          )
          cells++
        }
      }
    }
    expect(actual).toEqual(expected)
  })

  describe('routes outside the OpenAPI documents', () => {
    it('serves the OpenAPI document itself to anyone', async () => {
      for (const service of SERVICES) {
        const response = await fetch(`${home.url[service]}/docs/json`)
        expect(response.status).toBe(200)
        expect(((await response.json()) as { openapi: string }).openapi).toBe('3.1.0')
      }
    })

    it("opens the gateway's queue dashboard to this city's operators only, by bearer token or cookie", async () => {
      const dashboard = async (credentials: Record<string, string>) =>
        (await fetch(`${home.url.gateway}/ops/board/`, { headers: credentials, redirect: 'manual' })).status
      const operator = await token(HOME, ['operator'])
      const expired = await token(HOME, ['operator'], {
        issuedAt: Math.floor(Date.now() / 1000) - 7200,
        ttlSeconds: 3600,
      })
      const login = async (pasted: string) =>
        (
          await fetch(`${home.url.gateway}/ops/board/login`, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: new URLSearchParams({ token: pasted }).toString(),
            redirect: 'manual',
          })
        ).status
      expect({
        none: await dashboard({}),
        caseworker: await dashboard(bearer(await token(HOME, ['caseworker']))),
        auditor: await dashboard(bearer(await token(HOME, ['auditor']))),
        otherCityOperator: await dashboard(bearer(await token(OTHER, ['operator']))),
        otherCityOperatorCookie: await dashboard({ cookie: `pilot_ops_token=${await token(OTHER, ['operator'])}` }),
        expiredCookie: await dashboard({ cookie: `pilot_ops_token=${expired}` }),
        operator: await dashboard(bearer(operator)),
        operatorCookie: await dashboard({ cookie: `pilot_ops_token=${operator}` }),
        loginGarbage: await login('not-a-token'),
        loginCaseworker: await login(await token(HOME, ['caseworker'])),
        loginOtherCityOperator: await login(await token(OTHER, ['operator'])),
        loginExpired: await login(expired),
        loginOperator: await login(operator),
      }).toEqual({
        none: 401,
        caseworker: 403,
        auditor: 403,
        otherCityOperator: 401,
        otherCityOperatorCookie: 401,
        expiredCookie: 401,
        operator: 200,
        operatorCookie: 200,
        loginGarbage: 401,
        loginCaseworker: 403,
        loginOtherCityOperator: 401,
        loginExpired: 401,
        loginOperator: 303,
      })
    })
  })

  describe('cases across the city line', () => {
    it("a Zhongshan token of any role cannot read a Shenzhen application; Shenzhen's caseworker can", async () => {
      const path = `/v1/applications/${fixtures.transferredId}`
      for (const role of ROLES) {
        expect({ role, status: (await get(home, path, bearer(await token(OTHER, [role])))).status }).toEqual({
          role,
          status: 401,
        })
      }
      expect((await get(home, path, bearer(await token(HOME, ['caseworker'])))).status).toBe(200)
    })

    it('a Shenzhen token cannot read the incoming case in Zhongshan; a Zhongshan reviewer can', async () => {
      const path = `/v1/incoming-cases/${fixtures.zhongshanIncomingId}`
      for (const role of ROLES) {
        expect({ role, status: (await get(other, path, bearer(await token(HOME, [role])))).status }).toEqual({
          role,
          status: 401,
        })
      }
      const seen = await get(other, path, bearer(await token(OTHER, ['reviewer'])))
      expect(seen.status).toBe(200)
      expect(seen.body).toMatchObject({ side: 'incoming', partnerCity: HOME })
    })

    it("the id of the other side's incoming case is not found in Shenzhen's intake, on either side", async () => {
      expect(fixtures.zhongshanIncomingId).not.toBe(fixtures.transferredId)
      const caseworker = bearer(await token(HOME, ['caseworker']))
      const reviewer = bearer(await token(HOME, ['reviewer']))
      expect({
        application: (await get(home, `/v1/applications/${fixtures.zhongshanIncomingId}`, caseworker)).status,
        incoming: (await get(home, `/v1/incoming-cases/${fixtures.zhongshanIncomingId}`, reviewer)).status,
        ownApplicationAsIncoming: (await get(home, `/v1/incoming-cases/${fixtures.transferredId}`, reviewer)).status,
      }).toEqual({ application: 404, incoming: 404, ownApplicationAsIncoming: 404 })
    })
  })

  describe('the audit trail', () => {
    const A = `${HOME}-caseworker-a`
    const B = `${HOME}-caseworker-b`
    const R = `${HOME}-reviewer-r`
    /** Reads `at`'s audit trail with a token of `from`'s identity provider (by default `at`'s own). */
    const audit = async (query: string, role: Role, subject: string, at = home, from = at.id) =>
      get(at, `/v1/audit${query}`, bearer(await token(from, [role], as(subject))))
    type Row = { id: string; actor: string; action: string; caseId: string | null; city: string }

    beforeAll(async () => {
      // A reads the rejected application, B reads it and the transferred one, R lists incoming cases.
      const read = async (subject: string, role: Role, path: string) =>
        expect((await get(home, path, bearer(await token(HOME, [role], as(subject))))).status).toBe(200)
      await read(A, 'caseworker', `/v1/applications/${fixtures.rejectedId}`)
      await read(B, 'caseworker', `/v1/applications/${fixtures.rejectedId}`)
      await read(B, 'caseworker', `/v1/applications/${fixtures.transferredId}`)
      await read(R, 'reviewer', '/v1/incoming-cases?limit=5')
    })

    it("caseworker A reads only A's rows: B's are neither listed nor reachable by naming B or B's case", async () => {
      const own = await audit('?limit=200', 'caseworker', A)
      expect(own.status).toBe(200)
      const rows = own.body.items as Row[]
      expect(rows.length).toBeGreaterThan(0)
      expect(new Set(rows.map((row) => row.actor))).toEqual(new Set([A]))
      expect(rows).toContainEqual(expect.objectContaining({ action: 'outgoing.read', caseId: fixtures.rejectedId }))

      const byCase = await audit(`?caseId=${fixtures.transferredId}&limit=200`, 'caseworker', A)
      expect(byCase).toMatchObject({ status: 200, body: { items: [] } })
      const naming = await audit(`?actor=${B}`, 'caseworker', A)
      expect(naming.status).toBe(403)
      expect(naming.body.type).toBe('urn:pilot:problem:forbidden')
      const namingSelf = await audit(`?actor=${A}&limit=200`, 'caseworker', A)
      expect(namingSelf.status).toBe(200)
      expect(new Set((namingSelf.body.items as Row[]).map((row) => row.actor))).toEqual(new Set([A]))
    })

    it('a reviewer reads only their own rows too', async () => {
      const own = await audit('?limit=200', 'reviewer', R)
      expect(own.status).toBe(200)
      expect((own.body.items as Row[]).length).toBeGreaterThan(0)
      expect(new Set((own.body.items as Row[]).map((row) => row.actor))).toEqual(new Set([R]))
      expect((await audit(`?actor=${A}`, 'reviewer', R)).status).toBe(403)
    })

    it("an auditor reads every caseworker's rows, and every read of the trail, refused ones included", async () => {
      // Made here so the test stands alone: A reads the trail, and tries B's.
      expect((await audit('?limit=1', 'caseworker', A)).status).toBe(200)
      expect((await audit(`?actor=${B}`, 'caseworker', A)).status).toBe(403)

      const byCase = await audit(`?caseId=${fixtures.rejectedId}&limit=200`, 'auditor', `${HOME}-auditor-1`)
      expect(byCase.status).toBe(200)
      const caseRows = byCase.body.items as Row[]
      expect(caseRows).toContainEqual(expect.objectContaining({ actor: A, action: 'outgoing.read' }))
      expect(caseRows).toContainEqual(expect.objectContaining({ actor: B, action: 'outgoing.read' }))
      expect(caseRows).toContainEqual(expect.objectContaining({ action: 'application.submit' }))

      const ofB = await audit(`?actor=${B}&limit=200`, 'auditor', `${HOME}-auditor-1`)
      expect(new Set((ofB.body.items as Row[]).map((row) => row.actor))).toEqual(new Set([B]))
      expect(ofB.body.items as Row[]).toContainEqual(
        expect.objectContaining({ action: 'outgoing.read', caseId: fixtures.transferredId }),
      )

      const ofA = (await audit(`?actor=${A}&limit=200`, 'auditor', `${HOME}-auditor-1`)).body.items as Row[]
      expect(ofA).toContainEqual(expect.objectContaining({ action: 'audit.read' }))
      expect(ofA).toContainEqual(
        expect.objectContaining({ action: 'audit.read_refused', detail: expect.objectContaining({ actor: B }) }),
      )
      // The auditor's own reads are on the trail as well.
      const mine = (await audit('?limit=200', 'auditor', `${HOME}-auditor-2`)).body.items as Row[]
      expect(mine).toContainEqual(expect.objectContaining({ actor: `${HOME}-auditor-1`, action: 'audit.read' }))
      expect(new Set(mine.map((row) => row.city))).toEqual(new Set([HOME]))
      // No identity number in full, not even one a caller typed into a filter (the refusal records what was asked).
      expect((await audit(`?actor=${stranger}`, 'caseworker', A)).status).toBe(403)
      const typed = (await audit(`?actor=${A}&limit=200`, 'auditor', `${HOME}-auditor-1`)).body.items as Row[]
      expect(typed).toContainEqual(
        expect.objectContaining({
          action: 'audit.read_refused',
          detail: { actor: `${stranger.slice(0, 4)}**********${stranger.slice(14)}` },
        }),
      )
      for (const number of [resident, stranger, spouse]) expect(JSON.stringify([mine, typed])).not.toContain(number)
    })

    it('pages newest first with a cursor', async () => {
      const auditor = `${HOME}-auditor-pages`
      const first = await audit('?limit=3', 'auditor', auditor)
      expect(first.body.items).toHaveLength(3)
      expect(first.body.nextCursor).toEqual(expect.any(String))
      const second = await audit(`?limit=3&cursor=${first.body.nextCursor}`, 'auditor', auditor)
      const ids = [...first.body.items, ...second.body.items].map((row: Row) => BigInt(row.id))
      expect(ids).toEqual([...ids].sort((a, b) => (a > b ? -1 : a < b ? 1 : 0)))
      expect(new Set(ids).size).toBe(ids.length)
      expect((await audit('?cursor=not-a-cursor', 'auditor', auditor)).status).toBe(400)
    })

    it("another city's token of any role reads nothing here; its auditor sees none of Shenzhen's rows", async () => {
      for (const role of ROLES) {
        expect({ role, status: (await audit('', role, `${OTHER}-${role}-1`, home, OTHER)).status }).toEqual({
          role,
          status: 401,
        })
      }
      // Not even an auditor token of ours naming itself as a Zhongshan user.
      const disguised = await get(home, '/v1/audit', bearer(await token(HOME, ['auditor'], { cityClaim: OTHER })))
      expect(disguised.status).toBe(403)

      const theirs = await audit('?limit=200', 'auditor', `${OTHER}-auditor-1`, other)
      expect(theirs.status).toBe(200)
      const rows = theirs.body.items as Row[]
      expect(rows.length).toBeGreaterThan(0)
      expect(new Set(rows.map((row) => row.city))).toEqual(new Set([OTHER]))
      expect(rows.filter((row) => [A, B, R].includes(row.actor))).toEqual([])
      for (const role of ROLES) {
        expect({ role, status: (await audit('', role, `${HOME}-${role}-1`, other, HOME)).status }).toEqual({
          role,
          status: 401,
        })
      }
    })
  })
})
