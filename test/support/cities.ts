import { migrateToLatest } from '@pilot/kit'
import { freshDatabase, serviceEnv, token } from '@pilot/testing'
import type { FastifyInstance } from 'fastify'
import { buildApp as buildGateway, gatewayService } from '../../services/gateway/src/app.ts'
import { readGatewayConfig } from '../../services/gateway/src/config.ts'
import { buildApp as buildIntake, intakeService } from '../../services/intake/src/app.ts'
import { readIntakeConfig } from '../../services/intake/src/config.ts'
import { buildApp as buildResidence, residenceService } from '../../services/residence/src/app.ts'
import { readResidenceConfig } from '../../services/residence/src/config.ts'
import { type CityPorts, profileOnFreePorts, type ServiceName } from './profile.ts'

export interface TestCity {
  id: string
  databaseUrl: string
  ports: Record<ServiceName, number>
  url: Record<ServiceName, string>
  env: (service: ServiceName) => Record<string, string>
  apps: Partial<Record<ServiceName, FastifyInstance>>
  start: (service: ServiceName, extraEnv?: Record<string, string>) => Promise<FastifyInstance>
  stop: (service: ServiceName) => Promise<void>
}

const builders = {
  residence: async (env: Record<string, string>) => {
    const app = await buildResidence(readResidenceConfig(env))
    await migrateToLatest(app.db, 'residence', residenceService.migrations)
    return app
  },
  intake: async (env: Record<string, string>) => {
    const app = await buildIntake(readIntakeConfig(env))
    await migrateToLatest(app.db, 'intake', intakeService.migrations)
    return app
  },
  gateway: async (env: Record<string, string>) => {
    const app = await buildGateway(readGatewayConfig(env))
    await migrateToLatest(app.db, 'gateway', gatewayService.migrations)
    return app
  },
}

/**
 * Real cities on loopback: for each, a fresh database and the three services listening on their own ports, with a
 * pilot profile rewritten so that every URL (services, gateways, JWKS) points at those ports. Services talk over real
 * HTTP; federation goes gateway to gateway.
 */
export async function startCities(
  ids: string[],
  extraEnv: Record<string, string> = {},
  options: {
    /** Changes to the pilot profile every city reads. */
    // biome-ignore lint/suspicious/noExplicitAny: a test edits whatever part of the profile it needs
    editProfile?: (profile: any) => void
    /** Variables for one city's services only, by city id. */
    cityEnv?: Record<string, Record<string, string>>
  } = {},
): Promise<Record<string, TestCity>> {
  const { path: profilePath, ports: allPorts } = await profileOnFreePorts(options.editProfile)
  const cities: Record<string, TestCity> = {}
  for (const id of ids) {
    const ports = allPorts[id] as CityPorts
    const url = {
      residence: `http://127.0.0.1:${ports.residence}`,
      intake: `http://127.0.0.1:${ports.intake}`,
      gateway: `http://127.0.0.1:${ports.gateway}`,
    }
    cities[id] = {
      id,
      databaseUrl: await freshDatabase(`city_${id}`),
      ports,
      url,
      apps: {},
      env: () => ({}),
      start: async () => {
        throw new Error('not configured yet')
      },
      stop: async () => {},
    }
  }
  for (const city of Object.values(cities)) {
    city.env = (service) =>
      serviceEnv(city.id, {
        PILOT_CONFIG: profilePath,
        DATABASE_URL: city.databaseUrl,
        PORT: String(city.ports[service]),
        DELIVERY_BACKOFF_BASE_MS: '100',
        DELIVERY_BACKOFF_MAX_MS: '1000',
        RELAY_INTERVAL_MS: '200',
        RELAY_RECHECK_SECONDS: '1',
        OUTBOX_RELAY_INTERVAL_MS: '200',
        OUTBOX_RESEND_AFTER_SECONDS: '5',
        PARTNER_JWKS_REFETCH_MIN_INTERVAL_MS: '0',
        ...extraEnv,
        ...options.cityEnv?.[city.id],
      })
    city.start = async (service, env = {}) => {
      const app = await builders[service]({ ...city.env(service), ...env })
      await app.listen({ host: '127.0.0.1', port: city.ports[service] })
      city.apps[service] = app
      return app
    }
    city.stop = async (service) => {
      await city.apps[service]?.close()
      delete city.apps[service]
    }
  }
  for (const city of Object.values(cities)) {
    for (const service of ['residence', 'gateway', 'intake'] as const) await city.start(service)
  }
  return cities
}

export async function stopCities(cities: Record<string, TestCity>): Promise<void> {
  for (const city of Object.values(cities)) {
    for (const service of ['intake', 'gateway', 'residence'] as const) await city.stop(service)
  }
}

/** Calls a city's service over HTTP as a user with `role`. */
export async function call(
  city: TestCity,
  service: ServiceName,
  method: string,
  path: string,
  role: 'caseworker' | 'reviewer' | 'operator' | 'auditor' | 'system',
  body?: unknown,
  headers: Record<string, string> = {},
  // biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON a service answered
): Promise<{ status: number; body: any }> {
  const isFeed = typeof body === 'string'
  const response = await fetch(`${city.url[service]}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${await token(city.id, [role], { subject: `${city.id}-${role}-1` })}`,
      ...(body === undefined ? {} : { 'content-type': isFeed ? 'application/x-ndjson' : 'application/json' }),
      ...headers,
    },
    body: body === undefined ? undefined : isFeed ? body : JSON.stringify(body),
  })
  const text = await response.text()
  let parsed: unknown = text
  try {
    parsed = JSON.parse(text)
  } catch {
    // not JSON
  }
  return { status: response.status, body: parsed }
}

export async function eventually<T>(
  probe: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let value = await probe()
  while (!done(value) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    value = await probe()
  }
  return value
}
