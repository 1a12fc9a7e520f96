import { readFileSync, writeFileSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { migrateToLatest } from '@pilot/kit'
import { checkCharacter } from '@pilot/schemas'
import { pilotConfigPath, serviceEnv, token } from '@pilot/testing'
import type { FastifyInstance } from 'fastify'
import { parse, stringify } from 'yaml'
import { buildApp, residenceService } from '../src/app.ts'
import { readResidenceConfig } from '../src/config.ts'

/** A valid identity number for a person born on `birth` (YYYYMMDD) with order code `order`. */
export function idNumber(region: string, birth: string, order: number): string {
  const first17 = `${region}${birth}${String(order).padStart(3, '0')}`
  return first17 + checkCharacter(first17)
}

/** A copy of the pilot profile with one city's residence policy changed. */
export async function profileWith(city: string, residencePolicy: Record<string, unknown>): Promise<string> {
  const profile = parse(readFileSync(pilotConfigPath, 'utf8'))
  const entry = profile.cities.find((candidate: { id: string }) => candidate.id === city)
  entry.policy.residence = { ...entry.policy.residence, ...residencePolicy }
  const path = join(await mkdtemp(join(tmpdir(), 'pilot-profile-')), 'pilot.yaml')
  writeFileSync(path, stringify(profile))
  return path
}

export async function residenceApp(city = 'shenzhen', env: Record<string, string> = {}): Promise<FastifyInstance> {
  const app = await buildApp(readResidenceConfig(serviceEnv(city, env)))
  await migrateToLatest(app.db, 'residence', residenceService.migrations)
  return app
}

/** Posts a feed to the import of `records` (residence evidence unless told) as an operator of `city`. */
export async function importFeed(
  app: FastifyInstance,
  city: string,
  body: string,
  contentType = 'application/x-ndjson',
  records: 'evidence' | 'registrations' = 'evidence',
) {
  return app.inject({
    method: 'POST',
    url: `/v1/residence/${records}:import`,
    headers: { authorization: `Bearer ${await token(city, ['operator'])}`, 'content-type': contentType },
    payload: body,
  })
}

export function ndjson(rows: object[]): string {
  return `${rows.map((row) => JSON.stringify(row)).join('\n')}\n`
}
