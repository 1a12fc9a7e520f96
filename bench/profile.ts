/**
 * Where a server's CPU time goes, from the V8 profile `node --cpu-prof` writes when the process exits. Benchmarks name
 * the stages of their request path; time is counted inclusively (a sample counts for a stage when any frame of its
 * stack belongs to it) and divided by the requests served, so two servers can be compared stage by stage.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { repoRoot, round } from './lib.ts'

export interface CallFrame {
  functionName: string
  url: string
  lineNumber: number
}

export interface Stage {
  label: string
  match: (frame: CallFrame) => boolean
  /** Count only samples whose innermost frame matches (for native leaves such as writev or the GC). */
  selfOnly?: boolean
}

export interface ProfileSummary {
  file: string
  requests: number
  /** CPU time of the main thread, idle excluded. */
  busyMs: number
  /** Module loading before the server listened; not part of any request. */
  startupMs: number
  stages: { label: string; ms: number; share: number; msPerRequest: number }[]
  /** Self time by package or area, largest first. */
  byArea: { area: string; ms: number; share: number }[]
  /** Self time by function, largest first. */
  topFunctions: { fn: string; ms: number; share: number }[]
}

/** Profiles are large and machine-specific: kept outside git, beside the bench keys. */
export function profileDir(name: string): string {
  return join(repoRoot, '.pilot/bench-profiles', `${new Date().toISOString().replace(/[:.]/g, '-')}-${name}`)
}

/** The main thread's profile; tsx's module hooks run in a worker thread that writes its own. */
export function mainThreadProfile(dir: string): string {
  const files = readdirSync(dir).filter((name) => name.endsWith('.cpuprofile'))
  const main = files.find((name) => /\.0\.\d+\.cpuprofile$/.test(name)) ?? files[0]
  if (!main) throw new Error(`no profile written to ${dir}`)
  return join(dir, main)
}

function areaOf(frame: CallFrame): string {
  if (frame.functionName.startsWith('(')) return frame.functionName
  const url = frame.url
  if (url === '') return '(native)'
  const pkg = /node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (pkg?.[1]) return pkg[1]
  if (url.startsWith('node:')) return 'node core'
  const local = /\/(packages|services)\/([^/]+)\//.exec(url)
  return local ? `${local[1]}/${local[2]}` : url
}

const isStartup = (frame: CallFrame) => frame.functionName === 'run' && frame.url.endsWith('esm/module_job')

export function summariseProfile(file: string, stages: Stage[], requests: number): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as {
    nodes: { id: number; callFrame: CallFrame; children?: number[] }[]
    samples: number[]
    timeDeltas: number[]
  }
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]))
  const parents = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node.id)

  const byStage = new Map<string, number>()
  const byFunction = new Map<string, number>()
  const byArea = new Map<string, number>()
  let busy = 0
  let startup = 0
  profile.samples.forEach((id, i) => {
    const leaf = nodes.get(id)
    const micros = profile.timeDeltas[i] ?? 0
    if (!leaf || leaf.callFrame.functionName === '(idle)') return
    busy += micros
    const stack: CallFrame[] = []
    for (let node: typeof leaf | undefined = leaf; node; node = nodes.get(parents.get(node.id) ?? -1)) {
      stack.push(node.callFrame)
    }
    if (stack.some(isStartup)) startup += micros
    for (const stage of stages) {
      if (stage.selfOnly ? stage.match(leaf.callFrame) : stack.some(stage.match)) {
        byStage.set(stage.label, (byStage.get(stage.label) ?? 0) + micros)
      }
    }
    const { functionName, url, lineNumber } = leaf.callFrame
    const where = url ? `${url.replace(/^file:\/\//, '').replace(repoRoot, '')}:${lineNumber + 1}` : ''
    const fn = `${functionName || '(anonymous)'} ${where}`.trim()
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + micros)
    const area = areaOf(leaf.callFrame)
    byArea.set(area, (byArea.get(area) ?? 0) + micros)
  })
  const serving = busy - startup
  const top = (map: Map<string, number>, n: number) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, micros]) => ({ name, ms: round(micros / 1000), share: round((100 * micros) / busy) }))
  return {
    file,
    requests,
    busyMs: round(busy / 1000),
    startupMs: round(startup / 1000),
    stages: [
      ...stages.map(({ label }) => {
        const micros = byStage.get(label) ?? 0
        return {
          label,
          ms: round(micros / 1000),
          share: round((100 * micros) / serving),
          msPerRequest: round(micros / 1000 / requests, 4),
        }
      }),
      {
        label: 'all (start-up excluded)',
        ms: round(serving / 1000),
        share: 100,
        msPerRequest: round(serving / 1000 / requests, 4),
      },
    ],
    byArea: top(byArea, 15).map(({ name, ...rest }) => ({ area: name, ...rest })),
    topFunctions: top(byFunction, 25).map(({ name, ...rest }) => ({ fn: name, ...rest })),
  }
}

/** A stage matcher: frames of this function (optionally only from a URL containing `urlPart`). */
export const named =
  (functionName: string, urlPart = '') =>
  (frame: CallFrame): boolean =>
    frame.functionName === functionName && frame.url.includes(urlPart)

/** A stage matcher: frames from any of these packages. */
export const inPackage =
  (...names: string[]) =>
  (frame: CallFrame): boolean =>
    names.some((name) => frame.url.includes(`/node_modules/${name}/`))
