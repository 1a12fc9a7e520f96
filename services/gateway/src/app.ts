import { type BuildOptions, buildServiceApp, type ServiceDefinition } from '@pilot/kit'
import type { FastifyInstance } from 'fastify'
import type { GatewayConfig } from './config.ts'
import { migrations } from './db/migrations/index.ts'

export const gatewayService: ServiceDefinition = {
  name: 'gateway',
  title: 'Federation gateway',
  description:
    'The only door between pilot cities: signs and verifies federation messages, publishes the JWKS, delivers with retries and dead-lettering.',
  version: '0.1.0',
  migrations,
}

export async function buildApp(config: GatewayConfig, options: BuildOptions = {}): Promise<FastifyInstance> {
  return buildServiceApp(gatewayService, config, async () => {}, options)
}
