/**
 * Runs the benchmarks, prints their figures and records them in bench/results/<timestamp>.{json,md} and latest.md.
 *
 *   pnpm bench                      every benchmark
 *   pnpm bench residence            one (or several, by name: residence, gateway, intake, pilot)
 *   pnpm bench residence --fresh    rebuild kept data sets first
 *   pnpm bench residence --profile  also CPU-profile the system under test (a separate, slower run)
 *   BENCH_DURATION=60 BENCH_WARMUP=5 pnpm bench     seconds per measured run / per warm-up
 *
 * A benchmark is a module exporting `run(options)` that resolves to a BenchResult. Targets are reported as PASS or
 * MISS and never fail the run: on a shared, noisy machine only figures next to a baseline of the same run mean
 * anything. The exit code is non-zero only when a benchmark could not run at all.
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, renameSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, totalmem } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import {
  type Bench,
  type BenchOptions,
  type BenchResult,
  killAllChildren,
  log,
  removeAllTempDirs,
  repoRoot,
  withTimeout,
} from './lib.ts'

const BENCHES: Record<string, () => Promise<Bench>> = {
  residence: () => import('./residence.ts'),
  gateway: () => import('./gateway.ts'),
  intake: () => import('./intake.ts'),
  pilot: () => import('./pilot.ts'),
}

const BENCH_TIMEOUT_MS = Number(process.env.BENCH_TIMEOUT_MINUTES ?? 60) * 60_000

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { fresh: { type: 'boolean', default: false }, profile: { type: 'boolean', default: false } },
})
const unknown = positionals.filter((name) => !(name in BENCHES))
if (unknown.length > 0) {
  process.stderr.write(`No benchmark ${unknown.join(', ')}. Choose from: ${Object.keys(BENCHES).join(', ')}\n`)
  process.exit(64)
}
const names = positionals.length > 0 ? positionals : Object.keys(BENCHES)

const seconds = (name: string, fallback: number): number => {
  const value = Number(process.env[name] ?? fallback)
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a number of seconds`)
  return value
}
const options: BenchOptions = {
  fresh: values.fresh ?? false,
  profile: values.profile ?? false,
  durationSeconds: seconds('BENCH_DURATION', 20),
  warmupSeconds: seconds('BENCH_WARMUP', 3),
}

const stopNow = (signal: string) => {
  process.stderr.write(`\n${signal}: stopping benchmark processes\n`)
  killAllChildren()
  removeAllTempDirs()
  process.exit(130)
}
process.on('SIGINT', () => stopNow('SIGINT'))
process.on('SIGTERM', () => stopNow('SIGTERM'))

function git(...args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: repoRoot, encoding: 'utf8' }).trim()
  } catch {
    return 'unknown'
  }
}

const environment = {
  node: process.version,
  cpus: cpus().length,
  cpuModel: cpus()[0]?.model ?? 'unknown',
  memoryGb: Math.round(totalmem() / 2 ** 30),
  loadAverageAtStart: loadavg().map((value) => Number(value.toFixed(2))),
  commit: git('rev-parse', 'HEAD'),
  dirty: git('status', '--porcelain') !== '',
}

const startedAt = new Date()
const results: BenchResult[] = []
const failures: { name: string; error: string }[] = []
for (const name of names) {
  log(`${name}: starting`)
  try {
    const bench = await (BENCHES[name] as () => Promise<Bench>)()
    results.push(await withTimeout(`benchmark ${name}`, BENCH_TIMEOUT_MS, bench.run(options)))
  } catch (error) {
    // A benchmark that overran its bound may still have children running; nothing else will stop them.
    killAllChildren()
    failures.push({ name, error: (error as Error).stack ?? String(error) })
    log(`${name} failed: ${(error as Error).message}`)
  }
}
const finishedAt = new Date()

function textTable(columns: string[], rows: (string | number)[][]): string {
  const cells = [columns, ...rows.map((row) => row.map(String))]
  const widths = columns.map((_, i) => Math.max(...cells.map((row) => row[i]?.length ?? 0)))
  const line = (row: string[]) =>
    row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join('  ')
  return [line(columns), widths.map((width) => '-'.repeat(width)).join('  '), ...cells.slice(1).map(line)].join('\n')
}

function markdownTable(columns: string[], rows: (string | number)[][]): string {
  const line = (row: (string | number)[]) => `| ${row.map((cell) => String(cell).replaceAll('|', '\\|')).join(' | ')} |`
  return [
    line(columns),
    `|${columns.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`,
    ...rows.map(line),
  ].join('\n')
}

const verdict = (pass: boolean) => (pass ? 'PASS' : 'MISS')

let text = ''
let markdown = `# Benchmarks ${startedAt.toISOString()}\n\n`
markdown += `Node ${environment.node}, ${environment.cpus} × ${environment.cpuModel}, ${environment.memoryGb} GB, `
markdown += `load average at start ${environment.loadAverageAtStart.join(' ')}; commit ${environment.commit.slice(0, 12)}`
markdown += `${environment.dirty ? ' with uncommitted changes' : ''}. Figures are from a shared machine: compare ratios.\n`
for (const result of results) {
  text += `\n== ${result.title} ==\n`
  markdown += `\n## ${result.title}\n`
  for (const table of result.tables) {
    text += `\n${table.title}\n${textTable(table.columns, table.rows)}\n`
    markdown += `\n### ${table.title}\n\n${markdownTable(table.columns, table.rows)}\n`
  }
  const targetRows = result.targets.map((t) => [t.label, t.target, t.actual, verdict(t.pass)])
  text += `\nTargets\n${textTable(['target', 'wanted', 'measured', ''], targetRows)}\n`
  markdown += `\n### Targets\n\n${markdownTable(['target', 'wanted', 'measured', ''], targetRows)}\n`
  if (result.notes.length > 0) {
    text += `\n${result.notes.map((note) => `- ${note}`).join('\n')}\n`
    markdown += `\n${result.notes.map((note) => `- ${note}`).join('\n')}\n`
  }
}
for (const failure of failures) {
  text += `\n== ${failure.name}: could not run ==\n${failure.error}\n`
  markdown += `\n## ${failure.name}: could not run\n\n\`\`\`\n${failure.error}\n\`\`\`\n`
}
process.stdout.write(text)

const resultsDir = join(repoRoot, 'bench/results')
mkdirSync(resultsDir, { recursive: true })
const stamp = startedAt.toISOString().replace(/[:.]/g, '-')
// Written aside and renamed, so an interrupted run never leaves half a record (*.tmp is ignored by git).
const write = (name: string, content: string) => {
  const path = join(resultsDir, name)
  writeFileSync(`${path}.tmp`, content)
  renameSync(`${path}.tmp`, path)
  return path
}
const record = {
  startedAt: startedAt.toISOString(),
  finishedAt: finishedAt.toISOString(),
  options,
  environment,
  results,
  failures,
}
const jsonPath = write(`${stamp}.json`, `${JSON.stringify(record, null, 2)}\n`)
const written = [jsonPath, write(`${stamp}.md`, markdown), write('latest.md', markdown)]
try {
  // In the repository's own format (Biome formats JSON and Markdown), so a recorded run keeps `pnpm lint` clean.
  execFileSync(join(repoRoot, 'node_modules/.bin/biome'), ['format', '--write', ...written], { stdio: 'ignore' })
} catch {
  log('could not format the records with Biome; run pnpm format before committing them')
}
process.stdout.write(`\nRecorded ${jsonPath} and ${jsonPath.replace(/\.json$/, '.md')} (also latest.md)\n`)
process.exit(failures.length > 0 ? 1 : 0)
