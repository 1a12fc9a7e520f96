/**
 * What the deployment checks compare the deployment files with: the services, cities, variables, routes and worker
 * modes the code really has. Everything here is read from the code (the config modules, the OpenAPI documents
 * generated from the routes, the pilot profile), never restated, so a new required variable or a renamed route makes
 * the deployment checks fail until the deployment files follow.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, posix, relative, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { BaseEnv, ConfigError, loadPilotProfile, type ServiceConfig } from '@pilot/kit'
import { type PilotProfile, SERVICE_NAMES, type ServiceName } from '@pilot/schemas'
import { repoRoot } from '@pilot/testing'
import { parse as parseYaml } from 'yaml'
import { readGatewayConfig } from '../../services/gateway/src/config.ts'
import { readIntakeConfig } from '../../services/intake/src/config.ts'
import { readResidenceConfig } from '../../services/residence/src/config.ts'

export type Env = Record<string, string | undefined>
export { SERVICE_NAMES, type ServiceName }

/** Each service's own configuration reader: the function its server.ts calls at start. */
export const CONFIG_READERS: Record<ServiceName, (env: Env) => ServiceConfig> = {
  residence: readResidenceConfig,
  intake: readIntakeConfig,
  gateway: readGatewayConfig,
}

export const REPO_ROOT = repoRoot.replace(/\/$/, '')
export const PILOT_PROFILE_PATH = join(REPO_ROOT, 'infra/pilot.yaml')

export function pilotProfile(path = PILOT_PROFILE_PATH): PilotProfile {
  return loadPilotProfile(path)
}

export function cityIds(profile = pilotProfile()): string[] {
  return profile.cities.map((city) => city.id)
}

/** The variables of BaseEnv (packages/kit/src/config.ts) that have neither a default nor Optional. */
export function baseRequiredVariables(): string[] {
  return Object.entries(BaseEnv)
    .filter(([, schema]) => !(schema as { '~optional'?: boolean })['~optional'] && !('default' in schema))
    .map(([name]) => name)
}

const requiredCache = new Map<ServiceName, string[]>()

/**
 * The variables a service requires, as its own configuration reader reports them: given an empty environment it names
 * every missing required variable (BaseEnv's and the service's own), and only those.
 */
export function requiredVariables(service: ServiceName): string[] {
  const cached = requiredCache.get(service)
  if (cached) return cached
  let message = ''
  try {
    CONFIG_READERS[service]({})
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    message = error.message
  }
  const names = [...message.matchAll(/^\s*([A-Z][A-Z0-9_]*) is required:/gm)].map((match) => match[1] ?? '')
  if (names.length === 0) throw new Error(`${service}: an empty environment did not name any required variable`)
  requiredCache.set(service, names)
  return names
}

/**
 * Every variable any service reads: BaseEnv's and the properties of each service's env schema in its config.ts; also
 * SERVICE, which the image's default command reads to pick the service, and NODE_ENV, which the image sets.
 */
export function knownVariables(): Set<string> {
  const names = new Set([...Object.keys(BaseEnv), 'SERVICE', 'NODE_ENV'])
  for (const service of SERVICE_NAMES) {
    const source = readFileSync(join(REPO_ROOT, `services/${service}/src/config.ts`), 'utf8')
    for (const match of source.matchAll(/^\s{2}([A-Z][A-Z0-9_]*): Type\./gm)) names.add(match[1] ?? '')
  }
  return names
}

/** The services whose app starts queue workers unless SERVICE_MODE=api (the `config.mode !== 'api'` branch). */
export function servicesWithWorkers(): ServiceName[] {
  return SERVICE_NAMES.filter((service) =>
    /config\.mode !== 'api'/.test(readFileSync(join(REPO_ROOT, `services/${service}/src/app.ts`), 'utf8')),
  )
}

const routesCache = new Map<ServiceName, Map<string, Set<string>>>()

/** Route path -> methods, from the service's OpenAPI document (generated from the routes; CI fails on drift). */
export function serviceRoutes(service: ServiceName): Map<string, Set<string>> {
  const cached = routesCache.get(service)
  if (cached) return cached
  const document = parseYaml(readFileSync(join(REPO_ROOT, `openapi/${service}.yaml`), 'utf8')) as {
    paths?: Record<string, Record<string, unknown>>
  }
  const routes = new Map<string, Set<string>>()
  for (const [path, operations] of Object.entries(document.paths ?? {})) {
    routes.set(path, new Set(Object.keys(operations).map((method) => method.toUpperCase())))
  }
  routesCache.set(service, routes)
  return routes
}

export function hasGetRoute(service: ServiceName, path: string): boolean {
  return serviceRoutes(service).get(path)?.has('GET') ?? false
}

/** The profile without anything that says where a service is reached (URLs), for comparing two deployments' profiles. */
export function profileWithoutUrls(profile: PilotProfile): unknown {
  return JSON.parse(
    JSON.stringify(profile, (key, value) =>
      key === 'url' || key === 'gatewayUrl' || key === 'jwksUrl' ? undefined : value,
    ),
  )
}

/** A scratch directory removed by `dispose`. */
export function scratchDir(label: string): { path: string; dispose: () => void } {
  const path = mkdtempSync(join(tmpdir(), `deploy-${label}-`))
  return { path, dispose: () => rmSync(path, { recursive: true, force: true }) }
}

export function writeFileIn(dir: string, relativePath: string, content: string): string {
  const path = join(dir, relativePath)
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, content)
  return path
}

/**
 * How a container sees the file system: mount points (container path -> local directory), longest first, then the
 * image's own files. Paths that nothing provides map to a place that does not exist, so reading them fails as it
 * would in the container.
 */
export class ContainerFiles {
  private readonly mounts: [string, string][] = []

  constructor(
    /** Where the image keeps the application (its WORKDIR) and which local directory stands for it. */
    private readonly image: { workdir: string; local: string },
  ) {}

  mount(containerPath: string, localPath: string): void {
    this.mounts.push([posix.normalize(containerPath).replace(/\/$/, ''), localPath])
    this.mounts.sort((a, b) => b[0].length - a[0].length)
  }

  local(containerPath: string): string {
    const path = posix.normalize(containerPath)
    for (const [mountPoint, local] of this.mounts) {
      if (path === mountPoint || path.startsWith(`${mountPoint}/`)) return join(local, posix.relative(mountPoint, path))
    }
    const workdir = posix.normalize(this.image.workdir).replace(/\/$/, '')
    if (path.startsWith(`${workdir}/`)) return join(this.image.local, posix.relative(workdir, path))
    return join('/nonexistent-in-container', path)
  }

  /** The environment with every absolute path and file: URL replaced by the local file that stands for it. */
  localizeEnv(env: Env): Env {
    const localized: Env = {}
    for (const [name, value] of Object.entries(env)) {
      if (value?.startsWith('/')) localized[name] = this.local(value)
      else if (value?.startsWith('file:')) localized[name] = pathToFileURL(this.local(fileURLToPath(value))).toString()
      else localized[name] = value
    }
    return localized
  }
}

export interface ServiceEnvCheck {
  /** How problems name the process: `zhuhai-intake`, `overlays/zhuhai Deployment/intake-api`. */
  label: string
  service: ServiceName
  city: string
  /** Expected SERVICE_MODE (the effective one: unset means all). */
  mode?: 'api' | 'worker' | 'all'
  env: Env
  files: ContainerFiles
}

/**
 * Checks one process's environment with the service's real configuration reader: every required variable set, every
 * value valid, every key file readable and well formed, the profile loadable, the city the one expected. Returns the
 * configuration it read (undefined when it could not) and the problems.
 */
export function checkServiceEnv(check: ServiceEnvCheck): { problems: string[]; config?: ServiceConfig } {
  const { label, service, env, files } = check
  const problems: string[] = []
  const known = knownVariables()
  for (const name of requiredVariables(service)) {
    if (env[name] === undefined || env[name] === '') {
      problems.push(`${label}: ${name} is not set (services/${service}/src/config.ts requires it)`)
    }
  }
  for (const name of Object.keys(env)) {
    if (!known.has(name)) problems.push(`${label}: sets ${name}, which no service reads (a typo?)`)
  }
  let config: ServiceConfig
  try {
    config = CONFIG_READERS[service](files.localizeEnv(env))
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    const message = error.message.replace(/\s*\n\s*/g, '; ')
    problems.push(`${label}: the ${service} service would refuse to start: ${message}`)
    return { problems }
  }
  if (config.city !== check.city) problems.push(`${label}: CITY is ${config.city}, expected ${check.city}`)
  if (check.mode && config.mode !== check.mode) {
    problems.push(`${label}: SERVICE_MODE is ${config.mode}, expected ${check.mode}`)
  }
  const jwks = config.auth.jwksUrl
  if (jwks.startsWith('file:') && !existsSync(fileURLToPath(jwks))) {
    problems.push(`${label}: AUTH_JWKS_URL=${env.AUTH_JWKS_URL} names a file the container does not have`)
  }
  const calendar = (config as { calendarFile?: string }).calendarFile
  if (calendar !== undefined && !existsSync(calendar)) {
    const where = env.WORKING_DAY_CALENDAR ?? 'data/cn-workdays.json beside PILOT_CONFIG'
    problems.push(`${label}: the working-day calendar (${where}) is not in the container`)
  }
  return { problems, config }
}

/** `a/b` relative to the repository, for messages. */
export function shown(path: string, base = REPO_ROOT): string {
  const relativePath = relative(base, resolve(path))
  return relativePath.startsWith('..') ? path : relativePath
}
