/**
 * Static checks of docker-compose.yml, the Dockerfile and .dockerignore: there is no container engine on the
 * machines that run the tests, so the files are read as a container engine would read them and compared with what the
 * code really uses (deploy-facts.ts). Each check takes a file path and returns its problems, empty when all is well.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { basename, dirname, join, posix } from 'node:path'
import { Ajv } from 'ajv'
import { parseAllDocuments, parse as parseYaml } from 'yaml'
import {
  ContainerFiles,
  checkServiceEnv,
  cityIds,
  type Env,
  hasGetRoute,
  pilotProfile,
  SERVICE_NAMES,
  type ServiceName,
  shown,
} from './deploy-facts.ts'

type Obj = Record<string, unknown>
const isObj = (value: unknown): value is Obj => typeof value === 'object' && value !== null && !Array.isArray(value)
const asArray = (value: unknown): unknown[] => (Array.isArray(value) ? value : [])

/** The image's working directory: where the Dockerfile puts the application (checkDockerfile holds it to this). */
export const IMAGE_WORKDIR = '/app'
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]'])

// --- Compose --------------------------------------------------------------------------------------------------------

let composeSchemaValidator: ReturnType<Ajv['compile']> | undefined

/** The Compose Specification's JSON schema, as shipped by dclint (a Compose linter): unknown keys are errors. */
function composeSchema(): ReturnType<Ajv['compile']> {
  if (composeSchemaValidator) return composeSchemaValidator
  const require = createRequire(import.meta.url)
  const schemaPath = join(dirname(require.resolve('dclint/package.json')), 'schemas/compose.schema.json')
  const schema = JSON.parse(readFileSync(schemaPath, 'utf8')) as Obj
  delete schema.$schema
  composeSchemaValidator = new Ajv({ strict: false, allErrors: true, validateFormats: false }).compile(schema)
  return composeSchemaValidator
}

/** Compose interpolation without a host environment: `${NAME:-default}` is its default, `${NAME}` empty. */
function interpolate(value: string): string {
  return value
    .replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}/g, (_match, _name, fallback: string | undefined) => {
      return fallback ?? ''
    })
    .replace(/\$\$/g, '$')
}

function composeEnvironment(value: unknown): Env {
  const env: Env = {}
  if (Array.isArray(value)) {
    for (const entry of value) {
      const [name, ...rest] = String(entry).split('=')
      if (name) env[name] = rest.length > 0 ? interpolate(rest.join('=')) : undefined
    }
  } else if (isObj(value)) {
    for (const [name, entry] of Object.entries(value)) {
      env[name] = entry === null || entry === undefined ? undefined : interpolate(String(entry))
    }
  }
  return env
}

interface Bind {
  source: string
  target: string
}

/** Bind mounts (short `./src:/dst[:ro]` or long syntax); named volumes are left out. */
function binds(service: Obj, composeDir: string): Bind[] {
  const result: Bind[] = []
  for (const volume of asArray(service.volumes)) {
    if (typeof volume === 'string') {
      const [source = '', target = ''] = interpolate(volume).split(':')
      if (source.startsWith('.') || source.startsWith('/')) result.push({ source: join(composeDir, source), target })
    } else if (isObj(volume) && volume.type === 'bind') {
      result.push({ source: join(composeDir, String(volume.source)), target: String(volume.target) })
    }
  }
  return result
}

function dependsOn(service: Obj): Map<string, string> {
  const result = new Map<string, string>()
  if (Array.isArray(service.depends_on))
    for (const name of service.depends_on) result.set(String(name), 'service_started')
  else if (isObj(service.depends_on)) {
    for (const [name, options] of Object.entries(service.depends_on)) {
      result.set(name, isObj(options) && typeof options.condition === 'string' ? options.condition : 'service_started')
    }
  }
  return result
}

function publishedTargets(service: Obj): Set<number> {
  const targets = new Set<number>()
  for (const port of asArray(service.ports)) {
    if (isObj(port)) targets.add(Number(port.target))
    else {
      const spec = String(port).replace(/\/(tcp|udp)$/, '')
      targets.add(Number(spec.split(':').at(-1)))
    }
  }
  return targets
}

function commandText(value: unknown): string {
  return Array.isArray(value) ? value.map(String).join(' ') : String(value ?? '')
}

export interface ComposeCheckOptions {
  /**
   * Local stand-ins for bind-mount sources that are generated rather than committed (relative to the compose file),
   * e.g. `{ '.pilot/keys': <a directory made by ensureDevSecrets> }`.
   */
  standIns?: Record<string, string>
}

/**
 * Checks docker-compose.yml against the Compose schema and against the code: PostgreSQL and Redis with health checks,
 * exactly the services `<city>-<service>` of the profile, each given what its configuration reader requires (run on
 * the compose environment with the mounted files), unique ports that match the profile, health checks on real routes,
 * start order on health, and networking in which the profile's 127.0.0.1 URLs reach the right processes.
 */
export function checkCompose(composeFile: string, options: ComposeCheckOptions = {}): string[] {
  const problems: string[] = []
  const composeDir = dirname(composeFile)
  const file = shown(composeFile)
  let document: unknown
  try {
    document = parseYaml(readFileSync(composeFile, 'utf8'), { merge: true })
  } catch (error) {
    return [`${file}: not valid YAML: ${(error as Error).message}`]
  }
  const validate = composeSchema()
  if (!validate(document)) {
    for (const error of validate.errors ?? []) {
      const extra = (error.params as { additionalProperty?: string }).additionalProperty
      problems.push(
        `${file}${error.instancePath}: ${error.message}${extra ? ` (${extra})` : ''} (Compose Specification schema)`,
      )
    }
  }
  if (!isObj(document) || !isObj(document.services)) return [...problems, `${file}: no services`]
  const services = document.services as Record<string, Obj>

  // Infrastructure.
  for (const name of ['postgres', 'redis']) {
    const service = services[name]
    if (!isObj(service)) problems.push(`${file}: no ${name} service`)
    else if (!isObj(service.healthcheck) || !service.healthcheck.test) problems.push(`${name}: no health check`)
  }
  const postgres = services.postgres
  const initScripts = isObj(postgres)
    ? binds(postgres, composeDir).filter((bind) => bind.target.startsWith('/docker-entrypoint-initdb.d/'))
    : []
  const initSql = initScripts.map((bind) => (existsSync(bind.source) ? readFileSync(bind.source, 'utf8') : '')).join()
  if (isObj(postgres) && initScripts.length === 0) {
    problems.push('postgres: no init script mounted in /docker-entrypoint-initdb.d/ (the city databases)')
  }
  if (isObj(services.redis) && !/--appendonly\s+yes/.test(commandText(services.redis.command))) {
    problems.push('redis: not append-only (command lacks --appendonly yes): queued work would not survive a restart')
  }

  // Which services run our image, and which are expected.
  const profile = pilotProfile()
  const expected = new Map<string, { city: string; service: ServiceName }>()
  for (const city of cityIds(profile))
    for (const service of SERVICE_NAMES) expected.set(`${city}-${service}`, { city, service })
  for (const name of expected.keys()) if (!isObj(services[name])) problems.push(`${file}: no service ${name}`)
  const ours = Object.entries(services).filter(([, service]) => isObj(service) && service.build !== undefined)
  for (const [name] of ours)
    if (!expected.has(name)) problems.push(`${name}: builds the image but is not <city>-<service>`)
  const images = new Set(ours.map(([, service]) => String(service.image)))
  if (images.size > 1)
    problems.push(`${file}: the services build different images (${[...images].join(', ')}); one image`)

  // Networking: the profile's URLs are http://127.0.0.1:<port>, so every process must share one network namespace.
  const networkModes = new Set(
    [...expected.keys(), 'postgres', 'redis']
      .filter((name) => isObj(services[name]))
      .map((name) => String(services[name]?.network_mode ?? 'default')),
  )
  const [networkMode] = networkModes
  const profileUsesLoopback = profile.cities.some((city) =>
    Object.values(city.services).some((endpoint) => LOOPBACK.has(new URL(endpoint.url).hostname)),
  )
  let owner: Obj | undefined
  if (networkModes.size > 1) {
    problems.push(`${file}: services are in different network namespaces (${[...networkModes].join(', ')})`)
  } else if (networkMode?.startsWith('service:')) {
    owner = services[networkMode.slice('service:'.length)]
    if (!isObj(owner)) problems.push(`${file}: network_mode ${networkMode} names no service`)
  } else if (networkMode !== 'host' && profileUsesLoopback) {
    problems.push(
      `${file}: infra/pilot.yaml reaches services at 127.0.0.1, but the containers do not share a network namespace ` +
        '(network_mode: host, or service:<one container>)',
    )
  }

  // Each service.
  const ports = new Map<number, string>()
  const databases = new Map<string, string>()
  for (const [name, { city, service }] of expected) {
    const definition = services[name]
    if (!isObj(definition)) continue
    const build = isObj(definition.build) ? definition.build : { context: definition.build }
    const context = join(composeDir, String(build.context ?? '.'))
    const dockerfile = join(context, String(build.dockerfile ?? 'Dockerfile'))
    if (!existsSync(dockerfile)) problems.push(`${name}: builds with ${shown(dockerfile)}, which does not exist`)
    const command = commandText(definition.command)
    const script = `services/${service}/src/server.ts`
    if (definition.command !== undefined && !command.includes(script)) {
      problems.push(`${name}: command "${command}" does not run ${script}`)
    }
    if (owner && definition.ports !== undefined) {
      problems.push(`${name}: publishes ports but shares another container's network namespace (publish them there)`)
    }

    const env = composeEnvironment(definition.environment)
    const files = new ContainerFiles({ workdir: IMAGE_WORKDIR, local: context })
    for (const bind of binds(definition, composeDir)) {
      const relativeSource = posix.normalize(bind.source.slice(composeDir.length + 1))
      const standIn = options.standIns?.[relativeSource]
      if (standIn) files.mount(bind.target, standIn)
      else if (existsSync(bind.source)) files.mount(bind.target, bind.source)
      else problems.push(`${name}: bind-mount source ${relativeSource} does not exist`)
    }
    const { problems: envProblems, config } = checkServiceEnv({ label: name, service, city, env, files })
    problems.push(...envProblems)

    if (env.DATABASE_URL?.match(/^postgres(ql)?:\/\//)) {
      const url = new URL(env.DATABASE_URL)
      const database = url.pathname.slice(1)
      if (owner || networkMode === 'host') {
        if (!LOOPBACK.has(url.hostname)) problems.push(`${name}: DATABASE_URL host ${url.hostname} is not 127.0.0.1`)
      }
      if (isObj(postgres) && !new RegExp(`create\\s+database\\s+"?${database}"?`, 'i').test(initSql)) {
        problems.push(`${name}: database ${database} is not created by the postgres init script`)
      }
      const sharing = databases.get(database)
      if (sharing && !sharing.startsWith(`${city}-`)) {
        problems.push(`${name}: database ${database} is also ${sharing}'s (one database per city)`)
      }
      databases.set(database, name)
    }
    if (env.REDIS_PREFIX !== undefined && env.REDIS_PREFIX !== `pilot:${city}`) {
      problems.push(`${name}: REDIS_PREFIX is ${env.REDIS_PREFIX}; the local pilot uses pilot:${city}`)
    }

    const port = config?.port ?? Number(env.PORT)
    if (config) {
      const profilePort = config.cityProfile.services[service].port
      if (port !== profilePort) {
        problems.push(`${name}: listens on ${port}, but infra/pilot.yaml sends its callers to ${profilePort}`)
      }
      if (owner && !['0.0.0.0', '::'].includes(config.host)) {
        problems.push(
          `${name}: HOST=${config.host}: a published port arrives on the namespace's interface, use 0.0.0.0`,
        )
      }
      if (owner && isObj(owner) && !publishedTargets(owner).has(port)) {
        problems.push(`${name}: port ${port} is not published by ${networkMode?.slice('service:'.length)}`)
      }
    }
    if (Number.isInteger(port)) {
      const other = ports.get(port)
      if (other) problems.push(`${name}: port ${port} is also ${other}'s (they share one network namespace)`)
      else ports.set(port, name)
    }

    // Health check: a GET route of this service, readiness, on the port it listens on.
    const healthcheck = isObj(definition.healthcheck) ? definition.healthcheck : undefined
    const test = commandText(healthcheck?.test)
    const target = test.match(/https?:\/\/([^/:'"\s]+):(\d+)(\/[^'"\s)?]*)/)
    if (!healthcheck || !target) problems.push(`${name}: no health check calling the service over HTTP`)
    else {
      const [, host = '', targetPort = '', path = ''] = target
      if (!hasGetRoute(service, path)) {
        problems.push(
          `${name}: health check calls ${path}, which is not a route of ${service} (openapi/${service}.yaml)`,
        )
      } else if (path !== '/health/ready') {
        problems.push(`${name}: health check calls ${path}; start order needs readiness, /health/ready`)
      }
      if (!LOOPBACK.has(host)) problems.push(`${name}: health check calls ${host}, not the container itself`)
      if (Number.isInteger(port) && Number(targetPort) !== port) {
        problems.push(`${name}: health check calls port ${targetPort}, but the service listens on ${port}`)
      }
    }

    // Start order: PostgreSQL and Redis healthy first; intake after its city's residence and gateway.
    const dependencies = dependsOn(definition)
    const needed = ['postgres', 'redis', ...(service === 'intake' ? [`${city}-residence`, `${city}-gateway`] : [])]
    for (const dependency of needed) {
      if (dependencies.get(dependency) !== 'service_healthy') {
        problems.push(
          `${name}: does not wait for ${dependency} to be healthy (depends_on ... condition: service_healthy)`,
        )
      }
    }
  }

  // depends_on names existing services and has no cycle.
  const graph = new Map<string, string[]>()
  for (const [name, service] of Object.entries(services)) {
    if (!isObj(service)) continue
    const dependencies = [...dependsOn(service).keys()]
    for (const dependency of dependencies) {
      if (!isObj(services[dependency])) problems.push(`${name}: depends on ${dependency}, which is not a service`)
    }
    graph.set(name, dependencies)
  }
  const state = new Map<string, 'visiting' | 'done'>()
  const visit = (name: string, trail: string[]): void => {
    if (state.get(name) === 'done') return
    if (state.get(name) === 'visiting') {
      problems.push(`${file}: depends_on cycle ${[...trail, name].join(' -> ')}`)
      return
    }
    state.set(name, 'visiting')
    for (const dependency of graph.get(name) ?? []) visit(dependency, [...trail, name])
    state.set(name, 'done')
  }
  for (const name of graph.keys()) visit(name, [])

  // Keys are mounted from a directory git ignores.
  const gitignore = existsSync(join(composeDir, '.gitignore'))
    ? readFileSync(join(composeDir, '.gitignore'), 'utf8')
    : ''
  for (const [name, service] of ours) {
    for (const bind of binds(service, composeDir)) {
      const relativeSource = bind.source.slice(composeDir.length + 1)
      if (/keys|secrets/.test(relativeSource) && !ignoredBy(gitignore, relativeSource, 'git')) {
        problems.push(`${name}: mounts ${relativeSource}, which .gitignore does not keep out of git`)
      }
    }
  }
  return problems
}

// --- Ignore files (.gitignore, .dockerignore) ------------------------------------------------------------------------

function globToRegExp(pattern: string): RegExp {
  let source = ''
  for (let index = 0; index < pattern.length; index++) {
    const char = pattern[index] ?? ''
    if (char === '*' && pattern[index + 1] === '*') {
      // `**/` is any number of directories, none included; `**` elsewhere anything.
      if (pattern[index + 2] === '/') {
        source += '(?:.*/)?'
        index += 2
      } else {
        source += '.*'
        index++
      }
    } else if (char === '*') source += '[^/]*'
    else if (char === '?') source += '[^/]'
    else source += char.replace(/[.+^${}()|[\]\\]/g, '\\$&')
  }
  return new RegExp(`^${source}$`)
}

/**
 * Whether an ignore file (last matching line wins, `!` re-includes) leaves `path` or one of its parents out. In a
 * .gitignore a pattern without a slash matches at any depth; in a .dockerignore every pattern is relative to the
 * context's root (a leading `**` and a slash for any depth).
 */
export function ignoredBy(ignoreFile: string, path: string, flavor: 'git' | 'docker'): boolean {
  const lines = ignoreFile
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'))
  const segments = path.split('/')
  const candidates = segments.map((_, index) => segments.slice(0, index + 1).join('/'))
  let ignored = false
  for (const line of lines) {
    const negated = line.startsWith('!')
    const pattern = line.replace(/^!/, '').replace(/^\//, '').replace(/\/$/, '')
    const regex = globToRegExp(pattern)
    const anywhere = flavor === 'git' && !pattern.includes('/') ? globToRegExp(`**/${pattern}`) : undefined
    const matches = (candidate: string) => regex.test(candidate) || (anywhere?.test(candidate) ?? false)
    if (negated ? matches(path) : candidates.some(matches)) ignored = !negated
  }
  return ignored
}

// --- Dockerfile -------------------------------------------------------------------------------------------------------

interface Instruction {
  keyword: string
  args: string
  line: number
}

interface Stage {
  name: string | undefined
  base: string
  instructions: Instruction[]
}

function parseDockerfile(text: string): { globalArgs: Instruction[]; stages: Stage[] } {
  const instructions: Instruction[] = []
  const lines = text.split('\n')
  for (let index = 0; index < lines.length; index++) {
    const first = lines[index] ?? ''
    if (!first.trim() || first.trim().startsWith('#')) continue
    let logical = first
    const start = index + 1
    while (logical.trimEnd().endsWith('\\') && index + 1 < lines.length) {
      logical = `${logical.trimEnd().slice(0, -1)} `
      index++
      const next = lines[index] ?? ''
      if (!next.trim().startsWith('#')) logical += next.trim()
    }
    const match = logical.trim().match(/^(\S+)\s*(.*)$/)
    if (match) instructions.push({ keyword: (match[1] ?? '').toUpperCase(), args: match[2] ?? '', line: start })
  }
  const globalArgs: Instruction[] = []
  const stages: Stage[] = []
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const [base = '', as, name] = instruction.args.split(/\s+/).filter((word) => !word.startsWith('--'))
      stages.push({ name: as?.toUpperCase() === 'AS' ? name : undefined, base, instructions: [] })
    } else if (stages.length === 0) globalArgs.push(instruction)
    else stages.at(-1)?.instructions.push(instruction)
  }
  return { globalArgs, stages }
}

function words(args: string): string[] {
  if (args.trim().startsWith('[')) return JSON.parse(args) as string[]
  return args.match(/"[^"]*"|\S+/g)?.map((word) => word.replace(/^"|"$/g, '')) ?? []
}

interface Copy {
  from: string | undefined
  sources: string[]
  destination: string
  line: number
}

function copies(stage: Stage): { copy: Copy; workdir: string }[] {
  let workdir = '/'
  const result: { copy: Copy; workdir: string }[] = []
  for (const instruction of stage.instructions) {
    if (instruction.keyword === 'WORKDIR') workdir = posix.resolve(workdir, instruction.args.trim())
    if (instruction.keyword !== 'COPY' && instruction.keyword !== 'ADD') continue
    const all = words(instruction.args)
    const from = all.find((word) => word.startsWith('--from='))?.slice('--from='.length)
    const plain = all.filter((word) => !word.startsWith('--'))
    const destination = plain.at(-1) ?? ''
    result.push({ copy: { from, sources: plain.slice(0, -1), destination, line: instruction.line }, workdir })
  }
  return result
}

/**
 * Where a stage puts a file of the build context (path relative to the context), following COPY semantics: a
 * directory source copies its contents; a file goes into a destination ending in `/` (or with several sources) under
 * its own name. Follows `COPY --from=<stage>` of earlier stages. Undefined when the file does not reach the stage.
 */
function imagePathOf(contextPath: string, stages: Stage[], stageIndex: number, contextDir: string): string | undefined {
  const stage = stages[stageIndex]
  if (!stage) return undefined
  let found: string | undefined
  for (const { copy, workdir } of copies(stage)) {
    const destination = posix.resolve(workdir, copy.destination)
    const intoDirectory = copy.destination.endsWith('/') || copy.sources.length > 1
    if (copy.from === undefined) {
      for (const source of copy.sources) {
        const normalized = posix.normalize(source).replace(/\/$/, '')
        const local = join(contextDir, normalized)
        if (!existsSync(local)) continue
        if (statSync(local).isDirectory()) {
          if (normalized === '.' || contextPath.startsWith(`${normalized}/`)) {
            found = posix.join(destination, normalized === '.' ? contextPath : posix.relative(normalized, contextPath))
          }
        } else if (normalized === contextPath) {
          found = intoDirectory ? posix.join(destination, basename(normalized)) : destination
        }
      }
    } else {
      const fromIndex = stages.findIndex((other) => other.name === copy.from)
      if (fromIndex < 0 || fromIndex >= stageIndex) continue
      const there = imagePathOf(contextPath, stages, fromIndex, contextDir)
      for (const source of copy.sources) {
        const sourcePath = posix.resolve('/', source)
        if (there && (there === sourcePath || there.startsWith(`${sourcePath}/`))) {
          found = posix.join(destination, posix.relative(sourcePath, there))
        }
      }
    }
  }
  return found
}

function workspacePackageDirs(root: string): string[] {
  const workspace = parseYaml(readFileSync(join(root, 'pnpm-workspace.yaml'), 'utf8')) as { packages?: string[] }
  const dirs: string[] = []
  for (const pattern of workspace.packages ?? []) {
    if (pattern.endsWith('/*')) {
      const parent = pattern.slice(0, -2)
      for (const entry of readdirSync(join(root, parent))) {
        if (existsSync(join(root, parent, entry, 'package.json'))) dirs.push(`${parent}/${entry}`)
      }
    } else if (existsSync(join(root, pattern, 'package.json'))) dirs.push(pattern)
  }
  return dirs
}

/** The tsx version the lock file pins for the workspace root (the services run with `node --import tsx`). */
function lockedTsxVersion(root: string): string | undefined {
  // pnpm's lock file holds two YAML documents: pnpm itself, then the project's dependencies.
  for (const document of parseAllDocuments(readFileSync(join(root, 'pnpm-lock.yaml'), 'utf8'))) {
    const lock = document.toJS() as {
      importers?: Record<string, { devDependencies?: Record<string, { version?: string }> }>
    } | null
    const version = lock?.importers?.['.']?.devDependencies?.tsx?.version?.match(/^[0-9][^(]*/)?.[0]
    if (version) return version
  }
  return undefined
}

/**
 * Checks the Dockerfile (its directory is the build context) and the .dockerignore beside it: multi-stage, dependencies
 * installed from the lock file with every workspace manifest present, a non-root runtime stage working in /app, the
 * files the services read at run time at the paths they read them from, tsx at the locked version, and no keys or
 * host node_modules in the context.
 */
export function checkDockerfile(dockerfilePath: string): string[] {
  const problems: string[] = []
  const file = shown(dockerfilePath)
  const context = dirname(dockerfilePath)
  const { globalArgs, stages } = parseDockerfile(readFileSync(dockerfilePath, 'utf8'))
  if (stages.length < 2) problems.push(`${file}: one stage; build dependencies in one stage and run from a slim one`)
  const runtimeIndex = stages.length - 1
  const runtime = stages[runtimeIndex]
  if (!runtime) return [...problems, `${file}: no FROM`]

  // Install from the lock file, with every workspace package's manifest already copied.
  const installs = stages.flatMap((stage, index) =>
    stage.instructions
      .filter((instruction) => instruction.keyword === 'RUN' && /pnpm\s+(install|i)\b/.test(instruction.args))
      .map((instruction) => ({ stage, index, instruction })),
  )
  if (installs.length === 0) problems.push(`${file}: no pnpm install`)
  for (const { stage, instruction } of installs) {
    if (!instruction.args.includes('--frozen-lockfile')) {
      problems.push(`${file}:${instruction.line}: pnpm install without --frozen-lockfile (the lock file must decide)`)
    }
    const before = copies(stage).filter(({ copy }) => copy.line < instruction.line && copy.from === undefined)
    const copied = (path: string) =>
      before.some(({ copy }) =>
        copy.sources.some((source) => {
          const normalized = posix.normalize(source).replace(/\/$/, '')
          return normalized === '.' || normalized === path || path.startsWith(`${normalized}/`)
        }),
      )
    for (const path of ['pnpm-lock.yaml', 'pnpm-workspace.yaml', 'package.json']) {
      if (!copied(path)) problems.push(`${file}:${instruction.line}: pnpm install runs before ${path} is copied`)
    }
    for (const dir of workspacePackageDirs(context)) {
      if (!copied(`${dir}/package.json`)) {
        problems.push(
          `${file}:${instruction.line}: pnpm install --frozen-lockfile runs without ${dir}/package.json ` +
            '(every workspace package in the lock file must be there)',
        )
      }
    }
  }

  // Every file COPY takes from the context is there and not left out by .dockerignore.
  const dockerignoreText = existsSync(join(context, '.dockerignore'))
    ? readFileSync(join(context, '.dockerignore'), 'utf8')
    : ''
  for (const stage of stages) {
    for (const { copy } of copies(stage)) {
      if (copy.from !== undefined) continue
      for (const source of copy.sources) {
        const normalized = posix.normalize(source).replace(/\/$/, '')
        if (normalized === '.' || /[*?[]/.test(normalized)) continue
        if (!existsSync(join(context, normalized))) {
          problems.push(`${file}:${copy.line}: COPY ${normalized}: not in the build context`)
        } else if (ignoredBy(dockerignoreText, normalized, 'docker')) {
          problems.push(`${file}:${copy.line}: COPY ${normalized}: .dockerignore leaves it out of the build context`)
        }
      }
    }
  }

  // The runtime stage: non-root, in /app, with what the services read.
  const users = runtime.instructions.filter((instruction) => instruction.keyword === 'USER')
  const user = users.at(-1)?.args.trim().split(':')[0]
  if (!user || user === 'root' || user === '0') problems.push(`${file}: the runtime stage runs as root (add USER node)`)
  const workdirs = runtime.instructions.filter((instruction) => instruction.keyword === 'WORKDIR')
  if (workdirs.at(-1)?.args.trim() !== IMAGE_WORKDIR) {
    problems.push(`${file}: the runtime stage's WORKDIR is not ${IMAGE_WORKDIR} (compose and Kubernetes rely on it)`)
  }
  const needed = [
    'infra/pilot.yaml',
    'infra/data/cn-workdays.json',
    'tsconfig.base.json',
    ...SERVICE_NAMES.map((service) => `services/${service}/src/server.ts`),
    ...workspacePackageDirs(context)
      .filter((dir) => dir.startsWith('packages/') && existsSync(join(context, dir, 'src/index.ts')))
      .map((dir) => `${dir}/src/index.ts`),
  ]
  const dockerignore = existsSync(join(context, '.dockerignore'))
    ? readFileSync(join(context, '.dockerignore'), 'utf8')
    : undefined
  for (const path of needed) {
    const imagePath = imagePathOf(path, stages, runtimeIndex, context)
    const wanted = posix.join(IMAGE_WORKDIR, path)
    if (imagePath !== wanted) {
      problems.push(`${file}: ${path} ends up at ${imagePath ?? 'nowhere'} in the image, not ${wanted}`)
    }
    if (dockerignore !== undefined && ignoredBy(dockerignore, path, 'docker')) {
      problems.push(`.dockerignore leaves out ${path}, which the services need`)
    }
  }
  if (dockerignore === undefined) problems.push(`${file}: no .dockerignore: keys and host node_modules would be sent`)
  else {
    for (const path of [
      '.pilot/keys/shenzhen/idp-jwks.json',
      'node_modules/x',
      'services/intake/node_modules/x',
      '.git/HEAD',
    ]) {
      if (!ignoredBy(dockerignore, path, 'docker'))
        problems.push(`.dockerignore does not leave out ${path.replace(/\/(x|HEAD|keys.*)$/, '')}`)
    }
  }

  // tsx: the services run with `node --import tsx`; a production install leaves the root's tsx out.
  const allRuns = stages.flatMap((stage) => stage.instructions.filter((instruction) => instruction.keyword === 'RUN'))
  const args = [...globalArgs, ...stages.flatMap((stage) => stage.instructions)].filter((i) => i.keyword === 'ARG')
  const tsxArg = args.map((arg) => arg.args.match(/^TSX_VERSION=(\S+)/)?.[1]).find(Boolean)
  const tsxInline = allRuns.map((run) => run.args.match(/tsx@([0-9][^\s"']*)/)?.[1]).find(Boolean)
  const prodOnly = installs.every(({ instruction }) => /--prod\b|--production\b/.test(instruction.args))
  const locked = lockedTsxVersion(context)
  const tsxVersion = tsxArg ?? tsxInline
  if (prodOnly && !tsxVersion)
    problems.push(`${file}: production-only install and no tsx: node --import tsx would fail`)
  if (tsxVersion && tsxVersion !== locked) {
    problems.push(`${file}: installs tsx ${tsxVersion}, but pnpm-lock.yaml pins ${locked}`)
  }
  return problems
}

/** The compose file's service names, for the tests' own assertions. */
export function composeServiceNames(composeFile: string): string[] {
  const document = parseYaml(readFileSync(composeFile, 'utf8'), { merge: true }) as { services?: Obj }
  return Object.keys(document.services ?? {})
}
