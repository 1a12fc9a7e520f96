/**
 * The deployment files, checked without a container engine or a cluster: docker-compose.yml, the Dockerfile and the
 * Kubernetes manifests against the services, variables, routes and profile the code really has, and the manifests
 * against the Kubernetes schemas. The same check functions run on the real files (no problem) and on deliberately
 * broken copies (each problem named), so a check that stopped looking would show here.
 */
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { ensureDevSecrets } from '@pilot/kit'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseAllDocuments, parse as parseYaml, stringify } from 'yaml'
import { checkCompose, checkDockerfile, composeServiceNames } from './support/deploy-compose.ts'
import {
  baseRequiredVariables,
  cityIds,
  REPO_ROOT,
  requiredVariables,
  SERVICE_NAMES,
  scratchDir,
  servicesWithWorkers,
} from './support/deploy-facts.ts'
import { checkKubernetes } from './support/deploy-k8s.ts'

type Obj = Record<string, unknown>

const root = REPO_ROOT
let keys: ReturnType<typeof scratchDir>
const standIns = () => ({ '.pilot/keys': keys.path })
const scratches: ReturnType<typeof scratchDir>[] = []

beforeAll(() => {
  // The development keys the compose file mounts and the Kubernetes secrets are made from (never committed).
  keys = scratchDir('keys')
  ensureDevSecrets(keys.path, cityIds())
})

afterAll(() => {
  keys?.dispose()
  for (const scratch of scratches) scratch.dispose()
})

/** A copy of the deployment files (and what they refer to) in a scratch directory laid out like the repository. */
function copyOfDeployment(): string {
  const scratch = scratchDir('broken')
  scratches.push(scratch)
  const paths = [
    'docker-compose.yml',
    'Dockerfile',
    '.dockerignore',
    '.gitignore',
    'package.json',
    'pnpm-lock.yaml',
    'pnpm-workspace.yaml',
    'tsconfig.base.json',
    'tsconfig.json',
    'infra',
    'packages',
    'services',
    'test/package.json',
  ]
  for (const path of paths) {
    mkdirSync(dirname(join(scratch.path, path)), { recursive: true })
    cpSync(join(root, path), join(scratch.path, path), {
      recursive: true,
      filter: (source) => !source.includes('/node_modules') && !/\/(services|packages)\/[^/]+\/test(\/|$)/.test(source),
    })
  }
  return scratch.path
}

function environmentOf(services: Record<string, Obj>, name: string): Obj {
  const environment = services[name]?.environment
  if (typeof environment !== 'object' || environment === null) throw new Error(`${name} has no environment`)
  return environment as Obj
}

/** Replaces text that must be there (so a broken copy cannot silently stay intact). */
function edit(path: string, from: string, to: string): void {
  const text = readFileSync(path, 'utf8')
  expect(text, `${path} should contain ${JSON.stringify(from)}`).toContain(from)
  writeFileSync(path, text.replace(from, to))
}

describe('what the checks derive from the code', () => {
  it("reads each service's required variables from its configuration reader", () => {
    for (const service of SERVICE_NAMES) {
      expect(requiredVariables(service)).toEqual(expect.arrayContaining(baseRequiredVariables()))
    }
    expect(baseRequiredVariables()).toEqual(
      expect.arrayContaining(['CITY', 'DATABASE_URL', 'REDIS_URL', 'PILOT_CONFIG', 'AUTH_JWKS_URL']),
    )
    expect(requiredVariables('gateway')).toContain('SIGNING_KEY_FILE')
    expect(requiredVariables('intake')).toEqual(
      expect.arrayContaining(['BLIND_INDEX_KEY_FILE', 'PII_ENCRYPTION_KEY_FILE', 'SERVICE_IDENTITY_KEY_FILE']),
    )
    expect(requiredVariables('residence')).toEqual(expect.arrayContaining(['SIGNING_KEY_FILE', 'MATCHING_KEY_FILE']))
  })

  it('finds which services run queue workers', () => {
    expect(servicesWithWorkers()).toEqual(expect.arrayContaining(['intake', 'gateway']))
  })
})

describe('docker-compose.yml', () => {
  it('runs PostgreSQL, Redis and exactly the nine <city>-<service> services', () => {
    const names = composeServiceNames(join(root, 'docker-compose.yml'))
    const expected = cityIds().flatMap((city) => SERVICE_NAMES.map((service) => `${city}-${service}`))
    expect(names.filter((name) => /-(residence|intake|gateway)$/.test(name)).sort()).toEqual(expected.sort())
    expect(names).toEqual(expect.arrayContaining(['postgres', 'redis']))
  })

  it('passes every check against the code', () => {
    expect(checkCompose(join(root, 'docker-compose.yml'), { standIns: standIns() })).toEqual([])
  })
})

describe('Dockerfile', () => {
  it('passes every check', () => {
    expect(checkDockerfile(join(root, 'Dockerfile'))).toEqual([])
  })
})

describe('Kubernetes manifests', () => {
  it('pass the Kubernetes schemas and every check against the code, for each city', () => {
    expect(checkKubernetes(join(root, 'infra/k8s'), { standIns: standIns() })).toEqual([])
  })
})

describe('a deliberately broken copy fails the checks, naming the problem', () => {
  type ComposeBreak = [string, (services: Record<string, Obj>) => void, RegExp]
  const composeBreaks: ComposeBreak[] = [
    [
      'a service without DATABASE_URL',
      (services) => delete environmentOf(services, 'zhuhai-intake').DATABASE_URL,
      /zhuhai-intake: DATABASE_URL is not set/,
    ],
    [
      'two services on one port',
      (services) => {
        environmentOf(services, 'zhongshan-gateway').PORT = '7302'
      },
      /zhongshan-gateway: port 7302 is also zhongshan-intake's/,
    ],
    [
      'a health check on a route that does not exist',
      (services) => {
        const healthcheck = services['shenzhen-residence']?.healthcheck as { test: string[] }
        healthcheck.test = healthcheck.test.map((word) => word.replace('/health/ready', '/health/nope'))
      },
      /shenzhen-residence: health check calls \/health\/nope, which is not a route of residence/,
    ],
    [
      'depends_on naming no service',
      (services) => {
        ;(services['shenzhen-intake']?.depends_on as Obj)['shenzhen-residense'] = { condition: 'service_healthy' }
      },
      /shenzhen-intake: depends on shenzhen-residense, which is not a service/,
    ],
    [
      'a misspelt key',
      (services) => {
        const gateway = services['zhuhai-gateway'] as Obj
        gateway.healtcheck = gateway.healthcheck
        delete gateway.healthcheck
      },
      /must NOT have additional properties \(healtcheck\)/,
    ],
    ['a missing service', (services) => delete services['zhongshan-residence'], /no service zhongshan-residence/],
    [
      'a key file the mount does not have',
      (services) => {
        environmentOf(services, 'shenzhen-gateway').SIGNING_KEY_FILE = '/run/secrets/pilot/shenzhen/signing.jwk'
      },
      /shenzhen-gateway: the gateway service would refuse to start: .*SIGNING_\*_FILE/,
    ],
    [
      'a city on another city’s database',
      (services) => {
        environmentOf(services, 'zhuhai-residence').DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/pilot_shenzhen'
      },
      /zhuhai-residence: database pilot_shenzhen is also shenzhen-\w+'s/,
    ],
  ]

  it.each(composeBreaks)('compose: %s', (_name, breakIt, message) => {
    const dir = copyOfDeployment()
    const file = join(dir, 'docker-compose.yml')
    const document = parseYaml(readFileSync(file, 'utf8'), { merge: true }) as { services: Record<string, Obj> }
    breakIt(document.services)
    writeFileSync(file, stringify(document))
    const problems = checkCompose(file, { standIns: standIns() })
    expect(problems.join('\n')).toMatch(message)
  })

  it('the copy, unbroken, passes every check (so the breaks are what fails)', () => {
    const dir = copyOfDeployment()
    const file = join(dir, 'docker-compose.yml')
    writeFileSync(file, stringify(parseYaml(readFileSync(file, 'utf8'), { merge: true })))
    expect(checkCompose(file, { standIns: standIns() })).toEqual([])
    expect(checkDockerfile(join(dir, 'Dockerfile'))).toEqual([])
    expect(checkKubernetes(join(dir, 'infra/k8s'), { standIns: standIns() })).toEqual([])
  })

  type TextBreak = [string, string, string, string, RegExp]
  const dockerfileBreaks: TextBreak[] = [
    [
      "a directory COPY that flattens infra/data (the first draft's)",
      'Dockerfile',
      'COPY infra/pilot.yaml infra/pilot.yaml\nCOPY infra/data infra/data',
      'COPY infra/pilot.yaml infra/data infra/',
      /infra\/data\/cn-workdays\.json ends up at \/app\/infra\/cn-workdays\.json/,
    ],
    [
      'a workspace manifest missing before the frozen install',
      'Dockerfile',
      'COPY packages/signing/package.json packages/signing/\n',
      '',
      /pnpm install --frozen-lockfile runs without packages\/signing\/package\.json/,
    ],
    ['a runtime stage running as root', 'Dockerfile', 'USER node\n', '', /the runtime stage runs as root/],
    [
      'a tsx other than the locked one',
      'Dockerfile',
      'ARG TSX_VERSION=',
      'ARG TSX_VERSION=4.0.0#',
      /installs tsx 4\.0\.0/,
    ],
    ['keys in the build context', '.dockerignore', '.pilot\n', '', /\.dockerignore does not leave out \.pilot/],
    [
      'a .dockerignore exception that a later line undoes',
      '.dockerignore',
      '**/test\n!test/package.json\n',
      '!test/package.json\n**/test\n',
      /COPY test\/package\.json: \.dockerignore leaves it out of the build context/,
    ],
  ]

  it.each(dockerfileBreaks)('Dockerfile: %s', (_name, path, from, to, message) => {
    const dir = copyOfDeployment()
    edit(join(dir, path), from, to)
    expect(checkDockerfile(join(dir, 'Dockerfile')).join('\n')).toMatch(message)
  })

  const kubernetesBreaks: TextBreak[] = [
    [
      'a containerPort that is not a number',
      'infra/k8s/base/gateway.yaml',
      'containerPort: 8080',
      'containerPort: "abc"',
      /Deployment\/gateway-api: spec\.template\.spec\.containers\.0\.ports\.0\.containerPort must be integer/,
    ],
    [
      'a misspelt field',
      'infra/k8s/base/intake.yaml',
      '  # No replicas: the HorizontalPodAutoscaler intake-api owns the count.\n',
      '  replicase: 2\n',
      /Deployment\/intake-api: unknown field spec\.replicase/,
    ],
    [
      'a readiness probe on a route that does not exist',
      'infra/k8s/base/residence.yaml',
      'httpGet: { path: /health/ready, port: http }',
      'httpGet: { path: /health/nope, port: http }',
      /Deployment\/residence-api: readinessProbe calls \/health\/nope, which is not a route of residence/,
    ],
    [
      'a probe on a port the container does not have',
      'infra/k8s/base/intake.yaml',
      'httpGet: { path: /health/live, port: http }',
      'httpGet: { path: /health/live, port: htp }',
      /Deployment\/intake-api: (livenessProbe|startupProbe) port htp is not a port of the container/,
    ],
    [
      'a Deployment without resources',
      'infra/k8s/base/residence.yaml',
      'requests: { cpu: 250m, memory: 256Mi }',
      'requests: { memory: 256Mi }',
      /Deployment\/residence-api: no resources\.requests\.cpu/,
    ],
    [
      'an overlay setting another city',
      'infra/k8s/overlays/zhuhai/kustomization.yaml',
      '- CITY=zhuhai',
      '- CITY=shenzhen',
      /overlays\/zhuhai: ConfigMap pilot-env sets CITY=shenzhen, not zhuhai/,
    ],
    [
      'a secret nobody creates',
      'infra/k8s/overlays/zhongshan/kustomization.yaml',
      'value: zhongshan-database }',
      'value: zhongshan-databse }',
      /uses Secret zhongshan-databse, which neither the manifests nor infra\/DEPLOY\.md create/,
    ],
    [
      'a Service off the port plan',
      'infra/k8s/overlays/zhuhai/kustomization.yaml',
      'value: 7201 }',
      'value: 7204 }',
      /Service\/residence: port 7204, but the profile's port for zhuhai residence is 7201/,
    ],
    [
      'a misspelt kustomization field',
      'infra/k8s/overlays/shenzhen/kustomization.yaml',
      '\npatches:\n',
      '\npatchs:\n',
      /kustomization\.yaml: field patchs is unknown here/,
    ],
    [
      'a worker that would not run workers',
      'infra/k8s/base/gateway.yaml',
      'value: worker',
      'value: api',
      /Deployment\/gateway-worker: SERVICE_MODE is api, expected worker/,
    ],
    [
      'a profile that drifted from infra/pilot.yaml',
      'infra/k8s/base/pilot-profile.yaml',
      'crossCityWorkingDays: 45',
      'crossCityWorkingDays: 40',
      /ConfigMap pilot-profile differs from infra\/pilot\.yaml in more than its URLs/,
    ],
  ]

  it.each(kubernetesBreaks)('Kubernetes: %s', (_name, path, from, to, message) => {
    const dir = copyOfDeployment()
    edit(join(dir, path), from, to)
    expect(checkKubernetes(join(dir, 'infra/k8s'), { standIns: standIns() }).join('\n')).toMatch(message)
  })

  it('Kubernetes: an API Deployment without its autoscaler', () => {
    const dir = copyOfDeployment()
    const file = join(dir, 'infra/k8s/base/intake.yaml')
    const documents = parseAllDocuments(readFileSync(file, 'utf8')).map((document) => document.toJS() as Obj)
    const kept = documents.filter(
      (document) =>
        !(document.kind === 'HorizontalPodAutoscaler' && (document.metadata as Obj).name === 'intake-worker'),
    )
    expect(kept).toHaveLength(documents.length - 1)
    writeFileSync(file, kept.map((document) => stringify(document)).join('---\n'))
    expect(checkKubernetes(join(dir, 'infra/k8s'), { standIns: standIns() }).join('\n')).toMatch(
      /Deployment\/intake-worker: no HorizontalPodAutoscaler targets it/,
    )
  })
})
