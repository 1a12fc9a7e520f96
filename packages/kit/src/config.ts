import { CITY_IDS, type CityId, type CityProfile, type PilotProfile, type ServiceName } from '@pilot/schemas'
import { type Static, type TObject, type TProperties, Type } from 'typebox'
import { Value } from 'typebox/value'
import { ConfigError } from './config-error.ts'
import { loadPilotProfile } from './pilot-profile.ts'
import { readTokenFile } from './secrets.ts'

export { ConfigError }

/**
 * Environment variables every service reads. Each carries a description: it is what the operator sees when the
 * variable is wrong, and what the README's configuration reference is written from.
 */
export const BaseEnv = {
  CITY: Type.Union(
    CITY_IDS.map((id) => Type.Literal(id)),
    { description: `Which city this process serves: ${CITY_IDS.join(', ')}` },
  ),
  PORT: Type.Optional(
    Type.Integer({ minimum: 0, maximum: 65535, description: "TCP port; defaults to the pilot profile's port" }),
  ),
  HOST: Type.String({
    default: '127.0.0.1',
    minLength: 1,
    description: 'Interface to listen on (0.0.0.0 in containers)',
  }),
  DATABASE_URL: Type.String({
    pattern: '^postgres(ql)?://',
    description:
      "PostgreSQL connection URL of this city's database, e.g. postgres://postgres@127.0.0.1:5432/pilot_shenzhen",
  }),
  DATABASE_POOL_MAX: Type.Integer({ default: 10, minimum: 1, maximum: 200, description: 'Connections per process' }),
  REDIS_URL: Type.String({ pattern: '^rediss?://', description: 'Redis URL, e.g. redis://127.0.0.1:6379/0' }),
  REDIS_PREFIX: Type.Optional(
    Type.String({ pattern: '^[A-Za-z0-9:_-]{1,64}$', description: 'Key prefix for queues; defaults to pilot:<CITY>' }),
  ),
  PILOT_CONFIG: Type.String({ minLength: 1, description: 'Path of the pilot profile, e.g. infra/pilot.yaml' }),
  AUTH_ISSUER: Type.String({ minLength: 1, description: "Issuer (iss) of the city identity provider's tokens" }),
  AUTH_AUDIENCE: Type.String({ minLength: 1, description: 'Audience (aud) the tokens must carry for this city' }),
  AUTH_JWKS_URL: Type.String({
    pattern: '^(https?|file):',
    description: "The identity provider's JWKS: an https URL, or a file: URL for the development identity provider",
  }),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((level) => Type.Literal(level)),
    { default: 'info', description: 'pino log level' },
  ),
  LOG_FILE: Type.Optional(
    Type.String({ minLength: 1, description: 'Append JSON log lines to this file instead of standard output' }),
  ),
  SERVICE_MODE: Type.Union([Type.Literal('all'), Type.Literal('api'), Type.Literal('worker')], {
    default: 'all',
    description: 'api: serve HTTP only; worker: run queue workers (and health) only; all: both. Scale them apart.',
  }),
  MIGRATE_ON_START: Type.Boolean({ default: false, description: 'Run pending database migrations before listening' }),
  BODY_LIMIT_BYTES: Type.Integer({ default: 1048576, minimum: 1024, description: 'Largest request body accepted' }),
  METRICS_TOKEN_FILE: Type.Optional(
    Type.String({
      minLength: 1,
      description:
        'A file holding the bearer token Prometheus must send for GET /metrics (at least 32 characters); unset, ' +
        '/metrics is open to whoever reaches the port',
    }),
  ),
  SHUTDOWN_GRACE_MS: Type.Integer({
    default: 10000,
    minimum: 0,
    description: 'How long in-flight requests and jobs may take to finish after SIGTERM',
  }),
} satisfies TProperties

const BaseEnvSchema = Type.Object(BaseEnv)
type BaseEnv = Static<typeof BaseEnvSchema>

/**
 * How a service caches the other pilot cities' JWKS (the gateway for messages and receipts, the intake service for the
 * residence attestations inside transfers): the same variables, defaults and meaning in both.
 */
export const PartnerJwksEnv = {
  PARTNER_JWKS_CACHE_SECONDS: Type.Integer({
    default: 300,
    minimum: 1,
    description: "How long a partner's JWKS is trusted before it is fetched again",
  }),
  PARTNER_JWKS_REFETCH_MIN_INTERVAL_MS: Type.Integer({
    default: 10_000,
    minimum: 0,
    description: "An unknown kid triggers a fetch of the partner's JWKS at most this often",
  }),
}

/** The PartnerKeys options from variables read with PartnerJwksEnv. */
export function partnerJwksOptions(env: Static<TObject<typeof PartnerJwksEnv>>): {
  cacheSeconds: number
  refetchMinIntervalMs: number
} {
  return {
    cacheSeconds: env.PARTNER_JWKS_CACHE_SECONDS,
    refetchMinIntervalMs: env.PARTNER_JWKS_REFETCH_MIN_INTERVAL_MS,
  }
}

export interface ServiceConfig {
  service: ServiceName
  city: CityId
  host: string
  port: number
  databaseUrl: string
  databasePoolMax: number
  redisUrl: string
  redisPrefix: string
  auth: { issuer: string; audience: string; jwksUrl: string }
  logLevel: BaseEnv['LOG_LEVEL']
  logFile: string | undefined
  migrateOnStart: boolean
  mode: 'all' | 'api' | 'worker'
  bodyLimitBytes: number
  shutdownGraceMs: number
  /** The bearer token GET /metrics requires, when one is configured. */
  metricsToken: string | undefined
  pilot: PilotProfile
  pilotConfigPath: string
  /** This city's entry of the pilot profile. */
  cityProfile: CityProfile
}

type Env = Record<string, string | undefined>

/**
 * Reads and checks the environment against `schema`. Empty strings count as unset, so `FOO=` in a compose file falls
 * back to the default rather than failing a pattern.
 */
export function parseEnv<T extends TObject>(schema: T, env: Env): Static<T> {
  const raw: Record<string, unknown> = {}
  for (const key of Object.keys(schema.properties)) {
    const value = env[key]
    if (value !== undefined && value !== '') raw[key] = value
  }
  const withDefaults = Value.Default(schema, raw)
  const converted = Value.Convert(schema, withDefaults)
  if (Value.Check(schema, converted)) return converted as Static<T>

  const messages = new Map<string, string>()
  for (const error of Value.Errors(schema, converted)) {
    const missing = (error.params as { requiredProperties?: string[] }).requiredProperties
    if (error.keyword === 'required' && missing) {
      for (const name of missing) {
        if (!messages.has(name)) messages.set(name, `${name} is required: ${describe(schema, name)}`)
      }
      continue
    }
    const name = error.instancePath.replace(/^\//, '').split('/')[0] ?? ''
    if (name && !messages.has(name)) {
      messages.set(
        name,
        `${name}=${JSON.stringify(env[name])} is invalid (${error.message}): ${describe(schema, name)}`,
      )
    }
  }
  if (messages.size === 0) messages.set('(environment)', 'configuration does not match its schema')
  throw new ConfigError(`Invalid configuration:\n  ${[...messages.values()].join('\n  ')}`)
}

function describe(schema: TObject, name: string): string {
  const property = schema.properties[name] as { description?: string } | undefined
  return property?.description ?? 'see the README configuration reference'
}

/**
 * Loads the configuration every service shares plus the service's own variables (`extra`). Throws ConfigError naming
 * each bad variable; `runService` turns that into a message and a non-zero exit.
 */
export function loadConfig<E extends TProperties>(
  service: ServiceName,
  extra: E,
  env: Env = process.env,
): ServiceConfig & { env: Static<TObject<E>> } {
  const schema = Type.Object({ ...BaseEnv, ...extra })
  const parsed = parseEnv(schema, env) as BaseEnv & Static<TObject<E>>
  const pilot = loadPilotProfile(parsed.PILOT_CONFIG)
  const cityProfile = pilot.cities.find((city) => city.id === parsed.CITY)
  if (!cityProfile) {
    throw new ConfigError(
      `Invalid configuration:\n  CITY=${parsed.CITY} is not a city of the pilot profile ${parsed.PILOT_CONFIG}`,
    )
  }
  return {
    service,
    city: parsed.CITY,
    host: parsed.HOST,
    port: parsed.PORT ?? cityProfile.services[service].port,
    databaseUrl: parsed.DATABASE_URL,
    databasePoolMax: parsed.DATABASE_POOL_MAX,
    redisUrl: parsed.REDIS_URL,
    redisPrefix: parsed.REDIS_PREFIX ?? `pilot:${parsed.CITY}`,
    auth: { issuer: parsed.AUTH_ISSUER, audience: parsed.AUTH_AUDIENCE, jwksUrl: parsed.AUTH_JWKS_URL },
    logLevel: parsed.LOG_LEVEL,
    logFile: parsed.LOG_FILE,
    migrateOnStart: parsed.MIGRATE_ON_START,
    mode: parsed.SERVICE_MODE,
    bodyLimitBytes: parsed.BODY_LIMIT_BYTES,
    shutdownGraceMs: parsed.SHUTDOWN_GRACE_MS,
    metricsToken: parsed.METRICS_TOKEN_FILE
      ? readTokenFile('METRICS_TOKEN_FILE', parsed.METRICS_TOKEN_FILE)
      : undefined,
    pilot,
    pilotConfigPath: parsed.PILOT_CONFIG,
    cityProfile,
    env: parsed,
  }
}
