import type { FastifyRequest } from 'fastify'
import type { LoggerOptions } from 'pino'

/**
 * Personal data must never reach a log line (DESIGN.md, "Runtime contract"). Two layers:
 *
 * 1. Keys that carry personal data are censored wherever they appear in a logged object, up to four levels deep.
 * 2. Every serialized line is scrubbed for anything shaped like a resident identity number or a mainland mobile number,
 *    so a number that arrives where nobody expected it (a URL, an error message, a third-party library's log) is caught
 *    too. Names and addresses have no recognisable shape, which is why request bodies are never logged at all.
 */
export const PERSONAL_DATA_KEYS = [
  'idNumber',
  'identityNumber',
  'name',
  'fullName',
  'phone',
  'mobile',
  'address',
  'applicant',
  'members',
  'authorization',
  'cookie',
] as const

const CENSOR = '[REDACTED]'

function redactPaths(): string[] {
  const paths: string[] = []
  for (const key of PERSONAL_DATA_KEYS) {
    paths.push(key, `*.${key}`, `*.*.${key}`, `*.*.*.${key}`)
  }
  paths.push('req.headers.authorization', 'req.headers.cookie')
  return paths
}

// GB 11643 identity numbers (17 digits and a check character) and mainland mobile numbers, wherever they stand except
// inside a longer run of digits (a millisecond timestamp). Letters around them do not protect them: `id=…X&` or
// `…/cases` must be caught. The cost is that a hex digest with a long run of digits may be censored too.
const ID_NUMBER = /(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])/g
const MOBILE_NUMBER = /(?<![0-9])(?:\+?86[- ]?)?1[3-9][0-9]{9}(?![0-9])/g

export function scrubPersonalData(line: string): string {
  return line.replace(ID_NUMBER, CENSOR).replace(MOBILE_NUMBER, CENSOR)
}

/**
 * A request's own fields for its log lines (its id, and its caller once authenticated), kept on the request's logger.
 *
 * Not pino bindings: with wildcard redaction paths, pino runs every binding value through the redactor when a child is
 * made or its bindings are set — parsing all of the paths above each time, about 10 µs — and Fastify makes a child for
 * every request, though at the usual level most requests never log a line. These fields are added to a line by the
 * mixin below only when a line is written (and redacted with the rest of it then).
 */
const REQUEST_LOG_FIELDS = Symbol('pilot.requestLogFields')
type WithRequestFields = { [REQUEST_LOG_FIELDS]?: Record<string, string> }

/** Fastify's childLoggerFactory: a request's logger, carrying its bindings (the request id) as request fields. */
export function requestLogger<L extends { child(bindings: object, options?: object): L }>(
  logger: L,
  bindings: Record<string, string>,
  options: object,
): L {
  const child = logger.child({}, options) as L & WithRequestFields
  child[REQUEST_LOG_FIELDS] = { ...bindings }
  return child
}

/** Adds fields to every later line of a request's logger (and of its children); bindings for any other logger. */
export function addRequestLogFields(logger: object, fields: Record<string, string>): void {
  const own = (logger as WithRequestFields)[REQUEST_LOG_FIELDS]
  if (own) Object.assign(own, fields)
  else (logger as { setBindings(bindings: object): void }).setBindings(fields)
}

export function loggerOptions(level: string, bindings: Record<string, string>): LoggerOptions {
  return {
    level,
    base: { ...bindings, pid: process.pid },
    // A fresh object each line: pino merges the line's own fields into what the mixin returns.
    mixin: (_object, _level, logger) => ({ ...(logger as WithRequestFields)[REQUEST_LOG_FIELDS] }),
    redact: { paths: redactPaths(), censor: CENSOR },
    hooks: { streamWrite: scrubPersonalData },
    timestamp: () => `,"time":"${new Date().toISOString()}"`,
    serializers: {
      // Headers are left out on purpose: they carry bearer tokens and, from some clients, personal data.
      req: (req: FastifyRequest) => ({ method: req.method, url: req.url, remoteAddress: req.ip }),
      res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
    },
  }
}
