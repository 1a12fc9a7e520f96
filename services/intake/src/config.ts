import { loadConfig, type ServiceConfig } from '@pilot/kit'

export type IntakeConfig = ServiceConfig

export function readIntakeConfig(env: Record<string, string | undefined> = process.env): IntakeConfig {
  return loadConfig('intake', {}, env)
}
