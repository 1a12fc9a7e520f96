import { randomUUID } from 'node:crypto'
import { registerAjvFormats } from '@fastify/type-provider-typebox'
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
import { loggerOptions } from './logger.ts'
import { metricsPlugin } from './metrics.ts'
import { openApiPlugin } from './openapi.ts'
import { problemsPlugin } from './problems.ts'
import { redisPlugin } from './redis.ts'

registerAjvFormats()

/**
 * TypeBox validation. Bodies are checked exactly as sent: no coercion, no defaults, unknown properties rejected by the
 * schemas. Query strings, params and headers arrive as strings, so they get their defaults and are converted first.
 */
const validatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const check = Compile(schema)
  return (value: unknown) => {
    const prepared = httpPart === 'body' ? value : Value.Convert(schema, Value.Default(schema, Value.Clone(value)))
    if (check.Check(prepared)) return { value: prepared }
    return { error: check.Errors(prepared) as unknown as FastifySchemaValidationError[] }
  }
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
    // A caller's X-Request-Id is kept (so one id follows a request across services) when it is well formed.
    genReqId: (request) => {
      const header = request.headers['x-request-id']
      return typeof header === 'string' && REQUEST_ID.test(header) ? header : randomUUID()
    },
    ajv: { customOptions: { removeAdditional: false } },
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
  await app.register(metricsPlugin, { service: definition.name, city: config.city })
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
