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

export function loggerOptions(level: string, bindings: Record<string, string>): LoggerOptions {
  return {
    level,
    base: { ...bindings, pid: process.pid },
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
