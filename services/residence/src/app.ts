import { type BuildOptions, buildServiceApp, type ServiceDefinition } from '@pilot/kit'
import type { FastifyInstance } from 'fastify'
import type { ResidenceConfig } from './config.ts'
import { migrations } from './db/migrations/index.ts'

export const residenceService: ServiceDefinition = {
  name: 'residence',
  title: 'Residence verification service',
  description:
    "The city's residence evidence and household registration records: the 3-month rule and signed residence attestations.",
  version: '0.1.0',
  migrations,
}

export async function buildApp(config: ResidenceConfig, options: BuildOptions = {}): Promise<FastifyInstance> {
  return buildServiceApp(residenceService, config, async () => {}, options)
}
