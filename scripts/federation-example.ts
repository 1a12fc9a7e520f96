/**
 * Produces the worked example and the body-schema tables of openapi/federation.md from the code itself.
 *
 *   tsx scripts/federation-example.ts            the worked example: a case.refused message and its receipt
 *   tsx scripts/federation-example.ts tables     one Markdown table per message body, from the TypeBox schemas
 *
 * The example keys are generated in memory for this run and thrown away: only their public parts are printed. The
 * clock is fixed, so everything but the ES256 signatures (which are randomised) is the same on every run. Before
 * printing, the example is checked the way a receiving gateway checks it, and once more with node:crypto alone.
 */
import { createHash, createPublicKey, verify as verifySignature } from 'node:crypto'
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import { isDeepStrictEqual } from 'node:util'
import {
  FEDERATION_CLOCK_TOLERANCE_SECONDS,
  FEDERATION_MAX_LIFETIME_SECONDS,
  FEDERATION_TYP,
  MESSAGE_BODIES,
  MessageClaims,
} from '@pilot/schemas'
import {
  bodyDigest,
  canonicalJson,
  checkTimes,
  generateSigningKey,
  JwksVerifier,
  publicJwk,
  publishedJwks,
  Signer,
} from '../packages/signing/src/index.ts'
import { signMessage } from '../services/gateway/src/federation/envelope.ts'
import { receiptEnvelope } from '../services/gateway/src/federation/inbound.ts'

interface JsonSchema {
  type?: string
  title?: string
  description?: string
  properties?: Record<string, JsonSchema>
  required?: string[]
  items?: JsonSchema
  anyOf?: JsonSchema[]
  enum?: unknown[]
  const?: unknown
  format?: string
  pattern?: string
  minLength?: number
  maxLength?: number
  minimum?: number
  maximum?: number
  minItems?: number
  maxItems?: number
}

// typebox is a dependency of @pilot/schemas, not of the repository root, so it is loaded from there.
const typeboxCompile = createRequire(new URL('../packages/schemas/package.json', import.meta.url)).resolve(
  'typebox/compile',
)
const { Compile } = (await import(pathToFileURL(typeboxCompile).href)) as {
  Compile: (schema: unknown) => { Check(value: unknown): boolean }
}

/** 2026-03-02 09:30:00 in Asia/Shanghai. */
const EXAMPLE_NOW = Date.UTC(2026, 2, 2, 1, 30, 0)
const LIFETIME_SECONDS = 300 // MESSAGE_LIFETIME_SECONDS default

function b64json(segment: string): unknown {
  return JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'))
}

function decode(jws: string): { header: unknown; claims: Record<string, unknown>; signature: string } {
  const [header = '', payload = '', signature = ''] = jws.split('.')
  return { header: b64json(header), claims: b64json(payload) as Record<string, unknown>, signature }
}

function assert(condition: boolean, what: string): void {
  if (!condition) throw new Error(`example self-check failed: ${what}`)
}

/** The same checks, in the same order, that services/gateway/src/federation/inbound.ts applies (bar replay). */
async function checkAsReceiver(
  jws: string,
  jwks: ReturnType<typeof publishedJwks>,
  receiver: string,
): Promise<Record<string, unknown>> {
  const { claims } = await new JwksVerifier(jwks).verify(jws, { typ: FEDERATION_TYP })
  assert(claims.aud === receiver, 'aud is the receiver')
  checkTimes(claims, {
    now: new Date(EXAMPLE_NOW + 1000),
    toleranceSeconds: FEDERATION_CLOCK_TOLERANCE_SECONDS,
    maxLifetimeSeconds: FEDERATION_MAX_LIFETIME_SECONDS,
  })
  assert(Compile(MessageClaims).Check(claims), 'claims match MessageClaims')
  const type = claims.type as keyof typeof MESSAGE_BODIES
  assert(Compile(MESSAGE_BODIES[type]).Check(claims.body), `body matches the ${type} schema`)
  return claims
}

/** An ES256 check with node:crypto only: no JOSE library involved. */
function checkWithNodeCrypto(jws: string, jwk: ReturnType<typeof publicJwk>): void {
  const [header = '', payload = '', signature = ''] = jws.split('.')
  const valid = verifySignature(
    'sha256',
    Buffer.from(`${header}.${payload}`),
    { key: createPublicKey({ key: { ...jwk }, format: 'jwk' }), dsaEncoding: 'ieee-p1363' },
    Buffer.from(signature, 'base64url'),
  )
  assert(valid, 'signature verifies with node:crypto')
}

/** The JSON text whose SHA-256 is the RFC 7638 thumbprint, recomputed here to show and to check the kid. */
function thumbprintInput(jwk: { kty: string; crv: string; x: string; y?: string; kid: string }): string {
  const text = JSON.stringify(
    jwk.kty === 'EC' ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y } : { crv: jwk.crv, kty: jwk.kty, x: jwk.x },
  )
  assert(createHash('sha256').update(text, 'utf8').digest('base64url') === jwk.kid, 'kid is the RFC 7638 thumbprint')
  return text
}

const block = (language: string, text: string) => `\`\`\`${language}\n${text}\n\`\`\``
const pretty = (value: unknown) => JSON.stringify(value, null, 2)

async function example(): Promise<string> {
  // Zhongshan is the hukou city: it refuses a transfer from Shenzhen, the residence city.
  const zhongshanKey = await generateSigningKey('ES256')
  const shenzhenKey = await generateSigningKey('ES256')
  const zhongshanJwks = publishedJwks({ current: zhongshanKey, retired: [] })
  const shenzhenJwks = publishedJwks({ current: shenzhenKey, retired: [] })

  const body = {
    reason: 'not_registered_here',
    detail: '中山市户籍登记中没有与申请人匹配的记录 (no matching household registration in Zhongshan)',
  }
  const message = await signMessage(
    new Signer(zhongshanKey),
    {
      iss: 'zhongshan',
      aud: 'shenzhen',
      jti: '6f1c1d2e-8a43-4b7e-9c55-0f2d3b7a9e41',
      type: 'case.refused',
      ref: 'SZ-2026-000123',
      usr: 'zhongshan-reviewer-0042',
      body,
    },
    LIFETIME_SECONDS,
    EXAMPLE_NOW,
  )
  const received = await checkAsReceiver(message, zhongshanJwks, 'shenzhen')
  checkWithNodeCrypto(message, publicJwk(zhongshanKey))

  // The receiver digests the body it parsed out of the payload, not the sender's object.
  const canonical = canonicalJson(received.body)
  const digest = bodyDigest(received.body)
  assert(digest === createHash('sha256').update(canonical, 'utf8').digest('base64url'), 'digest recomputes')

  const receipt = await signMessage(
    new Signer(shenzhenKey),
    {
      ...receiptEnvelope('shenzhen', 'zhongshan', received.jti as string, { status: 'accepted', digest }),
      jti: '0c9b7f3a-2d51-4e86-b7a4-5e1f9c3d2a70',
    },
    LIFETIME_SECONDS,
    EXAMPLE_NOW + 1000,
  )
  const receiptClaims = await checkAsReceiver(receipt, shenzhenJwks, 'zhongshan')
  checkWithNodeCrypto(receipt, publicJwk(shenzhenKey))
  assert(receiptClaims.ref === received.jti, 'receipt ref is the message jti')
  assert(isDeepStrictEqual(receiptClaims.body, { status: 'accepted', digest }), 'receipt body')

  for (const key of [...zhongshanJwks.keys, ...shenzhenJwks.keys]) assert(!('d' in key), 'no private member printed')

  const decoded = decode(message)
  const decodedReceipt = decode(receipt)
  return [
    '<!-- generated by: pnpm exec tsx scripts/federation-example.ts (keys are throwaway examples) -->',
    '',
    "**Zhongshan's JWKS** (`GET {zhongshan gateway}/.well-known/jwks.json`; example key, public part only):",
    '',
    block('json', pretty(zhongshanJwks)),
    '',
    `Its \`kid\` is the RFC 7638 thumbprint: SHA-256 over the required members in lexicographic order, no whitespace, base64url (for an Ed25519 key the members are \`crv\`, \`kty\`, \`x\`):`,
    '',
    block('json', thumbprintInput(zhongshanKey)),
    '',
    `SHA-256, base64url: \`${zhongshanKey.kid}\``,
    '',
    '**The message** as Zhongshan POSTs it to `{shenzhen gateway}/federation/v1/messages` (one line, no newline):',
    '',
    block('text', message),
    '',
    '**Protected header** (first segment, base64url-decoded):',
    '',
    block('json', JSON.stringify(decoded.header)),
    '',
    '**Claims** (second segment, base64url-decoded; this is the exact JSON text that was signed):',
    '',
    block('json', Buffer.from(message.split('.')[1] ?? '', 'base64url').toString('utf8')),
    '',
    'The same claims, laid out:',
    '',
    block('json', pretty(decoded.claims)),
    '',
    `**Signature** (third segment): 64 bytes, R‖S, ${decoded.signature.length} base64url characters. ES256 signatures are randomised: signing the same input again gives other bytes, and both verify.`,
    '',
    '**Receipt digest, step by step** (what Shenzhen computes over the `body` it parsed):',
    '',
    '1. RFC 8785 canonical JSON of `body` (members sorted, no whitespace, non-ASCII as raw UTF-8):',
    '',
    block('json', canonical),
    '',
    `2. UTF-8 bytes: ${Buffer.byteLength(canonical, 'utf8')}; SHA-256 (hex): \`${createHash('sha256').update(canonical, 'utf8').digest('hex')}\``,
    `3. base64url without padding: \`${digest}\``,
    '',
    "**Shenzhen's JWKS** (example key, public part only):",
    '',
    block('json', pretty(shenzhenJwks)),
    '',
    '**The 202 response** from Shenzhen, `Content-Type: application/jose`:',
    '',
    block('text', receipt),
    '',
    'Its header and claims, decoded:',
    '',
    block('json', JSON.stringify(decodedReceipt.header)),
    '',
    block('json', pretty(decodedReceipt.claims)),
  ].join('\n')
}

function typeOf(schema: JsonSchema): string {
  if (schema.anyOf?.every((member) => member.const !== undefined)) {
    return schema.anyOf.map((member) => `\`${String(member.const)}\``).join(' \\| ')
  }
  if (schema.enum) return schema.enum.map((value) => `\`${String(value)}\``).join(' \\| ')
  if (schema.type === 'array') return `array of ${schema.items ? typeOf(schema.items) : 'any'}`
  if (schema.type === 'string' && schema.format) return `string (${schema.format})`
  return schema.type ?? 'any JSON value'
}

function constraints(schema: JsonSchema): string {
  const parts: string[] = []
  // A pipe ends a table cell even inside a code span, so it is escaped (GitHub renders `\|` in a cell as `|`).
  if (schema.pattern) parts.push(`pattern \`${schema.pattern.replaceAll('|', '\\|')}\``)
  if (schema.minLength !== undefined && schema.maxLength !== undefined) {
    parts.push(`${schema.minLength}–${schema.maxLength} characters`)
  } else if (schema.maxLength !== undefined) {
    parts.push(`at most ${schema.maxLength} characters`)
  } else if (schema.minLength !== undefined) {
    parts.push(`at least ${schema.minLength} characters`)
  }
  if (schema.minimum !== undefined || schema.maximum !== undefined) {
    parts.push(`${schema.minimum ?? '−∞'} ≤ value ≤ ${schema.maximum ?? '∞'}`)
  }
  if (schema.minItems !== undefined && schema.maxItems !== undefined) {
    parts.push(`${schema.minItems}–${schema.maxItems} items`)
  } else if (schema.maxItems !== undefined) {
    parts.push(`at most ${schema.maxItems} items`)
  } else if (schema.minItems !== undefined) {
    parts.push(`at least ${schema.minItems} items`)
  }
  if (schema.description && schema.description !== 'Pilot city identifier') parts.push(schema.description)
  return parts.join('; ')
}

function rows(schema: JsonSchema, prefix: string, out: string[]): void {
  for (const [name, property] of Object.entries(schema.properties ?? {})) {
    const path = `${prefix}${name}`
    const required = schema.required?.includes(name) ? 'yes' : 'no'
    const element = property.type === 'array' ? property.items : undefined
    if (property.type === 'object') {
      out.push(`| \`${path}\` | object (no other members) | ${required} | |`)
      rows(property, `${path}.`, out)
    } else if (element?.type === 'object') {
      out.push(`| \`${path}\` | array of objects (no other members) | ${required} | ${constraints(property)} |`)
      rows(element, `${path}[].`, out)
    } else {
      const items = element ? constraints(element) : ''
      const detail = [constraints(property), items && `each: ${items}`].filter(Boolean).join('; ')
      out.push(`| \`${path}\` | ${typeOf(property)} | ${required} | ${detail} |`)
    }
  }
}

function tables(): string {
  const out: string[] = ['<!-- generated by: pnpm exec tsx scripts/federation-example.ts tables -->']
  for (const [type, schema] of Object.entries(MESSAGE_BODIES)) {
    const json = schema as unknown as JsonSchema
    out.push('', `#### \`${type}\` — \`${json.title}\``, '', '| field | type | required | constraints |')
    out.push('| --- | --- | --- | --- |')
    rows(json, '', out)
  }
  return out.join('\n')
}

const mode = process.argv[2] ?? 'example'
if (mode === 'example') console.log(await example())
else if (mode === 'tables') console.log(tables())
else {
  console.error('usage: tsx scripts/federation-example.ts [example|tables]')
  process.exit(2)
}
