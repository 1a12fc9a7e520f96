import { type BuildOptions, buildServiceApp, jwksRoutes, type ServiceDefinition } from '@pilot/kit'
import { Signer } from '@pilot/signing'
import type { FastifyInstance } from 'fastify'
import type { ResidenceConfig } from './config.ts'
import { migrations } from './db/migrations/index.ts'
import { feedImportRoutes } from './routes/feed-import.ts'
import { registrationRoutes } from './routes/registrations.ts'
import { verificationRoutes } from './routes/verifications.ts'

export const residenceService: ServiceDefinition = {
  name: 'residence',
  title: 'Residence verification service',
  description:
    "The city's residence evidence and household registration records: the 3-month rule, signed residence " +
    'attestations, and confirmation that a person named by the matching hash is registered (hukou) here.',
  version: '0.1.0',
  migrations,
}

export async function buildApp(config: ResidenceConfig, options: BuildOptions = {}): Promise<FastifyInstance> {
  return buildServiceApp(
    residenceService,
    config,
    async (app) => {
      const context = {
        pool: app.pgPool,
        pilot: config.pilot,
        city: config.cityProfile,
        blindIndexKey: config.blindIndexKey,
        matchingKey: config.matchingKey,
        signer: new Signer(config.signingKeys),
      }
      await app.register(jwksRoutes, {
        keys: config.signingKeys,
        cacheSeconds: 300,
        summary: "Public keys of this city's residence attestations (the gateway publishes the same keys)",
      })
      await app.register(verificationRoutes, { config, context })
      await app.register(feedImportRoutes, { config })
      await app.register(registrationRoutes, { config })
    },
    options,
  )
}
