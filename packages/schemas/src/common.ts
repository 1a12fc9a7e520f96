import { type Static, type TProperties, Type } from 'typebox'

/**
 * Every object schema in the pilot rejects properties it does not name: a partner or a form that sends a field we do
 * not know about gets a 400 naming it, instead of the field being silently dropped.
 */
export function StrictObject<T extends TProperties>(
  properties: T,
  options: { description?: string; title?: string } = {},
) {
  return Type.Object(properties, { ...options, additionalProperties: false })
}

export const CITY_IDS = ['shenzhen', 'zhuhai', 'zhongshan'] as const
export const CityId = Type.Union(
  CITY_IDS.map((id) => Type.Literal(id)),
  { description: 'Pilot city identifier' },
)
export type CityId = (typeof CITY_IDS)[number]

export function isCityId(value: unknown): value is CityId {
  return typeof value === 'string' && (CITY_IDS as readonly string[]).includes(value)
}

/** Calendar date in ISO 8601 extended form, e.g. 2022-02-28 (validated as a real date). */
export const IsoDate = Type.String({ format: 'date', description: 'Calendar date, YYYY-MM-DD' })

export const ValidationIssue = StrictObject(
  {
    in: Type.String({
      description: 'Which part: body, querystring, params or headers (and, for federation messages, claims)',
    }),
    pointer: Type.String({ description: 'JSON Pointer (RFC 6901) to the failing field within that part' }),
    detail: Type.String(),
  },
  { title: 'ValidationIssue' },
)
export type ValidationIssue = Static<typeof ValidationIssue>

/**
 * RFC 9457 problem details. `type` is stable per cause (see PROBLEM_TYPES) so that clients can branch on it; extension
 * members are allowed, as the RFC says.
 */
export const Problem = Type.Object(
  {
    type: Type.String({ description: 'Stable URI identifying the kind of problem' }),
    title: Type.String(),
    status: Type.Integer({ minimum: 400, maximum: 599 }),
    detail: Type.Optional(Type.String()),
    requestId: Type.Optional(Type.String({ description: 'Quote this to an operator to find the request in the logs' })),
    errors: Type.Optional(Type.Array(ValidationIssue, { description: 'For validation problems: every failing field' })),
  },
  { title: 'Problem', additionalProperties: true },
)
export type Problem = Static<typeof Problem>

/** The problem types every service may answer with. Services add their own with the same prefix. */
export const PROBLEM_TYPE_PREFIX = 'urn:pilot:problem:'
export function problemType(code: string): string {
  return `${PROBLEM_TYPE_PREFIX}${code}`
}
export const PROBLEM_TYPES = {
  validation: problemType('validation'),
  malformedJson: problemType('malformed-json'),
  unsupportedMediaType: problemType('unsupported-media-type'),
  payloadTooLarge: problemType('payload-too-large'),
  badRequest: problemType('bad-request'),
  unauthorized: problemType('unauthorized'),
  forbidden: problemType('forbidden'),
  notFound: problemType('not-found'),
  methodNotAllowed: problemType('method-not-allowed'),
  conflict: problemType('conflict'),
  tooManyRequests: problemType('too-many-requests'),
  notReady: problemType('not-ready'),
  unavailable: problemType('unavailable'),
  internal: problemType('internal'),
} as const

export const HealthLive = StrictObject({ status: Type.Literal('ok') }, { title: 'HealthLive' })

export const DependencyState = Type.Union([Type.Literal('up'), Type.Literal('down')])
export const HealthReady = StrictObject(
  {
    status: Type.Literal('ready'),
    checks: StrictObject({ postgres: DependencyState, redis: DependencyState }),
  },
  { title: 'HealthReady' },
)
