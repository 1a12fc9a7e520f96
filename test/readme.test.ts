import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { repoRoot } from '@pilot/testing'
import { describe, expect, it } from 'vitest'

describe('README commands', () => {
  it('start with exactly two commands, and CI runs the second one as written', async () => {
    const readme = await readFile(join(repoRoot, 'README.md'), 'utf8')
    const block = /^# .*\n\n```sh\n([\s\S]*?)\n```/.exec(readme)?.[1]
    const commands = block?.split('\n') ?? []
    expect(commands).toHaveLength(2)
    const [run, test] = commands as [string, string]
    expect(run).toMatch(/pnpm pilot$/)
    expect(test).toMatch(/pnpm test$/)
    const ci = await readFile(join(repoRoot, '.ci/run'), 'utf8')
    expect(ci.split('\n')).toContain(test)
    const scripts = JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')).scripts
    expect(scripts.pilot).toBeDefined()
    expect(scripts.test).toBe('vitest run')
  })
})
