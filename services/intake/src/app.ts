import { type BuildOptions, buildServiceApp, type ServiceDefinition } from '@pilot/kit'
import type { FastifyInstance } from 'fastify'
import type { IntakeConfig } from './config.ts'
import { migrations } from './db/migrations/index.ts'

export const intakeService: ServiceDefinition = {
  name: 'intake',
  title: 'Application intake and case lifecycle',
  description:
    'Applications submitted in the residence city, incoming cases reviewed in the hukou city, their lifecycle, deadlines and audit trail.',
  version: '0.1.0',
  migrations,
}

export async function buildApp(config: IntakeConfig, options: BuildOptions = {}): Promise<FastifyInstance> {
  return buildServiceApp(intakeService, config, async () => {}, options)
}
