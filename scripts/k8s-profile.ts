/**
 * Writes infra/k8s/base/pilot-profile.yaml from infra/pilot.yaml: the same profile with every service, gateway and
 * JWKS URL pointing at the cluster's Services (http://<service>.pilot-<city>.svc.cluster.local:<port>). kustomize only
 * reads files below the kustomization, hence a generated copy rather than a reference; test/deploy.test.ts fails when
 * the copy differs from infra/pilot.yaml in anything but those URLs.
 *
 *   pnpm k8s:profile
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseDocument } from 'yaml'

const root = new URL('../', import.meta.url).pathname
const document = parseDocument(readFileSync(join(root, 'infra/pilot.yaml'), 'utf8'))
const cities = document.get('cities') as {
  items: { get(key: string): unknown; getIn(path: string[]): unknown; setIn(path: string[], value: unknown): void }[]
}
for (const city of cities.items) {
  const id = city.get('id') as string
  for (const service of ['residence', 'intake', 'gateway']) {
    const port = city.getIn(['services', service, 'port']) as number
    city.setIn(['services', service, 'url'], `http://${service}.pilot-${id}.svc.cluster.local:${port}`)
  }
  const gateway = city.getIn(['services', 'gateway', 'url']) as string
  city.setIn(['federation', 'gatewayUrl'], gateway)
  city.setIn(['federation', 'jwksUrl'], `${gateway}/.well-known/jwks.json`)
}
document.commentBefore =
  ' Generated from infra/pilot.yaml by `pnpm k8s:profile`; do not edit. The pilot profile as the Kubernetes deployment\n' +
  ' runs it (one namespace per city, pilot-<city>): the same cities, port plan, federation rules and policy, with the\n' +
  " URLs pointing at the cluster's Services. The Services listen on the profile's ports, the pods on 8080. When each\n" +
  " city runs its own cluster, `gatewayUrl` and `jwksUrl` become the partner gateways' public https URLs."
writeFileSync(join(root, 'infra/k8s/base/pilot-profile.yaml'), document.toString({ lineWidth: 0 }))
process.stdout.write('wrote infra/k8s/base/pilot-profile.yaml\n')
