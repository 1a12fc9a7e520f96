import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { join } from 'node:path'
import { extraDatabases, repoRoot, testResources, withDatabase } from '@pilot/testing'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { profileOnFreePorts } from './support/profile.ts'

/**
 * The pilot as a newcomer runs it: `pnpm pilot`'s own entry point starts nine real service processes (three cities ×
 * residence, intake, gateway), loads the demo residents, and `pnpm pilot:demo` walks a case through each of the six
 * directions to a decision. Isolated from a developer's pilot: its own ports, databases, Redis keys and state folder.
 */
describe('the three-city pilot in one command', () => {
  const prefix = `t_pilot_${randomBytes(3).toString('hex')}_`
  const env: Record<string, string> = {}
  let pilot: ChildProcess
  let output = ''

  beforeAll(async () => {
    const { path } = await profileOnFreePorts()
    const adminUrl = inject('adminDatabaseUrl')
    Object.assign(env, {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/root',
      PILOT_CONFIG: path,
      // Under the run's log directory, so that the scan for personal data at the end of the run reads its logs too.
      PILOT_STATE_DIR: mkdtempSync(join(inject('logDir'), 'pilot-state-')),
      PILOT_DB_PREFIX: prefix,
      PILOT_REDIS_PREFIX: `${testResources().redisPrefix}:pilot`,
      DATABASE_URL: adminUrl,
      REDIS_URL: testResources().redisUrl,
    })
    for (const city of ['shenzhen', 'zhuhai', 'zhongshan'])
      extraDatabases().push(withDatabase(adminUrl, `${prefix}${city}`))
    // Its own process group, so the test can send Ctrl-C to the whole pilot as a terminal would.
    pilot = spawn(process.execPath, ['scripts/pilot.mjs'], {
      cwd: repoRoot,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    pilot.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8')
    })
    pilot.stderr?.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8')
    })
    const deadline = Date.now() + 150_000
    while (!output.includes('pnpm pilot:demo') && Date.now() < deadline && pilot.exitCode === null) {
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
    if (!output.includes('pnpm pilot:demo')) throw new Error(`the pilot did not come up:\n${output}`)
  }, 180_000)

  afterAll(async () => {
    if (pilot?.pid && pilot.exitCode === null) process.kill(-pilot.pid, 'SIGKILL')
  })

  it('starts nine services, prints their URLs and a token per city and role', () => {
    expect(output).toContain('The pilot is ready (3 cities)')
    for (const city of ['Shenzhen', 'Zhuhai', 'Zhongshan']) {
      for (const service of ['residence', 'intake', 'gateway'])
        expect(output).toMatch(new RegExp(`${city}\\s+${service}\\s+http://127\\.0\\.0\\.1:\\d+`))
    }
    for (const city of ['shenzhen', 'zhuhai', 'zhongshan']) {
      for (const role of ['caseworker', 'reviewer', 'operator'])
        expect(output).toMatch(new RegExp(`${city}\\s+${role}\\s+eyJ`))
    }
  })

  it('walks one case in each of the six directions to a decision visible in both cities', async () => {
    const demo = spawn(process.execPath, ['--import', 'tsx', 'scripts/pilot-demo.ts'], {
      cwd: repoRoot,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let demoOutput = ''
    demo.stdout?.on('data', (chunk: Buffer) => {
      demoOutput += chunk.toString('utf8')
    })
    demo.stderr?.on('data', (chunk: Buffer) => {
      demoOutput += chunk.toString('utf8')
    })
    const code = await new Promise<number | null>((resolve) => demo.on('exit', resolve))
    expect(code, demoOutput).toBe(0)
    expect(demoOutput).toContain('Six decided cases, each visible in both cities.')
    for (const direction of [
      'shenzhen → zhuhai',
      'shenzhen → zhongshan',
      'zhuhai → shenzhen',
      'zhuhai → zhongshan',
      'zhongshan → shenzhen',
      'zhongshan → zhuhai',
    ]) {
      expect(demoOutput).toMatch(new RegExp(`${direction}\\s+decided\\s+decided`))
    }
  }, 120_000)

  it('stops every service cleanly on Ctrl-C', async () => {
    const exited = new Promise<number | null>((resolve) => pilot.on('exit', resolve))
    process.kill(-(pilot.pid as number), 'SIGINT')
    expect(await exited).toBe(0)
    expect(output).toContain('All services stopped.')
  }, 60_000)
})
