import { randomUUID } from 'node:crypto'
import type { Socket } from 'node:net'
import { Format, registerAjvFormats } from '@fastify/type-provider-typebox'
import { isValidDate, PROBLEM_TYPES } from '@pilot/schemas'
import closeWithGrace from 'close-with-grace'
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyPluginAsync,
  type FastifySchemaCompiler,
  type FastifySchemaValidationError,
  LogController,
} from 'fastify'
import pino, { type DestinationStream } from 'pino'
import type { TSchema } from 'typebox'
import { Compile } from 'typebox/compile'
import { Value } from 'typebox/value'
import { authPlugin } from './auth.ts'
import type { ServiceConfig } from './config.ts'
import { ConfigError } from './config-error.ts'
import { dbPlugin, type Migrations, migrateToLatest } from './db.ts'
import { healthPlugin } from './health.ts'
import { loggerOptions, requestLogger } from './logger.ts'
import { metricsPlugin } from './metrics.ts'
import { openApiPlugin } from './openapi.ts'
import { PROBLEM_CONTENT_TYPE, problemsPlugin, sendProblem } from './problems.ts'
import { redisPlugin } from './redis.ts'

registerAjvFormats()
// ajv-formats' `date` admits year 0000, which the civil-date arithmetic every handler uses refuses (a 500 for
// `asOf: "0000-01-01"`). A date is what that library calls one: a real day of 0001-01-01..9999-12-31.
Format.Set('date', isValidDate)

/** Whether a schema gives a default anywhere: then a value that passes as it is may still lack what Default adds. */
const givesDefaults = (schema: unknown): boolean =>
  typeof schema === 'object' &&
  schema !== null &&
  ('default' in schema || Object.values(schema).some((part) => givesDefaults(part)))

/**
 * TypeBox validation. Bodies are checked exactly as sent: no coercion, no defaults, unknown properties rejected by the
 * schemas. Query strings, params and headers arrive as strings, so they get their defaults and are converted first.
 */
const validatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const check = Compile(schema)
  // Headers, query strings and parameters are cloned, given their defaults and converted (strings to numbers, say)
  // before the check. For a value that passes as it is and a schema without defaults that would change nothing, so it
  // is checked first: on every request the request's headers went through all three, for a one-header schema.
  const asItIs = httpPart !== 'body' && !givesDefaults(schema)
  return (value: unknown) => {
    // JSON may escape a NUL ("\u0000") or half a surrogate pair ("\ud800"). PostgreSQL can store neither in text or
    // jsonb, and RFC 8785 canonical JSON (which signs applications and federation messages) refuses the second: a 400
    // here, naming the field, instead of a 500 from deep inside a handler.
    const unstorableAt = unstorableTextAt(value)
    if (unstorableAt !== undefined) {
      return {
        error: [
          {
            instancePath: unstorableAt,
            keyword: 'storableText',
            message: 'must not contain U+0000 (NUL) or an unpaired UTF-16 surrogate',
            params: {},
          },
        ] as unknown as FastifySchemaValidationError[],
      }
    }
    if (asItIs && check.Check(value)) return { value }
    const prepared = httpPart === 'body' ? value : Value.Convert(schema, Value.Default(schema, Value.Clone(value)))
    if (check.Check(prepared)) return { value: prepared }
    return { error: check.Errors(prepared) as unknown as FastifySchemaValidationError[] }
  }
}

// isWellFormed: no unpaired UTF-16 surrogate (a native scan, several times faster than a look-around expression).
const unstorable = (text: string) => text.includes('\u0000') || !text.isWellFormed()

/** Where a value sits in the walk below: its parent's place and its own key or index, for building its pointer. */
interface Place {
  parent: Place | undefined
  key: string | number
}

const pointerOf = (place: Place | undefined): string => {
  let pointer = ''
  for (let at = place; at; at = at.parent)
    pointer = `/${String(at.key).replaceAll('~', '~0').replaceAll('/', '~1')}${pointer}`
  return pointer
}

/**
 * The JSON Pointer of the first string (or key) in a parsed JSON value holding a NUL or an unpaired surrogate, if any.
 * Walks with its own stack: a body may nest ten thousand levels deep. Anything that is not plain JSON (a stream) is
 * skipped. Every request body passes through here, so a pointer is only built for the string it finds.
 */
export function unstorableTextAt(value: unknown): string | undefined {
  const stack: [unknown, Place | undefined][] = [[value, undefined]]
  while (stack.length > 0) {
    const [item, place] = stack.pop() as [unknown, Place | undefined]
    if (typeof item === 'string') {
      if (unstorable(item)) return pointerOf(place)
    } else if (Array.isArray(item)) {
      for (let index = item.length - 1; index >= 0; index--) stack.push([item[index], { parent: place, key: index }])
    } else if (item !== null && typeof item === 'object') {
      // Plain objects only: JSON.parse's, and the query string parser's (whose prototype has a null prototype).
      const prototype = Object.getPrototypeOf(item)
      if (prototype !== Object.prototype && prototype !== null && Object.getPrototypeOf(prototype) !== null) continue
      for (const key in item) {
        if (!Object.hasOwn(item, key)) continue
        if (unstorable(key)) return pointerOf({ parent: place, key })
        stack.push([(item as Record<string, unknown>)[key], { parent: place, key }])
      }
    }
  }
  return undefined
}

const CLIENT_ERRORS: Record<string, { status: number; title: string }> = {
  HPE_HEADER_OVERFLOW: { status: 431, title: 'Request header fields too large' },
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, title: 'Request timeout' },
}

/**
 * Requests Node's HTTP parser cannot read (a header over the size limit, a malformed request line, a bad chunk) never
 * reach Fastify's error handler; Fastify's own answer is plain JSON. This one is a problem like every other 4xx, and
 * the connection is closed after it since the parser cannot find where the next request would start.
 */
function clientErrorHandler(error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return
  const { status, title } = CLIENT_ERRORS[error.code ?? ''] ?? { status: 400, title: 'Malformed HTTP request' }
  const body = JSON.stringify({ type: PROBLEM_TYPES.badRequest, title, status, detail: error.message })
  // A HEAD answer carries no content (the client would read it as the start of the next answer). The request line
  // was read if the failing packet starts with it.
  const packet = (error as { rawPacket?: unknown }).rawPacket
  const head = Buffer.isBuffer(packet) && packet.toString('latin1', 0, 5) === 'HEAD '
  socket.end(
    `HTTP/1.1 ${status} ${title}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `Connection: close\r\n\r\n${head ? '' : body}`,
  )
}

/** What a service tells the kit about itself. */
export interface ServiceDefinition {
  name: ServiceConfig['service']
  title: string
  description: string
  version: string
  migrations: Migrations
}

export interface BuildOptions {
  /** Where log lines go; defaults to stdout. Tests pass a stream to read what was logged. */
  logStream?: DestinationStream
  /** False when the instance is only built to print its OpenAPI document: it then opens no connection. */
  connect?: boolean
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/

/**
 * Builds a service instance: infrastructure plugins first (errors, OpenAPI, metrics, database, Redis, health), then the
 * service's own plugin. Every service of every city is assembled here, so they behave alike.
 */
export async function buildServiceApp(
  definition: ServiceDefinition,
  config: ServiceConfig,
  servicePlugin: FastifyPluginAsync,
  options: BuildOptions = {},
): Promise<FastifyInstance> {
  const logger = pino(
    loggerOptions(config.logLevel, { service: definition.name, city: config.city }),
    options.logStream ??
      (config.logFile ? pino.destination({ dest: config.logFile, append: true, mkdir: true }) : pino.destination(1)),
  )
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: config.bodyLimitBytes,
    requestIdHeader: false,
    logController: new LogController({ requestIdLogLabel: 'requestId' }),
    childLoggerFactory: requestLogger,
    // A caller's X-Request-Id is kept (so one id follows a request across services) when it is well formed.
    genReqId: (request) => {
      const header = request.headers['x-request-id']
      return typeof header === 'string' && REQUEST_ID.test(header) ? header : randomUUID()
    },
    ajv: { customOptions: { removeAdditional: false } },
    clientErrorHandler,
    // A URL the router cannot decode (`/x/%ZZ`) is refused before routing; Fastify's own answer is plain JSON.
    frameworkErrors: (error, _request, reply) =>
      sendProblem(reply, {
        type: PROBLEM_TYPES.badRequest,
        title: 'Bad request',
        status: (error as { statusCode?: number }).statusCode ?? 400,
        detail: error.message,
      }),
  })
  app.setValidatorCompiler(validatorCompiler)
  // Callback-style hooks: on every request of every service, an async hook's promise is measurable overhead.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id)
    done()
  })

  await app.register(problemsPlugin)
  await app.register(openApiPlugin, {
    title: `${definition.title}`,
    description: definition.description,
    version: definition.version,
  })
  await app.register(metricsPlugin, { service: definition.name, city: config.city, token: config.metricsToken })
  await app.register(dbPlugin, {
    url: config.databaseUrl,
    schema: definition.name,
    poolMax: config.databasePoolMax,
    applicationName: `${config.city}-${definition.name}`,
  })
  await app.register(redisPlugin, {
    url: config.redisUrl,
    prefix: config.redisPrefix,
    connectionName: `${config.city}-${definition.name}`,
    connect: options.connect,
  })
  await app.register(healthPlugin)
  await app.register(authPlugin, { city: config.city, ...config.auth })
  await app.register(servicePlugin)
  return app
}

export type AppFactory<C extends ServiceConfig> = (config: C, options?: BuildOptions) => Promise<FastifyInstance>

function exitOnConfigError(error: unknown): never {
  if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`)
    process.exit(78)
  }
  throw error
}

/**
 * The body of every service's server.ts: read configuration (exit 78 naming the variable when it is wrong), build,
 * migrate when asked, listen, and on SIGINT/SIGTERM stop accepting, finish in-flight work and close every pool.
 */
export async function runService<C extends ServiceConfig>(
  definition: ServiceDefinition,
  readConfig: () => C,
  build: AppFactory<C>,
): Promise<FastifyInstance> {
  let config: C
  try {
    config = readConfig()
  } catch (error) {
    exitOnConfigError(error)
  }
  const app = await build(config)
  if (config.migrateOnStart) {
    const { applied } = await migrateToLatest(app.db, definition.name, definition.migrations)
    app.log.info({ applied }, 'migrations applied')
  }
  closeWithGrace({ delay: config.shutdownGraceMs }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'shutting down after an unexpected error')
    else app.log.info({ signal }, 'shutting down')
    await app.close()
  })
  await app.listen({ host: config.host, port: config.port })
  return app
}

/** The body of every service's `migrate` command. */
export async function runMigrateCommand<C extends ServiceConfig>(
  definition: ServiceDefinition,
  readConfig: () => C,
  build: AppFactory<C>,
): Promise<void> {
  let config: C
  try {
    config = readConfig()
  } catch (error) {
    exitOnConfigError(error)
  }
  const app = await build(config, { connect: false })
  try {
    const { applied } = await migrateToLatest(app.db, definition.name, definition.migrations)
    process.stdout.write(
      `${config.city} ${definition.name}: ${applied.length === 0 ? 'already up to date' : `applied ${applied.join(', ')}`}\n`,
    )
  } finally {
    await app.close()
  }
}
