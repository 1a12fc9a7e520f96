import { loadConfig, type ServiceConfig } from '@pilot/kit'

export type ResidenceConfig = ServiceConfig

export function readResidenceConfig(env: Record<string, string | undefined> = process.env): ResidenceConfig {
  return loadConfig('residence', {}, env)
}
