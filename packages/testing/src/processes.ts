import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { repoRoot } from './paths.ts'

/** Ports handed out by freePort in this process, so that a port is never handed out twice. */
let handedOut = 0

/** Whether nothing listens on `port` of the loopback interface right now. */
async function canListen(port: number): Promise<boolean> {
  const server = createServer()
  server.listen(port, '127.0.0.1')
  try {
    await once(server, 'listening')
  } catch {
    return false
  }
  server.close()
  await once(server, 'close')
  return true
}

/**
 * A loopback port for a test service. Taken from a block of its own for each vitest worker (VITEST_POOL_ID), below
 * Linux's ephemeral range (32768 and up): a test that stops a service and starts it again on the same port must find
 * the port still free, and a port the kernel hands out for listen(0) or for an outgoing connection's local end — what
 * another test file, running at the same time, would get — can be any free one in that range. Outside vitest, or past
 * its block, any free port.
 */
export async function freePort(): Promise<number> {
  const worker = Number(process.env.VITEST_POOL_ID)
  if (Number.isInteger(worker) && worker >= 1 && worker <= 12) {
    const base = 20_000 + (worker - 1) * 1000
    while (handedOut < 1000) {
      const port = base + handedOut++
      if (await canListen(port)) return port
    }
  }
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

export interface ServiceProcess {
  url: string
  child: ChildProcess
  /** What the process wrote to stdout and stderr so far. */
  output(): string
  /** Sends `signal` and resolves with the exit code once the process has exited. */
  stop(signal?: NodeJS.Signals): Promise<number | null>
  exited: Promise<number | null>
}

/**
 * Starts `services/<service>/src/server.ts` as its own Node process, exactly as the pilot does, and waits until
 * `/health/ready` answers 200 (or the process exits, or `timeoutMs` passes).
 */
export async function startServiceProcess(
  service: string,
  env: Record<string, string>,
  { timeoutMs = 30_000, waitReady = true } = {},
): Promise<ServiceProcess> {
  const port = env.PORT && env.PORT !== '0' ? Number(env.PORT) : await freePort()
  const child = spawn(process.execPath, ['--import', 'tsx', `services/${service}/src/server.ts`], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', ...env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8')
  })
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8')
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  const url = `http://127.0.0.1:${port}`
  const handle: ServiceProcess = {
    url,
    child,
    output: () => output,
    exited,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      return exited
    },
  }
  if (!waitReady) return handle

  const deadline = Date.now() + timeoutMs
  let exitedEarly = false
  exited.then(() => {
    exitedEarly = true
  })
  while (Date.now() < deadline && !exitedEarly) {
    try {
      const response = await fetch(`${url}/health/ready`)
      if (response.status === 200) return handle
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 150))
  }
  await handle.stop('SIGKILL')
  throw new Error(`${service} did not become ready${exitedEarly ? ' (it exited)' : ''}:\n${output}`)
}
