import { loadConfig, type ServiceConfig } from '@pilot/kit'

export type GatewayConfig = ServiceConfig

export function readGatewayConfig(env: Record<string, string | undefined> = process.env): GatewayConfig {
  return loadConfig('gateway', {}, env)
}
