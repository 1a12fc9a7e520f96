import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { repoRoot } from './paths.ts'

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
