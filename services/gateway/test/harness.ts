import { readFileSync, writeFileSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { migrateToLatest, type QueueRegistry } from '@pilot/kit'
import type { FederationQueues } from '@pilot/schemas'
import { freePort, freshDatabase, pilotConfigPath, serviceEnv } from '@pilot/testing'
import type { FastifyInstance } from 'fastify'
import { parse, stringify } from 'yaml'
import { buildApp, gatewayService } from '../src/app.ts'
import { readGatewayConfig } from '../src/config.ts'

export interface CityGateway {
  city: string
  port: number
  url: string
  databaseUrl: string
  env: Record<string, string>
  app?: FastifyInstance
}

/**
 * Real gateways of several cities on loopback: each with its own database and Redis prefix, and a pilot profile
 * rewritten so that every city's gateway URL and JWKS URL point at the port the test gave it.
 */
export async function gatewayCities(
  cities: string[],
  // biome-ignore lint/suspicious/noExplicitAny: tests edit the parsed YAML profile freely
  edit: (profile: any) => void = () => {},
): Promise<{ gateways: Record<string, CityGateway>; profilePath: string }> {
  const profile = parse(readFileSync(pilotConfigPath, 'utf8'))
  const gateways: Record<string, CityGateway> = {}
  for (const city of cities) {
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    const entry = profile.cities.find((candidate: { id: string }) => candidate.id === city)
    entry.services.gateway = { port, url }
    entry.federation.gatewayUrl = url
    entry.federation.jwksUrl = `${url}/.well-known/jwks.json`
    gateways[city] = { city, port, url, databaseUrl: await freshDatabase(`gw_${city}`), env: {} }
  }
  edit(profile)
  const profilePath = join(await mkdtemp(join(tmpdir(), 'pilot-profile-')), 'pilot.yaml')
  writeFileSync(profilePath, stringify(profile))
  for (const gateway of Object.values(gateways)) {
    gateway.env = serviceEnv(gateway.city, {
      PILOT_CONFIG: profilePath,
      DATABASE_URL: gateway.databaseUrl,
      PORT: String(gateway.port),
      DELIVERY_BACKOFF_BASE_MS: '100',
      DELIVERY_BACKOFF_MAX_MS: '1000',
      RELAY_INTERVAL_MS: '200',
      RELAY_RECHECK_SECONDS: '1',
      PARTNER_JWKS_REFETCH_MIN_INTERVAL_MS: '0',
    })
  }
  return { gateways, profilePath }
}

/** Builds, migrates and starts a city's gateway on its port (real HTTP). */
export async function startGateway(gateway: CityGateway, env: Record<string, string> = {}): Promise<FastifyInstance> {
  const app = await buildApp(readGatewayConfig({ ...gateway.env, ...env }))
  await migrateToLatest(app.db, 'gateway', gatewayService.migrations)
  await app.listen({ host: '127.0.0.1', port: gateway.port })
  gateway.app = app
  return app
}

/** Shenzhen's and Zhongshan's gateways, both started: the pair most gateway tests send messages between. */
export async function startTwoGateways(): Promise<{ shenzhen: CityGateway; zhongshan: CityGateway }> {
  const { gateways } = await gatewayCities(['shenzhen', 'zhongshan'])
  const shenzhen = gateways.shenzhen as CityGateway
  const zhongshan = gateways.zhongshan as CityGateway
  await startGateway(shenzhen)
  await startGateway(zhongshan)
  return { shenzhen, zhongshan }
}

export function queuesOf(app: FastifyInstance): QueueRegistry<FederationQueues> {
  return app.queues as unknown as QueueRegistry<FederationQueues>
}

export async function until<T>(probe: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let value = await probe()
  while (!done(value) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    value = await probe()
  }
  return value
}
