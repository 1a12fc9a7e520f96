import { fileURLToPath } from 'node:url'

export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url))
export const pilotConfigPath = `${repoRoot}infra/pilot.yaml`
