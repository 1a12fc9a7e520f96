/**
 * Writes or checks openapi/<service>.yaml, generated from the route schemas of each service.
 *
 *   tsx scripts/openapi.ts write            regenerate the committed documents
 *   tsx scripts/openapi.ts check [--dir D]  fail (exit 1) when a committed document differs from the code, or does
 *                                           not validate as OpenAPI 3.1
 *
 * The instances are built without opening any connection: nothing but the code is needed.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import SwaggerParser from '@apidevtools/swagger-parser'
import { devSecretsEnv, ensureDevSecrets } from '@pilot/kit'
import type { FastifyInstance } from 'fastify'
import { buildApp as buildGateway } from '../services/gateway/src/app.ts'
import { readGatewayConfig } from '../services/gateway/src/config.ts'
import { buildApp as buildIntake } from '../services/intake/src/app.ts'
import { readIntakeConfig } from '../services/intake/src/config.ts'
import { describeLifecycle } from '../services/intake/src/domain/lifecycle.ts'
import { buildApp as buildResidence } from '../services/residence/src/app.ts'
import { readResidenceConfig } from '../services/residence/src/config.ts'

const repoRoot = new URL('../', import.meta.url).pathname
const throwawayKeys = mkdtempSync(join(tmpdir(), 'openapi-keys-'))
ensureDevSecrets(throwawayKeys, ['shenzhen'])
const offlineEnv = {
  CITY: 'shenzhen',
  DATABASE_URL: 'postgres://openapi@127.0.0.1:1/openapi',
  REDIS_URL: 'redis://127.0.0.1:1',
  PILOT_CONFIG: join(repoRoot, 'infra/pilot.yaml'),
  LOG_LEVEL: 'silent',
  // Throwaway keys: the services read them at start, but the documents do not depend on them.
  ...devSecretsEnv(throwawayKeys, 'shenzhen'),
}

const services: Record<string, () => Promise<FastifyInstance>> = {
  residence: () => buildResidence(readResidenceConfig(offlineEnv), { connect: false }),
  intake: () => buildIntake(readIntakeConfig(offlineEnv), { connect: false }),
  gateway: () => buildGateway(readGatewayConfig(offlineEnv), { connect: false }),
}

async function generate(service: string): Promise<string> {
  const build = services[service]
  if (!build) throw new Error(`unknown service ${service}`)
  const app = await build()
  try {
    await app.ready()
    return `${app.swagger({ yaml: true })}`
  } finally {
    await app.close()
  }
}

/** Validates with a real OpenAPI validator (on a temporary copy: the parser dereferences in place). */
async function validate(path: string): Promise<string | undefined> {
  try {
    await SwaggerParser.validate(path)
    return undefined
  } catch (error) {
    return (error as Error).message
  }
}

async function main(): Promise<number> {
  const [mode = 'check', ...rest] = process.argv.slice(2)
  const dirFlag = rest.indexOf('--dir')
  const dir = (dirFlag >= 0 ? rest[dirFlag + 1] : undefined) ?? join(repoRoot, 'openapi')
  const scratch = await mkdtemp(join(tmpdir(), 'openapi-'))
  let failures = 0
  for (const service of Object.keys(services)) {
    const file = join(dir, `${service}.yaml`)
    const generated = await generate(service)
    const scratchFile = join(scratch, `${service}.yaml`)
    await writeFile(scratchFile, generated)
    const invalid = await validate(scratchFile)
    if (invalid) {
      process.stderr.write(`${service}: generated document is not valid OpenAPI: ${invalid}\n`)
      failures++
      continue
    }
    if (mode === 'write') {
      await writeFile(file, generated)
      process.stdout.write(`wrote ${file}\n`)
      continue
    }
    const committed = await readFile(file, 'utf8').catch(() => undefined)
    if (committed !== generated) {
      process.stderr.write(
        `${file} ${committed === undefined ? 'is missing' : 'differs from what the code generates'}: run pnpm openapi:gen and commit the result\n`,
      )
      failures++
    } else {
      process.stdout.write(`${file}: up to date, valid OpenAPI 3.1\n`)
    }
  }
  // The case lifecycle document is rendered from the one transition table, like the OpenAPI from the route schemas.
  const lifecycleFile = join(dir, 'case-lifecycle.md')
  const lifecycle = `# Case lifecycle\n\nGenerated from services/intake/src/domain/lifecycle.ts by \`pnpm openapi:gen\`; do not edit.\n\n${describeLifecycle()}`
  if (mode === 'write') {
    await writeFile(lifecycleFile, lifecycle)
    process.stdout.write(`wrote ${lifecycleFile}\n`)
  } else if ((await readFile(lifecycleFile, 'utf8').catch(() => undefined)) !== lifecycle) {
    process.stderr.write(
      `${lifecycleFile} differs from the transition table: run pnpm openapi:gen and commit the result\n`,
    )
    failures++
  }
  return failures === 0 ? 0 : 1
}

process.exitCode = await main()
rmSync(throwawayKeys, { recursive: true, force: true })
