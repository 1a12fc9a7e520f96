/**
 * What every benchmark shares: the result shape `run.ts` prints and records, child processes that are always stopped,
 * peak-memory sampling, free ports and the load generator. Benchmarks report figures next to a raw baseline measured in
 * the same run; they never assert (the machine is shared and noisy, so only ratios mean something).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'

export const repoRoot = new URL('../', import.meta.url).pathname

export interface BenchOptions {
  /** Rebuild data sets instead of reusing what an earlier run left. */
  fresh: boolean
  /** Seconds of measured load per run. */
  durationSeconds: number
  /** Seconds of unmeasured load before each measured run. */
  warmupSeconds: number
  /** Also profile the system under test (a separate run; its figures are not comparable). */
  profile: boolean
}

export interface BenchTable {
  title: string
  columns: string[]
  rows: (string | number)[][]
}

export interface BenchTarget {
  label: string
  target: string
  actual: string
  pass: boolean
}

export interface BenchResult {
  name: string
  title: string
  tables: BenchTable[]
  targets: BenchTarget[]
  /** Things a reader of the figures should know (data reused from an earlier run, what the baseline does, ...). */
  notes: string[]
  /** Everything measured, for the JSON record. */
  details: Record<string, unknown>
}

export interface Bench {
  run(options?: Partial<BenchOptions>): Promise<BenchResult>
}

export function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`)
}

export const round = (value: number, digits = 1): number => Number(value.toFixed(digits))

/** A free TCP port on loopback (asked of the OS, then released). */
export async function freePort(): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

export async function withTimeout<T>(what: string, ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${Math.round(ms / 1000)} s`)), ms)
  })
  try {
    return await Promise.race([work, timeout])
  } finally {
    clearTimeout(timer)
  }
}

// Every child a benchmark starts, so that run.ts can stop them all on Ctrl-C or a failure no finally block saw.
const children = new Set<ChildProcess>()

export interface Child {
  process: ChildProcess
  pid: number
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  stop(graceMs?: number): Promise<void>
  /** Peak resident set (VmHWM) seen so far, in MB; sampled every 200 ms while the process lives. */
  peakRssMb(): number
}

function readVmHwmKb(pid: number): number | undefined {
  try {
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return match ? Number(match[1]) : undefined
  } catch {
    return undefined // gone already, or not Linux
  }
}

/**
 * Starts `node --import tsx <script>` from the repository root with exactly `env` (plus PATH), output appended to
 * `logFile`. VmHWM is the kernel's own high-water mark, so polling it misses nothing but the last 200 ms of growth.
 */
export function startNode(
  script: string,
  args: string[],
  env: Record<string, string>,
  logFile: string,
  nodeArgs: string[] = [],
): Child {
  const out = openSync(logFile, 'a')
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', script, ...args], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', out, out],
  })
  closeSync(out)
  if (child.pid === undefined) throw new Error(`could not start ${script}`)
  const pid = child.pid
  children.add(child)
  let peakKb = 0
  const sample = () => {
    peakKb = Math.max(peakKb, readVmHwmKb(pid) ?? 0)
  }
  const sampler = setInterval(sample, 200)
  sample()
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      clearInterval(sampler)
      children.delete(child)
      resolve(code)
    })
  })
  return {
    process: child,
    pid,
    exited,
    peakRssMb: () => round(peakKb / 1024),
    async stop(graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGTERM')
      const killer = setTimeout(() => child.kill('SIGKILL'), graceMs)
      await exited
      clearTimeout(killer)
    },
  }
}

// Process groups a benchmark started detached (a whole pilot: a launcher and the services it starts), killed as groups.
const groups = new Set<number>()

/** Lets run.ts's last resort reach a detached process group (its leader's pid) and everything in it. */
export function trackProcessGroup(pgid: number): void {
  groups.add(pgid)
}

export function untrackProcessGroup(pgid: number): void {
  groups.delete(pgid)
}

/** Last resort for run.ts: kill whatever is still running. */
export function killAllChildren(): void {
  for (const child of children) child.kill('SIGKILL')
  for (const pgid of groups) {
    try {
      process.kill(-pgid, 'SIGKILL')
    } catch {
      // gone already
    }
  }
}

// Scratch directories (a 150 MB feed, logs), removed by their benchmark or, on Ctrl-C, by run.ts.
const tempDirs = new Set<string>()

export function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  tempDirs.add(dir)
  return dir
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true })
  tempDirs.delete(dir)
}

export function removeAllTempDirs(): void {
  for (const dir of tempDirs) removeTempDir(dir)
}

/** Polls `url` until it answers 200; fails early when the process exits. */
export async function waitReady(url: string, child: Child, timeoutMs: number, logFile: string): Promise<void> {
  let exited = false
  void child.exited.then(() => {
    exited = true
  })
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline && !exited) {
    try {
      if ((await fetch(url, { signal: AbortSignal.timeout(2000) })).status === 200) return
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  throw new Error(
    `${url} did not answer 200 ${exited ? '(the process exited)' : `within ${timeoutMs} ms`}; see ${logFile}`,
  )
}

export interface LoadOptions {
  url: string
  method: 'POST' | 'GET'
  headers: Record<string, string>
  /**
   * A fresh body for every request, or a body with headers of its own (an Idempotency-Key, a caller's token) that are
   * added to `headers`; one call per request, so body and headers always belong together.
   */
  body: () => string | { body: string; headers: Record<string, string> }
  connections: number
  durationSeconds: number
}

export interface LoadFigures {
  requestsPerSecond: number
  p50Ms: number
  p90Ms: number
  p99Ms: number
  maxMs: number
  /** Successful requests. */
  ok: number
  non2xx: number
  /** Connection errors and timeouts. */
  errors: number
  timeouts: number
  durationSeconds: number
  statusCodes: Record<string, number>
}

/** The p-th percentile (nearest rank) of values sorted ascending. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN
}

/**
 * Closed-loop load with autocannon on loopback. Latencies are taken from every response, not from autocannon's
 * histogram: that one has 1 ms resolution, too coarse for p50s of a few milliseconds. Throughput counts 2xx only.
 */
export async function load(options: LoadOptions): Promise<LoadFigures> {
  const latencies: number[] = []
  let instance: autocannon.Instance | undefined
  const done = new Promise<autocannon.Result>((resolve, reject) => {
    instance = autocannon(
      {
        url: options.url,
        connections: options.connections,
        duration: options.durationSeconds,
        timeout: 10,
        requests: [
          {
            method: options.method,
            headers: options.headers,
            setupRequest: (request) => {
              const next = options.body()
              return typeof next === 'string'
                ? { ...request, body: next }
                : { ...request, body: next.body, headers: { ...request.headers, ...next.headers } }
            },
          },
        ],
      },
      (error, result) => (error ? reject(error) : resolve(result)),
    )
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      if (statusCode >= 200 && statusCode < 300) latencies.push(responseTime)
    })
  })
  let result: autocannon.Result
  try {
    result = await withTimeout('a load run', (options.durationSeconds + 30) * 1000, done)
  } catch (error) {
    instance?.stop()
    throw error
  }
  const sorted = Float64Array.from(latencies).sort()
  const statusCodes: Record<string, number> = {}
  for (const [code, { count }] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = count ?? 0
  return {
    requestsPerSecond: round(result['2xx'] / result.duration),
    p50Ms: round(percentile(sorted, 50), 2),
    p90Ms: round(percentile(sorted, 90), 2),
    p99Ms: round(percentile(sorted, 99), 2),
    maxMs: round(sorted[sorted.length - 1] ?? Number.NaN, 2),
    ok: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    durationSeconds: round(result.duration, 2),
    statusCodes,
  }
}

/** A /proc/<pid>/stat line's command name (between the first '(' and the last ')': a name may hold either). */
const commandOf = (stat: string): string => stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))

/** CPU seconds (user + system) in a /proc/<pid>/stat line: fields 14 and 15 of stat(5), in clock ticks. */
function statCpuSeconds(stat: string): number {
  // Counted from the state field (3), the first after the command name.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

/** CPU seconds (user + system) a process has used so far. */
export function cpuSeconds(pid: number): number {
  return statCpuSeconds(readFileSync(`/proc/${pid}/stat`, 'utf8'))
}

/** CPU seconds (user + system) so far of each process whose command name is `command`, by pid. */
function commandCpuByPid(command: string): Map<string, number> {
  const seconds = new Map<string, number>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    let stat: string
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
    } catch {
      continue // gone since the listing
    }
    if (commandOf(stat) === command) seconds.set(entry, statCpuSeconds(stat))
  }
  return seconds
}

/**
 * CPU time of every process with one command name (PostgreSQL's backends are all `postgres`, Redis is `redis-server`)
 * over a stretch of time. Backends come and go (a pool closes an idle connection, opens another), and a process that
 * has exited takes its CPU time with it, so the processes are read every `everyMs` and each one counts from its first
 * reading (or from zero, when it started during the stretch) to its last.
 */
export class CommandCpuMeter {
  private first = new Map<string, number>()
  private last = new Map<string, number>()
  private timer: NodeJS.Timeout | undefined

  constructor(
    private readonly command: string,
    private readonly everyMs = 250,
  ) {}

  start(): void {
    this.first = commandCpuByPid(this.command)
    this.last = new Map(this.first)
    this.timer = setInterval(() => this.read(), this.everyMs)
  }

  private read(): void {
    for (const [pid, seconds] of commandCpuByPid(this.command)) this.last.set(pid, seconds)
  }

  /** Stops, and answers the CPU seconds the processes used since start (to within one reading of an exited one). */
  stop(): number {
    clearInterval(this.timer)
    this.read()
    let total = 0
    for (const [pid, seconds] of this.last) total += seconds - (this.first.get(pid) ?? 0)
    return total
  }
}

export interface MachineCpu {
  busy: number
  total: number
}

/** The whole machine's CPU time so far (every core, in clock ticks), from the first line of /proc/stat. */
export function machineCpu(): MachineCpu {
  const ticks = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number)
  const total = ticks.reduce((sum, value) => sum + value, 0)
  // idle and iowait are the only ticks in which a core did nothing.
  return { busy: total - (ticks[3] ?? 0) - (ticks[4] ?? 0), total }
}

/** Share of the machine's CPU (all cores) that was busy between two readings, in per cent. */
export function busyPercent(before: MachineCpu, after: MachineCpu): number {
  const total = after.total - before.total
  return total > 0 ? round((100 * (after.busy - before.busy)) / total) : Number.NaN
}

/** The better of several runs of the same target: highest throughput (its latencies come with it, not mixed). */
export function best(runs: LoadFigures[]): LoadFigures {
  const [first, ...rest] = runs
  if (!first) throw new Error('no runs')
  return rest.reduce((a, b) => (b.requestsPerSecond > a.requestsPerSecond ? b : a), first)
}

/**
 * The three targets every "service next to a raw baseline under load" bench reports: throughput ratio, p99 of the
 * service's better run, and no failed request in any run.
 */
export function loadTargets(options: {
  what: string
  ratio: number
  targetRatio: number
  p99Ms: number
  targetP99Ms: number
  runs: readonly LoadFigures[]
}): BenchTarget[] {
  const failed = options.runs.reduce((sum, run) => sum + run.non2xx + run.errors, 0)
  return [
    {
      label: `${options.what} throughput vs baseline`,
      target: `≥ ${options.targetRatio * 100} %`,
      actual: `${round(options.ratio * 100)} %`,
      pass: options.ratio >= options.targetRatio,
    },
    {
      label: `${options.what} p99 latency`,
      target: `< ${options.targetP99Ms} ms`,
      actual: `${options.p99Ms} ms`,
      pass: options.p99Ms < options.targetP99Ms,
    },
    { label: 'failed requests (non-2xx + errors, all runs)', target: '0', actual: String(failed), pass: failed === 0 },
  ]
}
