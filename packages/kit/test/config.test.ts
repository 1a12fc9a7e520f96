import { readFileSync } from 'node:fs'
import { pilotConfigPath } from '@pilot/testing'
import { Type } from 'typebox'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { ConfigError, loadConfig, validatePilotProfile } from '../src/index.ts'

const good = {
  CITY: 'zhuhai',
  DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/pilot_zhuhai',
  REDIS_URL: 'redis://127.0.0.1:6379',
  PILOT_CONFIG: pilotConfigPath,
  AUTH_ISSUER: 'https://idp.zhuhai.pilot.invalid',
  AUTH_AUDIENCE: 'pilot-zhuhai',
  AUTH_JWKS_URL: 'https://idp.zhuhai.pilot.invalid/jwks.json',
}

function configError(env: Record<string, string | undefined>): string {
  try {
    loadConfig('intake', { REVIEW_BATCH: Type.Integer({ minimum: 1, description: 'cases per batch' }) }, env)
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError)
    return (error as Error).message
  }
  throw new Error('configuration was accepted')
}

describe('configuration from the environment', () => {
  it('reads a good environment, taking the port from the pilot profile', () => {
    const config = loadConfig('intake', {}, good)
    expect(config).toMatchObject({ city: 'zhuhai', port: 7202, host: '127.0.0.1', redisPrefix: 'pilot:zhuhai' })
    expect(config.cityProfile.regionCode).toBe('440400')
  })

  it('converts numbers and booleans', () => {
    const config = loadConfig('intake', {}, { ...good, PORT: '8080', MIGRATE_ON_START: 'true' })
    expect(config.port).toBe(8080)
    expect(config.migrateOnStart).toBe(true)
  })

  it('names each missing variable', () => {
    const message = configError({ CITY: 'zhuhai', PILOT_CONFIG: pilotConfigPath, REVIEW_BATCH: '5' })
    expect(message).toContain('DATABASE_URL is required')
    expect(message).toContain('REDIS_URL is required')
  })

  it('names each invalid variable with what it expects', () => {
    const message = configError({
      ...good,
      CITY: 'guangzhou',
      PORT: 'eighty',
      DATABASE_URL: 'mysql://x',
      REVIEW_BATCH: '0',
    })
    expect(message).toMatch(/CITY="guangzhou" is invalid/)
    expect(message).toMatch(/PORT="eighty" is invalid/)
    expect(message).toMatch(/DATABASE_URL="mysql:\/\/x" is invalid/)
    expect(message).toMatch(/REVIEW_BATCH="0" is invalid .*cases per batch/)
  })

  it('names an unreadable pilot profile', () => {
    expect(configError({ ...good, PILOT_CONFIG: '/nonexistent/pilot.yaml', REVIEW_BATCH: '1' })).toContain(
      'PILOT_CONFIG=/nonexistent/pilot.yaml cannot be read',
    )
  })
})

describe('pilot profile', () => {
  const profile = parse(readFileSync(pilotConfigPath, 'utf8'))

  it('names the three pilot cities with their region codes and port plan', () => {
    const checked = validatePilotProfile(profile)
    expect(checked.cities.map((city) => [city.id, city.regionCode, city.services.intake.port])).toEqual([
      ['shenzhen', '440300', 7102],
      ['zhuhai', '440400', 7202],
      ['zhongshan', '442000', 7302],
    ])
  })

  it('rejects a profile with a bad field, naming it', () => {
    const broken = structuredClone(profile)
    broken.cities[1].regionCode = '4404'
    expect(() => validatePilotProfile(broken)).toThrow(/\/cities\/1\/regionCode/)
  })

  it('rejects an unknown field', () => {
    const broken = structuredClone(profile)
    broken.cities[0].policy.residence.gapToleranceDayz = 1
    expect(() => validatePilotProfile(broken)).toThrow(ConfigError)
  })

  it('rejects two services on one port', () => {
    const broken = structuredClone(profile)
    broken.cities[2].services.gateway.port = 7101
    expect(() => validatePilotProfile(broken)).toThrow(/port 7101 is already used by shenzhen residence/)
  })
})
