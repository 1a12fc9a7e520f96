import { execFile } from 'node:child_process'
import { cp, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import SwaggerParser from '@apidevtools/swagger-parser'
import { repoRoot } from '@pilot/testing'
import { describe, expect, it } from 'vitest'

const run = promisify(execFile)
const openapiDir = join(repoRoot, 'openapi')

async function check(dir: string): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run(
      process.execPath,
      ['--import', 'tsx', 'scripts/openapi.ts', 'check', '--dir', dir],
      {
        cwd: repoRoot,
      },
    )
    return { code: 0, output: stdout + stderr }
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string }
    return { code: failed.code, output: failed.stdout + failed.stderr }
  }
}

describe('published OpenAPI documents', () => {
  it('has one valid OpenAPI 3.1 document per service', async () => {
    const files = (await readdir(openapiDir)).filter((file) => file.endsWith('.yaml')).sort()
    expect(files).toEqual(expect.arrayContaining(['gateway.yaml', 'intake.yaml', 'residence.yaml']))
    for (const file of files) {
      const document = (await SwaggerParser.validate(join(openapiDir, file))) as { openapi: string }
      expect(document.openapi).toBe('3.1.0')
    }
  })

  it('the validator is real: a structurally wrong document is rejected', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'openapi-invalid-'))
    const file = join(dir, 'broken.yaml')
    await writeFile(
      file,
      'openapi: 3.1.0\ninfo: { title: x, version: "1" }\npaths:\n  /x:\n    get:\n      responses: nope\n',
    )
    await expect(SwaggerParser.validate(file)).rejects.toThrow()
  })

  it('the drift check passes on the committed documents and fails, naming the file, when one differs from the code', async () => {
    expect(await check(openapiDir)).toMatchObject({ code: 0 })

    const dir = await mkdtemp(join(tmpdir(), 'openapi-drift-'))
    await cp(openapiDir, dir, { recursive: true })
    const file = join(dir, 'residence.yaml')
    // What a route schema edited without regenerating looks like: code and document disagree.
    const edited = (await readFile(file, 'utf8')).replace('Readiness: PostgreSQL and Redis both answer', 'Readiness')
    await writeFile(file, edited)
    const drift = await check(dir)
    expect(drift.code).toBe(1)
    expect(drift.output).toContain(`${file} differs from what the code generates`)
    expect(drift.output).not.toContain('intake.yaml differs')
  })
})
