import { readFileSync } from 'node:fs'
import { type CityProfile, PilotProfile } from '@pilot/schemas'
import type { KeyPublisher } from '@pilot/signing'
import { Value } from 'typebox/value'
import { parse as parseYaml } from 'yaml'
import { ConfigError } from './config-error.ts'

/**
 * Reads and validates the pilot profile. Beyond the schema it checks what a schema cannot: city ids and ports are
 * unique, so two services never fight over a port and a message is never routed to the wrong city.
 */
export function loadPilotProfile(path: string): PilotProfile {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    throw new ConfigError(`Invalid configuration:\n  PILOT_CONFIG=${path} cannot be read (${(error as Error).message})`)
  }
  let document: unknown
  try {
    document = parseYaml(text)
  } catch (error) {
    throw new ConfigError(`Pilot profile ${path} is not valid YAML: ${(error as Error).message}`)
  }
  return validatePilotProfile(document, path)
}

export function validatePilotProfile(document: unknown, source = 'pilot profile'): PilotProfile {
  if (!Value.Check(PilotProfile, document)) {
    const problems = Value.Errors(PilotProfile, document)
      .slice(0, 10)
      .map((error) => `${error.instancePath || '/'}: ${error.message}`)
    throw new ConfigError(`Pilot profile ${source} is invalid:\n  ${problems.join('\n  ')}`)
  }
  const profile = document as PilotProfile
  const problems: string[] = []
  const ids = new Set<string>()
  const ports = new Map<number, string>()
  for (const city of profile.cities) {
    if (ids.has(city.id)) problems.push(`/cities: city ${city.id} appears twice`)
    ids.add(city.id)
    for (const [service, endpoint] of Object.entries(city.services)) {
      const owner = ports.get(endpoint.port)
      if (owner)
        problems.push(`/cities/${city.id}/services/${service}: port ${endpoint.port} is already used by ${owner}`)
      ports.set(endpoint.port, `${city.id} ${service}`)
    }
  }
  if (problems.length > 0) throw new ConfigError(`Pilot profile ${source} is invalid:\n  ${problems.join('\n  ')}`)
  return profile
}

/**
 * Where each other pilot city publishes its keys, with the kids `self`'s operators revoked for it (`revokedKids`): what
 * PartnerKeys needs, for the gateway (messages, receipts) and the intake service (residence attestations) alike.
 */
export function keyPublishersFor(pilot: PilotProfile, self: CityProfile): Map<string, KeyPublisher> {
  const publishers = new Map<string, KeyPublisher>()
  for (const city of pilot.cities) {
    if (city.id === self.id) continue
    publishers.set(city.id, {
      id: city.id,
      jwksUrl: city.federation.jwksUrl,
      revokedKids: new Set(self.federation.revokedKids?.[city.id] ?? []),
    })
  }
  return publishers
}
