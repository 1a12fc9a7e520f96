/**
 * Input fuzzing of every route of every service, driven by the published OpenAPI documents and the live routers.
 *
 * For each operation: schema-valid and mutated inputs (fast-check, from the operation's body, path, query and header
 * schemas) and hand-written hostile ones (raw bytes, deep nesting, injection strings, impossible dates, bad identity
 * numbers, wrong content types, prototype-pollution keys, forged tokens), sent over real HTTP to real services with a
 * valid token of a role the route admits. Every answer must be below 500 and every 4xx an RFC 9457 problem; every
 * rejected request must leave the three cities' databases as they were.
 *
 * FUZZ_SEED=<n> replays another run; the seed is in the console summary and in <logDir>/fuzz-summary.json.
 */
import { randomUUID } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { devSecretsEnv, generateEs256Jwk, ROLES, type Role } from '@pilot/kit'
import { checkCharacter, EVIDENCE_KINDS, MESSAGE_BODIES, MessageClaims } from '@pilot/schemas'
import { Signer } from '@pilot/signing'
import { pilotConfigPath, testSecretsDir, token } from '@pilot/testing'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { parse } from 'yaml'
import { call, eventually, startCities, stopCities, type TestCity } from './support/cities.ts'
import { applicationBody, importFeed, submitApplication } from './support/fixtures.ts'
import {
  badIdNumbers,
  changedTables,
  checkResponse,
  clone,
  closeAgent,
  DatabaseWatch,
  deepArray,
  deepObject,
  documentedOperations,
  type FuzzRequest,
  type FuzzResponse,
  HOSTILE_STRINGS,
  jsonText,
  type Mutation,
  mutationsOf,
  type Operation,
  openApiPath,
  operationKey,
  pathParameterNames,
  RawJson,
  removal,
  SCRIPT_INJECTION,
  type Schema,
  type Snapshot,
  SQL_INJECTION,
  samples,
  seedFor,
  send,
  servedRoutes,
  setAt,
  validArbitrary,
} from './support/fuzz.ts'
import type { ServiceName } from './support/profile.ts'

const SEED = Number(process.env.FUZZ_SEED ?? 20_261_130)
const SERVICES: ServiceName[] = ['residence', 'intake', 'gateway']
const CITY_IDS = ['shenzhen', 'zhuhai', 'zhongshan'] as const
const JSON_TYPE = 'application/json'
const ONE_MEGABYTE_AND_MORE = 1024 * 1024 + 4096
const BOARD_QUEUES = ['federation.outbound', 'federation.inbound', 'federation.delivery']

interface Target {
  op: Operation
  city: TestCity
  /** The role whose token the cases carry; undefined for a public route. */
  role?: Role
  /** Roles the route refused in discovery (for wrong-role cases). */
  denied: Role[]
}

interface CaseRecord {
  requestId: string
  /** The id the service answered with (x-request-id): its own when ours was refused as malformed. */
  serverRequestId?: string
  label: string
  status: number
  failure?: string
  dbChanged?: string[]
}

interface OperationReport {
  service: ServiceName
  method: string
  path: string
  city: string
  role: Role | null
  documented: boolean
  cases: number
  statuses: Record<string, number>
  fiveXX: number
  failures: string[]
}

const utf8 = (text: string) => Buffer.from(text, 'utf8')
const idOf = (first17: string) => first17 + checkCharacter(first17)

/** Kinds of schema mutation every operation gets at least one of, where its schemas allow it (labels of mutationsOf). */
const MUTATION_KINDS = [
  /^bad identity number/,
  /^impossible date|^bad date-time/,
  /^prototype pollution/,
  /^number (1e309|18446744073709551616|1e308)/,
  /^a 100000-character string/,
  /^deeply nested array/,
  /^unknown property/,
  /^missing required/,
  /^wrong type/,
  /^hostile string "(\\u0000|nul\\u0000inside|\\ud800)"/,
]

/** `count` items of `items`, from a place the seed picks (so each route gets its own share of a long list). */
function rotate<T>(items: T[], count: number, seed: number): T[] {
  const start = Math.abs(seed) % items.length
  return Array.from({ length: Math.min(count, items.length) }, (_, index) => items[(start + index) % items.length] as T)
}

// ---------------------------------------------------------------------------------------------------------------------
// Tokens and signing keys

const tokens = new Map<string, Promise<string>>()
function bearer(city: string, role: Role, options: Parameters<typeof token>[2] = {}): Promise<string> {
  const key = `${city}|${role}|${JSON.stringify(options)}`
  let minted = tokens.get(key)
  if (!minted) {
    minted = token(city, [role], { subject: `${city}-${role}-fuzz`, ...options })
    tokens.set(key, minted)
  }
  return minted
}

function gatewaySigner(city: string): Signer {
  return new Signer(JSON.parse(readFileSync(devSecretsEnv(testSecretsDir(), city).SIGNING_KEY_FILE as string, 'utf8')))
}

/** An unsigned JWT (alg none) with claims a real token would carry. */
function algNoneToken(city: string, role: Role): string {
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
  const now = Math.floor(Date.now() / 1000)
  return `${encode({ alg: 'none', typ: 'JWT' })}.${encode({
    iss: `https://idp.${city}.pilot.invalid/dev`,
    aud: `pilot-${city}`,
    sub: 'forger',
    city,
    roles: [role],
    iat: now,
    exp: now + 600,
  })}.`
}

// ---------------------------------------------------------------------------------------------------------------------
// Building requests

type PathValue = string | { raw: string }

function stringOf(value: unknown): string {
  if (typeof value === 'string') return value
  if (value instanceof RawJson) return value.text
  if (value === undefined) return ''
  return jsonText(value)
}

function fillPath(template: string, params: Record<string, PathValue | unknown>): string {
  return template.replace(/\{([A-Za-z0-9_]+)\}/g, (_match, name: string) => {
    const value = params[name]
    if (value !== null && typeof value === 'object' && 'raw' in value) return (value as { raw: string }).raw
    return encodeSegment(stringOf(value))
  })
}

/** encodeURIComponent, except that half a surrogate pair goes as its UTF-8 replacement instead of throwing. */
function encodeSegment(text: string): string {
  return encodeURIComponent(Buffer.from(text, 'utf8').toString('utf8'))
}

function queryOf(query: unknown): string {
  if (query === null || typeof query !== 'object' || Array.isArray(query)) return ''
  const search = new URLSearchParams()
  for (const key of Object.keys(query)) {
    const value = (query as Record<string, unknown>)[key]
    if (value === undefined) continue
    for (const item of Array.isArray(value) ? value : [value]) search.append(key, stringOf(item))
  }
  const text = search.toString()
  return text ? `?${text}` : ''
}

/** Header values as HTTP allows them: a value with a byte no client may send is percent-encoded instead. */
function headerValue(value: unknown): string {
  const text = stringOf(value)
  return /^[\t\x20-\x7e\x80-\xff]*$/.test(text) ? text : encodeSegment(text)
}

/** A copy of `request` with headers changed (undefined removes one). */
function withHeaders(request: FuzzRequest, label: string, headers: Record<string, string | undefined>): FuzzRequest {
  const merged: Record<string, string> = { ...request.headers }
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) delete merged[name]
    else merged[name] = value
  }
  return { ...request, label, headers: merged }
}

function withPath(request: FuzzRequest, label: string, path: string): FuzzRequest {
  return { ...request, label, path }
}

function withBody(request: FuzzRequest, label: string, body: Buffer | undefined, contentType?: string): FuzzRequest {
  const headers = { ...request.headers }
  delete headers['content-type']
  if (contentType !== undefined) headers['content-type'] = contentType
  return { ...request, label, headers, ...(body === undefined ? { body: undefined } : { body }) }
}

// ---------------------------------------------------------------------------------------------------------------------
// The parts of an operation's input, as one object schema

interface InputShape {
  schema: Schema
  bodyType?: string
}

/** path, query and header parameters and the JSON body of an operation, as one object the converter can walk. */
function inputShape(op: Operation): InputShape {
  const pathParams = pathParameterNames(op.path)
  const parts: Record<string, Schema> = {}
  const required: string[] = []
  const parameters = op.openapi?.parameters ?? []
  const group = (where: 'path' | 'query' | 'header') => {
    const list = parameters.filter((parameter) => parameter.in === where)
    const properties: Record<string, Schema> = {}
    for (const parameter of list) properties[parameter.name] = parameter.schema
    if (where === 'path') {
      // Router-only routes (Bull Board) document nothing: their parameters are plain strings.
      for (const name of pathParams) properties[name] ??= { type: 'string', minLength: 1, maxLength: 40 }
    }
    if (Object.keys(properties).length === 0) return
    parts[where] = {
      type: 'object',
      properties,
      required: where === 'path' ? Object.keys(properties) : list.filter((p) => p.required).map((p) => p.name),
      // Route schemas are StrictObject: an unknown query parameter is a 400 like an unknown body property.
      additionalProperties: where === 'header',
    }
    required.push(where)
  }
  group('path')
  group('query')
  group('header')
  const content = op.openapi?.requestBody?.content ?? {}
  const bodyType = Object.keys(content)[0]
  const bodySchema = bodyType ? content[bodyType]?.schema : undefined
  if (bodyType === JSON_TYPE && bodySchema) {
    parts.body = bodySchema
    if (op.openapi?.requestBody?.required) required.push('body')
  }
  return {
    schema: { type: 'object', properties: parts, required, additionalProperties: false },
    ...(bodyType ? { bodyType } : {}),
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Feed rows (the import routes take NDJSON or CSV streams whose row fields the operation's description names)

const ID_NUMBER_SCHEMA: Schema = { type: 'string', pattern: '^[0-9]{17}[0-9Xx]$', description: 'GB 11643' }
const OPTIONAL_DATE: Schema = { anyOf: [{ type: 'string', format: 'date' }, { type: 'null' }, { const: '' }] }
const FEED_ROWS: Record<string, Schema> = {
  evidence: {
    type: 'object',
    properties: {
      idNumber: ID_NUMBER_SCHEMA,
      kind: { enum: [...EVIDENCE_KINDS] },
      validFrom: { type: 'string', format: 'date' },
      validTo: OPTIONAL_DATE,
      sourceRef: { type: 'string', minLength: 1, maxLength: 200 },
      city: { enum: ['shenzhen', ''] },
    },
    required: ['idNumber', 'kind', 'validFrom', 'sourceRef'],
    additionalProperties: false,
  },
  registrations: {
    type: 'object',
    properties: {
      idNumber: ID_NUMBER_SCHEMA,
      registeredSince: { type: 'string', format: 'date' },
      cancelledOn: OPTIONAL_DATE,
      householdRef: { type: 'string', minLength: 1, maxLength: 100 },
      sourceRef: { type: 'string', minLength: 1, maxLength: 200 },
      city: { enum: ['shenzhen', ''] },
    },
    required: ['idNumber', 'registeredSince', 'sourceRef'],
    additionalProperties: false,
  },
}

function csvOf(rows: unknown[]): string {
  const records = rows.filter((row): row is Record<string, unknown> => typeof row === 'object' && row !== null)
  const columns = [...new Set(records.flatMap((row) => Object.keys(row)))]
  const cell = (value: unknown) => `"${stringOf(value ?? '').replaceAll('"', '""')}"`
  return `${[columns.join(','), ...records.map((row) => columns.map((column) => cell(row[column])).join(','))].join('\n')}\n`
}

// ---------------------------------------------------------------------------------------------------------------------
// The fuzz

describe('input fuzzing of every route of every service', () => {
  let cities: Record<string, TestCity>
  const watch = new DatabaseWatch()
  const real = { application: '', incoming: '', message: '' }
  let operations: Operation[] = []
  const targets: Target[] = []
  const reports = new Map<string, OperationReport>()
  const records = new Map<string, CaseRecord[]>()
  const metricsBefore = new Map<string, number>()
  const securityMismatches: string[] = []
  /** Per city, the last audit row before the fuzz: refusal rows after it must each belong to a refused fuzz request. */
  const auditHighWater = new Map<string, string>()
  let refusalRows = 0
  let comparisons = 0
  let runMs = 0
  let totalCases = 0

  const cityOf = (id: string) => cities[id] as TestCity

  beforeAll(async () => {
    cities = await startCities([...CITY_IDS])
    const shenzhen = cityOf('shenzhen')
    const zhongshan = cityOf('zhongshan')

    // One case that went all the way, so that routes taking a case id or a message id meet a real one: an application
    // in Shenzhen for a Zhongshan hukou, transferred, refused in Zhongshan; both sides final.
    const applicant = idOf('44200019800101123')
    const evidence = {
      idNumber: applicant,
      kind: 'residence_registration',
      validFrom: '2024-01-01',
      sourceRef: 'FUZZ-RR-1',
    }
    expect(await importFeed(shenzhen, 'evidence', [evidence])).toMatchObject({ inserted: 1 })
    const registration = { idNumber: applicant, registeredSince: '1980-01-01', sourceRef: 'FUZZ-HK-1' }
    expect(await importFeed(zhongshan, 'registrations', [registration])).toMatchObject({ inserted: 1 })
    const submitted = await submitApplication(
      shenzhen,
      applicationBody(
        { idNumber: applicant, monthlyIncomeFen: 50_000 },
        { hukouCity: 'zhongshan', circumstances: 'Fuzz setup.', recordedAt: '2026-11-30T09:00:00Z' },
      ),
      'fuzz-setup-0001',
    )
    expect(submitted.body).toMatchObject({ status: 'queued' })
    real.application = submitted.body.id
    const incoming = await eventually(
      async () =>
        (await call(zhongshan, 'intake', 'GET', '/v1/incoming-cases?limit=200', 'reviewer')).body.items?.find(
          (item: { reference: string }) => item.reference === submitted.body.reference,
        ) as { id: string; status: string } | undefined,
      (found) => found?.status === 'received',
    )
    real.incoming = incoming?.id as string
    const refused = await call(zhongshan, 'intake', 'POST', `/v1/incoming-cases/${real.incoming}/refuse`, 'reviewer', {
      reason: 'not_registered_here',
      detail: 'Fuzz setup: a final case to aim actions at.',
    })
    expect(refused.body.status).toBe('refused')
    await eventually(
      async () => (await call(shenzhen, 'intake', 'GET', `/v1/applications/${real.application}`, 'caseworker')).body,
      (view) => view.status === 'refused',
    )

    await watch.open(Object.fromEntries(CITY_IDS.map((id) => [id, cityOf(id).databaseUrl])))
    await watch.quiesce()
    const message = await watch
      .client('shenzhen')
      .query<{ id: string }>(`select id from gateway.messages where direction = 'outbound' order by created_at limit 1`)
    real.message = message.rows[0]?.id as string
    expect(real.message).toBeTruthy()

    // The operations: every one the documents list, and every one the routers serve (the same in every city).
    const byKey = new Map<string, Operation>()
    for (const service of SERVICES) {
      for (const op of await documentedOperations(service)) byKey.set(operationKey(op), op)
      const app = shenzhen.apps[service]
      for (const route of servedRoutes(app?.printRoutes() ?? '')) {
        const key = operationKey({ service, ...route })
        const known = byKey.get(key)
        if (known) known.served = true
        else byKey.set(key, { service, ...route, served: true })
      }
    }
    operations = [...byKey.values()]

    // Which role gets each route past authentication, found by asking: no token first, then each role in turn. The
    // probe carries a malformed body, so a route that admits the role stops at parsing and does nothing.
    for (const op of operations.filter((candidate) => candidate.served)) {
      const city = targetCity(op)
      const probe = async (authorization?: string) => {
        const params = Object.fromEntries(pathParameterNames(op.path).map((name) => [name, randomUUID()]))
        const path = fillPath(op.path.replace('*', 'fuzz-probe'), params)
        const hasBody = !['GET', 'HEAD'].includes(op.method)
        const response = await send(city.url[op.service], {
          label: 'probe',
          method: op.method,
          path,
          headers: {
            'x-request-id': 'fuzz-probe',
            ...(authorization ? { authorization } : {}),
            ...(hasBody ? { 'content-type': JSON_TYPE } : {}),
          },
          ...(hasBody ? { body: utf8('{') } : {}),
        })
        return response.status
      }
      const anonymous = await probe()
      const documentedSecured = (op.openapi?.security ?? []).some((entry) => 'bearerAuth' in entry)
      const target: Target = { op, city, denied: [] }
      if (anonymous === 401 || anonymous === 403) {
        for (const role of ROLES) {
          const status = await probe(`Bearer ${await bearer(city.id, role)}`)
          if (status === 401 || status === 403) target.denied.push(role)
          else target.role ??= role
        }
        if (!target.role) securityMismatches.push(`${operationKey(op)}: no role gets past authentication`)
        if (op.openapi && !documentedSecured) {
          securityMismatches.push(
            `${operationKey(op)}: documented without security, answers ${anonymous} without a token`,
          )
        }
      } else if (documentedSecured) {
        securityMismatches.push(`${operationKey(op)}: documented as needing a token, answers ${anonymous} without one`)
      }
      targets.push(target)
    }
    // Bull Board's mutating routes last: nothing after them depends on the queues.
    targets.sort((a, b) => Number(isBoard(a.op)) - Number(isBoard(b.op)))
    for (const [key, count] of await routeCounts()) metricsBefore.set(key, count)
  }, 180_000)

  afterAll(async () => {
    closeAgent()
    await watch.close()
    if (cities) await stopCities(cities)
  })

  const isBoard = (op: Operation) => op.path.startsWith('/ops/board')

  /** Where an operation is fuzzed: the incoming side in Zhongshan (where the refused case is), all else in Shenzhen. */
  function targetCity(op: Operation): TestCity {
    return cityOf(op.service === 'intake' && op.path.startsWith('/v1/incoming-cases') ? 'zhongshan' : 'shenzhen')
  }

  /** Requests per (service, method, route pattern), summed over the cities, from each service's /metrics. */
  async function routeCounts(): Promise<Map<string, number>> {
    const counts = new Map<string, number>()
    for (const service of SERVICES) {
      for (const id of CITY_IDS) {
        const text = await (await fetch(`${cityOf(id).url[service]}/metrics`)).text()
        for (const match of text.matchAll(/^http_request_duration_seconds_count\{([^}]*)\} (\d+)/gm)) {
          const labels = Object.fromEntries(
            [...(match[1] as string).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((label) => [label[1], label[2]]),
          )
          const key = operationKey({ service, method: labels.method ?? '', path: openApiPath(labels.route ?? '') })
          counts.set(key, (counts.get(key) ?? 0) + Number(match[2]))
        }
      }
    }
    return counts
  }

  // -------------------------------------------------------------------------------------------------------------------
  // Cases

  /** Values for path parameters that name something real, by operation. */
  function realParams(op: Operation): Record<string, string[]> {
    if (op.service === 'intake' && op.path.startsWith('/v1/applications/{id}')) return { id: [real.application] }
    if (op.service === 'intake' && op.path.startsWith('/v1/incoming-cases/{id}')) return { id: [real.incoming] }
    if (op.service === 'gateway' && op.path === '/ops/v1/messages/{id}/redrive') return { id: [real.message] }
    // Bull Board: reading a real queue is fine; changing one (pause, empty, obliterate) would break the city under
    // test, so mutating routes only ever name queues that do not exist.
    if (isBoard(op) && (op.method === 'GET' || op.method === 'HEAD')) return { queueName: BOARD_QUEUES }
    return {}
  }

  async function baseHeaders(target: Target): Promise<Record<string, string>> {
    return target.role ? { authorization: `Bearer ${await bearer(target.city.id, target.role)}` } : {}
  }

  /** Requests with a bad, foreign, forged, expired or missing token, or a token without the route's role. */
  async function authCases(target: Target, base: FuzzRequest): Promise<FuzzRequest[]> {
    if (!target.role) return []
    const city = target.city.id
    const other = CITY_IDS.find((id) => id !== city) as string
    const malformed = [
      withHeaders(base, 'auth: not a JWT', { authorization: 'Bearer not.a.jwt' }),
      withHeaders(base, 'auth: 8000-character token', { authorization: `Bearer ${'x'.repeat(8000)}` }),
      withHeaders(base, 'auth: Basic', { authorization: `Basic ${Buffer.from("' OR 1=1--:x").toString('base64')}` }),
      withHeaders(base, 'auth: bearer without a token', { authorization: 'Bearer ' }),
    ]
    const cases = [
      withHeaders(base, 'auth: no token', { authorization: undefined }),
      ...rotate(malformed, 2, seedFor(SEED, base.path)),
      withHeaders(base, 'auth: alg none', { authorization: `Bearer ${algNoneToken(city, target.role)}` }),
      withHeaders(base, 'auth: token of another city', {
        authorization: `Bearer ${await bearer(other, target.role)}`,
      }),
      withHeaders(base, 'auth: city claim of another city', {
        authorization: `Bearer ${await bearer(city, target.role, { cityClaim: other })}`,
      }),
      withHeaders(base, 'auth: expired token', {
        authorization: `Bearer ${await bearer(city, target.role, { issuedAt: Math.floor(Date.now() / 1000) - 86_400, ttlSeconds: 3600 })}`,
      }),
      withHeaders(base, 'auth: forged signature', {
        authorization: `Bearer ${await bearer(city, target.role, { signingJwk: forgedKey })}`,
      }),
    ]
    const wrongRole = target.denied[0]
    if (wrongRole) {
      cases.push(
        withHeaders(base, `auth: role ${wrongRole}`, { authorization: `Bearer ${await bearer(city, wrongRole)}` }),
      )
    }
    return cases
  }
  const forgedKey = generateEs256Jwk()

  /** Hostile query strings, headers and path segments, for any route whatever its input. */
  function envelopeCases(target: Target, base: FuzzRequest, count: 'full' | 'few'): FuzzRequest[] {
    const [path, query = ''] = base.path.split('?') as [string, string?]
    const join = (extra: string) => `${path}?${query ? `${query}&` : ''}${extra}`
    const cases = [
      withPath(base, 'query: __proto__', join('__proto__[polluted]=yes&__proto__.polluted=yes')),
      withPath(base, 'query: constructor.prototype', join('constructor[prototype][polluted]=yes')),
      withPath(base, 'query: SQL injection', join(`q=${encodeURIComponent(SQL_INJECTION[1] as string)}`)),
      withPath(base, 'query: invalid percent-encoding', join('%ZZ=%E0%A4%A')),
      withPath(base, 'query: NUL', join('a=%00&%00=b')),
      withPath(base, 'query: 20000 characters', join(`q=${'x'.repeat(20_000)}`)),
      withHeaders(base, 'header: hostile x-request-id', { 'x-request-id': `${SCRIPT_INJECTION[0]}` }),
      withHeaders(base, 'header: accept garbage', { accept: 'text/html;q=garbage, */*;q=NaN' }),
      withHeaders(base, 'header: cookie garbage', { cookie: `pilot_ops_token=%E0%A4%A; a=${'b'.repeat(3000)}` }),
    ]
    if (count === 'few') return [cases[0], cases[3], cases[5], cases[7]] as FuzzRequest[]
    const params = pathParameterNames(target.op.path)
    if (params.length > 0 || target.op.path.endsWith('*')) {
      const hostileSegments = [
        encodeURIComponent(SQL_INJECTION[0] as string),
        encodeURIComponent(SCRIPT_INJECTION[0] as string),
        '%00',
        '..%2F..%2F..%2Fetc%2Fpasswd',
        '%ZZ',
        '%C0%AF',
        'a'.repeat(5000),
        encodeURIComponent('𝕏ü\u202e'),
        '00000000-0000-0000-0000-000000000000',
      ]
      for (const segment of hostileSegments) {
        const values = Object.fromEntries(params.map((name) => [name, { raw: segment }]))
        const filled = fillPath(target.op.path.replace('*', segment), values)
        cases.push(withPath(base, `path: ${segment.slice(0, 40)}`, `${filled}${query ? `?${query}` : ''}`))
      }
    }
    return cases
  }

  /**
   * Raw HTTP no client library sends: smuggling, a broken content length, a malformed chunk. The malformed chunk only
   * where a body is read before the handler runs: a GET is handled as soon as its headers are in, and the broken body
   * after them is the connection's error, not the request's.
   */
  function protocolCases(target: Target, base: FuzzRequest): FuzzRequest[] {
    const host = `Host: 127.0.0.1:${target.city.ports[target.op.service]}\r\n`
    const auth = base.headers.authorization ? `Authorization: ${base.headers.authorization}\r\n` : ''
    const line = `${target.op.method} ${base.path} HTTP/1.1\r\n${host}${auth}`
    const readsBody = !['GET', 'HEAD'].includes(target.op.method)
    const cases: FuzzRequest[] = [
      {
        ...base,
        label: 'protocol: content-length and transfer-encoding',
        raw: utf8(
          `${line}Content-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
        ),
      },
      { ...base, label: 'protocol: content-length abc', raw: utf8(`${line}Content-Length: abc\r\n\r\n{}`) },
      { ...base, label: 'protocol: header without a colon', raw: utf8(`${line}Bad Header\r\n\r\n`) },
    ]
    if (readsBody) {
      cases.push({
        ...base,
        label: 'protocol: bad chunk size',
        raw: utf8(`${line}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`),
      })
    }
    return cases
  }

  /** Bodies that must be refused before any handler sees them, whatever the route's schema. */
  function hostileBodies(base: FuzzRequest, validBody: unknown, seed: number): FuzzRequest[] {
    const valid = jsonText(validBody ?? {})
    const firstString = valid.indexOf('":"')
    const withBadUtf8 =
      firstString >= 0
        ? Buffer.concat([
            utf8(valid.slice(0, firstString + 3)),
            Buffer.from([0xc0, 0xaf, 0xff, 0xfe, 0xed, 0xa0, 0x80]),
            utf8(valid.slice(firstString + 3)),
          ])
        : Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])
    const polluted = (key: string, value: string) =>
      utf8(valid.replace(/^\{/, `{"${key}":${value}${valid === '{}' ? '' : ','}`))
    const always = [
      withBody(base, 'body: invalid UTF-8 bytes inside a valid body', withBadUtf8, JSON_TYPE),
      withBody(base, 'body: raw NUL byte in a string', utf8(`{"a":"x\u0000y"}`), JSON_TYPE),
      withBody(base, 'body: 10000-level nested arrays', utf8(deepArray(10_000).text), JSON_TYPE),
      withBody(base, 'body: 10000-level nested objects', utf8(deepObject(10_000).text), JSON_TYPE),
      withBody(base, 'body: 100000-level nested arrays', utf8(deepArray(100_000).text), JSON_TYPE),
      withBody(base, 'body: empty with a JSON content type', Buffer.alloc(0), JSON_TYPE),
      withBody(base, 'body: none, no content type', undefined),
      withBody(base, 'body: JSON sent as text/plain', utf8(valid), 'text/plain'),
      withBody(base, 'body: __proto__ key', polluted('__proto__', '{"polluted":"yes"}'), JSON_TYPE),
      withBody(
        base,
        'body: constructor.prototype key',
        polluted('constructor', '{"prototype":{"polluted":"yes"}}'),
        JSON_TYPE,
      ),
      withBody(base, 'body: over 1 MiB', utf8(`{"a":"${'x'.repeat(ONE_MEGABYTE_AND_MORE)}"}`), JSON_TYPE),
    ]
    const malformed = [
      withBody(base, 'body: invalid UTF-8 only', Buffer.from([0xff, 0xfe, 0xfd, 0x00, 0xc3]), JSON_TYPE),
      withBody(base, 'body: truncated JSON', utf8(valid.slice(0, Math.max(1, valid.length - 3))), JSON_TYPE),
      withBody(base, 'body: JSON with a trailing comma', utf8('{"a":1,}'), JSON_TYPE),
      withBody(base, 'body: two JSON documents', utf8(`${valid}${valid}`), JSON_TYPE),
      withBody(base, 'body: NaN', utf8('NaN'), JSON_TYPE),
      withBody(base, 'body: single quotes', utf8("{'a': 1}"), JSON_TYPE),
      withBody(base, 'body: top-level null', utf8('null'), JSON_TYPE),
      withBody(base, 'body: top-level string', utf8(JSON.stringify(SQL_INJECTION[1])), JSON_TYPE),
      withBody(base, 'body: top-level 1e309', utf8('1e309'), JSON_TYPE),
      withBody(base, 'body: form-urlencoded', utf8('a=1&__proto__[x]=1'), 'application/x-www-form-urlencoded'),
      withBody(
        base,
        'body: multipart',
        utf8('--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--x--'),
        'multipart/form-data; boundary=x',
      ),
      withBody(base, 'body: UTF-16 JSON', Buffer.from(valid, 'utf16le'), 'application/json; charset=utf-16le'),
      withBody(base, 'body: content type with junk parameters', utf8(valid), 'application/json;;; charset="\\";x'),
    ]
    return [...always, ...rotate(malformed, 6, seed)]
  }

  async function jsonCases(target: Target): Promise<FuzzRequest[]> {
    const { op } = target
    const shape = inputShape(op)
    const seed = seedFor(SEED, operationKey(op))
    const realValues = realParams(op)
    const headers = await baseHeaders(target)
    const parts = shape.schema.properties ?? {}
    const mutations: Mutation[] = []
    for (const [part, schema] of Object.entries(parts)) {
      mutations.push(...mutationsOf(schema, seed, [part]))
      if (part !== 'path') mutations.push(removal(`no ${part} at all`, [part]))
    }
    const valid = validArbitrary(shape.schema)
    const counts = { valid: 8, mutated: mutations.length > 0 ? 16 : 0 }
    const inputs = samples(valid, mutations, counts, seed)
    // Besides the random picks, one of each kind of breakage the operation's schemas allow, so that no route misses
    // a whole kind (a bad identity number, an impossible date) by chance.
    const first = inputs[0]?.value
    for (const [index, kind] of MUTATION_KINDS.entries()) {
      const matching = mutations.filter((mutation) => kind.test(mutation.label))
      const mutation = matching[Math.abs(seed + index) % Math.max(1, matching.length)]
      if (mutation) inputs.push({ label: `mutated: ${mutation.label}`, value: mutation.apply(clone(first)) })
    }
    // Every other input names something real, so that validation is seen to come before any lookup.
    inputs.forEach((input, index) => {
      for (const [name, values] of Object.entries(realValues)) {
        const current = (input.value as { path?: Record<string, unknown> }).path?.[name]
        if (index % 2 === 0 && typeof current === 'string' && current.length > 0) {
          input.value = setAt(input.value, ['path', name], values[index % values.length])
        }
      }
    })
    const requests = inputs.map(({ label, value }) => {
      const input = (value ?? {}) as Record<string, unknown>
      const path = fillPath(op.path.replace('*', 'fuzz'), (input.path ?? {}) as Record<string, unknown>)
      const request: FuzzRequest = {
        label,
        method: op.method,
        path: `${path}${queryOf(input.query)}`,
        headers: { ...headers },
      }
      const headerInput = input.header
      if (headerInput !== null && typeof headerInput === 'object') {
        for (const [name, item] of Object.entries(headerInput)) request.headers[name.toLowerCase()] = headerValue(item)
      }
      if ('body' in input && input.body !== undefined) {
        request.headers['content-type'] = JSON_TYPE
        request.body = utf8(jsonText(input.body))
      }
      return request
    })
    const base = requests[0] as FuzzRequest
    const validBody = (inputs[0]?.value as { body?: unknown } | undefined)?.body
    return [
      ...requests,
      ...(shape.bodyType === JSON_TYPE ? hostileBodies(base, validBody, seed) : []),
      ...envelopeCases(target, base, 'full'),
      ...(await authCases(target, base)),
      ...protocolCases(target, base),
    ]
  }

  async function feedCases(target: Target): Promise<FuzzRequest[]> {
    const { op } = target
    const rowSchema = FEED_ROWS[op.path.includes('registrations') ? 'registrations' : 'evidence'] as Schema
    const seed = seedFor(SEED, operationKey(op))
    const base: FuzzRequest = { label: 'feed', method: op.method, path: op.path, headers: await baseHeaders(target) }
    const ndjson = (rows: unknown[]) => utf8(`${rows.map((row) => jsonText(row)).join('\n')}\n`)
    const rows = samples(validArbitrary(rowSchema), mutationsOf(rowSchema, seed), { valid: 8, mutated: 18 }, seed)
    const good = rows[0]?.value
    const cases: FuzzRequest[] = rows.map(({ label, value }, index) =>
      index % 4 === 3
        ? withBody(base, `csv ${label}`, utf8(csvOf([value, good])), 'text/csv')
        : withBody(base, `ndjson ${label}`, ndjson([good, value]), 'application/x-ndjson'),
    )
    const line = jsonText(good)
    const hostile: [string, Buffer | undefined, string | undefined][] = [
      [
        'invalid UTF-8 line',
        Buffer.concat([utf8(`${line}\n{"idNumber":"`), Buffer.from([0xff, 0xc0, 0xaf]), utf8('"}\n')]),
        'application/x-ndjson',
      ],
      ['raw NUL bytes', utf8(`${line}\n\u0000\u0000\n{"sourceRef":"a\u0000b"}\n`), 'application/x-ndjson'],
      [
        'NUL escaped in fields',
        ndjson([
          { ...(good as object), sourceRef: 'ref\u0000nul' },
          { ...(good as object), householdRef: '\u0000' },
        ]),
        'application/x-ndjson',
      ],
      ['a 70000-byte line', utf8(`${line}\n{"sourceRef":"${'x'.repeat(70_000)}"}\n${line}\n`), 'application/x-ndjson'],
      [
        '10000-level nested line',
        utf8(`${deepArray(10_000).text}\n${deepObject(10_000).text}\n`),
        'application/x-ndjson',
      ],
      [
        'prototype keys',
        utf8(`{"__proto__":{"polluted":"yes"}}\n{"constructor":{"prototype":{"polluted":"yes"}}}\n`),
        'application/x-ndjson',
      ],
      ['CRLF and blank lines', utf8(`\r\n\r\n${line}\r\n\r\n`), 'application/x-ndjson'],
      [
        'SQL injection everywhere',
        ndjson(SQL_INJECTION.map((text) => ({ idNumber: text, kind: text, validFrom: text, sourceRef: text }))),
        'application/x-ndjson',
      ],
      [
        'impossible dates',
        ndjson(
          ['2023-02-29', '2024-13-01', '2024-02-30', '0000-01-01'].map((date, index) => ({
            ...(good as object),
            validFrom: date,
            registeredSince: date,
            sourceRef: `DATE-${index}`,
          })),
        ),
        'application/x-ndjson',
      ],
      [
        'bad identity numbers',
        ndjson(badIdNumbers().map((idNumber, index) => ({ ...(good as object), idNumber, sourceRef: `BAD-${index}` }))),
        'application/x-ndjson',
      ],
      [
        'huge numbers',
        utf8('{"idNumber":1e309,"validFrom":18446744073709551616,"sourceRef":-0}\n'),
        'application/x-ndjson',
      ],
      [
        'CSV with an unbalanced quote',
        utf8(`idNumber,kind,validFrom,sourceRef\n"440304,"x,2024-01-01,a\n`),
        'text/csv',
      ],
      ['CSV with extra columns', utf8(`idNumber,kind\n1,2,3,4,5\n`), 'text/csv'],
      [
        'CSV with a BOM and formula cells',
        utf8(`\ufeffidNumber,kind,validFrom,sourceRef\n=cmd|' /C calc'!A0,@SUM(1),+1,-1\n`),
        'text/csv',
      ],
      [
        'CSV with NUL and invalid UTF-8',
        Buffer.concat([utf8('idNumber,sourceRef\n\u0000,'), Buffer.from([0xff, 0xfe]), utf8('\n')]),
        'text/csv',
      ],
      ['CSV header only', utf8('idNumber,kind,validFrom,sourceRef\n'), 'text/csv'],
      ['CSV with __proto__ column', utf8(`__proto__,constructor\nx,y\n`), 'text/csv'],
      ['over 1 MiB of bad lines', utf8(`${'{"bad":1}\n'.repeat(110_000)}`), 'application/x-ndjson'],
      ['empty body', Buffer.alloc(0), 'application/x-ndjson'],
      ['JSON content type', utf8(line), JSON_TYPE],
      ['JSON content type, empty object', utf8('{}'), JSON_TYPE],
      ['text/plain', utf8(line), 'text/plain'],
      ['no content type', utf8(line), undefined],
      ['no body at all', undefined, undefined],
      ['NDJSON with a latin1 charset', utf8(line), 'application/x-ndjson; charset=latin1'],
      ['multipart', utf8('--x\r\n\r\n--x--'), 'multipart/form-data; boundary=x'],
    ]
    for (const [label, body, type] of hostile) cases.push(withBody(base, `feed: ${label}`, body, type))
    const first = cases[0] as FuzzRequest
    return [
      ...cases,
      ...envelopeCases(target, first, 'full'),
      ...(await authCases(target, first)),
      ...protocolCases(target, first),
    ]
  }

  async function federationCases(target: Target): Promise<FuzzRequest[]> {
    const { op } = target
    const seed = seedFor(SEED, operationKey(op))
    const self = target.city.id
    const profile = parse(readFileSync(pilotConfigPath, 'utf8')) as {
      cities: { id: string; federation: { acceptsFrom: Record<string, string[]> } }[]
    }
    const accepts = profile.cities.find((city) => city.id === self)?.federation.acceptsFrom ?? {}
    const partners = Object.keys(accepts)
    const signers = Object.fromEntries(CITY_IDS.map((id) => [id, gatewaySigner(id)]))
    const base: FuzzRequest = { label: 'federation', method: op.method, path: op.path, headers: {} }
    const jose = (label: string, jws: string) => withBody(base, label, utf8(jws), 'application/jose')
    const now = () => Math.floor(Date.now() / 1000)
    const claimsOf = (from: string, type: string, body: unknown) => ({
      iss: from,
      aud: self,
      jti: randomUUID(),
      iat: now(),
      exp: now() + 300,
      type,
      ref: `FUZZ-${randomUUID().slice(0, 8)}`,
      usr: `${from}-fuzzer`,
      body,
    })
    const sign = (from: string, claims: unknown) =>
      (signers[from] as Signer).sign(claims as Record<string, unknown>, { typ: 'pilot-msg+jwt' })
    const cases: FuzzRequest[] = []

    // Signed by a partner, the claims or the body broken in one place: refused at the schema, stored nowhere.
    const types = [...new Set(Object.values(accepts).flat())]
    const picks = fc.sample(
      fc.tuple(fc.constantFrom(...partners), fc.constantFrom(...types), fc.integer({ min: 0, max: 1_000_000 })),
      { numRuns: 22, seed },
    )
    for (const [from, type, pick] of picks) {
      const bodySchema = MESSAGE_BODIES[type as keyof typeof MESSAGE_BODIES] as unknown as Schema
      const claimsSchema = {
        ...(MessageClaims as unknown as Schema),
        properties: { ...(MessageClaims as unknown as Schema).properties, body: bodySchema },
      }
      const body = fc.sample(validArbitrary(bodySchema), { numRuns: 1, seed: seed + pick })[0]
      const mutations = mutationsOf(claimsSchema, seed + pick).filter(
        (mutation) => !/\/(iat|exp)\b/.test(mutation.label),
      )
      const mutation = mutations[pick % mutations.length] as Mutation
      const claims = mutation.apply(clone(claimsOf(from, type, body)))
      cases.push(jose(`signed, ${from} ${type}, ${mutation.label}`, await sign(from, claims)))
    }
    // Schema-valid messages (accepted: the services handle them as partner traffic), and one replayed with another body.
    const validMessages = fc.sample(fc.tuple(fc.constantFrom(...partners), fc.constantFrom(...types)), {
      numRuns: 3,
      seed,
    })
    let replay: { from: string; claims: Record<string, unknown> } | undefined
    for (const [from, type] of validMessages) {
      const bodySchema = MESSAGE_BODIES[type as keyof typeof MESSAGE_BODIES] as unknown as Schema
      const claims = claimsOf(from, type, fc.sample(validArbitrary(bodySchema), { numRuns: 1, seed })[0])
      replay = { from, claims }
      cases.push(jose(`signed, valid ${from} ${type}`, await sign(from, claims)))
    }
    if (replay) {
      const { from, claims } = replay
      cases.push(jose('replay of a jti with another body', await sign(from, { ...claims, body: { different: true } })))
      cases.push(jose('replay of a jti with another ref', await sign(from, { ...claims, ref: 'FUZZ-OTHER' })))
    }
    const from = partners[0] as string
    const good = claimsOf(from, types[0] as string, {})
    const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
    const valid = await sign(from, good)
    const [header, payload, signature] = valid.split('.') as [string, string, string]
    const attacks: [string, string][] = [
      ['for another city', await sign(from, { ...good, aud: from })],
      ['expired', await sign(from, { ...good, iat: now() - 7200, exp: now() - 3600 })],
      ['issued in the future', await sign(from, { ...good, iat: now() + 3600, exp: now() + 3900 })],
      ['lifetime over 600 s', await sign(from, { ...good, exp: now() + 86_400 })],
      ['from a city outside the pilot', await sign(from, { ...good, iss: 'macau' })],
      ['from itself', await sign(self, { ...good, iss: self })],
      [
        'half a surrogate pair in the body',
        await sign(from, { ...good, type: 'case.refused', body: { reason: 'other', detail: 'x\ud800y' } }),
      ],
      [
        'NUL in the body',
        await sign(from, { ...good, type: 'case.refused', body: { reason: 'other', detail: 'x\u0000y' } }),
      ],
      ['a receipt posted', await sign(from, { ...good, type: 'receipt' })],
      ['signed by another partner', await sign(partners[1] ?? self, good)],
      ['payload swapped after signing', `${header}.${encode({ ...good, ref: 'FORGED' })}.${signature}`],
      ['signature stripped', `${header}.${payload}.`],
      ['alg none', `${encode({ alg: 'none', typ: 'pilot-msg+jwt' })}.${payload}.`],
      ['alg HS256', `${encode({ alg: 'HS256', kid: 'x', typ: 'pilot-msg+jwt' })}.${payload}.${signature}`],
      ['unknown kid', `${encode({ alg: 'ES256', kid: randomUUID(), typ: 'pilot-msg+jwt' })}.${payload}.${signature}`],
      ['typ JWT', `${encode({ alg: 'ES256', kid: 'x', typ: 'JWT' })}.${payload}.${signature}`],
      ['header not JSON', `${Buffer.from('{"alg":').toString('base64url')}.${payload}.${signature}`],
      [
        'header 10000-level nested',
        `${Buffer.from(deepArray(10_000).text).toString('base64url')}.${payload}.${signature}`,
      ],
      [
        'payload with __proto__',
        `${header}.${Buffer.from(`{"__proto__":{"polluted":"yes"},"iss":"${from}"}`).toString('base64url')}.${signature}`,
      ],
      ['two parts', `${header}.${payload}`],
      ['four parts', `${valid}.${signature}`],
      ['not base64url', `${header}!.${payload}.${signature}`],
      ['empty', ''],
      ['SQL injection', SQL_INJECTION[1] as string],
    ]
    for (const [label, jws] of attacks) cases.push(jose(`attack: ${label}`, jws))
    for (const text of fc.sample(fc.string({ maxLength: 200, unit: 'binary' }), { numRuns: 6, seed })) {
      cases.push(jose('random text', text))
    }
    cases.push(
      withBody(base, 'invalid UTF-8', Buffer.from([0xff, 0xfe, 0x2e, 0xc0, 0xaf, 0x2e]), 'application/jose'),
      withBody(
        base,
        'over 1 MiB',
        utf8(`${header}.${'A'.repeat(ONE_MEGABYTE_AND_MORE)}.${signature}`),
        'application/jose',
      ),
      withBody(base, 'as JSON', utf8(JSON.stringify({ jws: valid })), JSON_TYPE),
      withBody(base, 'as text/plain', utf8(valid), 'text/plain'),
      withBody(base, 'no content type', utf8(valid), undefined),
      withBody(base, 'no body', undefined, 'application/jose'),
      withBody(
        base,
        'content type application/jose; charset=utf-16',
        Buffer.from(valid, 'utf16le'),
        'application/jose; charset=utf-16',
      ),
    )
    const first = cases[0] as FuzzRequest
    return [...cases, ...envelopeCases(target, first, 'full'), ...protocolCases(target, first)]
  }

  async function loginCases(target: Target): Promise<FuzzRequest[]> {
    const { op } = target
    const base: FuzzRequest = { label: 'login', method: op.method, path: op.path, headers: {} }
    const form = 'application/x-www-form-urlencoded'
    const operator = await bearer(target.city.id, 'operator')
    const cases: FuzzRequest[] = [
      withBody(base, 'login: operator token', utf8(`token=${operator}`), form),
      withBody(base, 'login: caseworker token', utf8(`token=${await bearer(target.city.id, 'caseworker')}`), form),
      withBody(base, 'login: garbage token', utf8('token=garbage'), form),
      withBody(base, 'login: empty token', utf8('token='), form),
      withBody(base, 'login: no token field', utf8('a=b'), form),
      withBody(base, 'login: token twice', utf8(`token=x&token=${operator}`), form),
      withBody(base, 'login: token[] field', utf8('token[]=x&token[__proto__]=y'), form),
      withBody(base, 'login: percent junk', utf8('token=%E0%A4%A&%ZZ'), form),
      withBody(base, 'login: NUL', utf8('token=%00'), form),
      withBody(base, 'login: invalid UTF-8', Buffer.from([0x74, 0x6f, 0x6b, 0x65, 0x6e, 0x3d, 0xff, 0xfe]), form),
      withBody(base, 'login: JSON with a number token', utf8('{"token":1}'), JSON_TYPE),
      withBody(base, 'login: JSON with an object token', utf8('{"token":{"a":1}}'), JSON_TYPE),
      withBody(base, 'login: JSON with an array token', utf8('["x"]'), JSON_TYPE),
      withBody(base, 'login: JSON null', utf8('null'), JSON_TYPE),
      withBody(base, 'login: JSON string token', utf8(JSON.stringify({ token: SQL_INJECTION[0] })), JSON_TYPE),
      withBody(base, 'login: 10000-level nested JSON', utf8(deepObject(10_000).text), JSON_TYPE),
      withBody(base, 'login: text/plain', utf8('token=x'), 'text/plain'),
      withBody(base, 'login: no body', undefined),
      withBody(base, 'login: over 1 MiB', utf8(`token=${'x'.repeat(ONE_MEGABYTE_AND_MORE)}`), form),
    ]
    return [
      ...cases,
      ...envelopeCases(target, cases[2] as FuzzRequest, 'full'),
      ...protocolCases(target, cases[2] as FuzzRequest),
    ]
  }

  /** Routes with no documented input (health, metrics, keys, Swagger UI, Bull Board): hostile envelope only. */
  async function plainCases(target: Target): Promise<FuzzRequest[]> {
    const { op } = target
    const realValues = realParams(op)
    const params = Object.fromEntries(
      pathParameterNames(op.path).map((name) => [name, realValues[name]?.[0] ?? `fuzz-${name}`]),
    )
    const base: FuzzRequest = {
      label: 'plain',
      method: op.method,
      path: fillPath(op.path.replace('*', 'index.html'), params),
      headers: await baseHeaders(target),
    }
    const head = op.method === 'HEAD'
    const cases: FuzzRequest[] = [base]
    if (op.path.endsWith('*')) {
      // Static files: some that exist (Swagger UI's, Bull Board's), so that the route itself is seen to answer.
      for (const file of ['index.css', 'favicon-32x32.png', 'favicon.ico', 'logo.svg']) {
        cases.push(withPath(base, `static file ${file}`, op.path.replace('*', file)))
      }
    }
    // Bull Board's list takes its own query (status, page); give it hostile values.
    cases.push(
      withPath(
        base,
        'query: hostile values',
        `${base.path}?status=${encodeURIComponent(SQL_INJECTION[0] as string)}&page=-1&jobsPerPage=1e308&activeQueue=%00`,
      ),
    )
    if (!head && op.method !== 'GET') {
      cases.push(
        withBody(base, 'body: malformed JSON', utf8('{"a":'), JSON_TYPE),
        withBody(base, 'body: 10000-level nested arrays', utf8(deepArray(10_000).text), JSON_TYPE),
        withBody(base, 'body: __proto__', utf8('{"__proto__":{"polluted":"yes"}}'), JSON_TYPE),
        withBody(
          base,
          'body: hostile values',
          utf8(jsonText({ name: HOSTILE_STRINGS, delay: new RawJson('1e309'), data: deepObject(1000) })),
          JSON_TYPE,
        ),
      )
    }
    cases.push(...envelopeCases(target, base, head ? 'few' : 'full'))
    const auth = await authCases(target, base)
    cases.push(...(head ? auth.slice(0, 2) : auth.slice(0, 5)))
    return cases
  }

  function casesFor(target: Target): Promise<FuzzRequest[]> {
    const { op } = target
    const content = Object.keys(op.openapi?.requestBody?.content ?? {})
    if (content.includes('application/jose')) return federationCases(target)
    if (content.includes('application/x-ndjson') || content.includes('text/csv')) return feedCases(target)
    if (op.path === '/ops/board/login' && op.method === 'POST') return loginCases(target)
    const shape = inputShape(op)
    if (op.openapi && Object.keys(shape.schema.properties ?? {}).length > 0) return jsonCases(target)
    return plainCases(target)
  }

  // -------------------------------------------------------------------------------------------------------------------
  // Running

  it('fuzzes every operation over HTTP, checking every answer and the databases after every refusal', async () => {
    const started = Date.now()
    const prototypeKeys = Object.getOwnPropertyNames(Object.prototype).sort()
    let baseline: Snapshot = await watch.quiesce()
    // The watch sees a write: an accepted import changes exactly the tables it writes.
    const canary = JSON.stringify({
      idNumber: idOf('44030419700101001'),
      kind: 'residence_permit',
      validFrom: '2020-01-01',
      sourceRef: 'FUZZ-CANARY',
    })
    await call(cityOf('shenzhen'), 'residence', 'POST', '/v1/residence/evidence:import', 'operator', `${canary}\n`)
    const afterCanary = await watch.snapshot()
    expect(changedTables(baseline, afterCanary)).toEqual(['shenzhen:residence.evidence', 'shenzhen:residence.imports'])
    baseline = afterCanary
    for (const id of CITY_IDS) {
      const { rows } = await watch
        .client(id)
        .query<{ id: string }>('select coalesce(max(id), 0)::text as id from intake.audit_log')
      auditHighWater.set(id, rows[0]?.id ?? '0')
    }
    let sequence = 0
    for (const target of targets) {
      const { op } = target
      const key = operationKey(op)
      const report: OperationReport = {
        service: op.service,
        method: op.method,
        path: op.path,
        city: target.city.id,
        role: target.role ?? null,
        documented: op.openapi !== undefined,
        cases: 0,
        statuses: {},
        fiveXX: 0,
        failures: [],
      }
      reports.set(key, report)
      const caseRecords: CaseRecord[] = []
      records.set(key, caseRecords)
      for (const request of await casesFor(target)) {
        sequence++
        const requestId = `fuzz-${sequence}`
        const sent = { ...request, headers: { 'x-request-id': requestId, ...request.headers } }
        const response: FuzzResponse = await send(target.city.url[op.service], sent)
        const record: CaseRecord = {
          requestId,
          label: request.label,
          status: response.status,
          ...(response.requestId ? { serverRequestId: response.requestId } : {}),
        }
        report.cases++
        report.statuses[String(response.status)] = (report.statuses[String(response.status)] ?? 0) + 1
        if (response.status >= 500) report.fiveXX++
        const failure = checkResponse(request.method, response)
        if (failure) record.failure = failure
        if (response.status >= 400 || response.status === 0) {
          // Refused: nothing may have changed in any city.
          const after = await watch.snapshot()
          comparisons++
          const changed = changedTables(baseline, after)
          if (changed.length > 0) {
            record.dbChanged = changed
            baseline = await watch.quiesce()
          } else {
            baseline = after
          }
        } else {
          // Accepted: what it wrote (and whatever it set going across cities) becomes the new baseline.
          baseline = (await watch.pending()) === 0 ? await watch.snapshot() : await watch.quiesce()
        }
        if (record.failure || record.dbChanged) {
          report.failures.push(
            `${request.method} ${request.path.slice(0, 120)} [${request.label}] → ${record.failure ?? ''}${record.dbChanged ? ` database changed: ${record.dbChanged.join(', ')}` : ''}`,
          )
        }
        caseRecords.push(record)
      }
      if (op.path === '/ops/board/api/queues/pause' && target.role) {
        // An operator's pause may have gone through: resume the queues as an operator would.
        await send(target.city.url.gateway, {
          label: 'resume',
          method: 'PUT',
          path: '/ops/board/api/queues/resume',
          headers: { authorization: `Bearer ${await bearer(target.city.id, target.role)}` },
        })
      }
    }
    totalCases = sequence
    runMs = Date.now() - started
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(prototypeKeys)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  }, 600_000)

  it('exercised every operation the documents list and the routers serve', async () => {
    const unserved = operations.filter((op) => !op.served).map(operationKey)
    expect(unserved, 'documented but not served').toEqual([])
    expect(securityMismatches, 'security not as documented').toEqual([])
    const after = await routeCounts()
    const missed: string[] = []
    for (const op of operations.filter((candidate) => candidate.served)) {
      const key = operationKey(op)
      // The baseline read of /metrics counted once per city.
      const ownReads = op.method === 'GET' && op.path === '/metrics' ? CITY_IDS.length : 0
      // A route registered at a prefix answers with and without the trailing slash under one pattern (`/docs`).
      const counted = after.has(key) ? key : key.replace(/\/$/, '')
      const reached = (after.get(counted) ?? 0) - (metricsBefore.get(counted) ?? 0) - ownReads
      if (!reports.get(key)?.cases || reached <= 0)
        missed.push(`${key} (${reports.get(key)?.cases ?? 0} cases, ${reached} routed)`)
    }
    if (missed.length > 0) console.log('route counters seen:', [...after.keys()].join('\n'))
    expect(missed, 'operations no fuzz case reached').toEqual([])
    for (const report of reports.values()) expect(report.cases, operationKey(report)).toBeGreaterThanOrEqual(6)
  })

  it('answered no request with a 5xx, and every 4xx with a problem whose status is the HTTP status', () => {
    const failures = [...records.entries()].flatMap(([key, list]) =>
      list.filter((record) => record.failure).map((record) => `${key} [${record.label}] ${record.failure}`),
    )
    expect(failures.slice(0, 40), `${failures.length} bad answers`).toEqual([])
  })

  it('left the databases unchanged after every refused request', () => {
    const changed = [...records.entries()].flatMap(([key, list]) =>
      list
        .filter((record) => record.dbChanged)
        .map((record) => `${key} [${record.label}] ${record.status}: ${record.dbChanged?.join(', ')}`),
    )
    expect(changed.slice(0, 40), `${changed.length} refused requests changed a database`).toEqual([])
  })

  it('wrote refusal audit rows only for requests refused with 4xx, one row each', async () => {
    const byRequest = new Map<string, CaseRecord>()
    for (const list of records.values()) {
      for (const record of list) byRequest.set(record.serverRequestId ?? record.requestId, record)
    }
    const rows: { city: string; request_id: string; action: string; n: number }[] = []
    for (const id of CITY_IDS) {
      const result = await watch.client(id).query<{ request_id: string; action: string; n: number }>(
        `select request_id, action, count(*)::int as n from intake.audit_log
         where not (${DatabaseWatch.refusalFilter}) and id > $1 group by 1, 2`,
        [auditHighWater.get(id) ?? '0'],
      )
      rows.push(...result.rows.map((row) => ({ city: id, ...row })))
    }
    const wrong = rows.filter((row) => {
      const record = byRequest.get(row.request_id)
      return !record || record.status < 400 || record.status >= 500 || row.n !== 1
    })
    expect(wrong).toEqual([])
    refusalRows = rows.length
    console.log(`refusal audit rows, each of a request answered 4xx: ${rows.length}`)
  })

  it('writes the summary: cases per operation, statuses seen, 5xx count', () => {
    const list = [...reports.values()]
    const statuses: Record<string, number> = {}
    for (const report of list) {
      for (const [status, count] of Object.entries(report.statuses)) statuses[status] = (statuses[status] ?? 0) + count
    }
    const summary = {
      seed: SEED,
      operations: list.length,
      documentedOperations: list.filter((report) => report.documented).length,
      totalCases,
      fiveXX: list.reduce((sum, report) => sum + report.fiveXX, 0),
      failures: list.reduce((sum, report) => sum + report.failures.length, 0),
      databaseComparisons: comparisons,
      refusalAuditRows: refusalRows,
      runSeconds: Math.round(runMs / 100) / 10,
      statuses,
      perOperation: list,
    }
    writeFileSync(join(inject('logDir'), 'fuzz-summary.json'), `${JSON.stringify(summary, null, 2)}\n`)
    const lines = list.map(
      (report) =>
        `${report.service.padEnd(9)} ${report.method.padEnd(6)} ${report.path.padEnd(62)} ${String(report.cases).padStart(3)} cases  ${Object.entries(
          report.statuses,
        )
          .map(([status, count]) => `${status}×${count}`)
          .join(' ')}${report.fiveXX ? `  5xx: ${report.fiveXX}` : ''}`,
    )
    console.log(
      `fuzz (seed ${SEED}): ${summary.operations} operations (${summary.documentedOperations} documented), ${totalCases} cases in ${summary.runSeconds} s, ${summary.fiveXX} 5xx, ${summary.failures} failures, ${comparisons} database comparisons after refusals\n${lines.join('\n')}\nsummary: ${join(inject('logDir'), 'fuzz-summary.json')}`,
    )
    expect(totalCases).toBeGreaterThan(0)
  })
})
