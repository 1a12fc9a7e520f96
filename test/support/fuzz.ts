/**
 * Machinery of the OpenAPI-driven input fuzzer (test/fuzz.test.ts): the operations the published documents and the
 * live routers declare, a JSON Schema → fast-check converter giving schema-valid values and mutated ones, hand-written
 * hostile values, raw HTTP (bytes as they are, not as fetch would clean them up), and database snapshots.
 */
import http from 'node:http'
import net from 'node:net'
import { join } from 'node:path'
import SwaggerParser from '@apidevtools/swagger-parser'
import { checkCharacter } from '@pilot/schemas'
import { repoRoot } from '@pilot/testing'
import fc from 'fast-check'
import pg from 'pg'
import type { ServiceName } from './profile.ts'

// ---------------------------------------------------------------------------------------------------------------------
// Schemas and operations

/** The part of JSON Schema (OpenAPI 3.1 / TypeBox) the converter understands. */
export interface Schema {
  type?: string | string[]
  enum?: unknown[]
  const?: unknown
  anyOf?: Schema[]
  oneOf?: Schema[]
  allOf?: Schema[]
  properties?: Record<string, Schema>
  required?: string[]
  additionalProperties?: boolean | Schema
  items?: Schema
  minItems?: number
  maxItems?: number
  uniqueItems?: boolean
  minLength?: number
  maxLength?: number
  pattern?: string
  format?: string
  minimum?: number
  maximum?: number
  exclusiveMinimum?: number
  exclusiveMaximum?: number
  description?: string
  default?: unknown
}

export interface Parameter {
  name: string
  in: 'path' | 'query' | 'header' | 'cookie'
  required?: boolean
  schema: Schema
}

export interface OpenApiOperation {
  parameters?: Parameter[]
  requestBody?: { required?: boolean; content: Record<string, { schema?: Schema }> }
  security?: Record<string, string[]>[]
  description?: string
  summary?: string
}

/** One method on one route of one service, as the OpenAPI document and/or the live router know it. */
export interface Operation {
  service: ServiceName
  method: string
  /** OpenAPI form: `/v1/applications/{id}`; a router wildcard stays `*`. */
  path: string
  openapi?: OpenApiOperation
  /** False for an operation the document lists but the router does not serve (a failure of its own). */
  served: boolean
}

export const operationKey = (op: { service: string; method: string; path: string }) =>
  `${op.service} ${op.method} ${op.path}`

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const

/** Every operation of a published document (openapi/<service>.yaml), its schemas dereferenced. */
export async function documentedOperations(service: ServiceName): Promise<Operation[]> {
  const document = (await SwaggerParser.dereference(join(repoRoot, 'openapi', `${service}.yaml`))) as unknown as {
    paths: Record<string, Record<string, OpenApiOperation>>
  }
  const operations: Operation[] = []
  for (const [path, item] of Object.entries(document.paths ?? {})) {
    for (const method of HTTP_METHODS) {
      const operation = item[method]
      if (operation) operations.push({ service, method: method.toUpperCase(), path, openapi: operation, served: false })
    }
  }
  return operations
}

/** A router pattern (`/v1/x/:id`, `/v1/x/evidence::import`) in OpenAPI form (`/v1/x/{id}`, `/v1/x/evidence:import`). */
export function openApiPath(pattern: string): string {
  return pattern
    .replaceAll('::', '\u0001')
    .replace(/\/:([A-Za-z0-9_]+)/g, '/{$1}')
    .replaceAll('\u0001', ':')
}

/**
 * Every (method, route) a live Fastify instance serves, read from `printRoutes()` (the router's radix tree: a route is
 * the concatenation of the edges down to a node with methods). Fastify has no other public listing. Routes hidden from
 * the OpenAPI document (Swagger UI, Bull Board) are included.
 */
export function servedRoutes(printed: string): { method: string; path: string }[] {
  const routes: { method: string; path: string }[] = []
  const stack: string[] = []
  for (const line of printed.split('\n')) {
    const match = /^((?:[│ ] {3})*)[├└]── (.*?)(?: \(([A-Z, ]+)\))?$/.exec(line)
    if (!match) continue
    const depth = (match[1] ?? '').length / 4
    stack.length = depth
    stack.push(match[2] ?? '')
    const path = stack.join('')
    for (const method of (match[3] ?? '').split(',').map((item) => item.trim())) {
      if (method) routes.push({ method, path: path.replace(/\/:([A-Za-z0-9_]+)/g, '/{$1}') })
    }
  }
  return routes
}

/** Path parameters of an operation path, in order. */
export function pathParameterNames(path: string): string[] {
  return [...path.matchAll(/\{([A-Za-z0-9_]+)\}/g)].map((match) => match[1] as string)
}

// ---------------------------------------------------------------------------------------------------------------------
// JSON text with raw tokens, prototype-pollution keys and deep nesting

/** A JSON token written as it is (1e309, 18446744073709551616, -0): JSON.stringify cannot produce these. */
export class RawJson {
  constructor(readonly text: string) {}
}

export function deepArray(levels: number): RawJson {
  return new RawJson(`${'['.repeat(levels)}${']'.repeat(levels)}`)
}
export function deepObject(levels: number): RawJson {
  return new RawJson(`${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`)
}

/** JSON.stringify, with RawJson tokens spliced in verbatim. */
export function jsonText(value: unknown): string {
  const raws: string[] = []
  const marker = `@@raw${Math.random().toString(36).slice(2)}:`
  const text = JSON.stringify(value, (_key, item) => {
    if (item instanceof RawJson) {
      raws.push(item.text)
      return `${marker}${raws.length - 1}@@`
    }
    return item
  })
  if (text === undefined) return ''
  return text.replace(new RegExp(`"${marker}(\\d+)@@"`, 'g'), (_match, index) => raws[Number(index)] as string)
}

/** An own, enumerable property even for `__proto__` (an object literal would set the prototype instead). */
function define(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true })
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof RawJson)
}

export function clone(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(clone)
  if (isRecord(value)) {
    const copy: Record<string, unknown> = {}
    for (const key of Object.keys(value)) define(copy, key, clone(value[key]))
    return copy
  }
  return value
}

export type Segment = string | number
const DELETE = Symbol('delete')

/** A copy of `root` with the value at `path` replaced (containers created as needed) or deleted. */
export function setAt(root: unknown, path: Segment[], value: unknown): unknown {
  if (path.length === 0) return value === DELETE ? undefined : value
  const [head, ...rest] = path as [Segment, ...Segment[]]
  if (typeof head === 'number') {
    const array = Array.isArray(root) ? [...root] : []
    const index = Math.min(head, array.length)
    if (rest.length === 0 && value === DELETE) array.splice(index, 1)
    else array[index] = setAt(array[index], rest, value)
    return array
  }
  const object = isRecord(root) ? (clone(root) as Record<string, unknown>) : {}
  if (rest.length === 0 && value === DELETE) delete object[head]
  else define(object, head, setAt(object[head], rest, value))
  return object
}

// ---------------------------------------------------------------------------------------------------------------------
// Hostile values

export const SQL_INJECTION = [
  "' OR 1=1--",
  "'; DROP TABLE cases; --",
  "1'; DELETE FROM audit_log WHERE '1'='1",
  '" OR ""="',
  "'); SELECT pg_sleep(3); --",
]
export const SCRIPT_INJECTION = ['<script>alert(1)</script>', '"><img src=x onerror=alert(1)>', 'javascript:alert(1)']
export const HOSTILE_STRINGS = [
  ...SQL_INJECTION,
  ...SCRIPT_INJECTION,
  '\u0000',
  'nul\u0000inside',
  '\ud800',
  '\udfff\ud800',
  '\u202egnp.exe',
  '\ufeffbom',
  '𝕏'.repeat(30),
  ' ',
  '\r\nSet-Cookie: x=1',
  '\\',
  '../../../../etc/passwd',
  `\${7*7}{{7*7}}`,
  '%00%ff',
  '__proto__',
  'constructor',
  'NaN',
  '1e308',
  '-1',
  'null',
]
const LONG_STRING = 'A'.repeat(100_000)

/** Identity numbers that fail only their check character, their date, or their shape. */
export function badIdNumbers(): string[] {
  const good = `44030419900101123${checkCharacter('44030419900101123')}`
  const wrongCheck = good.slice(0, 17) + (good[17] === '0' ? '1' : '0')
  const withCheck = (first17: string) => first17 + checkCharacter(first17)
  return [
    wrongCheck,
    `${good.slice(0, 17)}Y`,
    withCheck('44030420230229123'), // 2023-02-29 does not exist
    withCheck('44030420241301123'), // month 13
    withCheck('44030420990101123'), // born in the future
    withCheck('44030418991231123'), // before 1900
    '000000000000000000',
    ` ${good}`,
    `${good.slice(0, 17)}x`.replace(/^4/, '٤'), // an Arabic-Indic digit
  ]
}

/** A valid identity number: region, a real birth date, order code, check character. */
export const validIdNumber = fc
  .tuple(
    fc.constantFrom('440304', '440402', '442000', '110101'),
    fc.date({ min: new Date('1930-01-01T00:00:00Z'), max: new Date('2010-12-31T00:00:00Z'), noInvalidDate: true }),
    fc.integer({ min: 0, max: 999 }),
  )
  .map(([region, birth, order]) => {
    const first17 = `${region}${birth.toISOString().slice(0, 10).replaceAll('-', '')}${String(order).padStart(3, '0')}`
    return first17 + checkCharacter(first17)
  })

export const BAD_DATES = [
  '2023-02-29',
  '2024-13-01',
  '2024-00-10',
  '2024-02-30',
  '2024-04-31',
  '0000-01-01',
  '9999-12-32',
  '2024-1-1',
  '20240101',
  '2024-01-01T00:00:00Z',
  ' 2024-01-01',
  '+002024-01-01',
  '2024-01-01\u0000',
]
export const BAD_DATE_TIMES = [
  '2023-02-29T10:00:00Z',
  '2024-13-01T00:00:00Z',
  '2024-01-01T25:00:00Z',
  '2024-01-01T10:61:00Z',
  '2024-01-01T10:00:00+25:00',
  'yesterday',
  '0',
  '2024-01-01',
]
export const BAD_UUIDS = [
  'not-a-uuid',
  '00000000-0000-0000-0000-00000000000g',
  '{00000000-0000-0000-0000-000000000000}',
  '00000000000000000000000000000000',
  '00000000-0000-0000-0000-0000000000000',
]
const HUGE_NUMBERS: unknown[] = [
  new RawJson('1e308'),
  new RawJson('1e309'),
  new RawJson('-1e309'),
  new RawJson('18446744073709551616'), // 2**64
  new RawJson('-0'),
  new RawJson('123456789012345678901234567890'),
  new RawJson('1E-400'),
  2 ** 53 + 2,
  -1,
  1.5,
  'NaN',
  'Infinity',
  '1',
]

// ---------------------------------------------------------------------------------------------------------------------
// Schema → arbitraries

function types(schema: Schema): string[] {
  if (Array.isArray(schema.type)) return schema.type
  if (schema.type) return [schema.type]
  if (schema.properties) return ['object']
  if (schema.items) return ['array']
  return []
}

const isIdNumberSchema = (schema: Schema) =>
  schema.pattern === '^[0-9]{17}[0-9Xx]$' || /GB 11643/.test(schema.description ?? '')

const dates = fc.date({
  min: new Date('1950-01-01T00:00:00Z'),
  max: new Date('2035-12-31T23:59:59Z'),
  noInvalidDate: true,
})

function stringArbitrary(schema: Schema): fc.Arbitrary<string> {
  const minLength = schema.minLength ?? 0
  const maxLength = schema.maxLength ?? Number.POSITIVE_INFINITY
  const fits = (value: string) => value.length >= minLength && value.length <= maxLength
  if (schema.format === 'date') return dates.map((date) => date.toISOString().slice(0, 10))
  if (schema.format === 'date-time') return dates.map((date) => date.toISOString())
  if (schema.format === 'uuid') return fc.uuid()
  if (schema.format === 'email') return fc.emailAddress()
  if (schema.format === 'uri') return fc.webUrl()
  if (schema.pattern) {
    const shaped = fc.stringMatching(new RegExp(schema.pattern)).filter(fits)
    return isIdNumberSchema(schema) ? fc.oneof(validIdNumber, validIdNumber, shaped) : shaped
  }
  const upper = Math.min(maxLength, minLength + 40)
  // Mostly readable text, sometimes any code point (NUL, lone surrogates, astral characters).
  return fc.oneof(
    { weight: 3, arbitrary: fc.string({ minLength, maxLength: upper }) },
    { weight: 1, arbitrary: fc.string({ minLength, maxLength: upper, unit: 'binary' }) },
    { weight: 1, arbitrary: fc.constantFrom(...HOSTILE_STRINGS).filter(fits) },
  )
}

/** Values valid against `schema` (as far as a schema can say: checksums and dates in the past are the handler's). */
export function validArbitrary(schema: Schema, depth = 0): fc.Arbitrary<unknown> {
  if (schema.const !== undefined) return fc.constant(schema.const)
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return fc.constantFrom(...schema.enum)
  const union = schema.anyOf ?? schema.oneOf
  if (union && union.length > 0) return fc.oneof(...union.map((branch) => validArbitrary(branch, depth)))
  if (schema.allOf && schema.allOf.length > 0) return validArbitrary(schema.allOf[0] as Schema, depth)
  const kinds = types(schema)
  if (kinds.length === 0) return fc.jsonValue({ maxDepth: 2 })
  if (kinds.length > 1) return fc.oneof(...kinds.map((type) => validArbitrary({ ...schema, type }, depth)))
  switch (kinds[0]) {
    case 'string':
      return stringArbitrary(schema)
    case 'integer': {
      const low = schema.exclusiveMinimum !== undefined ? schema.exclusiveMinimum + 1 : schema.minimum
      const high = schema.exclusiveMaximum !== undefined ? schema.exclusiveMaximum - 1 : schema.maximum
      const min = Math.max(low ?? -1_000_000, Number.MIN_SAFE_INTEGER)
      const max = Math.min(high ?? 1_000_000, Number.MAX_SAFE_INTEGER)
      return fc.oneof(fc.constantFrom(min, max), fc.integer({ min, max }))
    }
    case 'number': {
      const min = schema.minimum ?? -1e6
      const max = schema.maximum ?? 1e6
      return fc.double({ min, max, noNaN: true, noDefaultInfinity: true })
    }
    case 'boolean':
      return fc.boolean()
    case 'null':
      return fc.constant(null)
    case 'array': {
      const item = validArbitrary(schema.items ?? {}, depth + 1)
      const minLength = schema.minItems ?? 0
      const maxLength = Math.min(schema.maxItems ?? 3, minLength + (depth > 1 ? 1 : 3))
      return schema.uniqueItems
        ? fc.uniqueArray(item, { minLength, maxLength, selector: (value) => JSON.stringify(value) })
        : fc.array(item, { minLength, maxLength })
    }
    case 'object': {
      const properties = schema.properties ?? {}
      if (Object.keys(properties).length === 0) {
        if (schema.additionalProperties === false) return fc.constant({})
        return fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 })
      }
      const model: Record<string, fc.Arbitrary<unknown>> = {}
      for (const [key, property] of Object.entries(properties)) model[key] = validArbitrary(property, depth + 1)
      return fc.record(model, { requiredKeys: (schema.required ?? []).filter((key) => key in properties) })
    }
    default:
      return fc.jsonValue({ maxDepth: 2 })
  }
}

export interface Mutation {
  label: string
  apply: (valid: unknown) => unknown
}

const WRONG_TYPE_VALUES: [string, unknown][] = [
  ['string', 'a string'],
  ['integer', 12345],
  ['number', 0.5],
  ['boolean', true],
  ['null', null],
  ['array', []],
  ['object', {}],
]

function pointer(path: Segment[]): string {
  return `/${path.join('/')}`
}

/**
 * Every way to break a value of `schema`, one place at a time: a wrong type, a required property removed, an unknown
 * (or prototype-polluting) property added, a string too long, too short or off its pattern or format, a number out of
 * range or not representable, an array too long or too short, a value not in its enum. Hostile strings are included
 * where the schema allows them too: those must get through validation and be handled.
 */
export function mutationsOf(schema: Schema, seed: number, prefix: Segment[] = []): Mutation[] {
  const mutations: Mutation[] = []
  const sample = (s: Schema) => fc.sample(validArbitrary(s), { numRuns: 1, seed })[0]
  const replace = (at: Segment[], label: string, value: unknown) => {
    const path = [...prefix, ...at]
    mutations.push({ label: `${label} at ${pointer(path)}`, apply: (valid) => setAt(valid, path, value) })
  }

  const visit = (node: Schema, path: Segment[], depth: number) => {
    if (depth > 6) return
    const union = node.anyOf ?? node.oneOf
    if (union) {
      for (const branch of union) visit(branch, path, depth)
      if (!node.type) return
    }
    const kinds = types(node)
    for (const [type, value] of WRONG_TYPE_VALUES) {
      if (kinds.length > 0 && !kinds.includes(type) && !(type === 'integer' && kinds.includes('number'))) {
        replace(path, `wrong type (${type})`, value)
      }
    }
    if (node.enum || node.const !== undefined) {
      const first = String(node.enum?.[0] ?? node.const)
      replace(path, 'not in enum', `${first.toUpperCase()}_X`)
      replace(path, 'empty enum value', '')
    }
    if (kinds.includes('object') && node.properties) {
      for (const key of node.required ?? []) {
        const at = [...prefix, ...path, key]
        mutations.push({ label: `missing required ${pointer(at)}`, apply: (valid) => setAt(valid, at, DELETE) })
      }
      if (node.additionalProperties === false) replace([...path, 'unexpectedField'], 'unknown property', 'x')
      if (depth <= 1) {
        replace([...path, '__proto__'], 'prototype pollution', { polluted: 'yes' })
        replace([...path, 'constructor'], 'prototype pollution', { prototype: { polluted: 'yes' } })
      }
      for (const [key, property] of Object.entries(node.properties)) visit(property, [...path, key], depth + 1)
    }
    if (kinds.includes('array')) {
      const item = node.items ?? {}
      if (node.maxItems !== undefined) {
        const one = sample(item)
        replace(
          path,
          `more than maxItems ${node.maxItems}`,
          Array.from({ length: node.maxItems + 1 }, () => one),
        )
      }
      if (node.minItems) replace(path, `fewer than minItems ${node.minItems}`, [])
      if (node.uniqueItems) {
        const one = sample(item)
        replace(path, 'duplicate items', [one, one])
      }
      replace(path, 'deeply nested array', [deepArray(10_000)])
      visit(item, [...path, 0], depth + 1)
    }
    if (kinds.includes('string')) {
      if (node.maxLength !== undefined)
        replace(path, `longer than maxLength ${node.maxLength}`, 'x'.repeat(node.maxLength + 1))
      if (node.minLength) replace(path, `shorter than minLength ${node.minLength}`, 'x'.repeat(node.minLength - 1))
      if (node.format === 'date') for (const value of BAD_DATES) replace(path, `impossible date ${value}`, value)
      if (node.format === 'date-time')
        for (const value of BAD_DATE_TIMES) replace(path, `bad date-time ${value}`, value)
      if (node.format === 'uuid') for (const value of BAD_UUIDS) replace(path, `bad uuid ${value}`, value)
      if (isIdNumberSchema(node))
        for (const value of badIdNumbers()) replace(path, `bad identity number ${value}`, value)
      for (const value of HOSTILE_STRINGS) replace(path, `hostile string ${JSON.stringify(value)}`, value)
      replace(path, 'a 100000-character string', LONG_STRING)
    }
    if (kinds.includes('integer') || kinds.includes('number')) {
      if (node.minimum !== undefined) replace(path, `below minimum ${node.minimum}`, node.minimum - 1)
      if (node.maximum !== undefined) replace(path, `above maximum ${node.maximum}`, node.maximum + 1)
      for (const value of HUGE_NUMBERS) {
        replace(path, `number ${value instanceof RawJson ? value.text : JSON.stringify(value)}`, value)
      }
    }
    if (kinds.includes('boolean')) {
      replace(path, 'boolean as string', 'true')
      replace(path, 'boolean as number', 1)
    }
  }
  visit(schema, [], 0)
  return mutations
}

/** A mutation deleting the value at `path` (a whole body, a header). */
export function removal(label: string, path: Segment[]): Mutation {
  return { label, apply: (valid) => setAt(valid, path, DELETE) }
}

/** Valid values, then mutated ones (each a valid value broken in one place), so many of each, deterministically. */
export function samples(
  valid: fc.Arbitrary<unknown>,
  mutations: Mutation[],
  counts: { valid: number; mutated: number },
  seed: number,
): { label: string; value: unknown }[] {
  const samples: { label: string; value: unknown }[] = fc
    .sample(valid, { numRuns: counts.valid, seed })
    .map((value) => ({ label: 'schema-valid', value }))
  if (mutations.length > 0 && counts.mutated > 0) {
    const picks = fc.sample(fc.tuple(valid, fc.integer({ min: 0, max: mutations.length - 1 })), {
      numRuns: counts.mutated,
      seed: seed + 1,
    })
    for (const [value, index] of picks) {
      const mutation = mutations[index] as Mutation
      samples.push({ label: `mutated: ${mutation.label}`, value: mutation.apply(clone(value)) })
    }
  }
  return samples
}

/** A deterministic 32-bit seed for a label, so each operation's cases do not depend on the others. */
export function seedFor(base: number, label: string): number {
  let hash = base | 0
  for (const char of label) hash = (Math.imul(hash, 31) + char.charCodeAt(0)) | 0
  return hash
}

// ---------------------------------------------------------------------------------------------------------------------
// HTTP

export interface FuzzRequest {
  label: string
  method: string
  /** Path and query exactly as sent (percent-encoding is the generator's business). */
  path: string
  headers: Record<string, string>
  body?: Buffer
  /** Raw bytes for a fresh socket, for what no HTTP client will send (malformed request lines, smuggling). */
  raw?: Buffer
}

export interface FuzzResponse {
  status: number
  contentType: string
  body: string
  /** The request id the service used (its x-request-id answer header). */
  requestId?: string
  error?: string
}

// A connection per request: a refused request may leave its connection closing, which a reused socket would meet.
const agent = new http.Agent({ keepAlive: false })

/** Sends a request over node:http (bytes as given), or raw bytes over a fresh socket. */
export function send(baseUrl: string, request: FuzzRequest, timeoutMs = 15_000): Promise<FuzzResponse> {
  const url = new URL(baseUrl)
  if (request.raw) return sendRaw(url, request.raw, timeoutMs)
  return new Promise((resolve) => {
    let settled = false
    const done = (response: FuzzResponse) => {
      if (!settled) {
        settled = true
        resolve(response)
      }
    }
    let outgoing: http.ClientRequest
    try {
      outgoing = http.request({
        host: url.hostname,
        port: url.port,
        method: request.method,
        path: request.path,
        headers: { ...request.headers, ...(request.body ? { 'content-length': String(request.body.length) } : {}) },
        agent,
        timeout: timeoutMs,
      })
    } catch (error) {
      done({ status: 0, contentType: '', body: '', error: `client refused to send: ${(error as Error).message}` })
      return
    }
    outgoing.on('response', (incoming) => {
      const chunks: Buffer[] = []
      let size = 0
      incoming.on('data', (chunk: Buffer) => {
        size += chunk.length
        if (size <= 2_000_000) chunks.push(chunk)
      })
      incoming.on('end', () =>
        done({
          status: incoming.statusCode ?? 0,
          contentType: String(incoming.headers['content-type'] ?? ''),
          body: Buffer.concat(chunks).toString('utf8'),
          ...(incoming.headers['x-request-id'] ? { requestId: String(incoming.headers['x-request-id']) } : {}),
        }),
      )
      incoming.on('error', (error) => done({ status: 0, contentType: '', body: '', error: error.message }))
    })
    outgoing.on('timeout', () => {
      outgoing.destroy(new Error(`no answer within ${timeoutMs} ms`))
    })
    outgoing.on('error', (error) => done({ status: 0, contentType: '', body: '', error: error.message }))
    outgoing.end(request.body)
  })
}

function sendRaw(url: URL, bytes: Buffer, timeoutMs: number): Promise<FuzzResponse> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: url.hostname, port: Number(url.port) })
    const chunks: Buffer[] = []
    const finish = (error?: string) => {
      socket.destroy()
      // The first answer only: a connection refused half-way may carry a second one after it.
      const bytes = Buffer.concat(chunks)
      const end = bytes.indexOf('\r\n\r\n')
      const head = bytes.toString('latin1', 0, end < 0 ? bytes.length : end)
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? bytes.length)
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0)
      const contentType = /\r\ncontent-type: *([^\r\n]*)/i.exec(head)?.[1] ?? ''
      const requestId = /\r\nx-request-id: *([^\r\n]*)/i.exec(head)?.[1]
      resolve({
        status,
        contentType,
        body: end < 0 ? '' : bytes.subarray(end + 4, end + 4 + length).toString('utf8'),
        ...(requestId ? { requestId } : {}),
        ...(status === 0 ? { error: error ?? 'connection closed without an answer' } : {}),
      })
    }
    socket.setTimeout(timeoutMs, () => finish(`no answer within ${timeoutMs} ms`))
    socket.on('data', (chunk) => {
      chunks.push(chunk)
      // One response is enough; the server may keep the connection open.
      const text = Buffer.concat(chunks).toString('latin1')
      const end = text.indexOf('\r\n\r\n')
      if (end >= 0) {
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end))?.[1] ?? Number.NaN)
        if (!Number.isNaN(length) && Buffer.byteLength(text, 'latin1') >= end + 4 + length) finish()
      }
    })
    socket.on('end', () => finish())
    socket.on('error', (error) => finish(error.message))
    socket.write(bytes)
  })
}

export function closeAgent(): void {
  agent.destroy()
}

/** What every answer must be: no 5xx, and every 4xx an RFC 9457 problem whose status is the HTTP status. */
export function checkResponse(method: string, response: FuzzResponse): string | undefined {
  if (response.error) return `no HTTP answer: ${response.error}`
  if (response.status >= 500) return `${response.status} ${response.body.slice(0, 300)}`
  if (response.status >= 400) {
    if (!/^application\/problem\+json(;|$)/.test(response.contentType)) {
      return `${response.status} with content-type ${JSON.stringify(response.contentType)}: ${response.body.slice(0, 200)}`
    }
    // A HEAD answer has the headers of the problem but no body.
    if (method === 'HEAD') return undefined
    let problem: Record<string, unknown>
    try {
      problem = JSON.parse(response.body) as Record<string, unknown>
    } catch {
      return `${response.status} problem+json whose body is not JSON: ${response.body.slice(0, 200)}`
    }
    if (typeof problem.type !== 'string' || problem.type === '') return `${response.status} problem without type`
    if (typeof problem.title !== 'string' || problem.title === '') return `${response.status} problem without title`
    if (problem.status !== response.status) {
      return `problem status ${JSON.stringify(problem.status)} differs from HTTP status ${response.status}`
    }
  }
  return undefined
}

// ---------------------------------------------------------------------------------------------------------------------
// Database snapshots

export type Snapshot = Map<string, string>

/**
 * Per table of the service schemas of each city database: row count and md5 of all rows in order. Two exceptions,
 * each narrow and each checked elsewhere:
 * - `intake.audit_log`: hashed without chain_seq, prev_hash and hash. Rows are written unlinked and the chainer links
 *   them a moment later; the table's trigger (audit_log_append_only) allows no other update, and no delete, so
 *   every row a request inserts is still seen.
 * - `intake.audit_log` rows that record a user's refusal (action ending in "refused", role not partner): refusing an
 *   action on a case, or a read naming another actor, is audited by design. The test checks separately that every such row belongs to a
 *   request the service answered 4xx (by the request id it answered with), one row per request.
 */
export class DatabaseWatch {
  private readonly clients = new Map<string, pg.Client>()
  private readonly snapshotSql = new Map<string, string>()
  private readonly pendingSql = new Map<string, string>()

  /** Rows kept in the comparison: all but a user's refused action (a partner's message is not a fuzz request). */
  static readonly refusalFilter = `not (action ~ 'refused$' and role <> 'partner')`

  async open(databases: Record<string, string>): Promise<void> {
    for (const [city, url] of Object.entries(databases)) {
      const client = new pg.Client({ connectionString: url, application_name: 'fuzz-watch' })
      await client.connect()
      this.clients.set(city, client)
      const { rows } = await client.query<{ schema: string; table: string; columns: string[] }>(
        `select c.table_schema as schema, c.table_name as table, array_agg(c.column_name::text order by c.ordinal_position) as columns
         from information_schema.columns c join information_schema.tables t using (table_schema, table_name)
         where c.table_schema in ('residence', 'intake', 'gateway') and t.table_type = 'BASE TABLE'
         group by 1, 2 order by 1, 2`,
      )
      const parts = rows.map(({ schema, table, columns }) => {
        const name = `${schema}.${table}`
        let row = 't'
        let where = ''
        if (name === 'intake.audit_log') {
          row = `row(${columns
            .filter((column) => !['chain_seq', 'prev_hash', 'hash'].includes(column))
            .map((column) => `t."${column}"`)
            .join(', ')})`
          where = ` where ${DatabaseWatch.refusalFilter}`
        }
        return `select '${name}' as name, count(*)::text || ':' || md5(coalesce(string_agg(${row}::text, ',' order by ${row}::text), '')) as digest from "${schema}"."${table}" t${where}`
      })
      this.snapshotSql.set(city, parts.join(' union all '))
      const names = new Set(rows.map((row) => `${row.schema}.${row.table}`))
      const pending = [
        names.has('intake.outbox') ? `(select count(*) from intake.outbox where outcome is null)` : '0',
        names.has('gateway.messages')
          ? `(select count(*) from gateway.messages where status in ('pending', 'received', 'handed_off'))`
          : '0',
      ]
      this.pendingSql.set(city, `select (${pending.join(' + ')})::int as n`)
    }
  }

  async snapshot(): Promise<Snapshot> {
    const parts = await Promise.all(
      [...this.clients].map(async ([city, client]) => {
        const { rows } = await client.query<{ name: string; digest: string }>({
          name: 'fuzz-snapshot',
          text: this.snapshotSql.get(city) as string,
        })
        return rows.map((row) => [`${city}:${row.name}`, row.digest] as const)
      }),
    )
    return new Map(parts.flat())
  }

  /** Work still under way: outbox rows without a delivery outcome, federation messages not finished. */
  async pending(): Promise<number> {
    const counts = await Promise.all(
      [...this.clients].map(
        async ([city, client]) =>
          (await client.query<{ n: number }>({ name: 'fuzz-pending', text: this.pendingSql.get(city) as string }))
            .rows[0]?.n ?? 0,
      ),
    )
    return counts.reduce((sum, count) => sum + count, 0)
  }

  /** Waits until nothing is under way and two snapshots in a row agree; returns the last. */
  async quiesce(timeoutMs = 30_000): Promise<Snapshot> {
    const deadline = Date.now() + timeoutMs
    let last = await this.snapshot()
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 150))
      const pending = await this.pending()
      const next = await this.snapshot()
      if (pending === 0 && changedTables(last, next).length === 0) return next
      if (Date.now() > deadline) {
        throw new Error(`the databases did not settle within ${timeoutMs} ms (${pending} pending)`)
      }
      last = next
    }
  }

  client(city: string): pg.Client {
    return this.clients.get(city) as pg.Client
  }

  async close(): Promise<void> {
    await Promise.all([...this.clients.values()].map((client) => client.end().catch(() => {})))
  }
}

export function changedTables(before: Snapshot, after: Snapshot): string[] {
  const names = new Set([...before.keys(), ...after.keys()])
  return [...names].filter((name) => before.get(name) !== after.get(name)).sort()
}
