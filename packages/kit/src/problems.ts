import { PROBLEM_TYPES, type Problem, type ValidationIssue } from '@pilot/schemas'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'

export const PROBLEM_CONTENT_TYPE = 'application/problem+json'

/**
 * An error that knows its RFC 9457 representation. Domain code throws these (or the helpers below); the error handler
 * sends them as they are. Anything else that escapes a handler is a 500 whose details stay in the log.
 */
export class HttpProblem extends Error {
  readonly status: number
  readonly type: string
  readonly title: string
  readonly extensions: Record<string, unknown>

  constructor(status: number, type: string, title: string, detail?: string, extensions: Record<string, unknown> = {}) {
    super(detail ?? title)
    this.status = status
    this.type = type
    this.title = title
    this.extensions = extensions
  }

  /** The problem document this error is answered with (RFC 9457 members and its extensions). */
  asProblem(): Problem & Record<string, unknown> {
    return { ...this.extensions, type: this.type, title: this.title, status: this.status, detail: this.message }
  }
}

export const problems = {
  notFound: (detail: string) => new HttpProblem(404, PROBLEM_TYPES.notFound, 'Not found', detail),
  conflict: (detail: string, extensions?: Record<string, unknown>) =>
    new HttpProblem(409, PROBLEM_TYPES.conflict, 'Conflict', detail, extensions),
  unauthorized: (detail: string) => new HttpProblem(401, PROBLEM_TYPES.unauthorized, 'Unauthorized', detail),
  forbidden: (detail: string) => new HttpProblem(403, PROBLEM_TYPES.forbidden, 'Forbidden', detail),
  badRequest: (detail: string) => new HttpProblem(400, PROBLEM_TYPES.badRequest, 'Bad request', detail),
  /** A field that passed its schema but fails a rule the schema cannot express (a checksum, a date order). */
  invalidField: (pointer: string, detail: string, part = 'body') =>
    new HttpProblem(400, PROBLEM_TYPES.validation, 'Request validation failed', `${part}${pointer}: ${detail}`, {
      errors: [{ in: part, pointer, detail }],
    }),
}

interface SchemaError {
  instancePath?: string
  keyword?: string
  message?: string
  params?: Record<string, unknown>
}

/** Turns validator errors into one entry per failing field, with a JSON Pointer a client can act on. */
export function validationIssues(part: string, errors: SchemaError[]): ValidationIssue[] {
  const issues: ValidationIssue[] = []
  for (const error of errors) {
    const path = error.instancePath ?? ''
    const params = error.params ?? {}
    if (error.keyword === 'additionalProperties') {
      const names = (params.additionalProperties as string[] | undefined) ?? [params.additionalProperty as string]
      for (const name of names.filter(Boolean)) {
        issues.push({ in: part, pointer: `${path}/${escapePointer(name)}`, detail: 'unknown property' })
      }
    } else if (error.keyword === 'required') {
      const names = (params.requiredProperties as string[] | undefined) ?? [params.missingProperty as string]
      for (const name of names.filter(Boolean)) {
        issues.push({ in: part, pointer: `${path}/${escapePointer(name)}`, detail: 'is required' })
      }
    } else {
      issues.push({ in: part, pointer: path, detail: error.message ?? 'is invalid' })
    }
  }
  return dedupe(issues)
}

function escapePointer(segment: string): string {
  return segment.replaceAll('~', '~0').replaceAll('/', '~1')
}

function dedupe(issues: ValidationIssue[]): ValidationIssue[] {
  const seen = new Set<string>()
  return issues.filter((issue) => {
    const key = `${issue.in}${issue.pointer}${issue.detail}`
    if (seen.has(key)) return false
    seen.add(key)
    return true
  })
}

export function sendProblem(reply: FastifyReply, problem: Problem & Record<string, unknown>): FastifyReply {
  return reply
    .status(problem.status)
    .type(PROBLEM_CONTENT_TYPE)
    .send({ ...problem, requestId: reply.request.id })
}

/** Sends an HttpProblem directly, for places that bypass the error handler (a third-party plugin's own scope). */
export function sendHttpProblem(reply: FastifyReply, error: HttpProblem): FastifyReply {
  return sendProblem(reply, {
    ...error.extensions,
    type: error.type,
    title: error.title,
    status: error.status,
    detail: error.message,
  })
}

/** Maps Fastify's own client errors (parsing, content type, size) to stable problem types. */
const FASTIFY_CLIENT_ERRORS: Record<string, { type: string; title: string }> = {
  FST_ERR_CTP_INVALID_JSON_BODY: { type: PROBLEM_TYPES.malformedJson, title: 'Malformed JSON body' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { type: PROBLEM_TYPES.malformedJson, title: 'Empty JSON body' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { type: PROBLEM_TYPES.unsupportedMediaType, title: 'Unsupported media type' },
  FST_ERR_CTP_BODY_TOO_LARGE: { type: PROBLEM_TYPES.payloadTooLarge, title: 'Request body too large' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { type: PROBLEM_TYPES.badRequest, title: 'Invalid Content-Length' },
}

function toProblem(error: FastifyError, request: FastifyRequest): Problem & Record<string, unknown> {
  if (error instanceof HttpProblem) return error.asProblem()
  if (error.validation) {
    const part = error.validationContext ?? 'body'
    const errors = validationIssues(part, error.validation as SchemaError[])
    return {
      type: PROBLEM_TYPES.validation,
      title: 'Request validation failed',
      status: 400,
      detail: errors.map((issue) => `${issue.in}${issue.pointer || '/'}: ${issue.detail}`).join('; '),
      errors,
    }
  }
  const known = error.code ? FASTIFY_CLIENT_ERRORS[error.code] : undefined
  if (known) {
    return { ...known, status: error.statusCode ?? 400, detail: error.message }
  }
  if (error instanceof SyntaxError) {
    return { type: PROBLEM_TYPES.malformedJson, title: 'Malformed JSON body', status: 400, detail: error.message }
  }
  const status = error.statusCode ?? 500
  if (status === 429) {
    return { type: PROBLEM_TYPES.tooManyRequests, title: 'Too many requests', status, detail: error.message }
  }
  if (status >= 400 && status < 500) {
    return { type: PROBLEM_TYPES.badRequest, title: 'Bad request', status, detail: error.message }
  }
  request.log.error({ err: error }, 'unexpected error')
  return {
    type: PROBLEM_TYPES.internal,
    title: 'Internal error',
    status: 500,
    detail: 'The request failed unexpectedly. Quote the request id to an operator.',
  }
}

/** Installs the problem+json error and not-found handlers for the whole instance. */
export const problemsPlugin = fp(
  async (app: FastifyInstance) => {
    app.setErrorHandler((error: FastifyError, request, reply) => {
      const problem = toProblem(error, request)
      if (problem.status < 500)
        request.log.info({ problemType: problem.type, status: problem.status }, 'request refused')
      return sendProblem(reply, problem)
    })
    app.setNotFoundHandler((request, reply) =>
      sendProblem(reply, {
        type: PROBLEM_TYPES.notFound,
        title: 'Not found',
        status: 404,
        detail: `No route ${request.method} ${request.routeOptions.url ?? request.url.split('?')[0]}`,
      }),
    )
  },
  { name: 'problems' },
)
