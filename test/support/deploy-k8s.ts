/**
 * Static checks of the Kubernetes manifests (infra/k8s): every object against the Kubernetes schemas of the
 * kubernetes-models package, with unknown fields rejected as `kubectl apply` (strict field validation) rejects them, and
 * each city's overlay, rendered the way kustomize renders it, against what the code really uses (deploy-facts.ts).
 * No kustomize binary is needed: the overlays use only what `renderKustomization` applies, and anything else is
 * reported rather than ignored.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { basename, dirname, join, posix, resolve } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import type { PilotProfile } from '@pilot/schemas'
import { Deployment, type IDeployment } from 'kubernetes-models/apps/v1'
import { HorizontalPodAutoscaler, type IHorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2'
import {
  ConfigMap,
  type IConfigMap,
  type IContainer,
  type IProbe,
  type IService,
  Namespace,
  Secret,
  Service,
} from 'kubernetes-models/v1'
import { parseAllDocuments, parse as parseYaml } from 'yaml'
import {
  ContainerFiles,
  checkServiceEnv,
  type Env,
  hasGetRoute,
  PILOT_PROFILE_PATH,
  pilotProfile,
  profileWithoutUrls,
  REPO_ROOT,
  SERVICE_NAMES,
  type ServiceName,
  scratchDir,
  servicesWithWorkers,
  shown,
  writeFileIn,
} from './deploy-facts.ts'

type Obj = Record<string, unknown>
const isObj = (value: unknown): value is Obj => typeof value === 'object' && value !== null && !Array.isArray(value)

export interface K8sObject extends Obj {
  apiVersion?: string
  kind?: string
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string> }
}

/** Where an object came from, for messages. */
const origins = new WeakMap<object, string>()
const describe = (doc: K8sObject) => `${origins.get(doc) ?? '?'} ${doc.kind}/${doc.metadata?.name ?? '(no name)'}`

// --- Schemas ------------------------------------------------------------------------------------------------------------

type ModelClass = new (data: never) => { validate(): void }

/** The kinds the manifests may use, each with its model (and so its schema) from kubernetes-models. */
const MODELS: Record<string, ModelClass> = {
  'v1/Namespace': Namespace as unknown as ModelClass,
  'v1/ConfigMap': ConfigMap as unknown as ModelClass,
  'v1/Secret': Secret as unknown as ModelClass,
  'v1/Service': Service as unknown as ModelClass,
  'apps/v1/Deployment': Deployment as unknown as ModelClass,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler as unknown as ModelClass,
}

interface SchemaError {
  instancePath: string
  message?: string
  params?: Record<string, unknown>
}

function schemaErrors(Model: ModelClass, doc: unknown): SchemaError[] {
  try {
    new Model(doc as never).validate()
    return []
  } catch (error) {
    const errors = (error as { errors?: SchemaError[] }).errors
    if (!errors) throw error
    return errors
  }
}

const pointerSegment = (key: string) => key.replace(/~/g, '~0').replace(/\//g, '~1')
const dotted = (pointer: string) =>
  pointer
    .split('/')
    .slice(1)
    .map((segment) => segment.replace(/~1/g, '/').replace(/~0/g, '~'))
    .join('.')

/** A value no schema type accepts: a field the schema knows gets an error at its own path, an unknown one none. */
const PROBE = Symbol('unknown-field probe')

/**
 * Fields the schema does not know. The Kubernetes OpenAPI schemas leave additionalProperties open (the API server
 * decides what to do with unknown fields; kubectl asks it to refuse them), so a misspelt field passes a plain schema
 * check. Each field is probed instead: set to a value no type accepts, a known field fails validation at its own
 * path; an unknown one does not fail at all.
 */
function unknownFields(Model: ModelClass, doc: K8sObject): string[] {
  const copy = structuredClone(doc) as Obj
  const unknown: string[] = []
  const walk = (node: unknown, pointer: string): void => {
    if (Array.isArray(node)) {
      for (const [index, item] of node.entries()) walk(item, `${pointer}/${index}`)
      return
    }
    if (!isObj(node)) return
    for (const key of Object.keys(node)) {
      const path = `${pointer}/${pointerSegment(key)}`
      const saved = node[key]
      node[key] = PROBE
      let known = true
      try {
        known = schemaErrors(Model, copy).some(
          (error) => error.instancePath === path || error.instancePath.startsWith(`${path}/`),
        )
      } catch {
        known = true // something looked at the value closely enough to throw: the schema knows the field
      }
      node[key] = saved
      if (known) walk(saved, path)
      else unknown.push(dotted(path))
    }
  }
  walk(copy, '')
  return unknown
}

/** Schema problems of one object: kind known, schema satisfied, no unknown field. */
export function validateObject(doc: K8sObject): string[] {
  const key = `${doc.apiVersion}/${doc.kind}`
  const Model = MODELS[key]
  if (!Model) {
    return [
      `${describe(doc)}: apiVersion ${doc.apiVersion} kind ${doc.kind} is not a kind these manifests use (${Object.keys(MODELS).join(', ')})`,
    ]
  }
  const problems = schemaErrors(Model, doc).map((error) => {
    const where = dotted(error.instancePath) || '(object)'
    const detail = error.params && Object.keys(error.params).length > 0 ? ` ${JSON.stringify(error.params)}` : ''
    return `${describe(doc)}: ${where} ${error.message ?? 'is invalid'}${detail} (Kubernetes schema)`
  })
  for (const field of unknownFields(Model, doc)) {
    problems.push(`${describe(doc)}: unknown field ${field} (not in the Kubernetes schema: a typo?)`)
  }
  return problems
}

function loadManifest(path: string): { docs: K8sObject[]; problems: string[] } {
  const problems: string[] = []
  const docs: K8sObject[] = []
  for (const document of parseAllDocuments(readFileSync(path, 'utf8'))) {
    for (const error of document.errors) problems.push(`${shown(path)}: ${error.message}`)
    const value = document.toJS() as unknown
    if (value === null || value === undefined) continue
    if (!isObj(value)) {
      problems.push(`${shown(path)}: a document is not an object`)
      continue
    }
    origins.set(value, shown(path))
    docs.push(value as K8sObject)
  }
  return { docs, problems }
}

// --- Kustomize, the part these manifests use ------------------------------------------------------------------------

const KUSTOMIZATION_FIELDS = new Set(['apiVersion', 'kind', 'namespace', 'resources', 'configMapGenerator', 'patches'])

interface Rendered {
  docs: K8sObject[]
  problems: string[]
}

function kustomizationFile(dir: string): string | undefined {
  return ['kustomization.yaml', 'kustomization.yml'].map((name) => join(dir, name)).find((path) => existsSync(path))
}

/**
 * Renders a kustomization as `kubectl apply -k` would for the fields in KUSTOMIZATION_FIELDS: resources (files and
 * other kustomizations), configMapGenerator (create and merge; the hash suffix kustomize adds to the name is left out:
 * kustomize rewrites every reference to match), namespace, and JSON 6902 patches with a kind/name target.
 */
export function renderKustomization(dir: string): Rendered {
  const file = kustomizationFile(dir)
  if (!file) return { docs: [], problems: [`${shown(dir)}: no kustomization.yaml`] }
  const where = shown(file)
  const problems: string[] = []
  let spec: Obj
  try {
    const parsed = parseYaml(readFileSync(file, 'utf8')) as unknown
    if (!isObj(parsed)) return { docs: [], problems: [`${where}: not a mapping`] }
    spec = parsed
  } catch (error) {
    return { docs: [], problems: [`${where}: not valid YAML: ${(error as Error).message}`] }
  }
  if (spec.apiVersion !== 'kustomize.config.k8s.io/v1beta1' || spec.kind !== 'Kustomization') {
    problems.push(`${where}: not a kustomize.config.k8s.io/v1beta1 Kustomization`)
  }
  for (const key of Object.keys(spec)) {
    if (!KUSTOMIZATION_FIELDS.has(key))
      problems.push(`${where}: field ${key} is unknown here (a typo, or not applied by this check)`)
  }

  const docs: K8sObject[] = []
  for (const entry of (spec.resources as unknown[] | undefined) ?? []) {
    const path = resolve(dir, String(entry))
    if (!existsSync(path)) problems.push(`${where}: resource ${entry} does not exist`)
    else if (statSync(path).isDirectory()) {
      const rendered = renderKustomization(path)
      docs.push(...rendered.docs)
      problems.push(...rendered.problems)
    } else {
      const loaded = loadManifest(path)
      docs.push(...loaded.docs)
      problems.push(...loaded.problems)
    }
  }

  for (const generator of (spec.configMapGenerator as unknown[] | undefined) ?? []) {
    if (!isObj(generator) || typeof generator.name !== 'string') {
      problems.push(`${where}: a configMapGenerator without a name`)
      continue
    }
    const data: Record<string, string> = {}
    for (const literal of (generator.literals as unknown[] | undefined) ?? []) {
      const [key = '', ...value] = String(literal).split('=')
      data[key] = value.join('=')
    }
    for (const entry of (generator.files as unknown[] | undefined) ?? []) {
      const [key, path] = String(entry).includes('=')
        ? String(entry).split('=')
        : [basename(String(entry)), String(entry)]
      const source = resolve(dir, path ?? '')
      if (!existsSync(source)) problems.push(`${where}: configMapGenerator ${generator.name}: ${path} does not exist`)
      else data[key ?? ''] = readFileSync(source, 'utf8')
    }
    const behavior = generator.behavior ?? 'create'
    const existing = docs.find((doc) => doc.kind === 'ConfigMap' && doc.metadata?.name === generator.name)
    if (behavior === 'create') {
      if (existing) problems.push(`${where}: ConfigMap ${generator.name} is generated twice`)
      const configMap: K8sObject = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: generator.name }, data }
      origins.set(configMap, `${where} (generated)`)
      docs.push(configMap)
    } else if (!existing) {
      problems.push(`${where}: configMapGenerator ${generator.name} (${behavior}) has no ConfigMap to ${behavior} with`)
    } else if (behavior === 'merge') {
      existing.data = { ...(existing.data as Record<string, string> | undefined), ...data }
    } else if (behavior === 'replace') existing.data = data
    else problems.push(`${where}: configMapGenerator ${generator.name}: unknown behavior ${behavior}`)
  }

  if (typeof spec.namespace === 'string') {
    for (const doc of docs) {
      if (doc.kind === 'Namespace') continue
      doc.metadata = { ...doc.metadata, namespace: spec.namespace }
    }
  }

  for (const [index, patch] of ((spec.patches as unknown[] | undefined) ?? []).entries()) {
    const label = `${where}: patches[${index}]`
    if (!isObj(patch)) {
      problems.push(`${label}: not a mapping`)
      continue
    }
    const text =
      typeof patch.patch === 'string'
        ? patch.patch
        : typeof patch.path === 'string' && existsSync(resolve(dir, patch.path))
          ? readFileSync(resolve(dir, patch.path), 'utf8')
          : undefined
    if (text === undefined) {
      problems.push(`${label}: no patch text`)
      continue
    }
    const operations = parseYaml(text) as unknown
    if (!Array.isArray(operations)) {
      problems.push(
        `${label}: a strategic-merge patch; this check applies JSON 6902 patches (a list of operations) only`,
      )
      continue
    }
    const target = isObj(patch.target) ? patch.target : {}
    for (const key of Object.keys(target)) {
      if (key !== 'kind' && key !== 'name') problems.push(`${label}: target.${key} is not applied by this check`)
    }
    const matches = docs.filter(
      (doc) =>
        (target.kind === undefined || doc.kind === target.kind) &&
        (target.name === undefined || new RegExp(`^(?:${target.name})$`).test(doc.metadata?.name ?? '')),
    )
    if (matches.length === 0) problems.push(`${label}: its target ${JSON.stringify(target)} matches nothing`)
    for (const doc of matches) {
      for (const operation of operations) {
        const problem = applyOperation(doc, operation)
        if (problem) problems.push(`${label} on ${doc.kind}/${doc.metadata?.name}: ${problem}`)
      }
    }
  }
  return { docs, problems }
}

/** One JSON Patch (RFC 6902) operation: test, replace, add or remove. Returns a problem, or undefined. */
function applyOperation(doc: K8sObject, operation: unknown): string | undefined {
  if (!isObj(operation) || typeof operation.op !== 'string' || typeof operation.path !== 'string') {
    return `not an operation: ${JSON.stringify(operation)}`
  }
  const segments = operation.path
    .split('/')
    .slice(1)
    .map((segment) => segment.replace(/~1/g, '/').replace(/~0/g, '~'))
  const last = segments.pop()
  if (last === undefined) return `${operation.op} at the root`
  let parent: unknown = doc
  for (const segment of segments) {
    parent = Array.isArray(parent) ? parent[Number(segment)] : isObj(parent) ? parent[segment] : undefined
    if (parent === undefined) return `${operation.path}: ${segment} does not exist`
  }
  const container = parent as Obj | unknown[]
  const has = Array.isArray(container) ? Number(last) < container.length : Object.hasOwn(container, last)
  const current = Array.isArray(container) ? container[Number(last)] : container[last]
  switch (operation.op) {
    case 'test':
      if (!isDeepStrictEqual(current, operation.value)) {
        return `test ${operation.path} failed: found ${JSON.stringify(current)}, expected ${JSON.stringify(operation.value)}`
      }
      return undefined
    case 'replace':
      if (!has) return `replace ${operation.path}: nothing there to replace`
      if (Array.isArray(container)) container[Number(last)] = operation.value
      else container[last] = operation.value
      return undefined
    case 'add':
      if (Array.isArray(container)) container.splice(last === '-' ? container.length : Number(last), 0, operation.value)
      else container[last] = operation.value
      return undefined
    case 'remove':
      if (!has) return `remove ${operation.path}: nothing there`
      if (Array.isArray(container)) container.splice(Number(last), 1)
      else delete container[last]
      return undefined
    default:
      return `operation ${operation.op} is not applied by this check`
  }
}

// --- Secrets the operator creates -------------------------------------------------------------------------------------

interface DocumentedSecret {
  namespace: string
  keys: Map<string, { literal?: string; file?: string }>
}

/**
 * The secrets infra/DEPLOY.md tells the operator to create, for one city: the `kubectl create secret generic`
 * commands between its operator-secrets markers, with $city / ${city} standing for the city.
 */
export function documentedSecrets(
  deployDoc: string,
  city: string,
): { secrets: Map<string, DocumentedSecret>; problems: string[] } {
  const text = existsSync(deployDoc) ? readFileSync(deployDoc, 'utf8') : ''
  const block = text.match(/<!-- operator-secrets:begin[\s\S]*?-->([\s\S]*?)<!-- operator-secrets:end/)?.[1]
  const secrets = new Map<string, DocumentedSecret>()
  if (!block)
    return {
      secrets,
      problems: [`${shown(deployDoc)}: no operator-secrets block (the secrets the manifests reference)`],
    }
  const commands = block
    .replace(/\\\n\s*/g, ' ')
    .replace(/\$\{?city\}?/g, city)
    .split('\n')
  for (const command of commands) {
    const match = command.match(/kubectl\s+-n\s+(\S+)\s+create\s+secret\s+generic\s+(\S+)(.*)$/)
    if (!match) continue
    const [, namespace = '', name = '', options = ''] = match
    const keys = new Map<string, { literal?: string; file?: string }>()
    for (const option of options.matchAll(/--from-(literal|file)=([^=\s]+)=(\S+)/g)) {
      const [, kind, key = '', value = ''] = option
      keys.set(key, kind === 'literal' ? { literal: value } : { file: value })
    }
    secrets.set(name, { namespace, keys })
  }
  return { secrets, problems: [] }
}

// --- The checks ---------------------------------------------------------------------------------------------------------

export interface KubernetesCheckOptions {
  /** The operator's guide with the operator-secrets block; defaults to infra/DEPLOY.md beside infra/k8s. */
  deployDoc?: string
  /**
   * Local stand-ins for files the secret commands read that are generated rather than committed (paths relative to
   * the repository root, where the commands run), e.g. `{ '.pilot/keys': <a directory made by ensureDevSecrets> }`.
   */
  standIns?: Record<string, string>
  /** The local directory that stands for the image's /app (the repository). */
  imageRoot?: string
}

/**
 * Validates every manifest file under `k8sDir` on its own against the schemas, then renders each overlay
 * (`overlays/<city>`) and checks it: schemas again (patches can break them), one overlay per city of the profile, the
 * city set, API and worker Deployments as the code has them, probes on real health routes, resources, an autoscaler
 * per Deployment, Services on the profile's ports and URLs, every ConfigMap and Secret reference resolvable, and each
 * process's environment accepted by the service's own configuration reader.
 */
export function checkKubernetes(k8sDir: string, options: KubernetesCheckOptions = {}): string[] {
  const problems: string[] = []
  const fileProblems = new Set<string>()
  const manifestFiles = listYaml(k8sDir).filter((path) => !/kustomization\.ya?ml$/.test(path))
  for (const path of manifestFiles) {
    const loaded = loadManifest(path)
    problems.push(...loaded.problems)
    const isK8sObject = (doc: K8sObject) => doc.apiVersion !== undefined && doc.kind !== undefined
    // The profile is a data file of a configMapGenerator, not an object.
    if (loaded.docs.length > 0 && !loaded.docs.every(isK8sObject) && loaded.docs.some(isK8sObject)) {
      problems.push(`${shown(path)}: mixes Kubernetes objects and other documents`)
    }
    for (const doc of loaded.docs.filter(isK8sObject)) {
      for (const problem of validateObject(doc)) fileProblems.add(problem)
    }
  }
  problems.push(...fileProblems)

  const overlaysDir = join(k8sDir, 'overlays')
  const overlays = existsSync(overlaysDir)
    ? readdirSync(overlaysDir).filter((entry) => kustomizationFile(join(overlaysDir, entry)))
    : []
  const profile = pilotProfile()
  for (const city of profile.cities) {
    if (!overlays.includes(city.id)) problems.push(`${shown(overlaysDir)}: no overlay for ${city.id}`)
  }
  for (const overlay of overlays) {
    if (!profile.cities.some((city) => city.id === overlay)) {
      problems.push(`${shown(join(overlaysDir, overlay))}: ${overlay} is not a city of infra/pilot.yaml`)
      continue
    }
    problems.push(...checkOverlay(join(overlaysDir, overlay), overlay, options, k8sDir, fileProblems))
  }
  return [...new Set(problems)]
}

function listYaml(dir: string): string[] {
  const files: string[] = []
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry)
    if (statSync(path).isDirectory()) files.push(...listYaml(path))
    else if (/\.ya?ml$/.test(entry)) files.push(path)
  }
  return files.sort()
}

function checkOverlay(
  dir: string,
  city: string,
  options: KubernetesCheckOptions,
  k8sDir: string,
  alreadyReported: Set<string>,
): string[] {
  const label = shown(dir)
  const { docs, problems } = renderKustomization(dir)
  // Schemas again after the patches; what the files already got reported for is not repeated.
  for (const doc of docs) {
    for (const problem of validateObject(doc)) if (!alreadyReported.has(problem)) problems.push(`${label}: ${problem}`)
  }
  const named = (kind: string) => docs.filter((doc) => doc.kind === kind)
  const byName = <T>(kind: string, name: string) =>
    docs.find((doc) => doc.kind === kind && doc.metadata?.name === name) as T | undefined

  // Namespace: one per city, every object in it.
  const namespaces = named('Namespace')
  const namespace = namespaces[0]?.metadata?.name
  if (namespaces.length !== 1 || !namespace) problems.push(`${label}: not exactly one Namespace`)
  for (const doc of docs) {
    if (doc.kind !== 'Namespace' && doc.metadata?.namespace !== namespace) {
      problems.push(
        `${label}: ${doc.kind}/${doc.metadata?.name} is in namespace ${doc.metadata?.namespace}, not ${namespace}`,
      )
    }
  }

  // The city's settings.
  const env = byName<IConfigMap>('ConfigMap', 'pilot-env')
  if (!env) problems.push(`${label}: no ConfigMap pilot-env`)
  else if (env.data?.CITY !== city)
    problems.push(`${label}: ConfigMap pilot-env sets CITY=${env.data?.CITY}, not ${city}`)

  // The profile the pods mount, compared with infra/pilot.yaml: only where services are reached may differ.
  const profileMap = byName<IConfigMap>('ConfigMap', 'pilot-profile')
  let profile: PilotProfile | undefined
  const scratch = scratchDir(`k8s-${city}`)
  try {
    if (!profileMap?.data?.['pilot.yaml']) problems.push(`${label}: no ConfigMap pilot-profile with pilot.yaml`)
    else {
      const path = writeFileIn(scratch.path, 'profile/pilot.yaml', profileMap.data['pilot.yaml'])
      try {
        profile = pilotProfile(path)
      } catch (error) {
        problems.push(`${label}: ConfigMap pilot-profile: ${(error as Error).message}`)
      }
      if (
        profile &&
        !isDeepStrictEqual(profileWithoutUrls(profile), profileWithoutUrls(pilotProfile(PILOT_PROFILE_PATH)))
      ) {
        problems.push(`${label}: ConfigMap pilot-profile differs from infra/pilot.yaml in more than its URLs`)
      }
    }

    const { secrets, problems: secretProblems } = documentedSecrets(
      options.deployDoc ?? join(dirname(k8sDir), 'DEPLOY.md'),
      city,
    )
    problems.push(...secretProblems.map((problem) => `${label}: ${problem}`))

    // Deployments: an API Deployment per service, a worker Deployment per service that has workers.
    const workers = servicesWithWorkers()
    const deployments = named('Deployment') as IDeployment[]
    const expected = SERVICE_NAMES.flatMap((service) => [
      { service, mode: 'api' as const },
      ...(workers.includes(service) ? [{ service, mode: 'worker' as const }] : []),
    ])
    for (const { service, mode } of expected) {
      if (!deployments.some((deployment) => deployment.metadata?.name === `${service}-${mode}`)) {
        problems.push(`${label}: no Deployment ${service}-${mode}`)
      }
    }
    const hpas = named('HorizontalPodAutoscaler') as IHorizontalPodAutoscaler[]
    for (const deployment of deployments) {
      const name = deployment.metadata?.name ?? ''
      const [service, mode] = name.split(/-(?=api$|worker$)/) as [ServiceName, 'api' | 'worker' | undefined]
      const where = `${label}: Deployment/${name}`
      if (!SERVICE_NAMES.includes(service) || !mode) {
        problems.push(`${where}: not <service>-api or <service>-worker`)
        continue
      }
      if (mode === 'worker' && !workers.includes(service)) {
        problems.push(
          `${where}: ${service} has no queue workers (services/${service}/src/app.ts); it would serve its API`,
        )
      }
      problems.push(
        ...checkDeployment(deployment, {
          where,
          service,
          mode,
          city,
          docs,
          secrets,
          namespace,
          scratch: scratch.path,
          options,
        }),
      )
      const hpa = hpas.find(
        (candidate) =>
          candidate.spec?.scaleTargetRef.kind === 'Deployment' &&
          candidate.spec.scaleTargetRef.name === name &&
          candidate.spec.scaleTargetRef.apiVersion === 'apps/v1',
      )
      if (!hpa) problems.push(`${where}: no HorizontalPodAutoscaler targets it`)
      else if ((hpa.spec?.minReplicas ?? 1) > (hpa.spec?.maxReplicas ?? 0)) {
        problems.push(`${label}: HorizontalPodAutoscaler/${hpa.metadata?.name}: minReplicas above maxReplicas`)
      }
    }
    for (const hpa of hpas) {
      const target = hpa.spec?.scaleTargetRef
      if (
        !deployments.some((deployment) => deployment.metadata?.name === target?.name && target?.kind === 'Deployment')
      ) {
        problems.push(
          `${label}: HorizontalPodAutoscaler/${hpa.metadata?.name} targets ${target?.kind}/${target?.name}, which is not here`,
        )
      }
    }

    // Services: one per API Deployment, named after the service, on the profile's port and URL.
    const services = named('Service') as IService[]
    const cityProfile = profile?.cities.find((candidate) => candidate.id === city)
    for (const service of SERVICE_NAMES) {
      const definition = services.find((candidate) => candidate.metadata?.name === service)
      const where = `${label}: Service/${service}`
      if (!definition) {
        problems.push(`${label}: no Service ${service} (the profile's URLs name it)`)
        continue
      }
      const selector = definition.spec?.selector ?? {}
      const selects = (deployment: IDeployment) =>
        Object.keys(selector).length > 0 &&
        Object.entries(selector).every(([key, value]) => deployment.spec?.template.metadata?.labels?.[key] === value)
      const api = deployments.find((deployment) => deployment.metadata?.name === `${service}-api`)
      if (api && !selects(api)) problems.push(`${where}: its selector does not select the ${service}-api pods`)
      for (const other of deployments.filter((deployment) => deployment !== api && selects(deployment))) {
        problems.push(`${where}: its selector also selects ${other.metadata?.name}'s pods`)
      }
      const port = definition.spec?.ports?.[0]
      if (api && port) {
        const container = api.spec?.template.spec?.containers[0]
        if (container && containerPort(container, port.targetPort ?? port.port) === undefined) {
          problems.push(`${where}: targetPort ${port.targetPort} is not a port of the ${service}-api container`)
        }
      }
      const endpoint = cityProfile?.services[service]
      if (endpoint && port) {
        const url = new URL(endpoint.url)
        if (port.port !== endpoint.port) {
          problems.push(
            `${where}: port ${port.port}, but the profile's port for ${city} ${service} is ${endpoint.port}`,
          )
        }
        const [host, hostNamespace] = url.hostname.split('.')
        if (host !== service || hostNamespace !== namespace || Number(url.port) !== port.port) {
          problems.push(
            `${where}: the profile's URL ${endpoint.url} does not reach it (${service}.${namespace}:${port.port})`,
          )
        }
      }
    }
  } finally {
    scratch.dispose()
  }
  return problems
}

function containerPort(container: IContainer, port: number | string | undefined): number | undefined {
  if (typeof port === 'number')
    return container.ports?.some((candidate) => candidate.containerPort === port) ? port : undefined
  return container.ports?.find((candidate) => candidate.name === port)?.containerPort
}

interface DeploymentContext {
  where: string
  service: ServiceName
  mode: 'api' | 'worker'
  city: string
  docs: K8sObject[]
  secrets: Map<string, DocumentedSecret>
  namespace: string | undefined
  scratch: string
  options: KubernetesCheckOptions
}

function checkDeployment(deployment: IDeployment, context: DeploymentContext): string[] {
  const { where, service, mode } = context
  const problems: string[] = []
  const spec = deployment.spec
  const pod = spec?.template.spec
  const container = pod?.containers[0]
  if (!spec || !pod || !container) return [`${where}: no pod template with a container`]
  if (pod.containers.length !== 1) problems.push(`${where}: one container expected, found ${pod.containers.length}`)
  const labels = spec.template.metadata?.labels ?? {}
  for (const [key, value] of Object.entries(spec.selector.matchLabels ?? {})) {
    if (labels[key] !== value)
      problems.push(`${where}: selector ${key}=${value} does not match the pod template's labels`)
  }
  const script = `services/${service}/src/server.ts`
  const command = [...(container.command ?? []), ...(container.args ?? [])].join(' ')
  if (!command.includes(script)) problems.push(`${where}: the container does not run ${script}`)

  // Probes: liveness on /health/live, readiness on /health/ready, on a port the container declares.
  const probes: [string, IProbe | undefined, string | undefined][] = [
    ['livenessProbe', container.livenessProbe, '/health/live'],
    ['readinessProbe', container.readinessProbe, '/health/ready'],
    ['startupProbe', container.startupProbe, undefined],
  ]
  const probePorts = new Set<number>()
  for (const [name, probe, path] of probes) {
    if (!probe) {
      if (path) problems.push(`${where}: no ${name}`)
      continue
    }
    const get = probe.httpGet
    if (!get) {
      problems.push(`${where}: ${name} is not an HTTP GET`)
      continue
    }
    if (!get.path || !hasGetRoute(service, get.path)) {
      problems.push(`${where}: ${name} calls ${get.path}, which is not a route of ${service} (openapi/${service}.yaml)`)
    } else if (path && get.path !== path) problems.push(`${where}: ${name} calls ${get.path}; it should call ${path}`)
    const port = containerPort(container, get.port)
    if (port === undefined) problems.push(`${where}: ${name} port ${get.port} is not a port of the container`)
    else probePorts.add(port)
  }
  const metricsPath = spec.template.metadata?.annotations?.['prometheus.io/path']
  if (metricsPath && !hasGetRoute(service, metricsPath)) {
    problems.push(`${where}: Prometheus scrapes ${metricsPath}, which is not a route of ${service}`)
  }

  // Resources.
  const requests = container.resources?.requests ?? {}
  for (const resource of ['cpu', 'memory']) {
    if (requests[resource] === undefined) problems.push(`${where}: no resources.requests.${resource}`)
  }
  if (container.resources?.limits?.memory === undefined) problems.push(`${where}: no resources.limits.memory`)

  // References: ConfigMaps in the manifests, Secrets in the operator's guide.
  const configMap = (name: string) =>
    context.docs.find((doc) => doc.kind === 'ConfigMap' && doc.metadata?.name === name) as IConfigMap | undefined
  const secret = (name: string, key: string | undefined, usage: string) => {
    const documented = context.secrets.get(name)
    if (!documented) {
      problems.push(`${where}: ${usage} uses Secret ${name}, which neither the manifests nor infra/DEPLOY.md create`)
      return undefined
    }
    if (documented.namespace !== context.namespace) {
      problems.push(`${where}: Secret ${name} is created in ${documented.namespace}, not ${context.namespace}`)
    }
    if (key !== undefined && !documented.keys.has(key)) {
      problems.push(`${where}: ${usage} uses key ${key} of Secret ${name}, which infra/DEPLOY.md does not put there`)
      return undefined
    }
    return documented
  }

  // The environment the process gets.
  const env: Env = {}
  for (const source of container.envFrom ?? []) {
    if (source.configMapRef) {
      const map = configMap(source.configMapRef.name ?? '')
      if (!map) problems.push(`${where}: envFrom ConfigMap ${source.configMapRef.name}, which is not in the manifests`)
      Object.assign(env, map?.data)
    }
    if (source.secretRef) {
      const documented = secret(source.secretRef.name ?? '', undefined, 'envFrom')
      for (const [key, value] of documented?.keys ?? []) env[key] = value.literal
    }
  }
  for (const variable of container.env ?? []) {
    if (variable.value !== undefined) env[variable.name] = variable.value
    else if (variable.valueFrom?.secretKeyRef) {
      const { name = '', key } = variable.valueFrom.secretKeyRef
      env[variable.name] = secret(name, key, variable.name)?.keys.get(key)?.literal
    } else if (variable.valueFrom?.configMapKeyRef) {
      const { name = '', key } = variable.valueFrom.configMapKeyRef
      const value = configMap(name)?.data?.[key]
      if (value === undefined)
        problems.push(`${where}: ${variable.name} uses ConfigMap ${name} key ${key}, which is not there`)
      env[variable.name] = value
    } else env[variable.name] = ''
  }

  // The files it sees: its volumes, filled from the manifests and the operator's guide, and the image.
  const files = new ContainerFiles({ workdir: '/app', local: context.options.imageRoot ?? REPO_ROOT })
  const volumes = new Map((pod.volumes ?? []).map((volume) => [volume.name, volume]))
  for (const mount of container.volumeMounts ?? []) {
    const volume = volumes.get(mount.name)
    if (!volume) {
      problems.push(`${where}: volumeMount ${mount.name} names no volume`)
      continue
    }
    const local = join(context.scratch, `${deployment.metadata?.name}-${mount.name}`)
    if (volume.configMap) {
      const map = configMap(volume.configMap.name ?? '')
      if (!map)
        problems.push(
          `${where}: volume ${mount.name} uses ConfigMap ${volume.configMap.name}, which is not in the manifests`,
        )
      const items = volume.configMap.items ?? Object.keys(map?.data ?? {}).map((key) => ({ key, path: key }))
      for (const item of items) {
        const value = map?.data?.[item.key]
        if (value === undefined) problems.push(`${where}: volume ${mount.name}: ConfigMap key ${item.key} is not there`)
        else writeFileIn(local, item.path, value)
      }
    } else if (volume.secret) {
      const name = volume.secret.secretName ?? ''
      const documented = secret(name, undefined, `volume ${mount.name}`)
      const items = volume.secret.items ?? [...(documented?.keys.keys() ?? [])].map((key) => ({ key, path: key }))
      for (const item of items) {
        const value = documented?.keys.get(item.key)
        if (documented && !value) {
          problems.push(
            `${where}: volume ${mount.name} uses key ${item.key} of Secret ${name}, which infra/DEPLOY.md does not put there`,
          )
        }
        if (value?.literal !== undefined) writeFileIn(local, item.path, value.literal)
        if (value?.file !== undefined) {
          const source = standIn(value.file, context.options)
          if (existsSync(source)) writeFileIn(local, item.path, readFileSync(source, 'utf8'))
          else problems.push(`${where}: Secret ${name} key ${item.key} comes from ${value.file}, which does not exist`)
        }
      }
    } else if (!volume.emptyDir) {
      problems.push(`${where}: volume ${mount.name} is neither a ConfigMap, a Secret nor an emptyDir`)
    }
    files.mount(mount.mountPath, local)
  }

  const checked = checkServiceEnv({ label: where, service, city: context.city, mode, env, files })
  problems.push(...checked.problems)
  if (checked.config) {
    const listening = checked.config.port
    if (!container.ports?.some((port) => port.containerPort === listening)) {
      problems.push(
        `${where}: the service listens on ${listening} (PORT or the profile), which the container does not declare`,
      )
    }
    for (const port of probePorts) {
      if (port !== listening)
        problems.push(`${where}: a probe calls port ${port}, but the service listens on ${listening}`)
    }
  }
  return problems
}

function standIn(path: string, options: KubernetesCheckOptions): string {
  const normalized = posix.normalize(path)
  for (const [prefix, local] of Object.entries(options.standIns ?? {})) {
    if (normalized === prefix || normalized.startsWith(`${prefix}/`))
      return join(local, posix.relative(prefix, normalized))
  }
  return join(REPO_ROOT, normalized)
}
