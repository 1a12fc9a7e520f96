import { join } from 'node:path'

/**
 * Where the local pilot keeps things, shared by pilot, pilot:demo and pilot:token. The defaults are what a newcomer
 * gets; the variables let a test run a second, isolated pilot beside a developer's (other ports via its own profile,
 * other databases, other Redis keys, other state directory).
 */
const root = new URL('../', import.meta.url).pathname

export const pilotSettings = {
  root,
  /** The pilot profile (ports, URLs, policy). */
  config: process.env.PILOT_CONFIG ?? join(root, 'infra/pilot.yaml'),
  /** Keys, logs: outside git. */
  stateDir: process.env.PILOT_STATE_DIR ?? join(root, '.pilot'),
  /** Databases are named <prefix><city>. */
  databasePrefix: process.env.PILOT_DB_PREFIX ?? 'pilot_',
  /** Redis keys of a city start with <prefix>:<city>. */
  redisPrefix: process.env.PILOT_REDIS_PREFIX ?? 'pilot',
}

export const keysDir = join(pilotSettings.stateDir, 'keys')
export const logDir = join(pilotSettings.stateDir, 'logs')
