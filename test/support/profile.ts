import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, pilotConfigPath, repoRoot } from '@pilot/testing'
import { parse, stringify } from 'yaml'

export type ServiceName = 'residence' | 'intake' | 'gateway'
export type CityPorts = Record<ServiceName, number>

/**
 * A copy of the pilot profile with every service of every city on a free loopback port (and every URL — services,
 * gateways, JWKS — pointing there), so a test's pilot never meets a developer's pilot on the fixed ports.
 */
export async function profileOnFreePorts(
  // biome-ignore lint/suspicious/noExplicitAny: a test edits whatever part of the profile it needs
  edit: (profile: any) => void = () => {},
): Promise<{ path: string; ports: Record<string, CityPorts> }> {
  const profile = parse(readFileSync(pilotConfigPath, 'utf8'))
  edit(profile)
  const ports: Record<string, CityPorts> = {}
  for (const entry of profile.cities as {
    id: string
    services: Record<string, unknown>
    federation: Record<string, string>
  }[]) {
    const cityPorts = { residence: await freePort(), intake: await freePort(), gateway: await freePort() }
    for (const service of ['residence', 'intake', 'gateway'] as const) {
      entry.services[service] = { port: cityPorts[service], url: `http://127.0.0.1:${cityPorts[service]}` }
    }
    entry.federation.gatewayUrl = `http://127.0.0.1:${cityPorts.gateway}`
    entry.federation.jwksUrl = `http://127.0.0.1:${cityPorts.gateway}/.well-known/jwks.json`
    ports[entry.id] = cityPorts
  }
  const dir = await mkdtemp(join(tmpdir(), 'pilot-profile-'))
  const path = join(dir, 'pilot.yaml')
  writeFileSync(path, stringify(profile))
  // Services find the working-day calendar beside the profile, as they do beside infra/pilot.yaml.
  mkdirSync(join(dir, 'data'))
  copyFileSync(join(repoRoot, 'infra/data/cn-workdays.json'), join(dir, 'data/cn-workdays.json'))
  return { path, ports }
}
