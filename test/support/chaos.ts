import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createConnection } from 'node:net'
import { freePort, type ServiceProcess, startServiceProcess } from '@pilot/testing'

/**
 * A Redis of the test's own, on its own port, which the test may kill and start again. It keeps nothing on disk (as the
 * machine's Redis): a restart loses every queue and job, the worst case for the services, which must recover from
 * PostgreSQL alone.
 */
export class OwnRedis {
  private child: ChildProcess | undefined
  private constructor(readonly port: number) {}

  static async start(): Promise<OwnRedis> {
    const redis = new OwnRedis(await freePort())
    await redis.up()
    return redis
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`
  }

  async up(): Promise<void> {
    this.child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    )
    const deadline = Date.now() + 10_000
    while (Date.now() < deadline) {
      if (await this.answers()) return
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    throw new Error(`redis-server did not start on port ${this.port}`)
  }

  /** True when the server answers PING (RESP inline command) with +PONG. */
  private answers(): Promise<boolean> {
    return new Promise((resolve) => {
      const socket = createConnection({ host: '127.0.0.1', port: this.port })
      socket.setTimeout(1000)
      socket.once('connect', () => socket.write('PING\r\n'))
      socket.once('data', (data) => {
        socket.destroy()
        resolve(data.toString().startsWith('+PONG'))
      })
      socket.once('error', () => resolve(false))
      socket.once('timeout', () => {
        socket.destroy()
        resolve(false)
      })
    })
  }

  /** Jobs per BullMQ queue and state under `prefix` (wait, active, delayed, completed, failed), read with redis-cli. */
  queueCounts(prefix: string): Record<string, Record<string, number>> {
    const cli = (...args: string[]) =>
      execFileSync('redis-cli', ['-p', String(this.port), ...args], { encoding: 'utf8' }).trim()
    const counts: Record<string, Record<string, number>> = {}
    try {
      for (const key of cli('--scan', '--pattern', `${prefix}:*:meta`).split('\n').filter(Boolean)) {
        const queue = key.slice(prefix.length + 1, -':meta'.length)
        const base = `${prefix}:${queue}`
        counts[queue] = {
          wait: Number(cli('llen', `${base}:wait`)),
          active: Number(cli('llen', `${base}:active`)),
          delayed: Number(cli('zcard', `${base}:delayed`)),
          prioritized: Number(cli('zcard', `${base}:prioritized`)),
          completed: Number(cli('zcard', `${base}:completed`)),
          failed: Number(cli('zcard', `${base}:failed`)),
        }
      }
    } catch (error) {
      return { error: { [(error as Error).message.slice(0, 100)]: 1 } }
    }
    return counts
  }

  /** kill -9: no goodbye to the clients, nothing saved. */
  async kill(): Promise<void> {
    const child = this.child
    if (!child || child.exitCode !== null || child.signalCode !== null) return
    const exited = once(child, 'exit')
    child.kill('SIGKILL')
    await exited
  }
}

/** A service process that the test can kill -9 and start again on the same port with the same environment. */
export class Restartable {
  private current: ServiceProcess | undefined
  constructor(
    readonly name: string,
    readonly service: string,
    readonly env: Record<string, string>,
  ) {}

  async start(): Promise<void> {
    this.current = await startServiceProcess(this.service, this.env, { timeoutMs: 120_000 })
  }

  async kill(): Promise<void> {
    await this.current?.stop('SIGKILL')
  }

  async stop(): Promise<void> {
    await this.current?.stop('SIGTERM')
  }

  get url(): string {
    return `http://127.0.0.1:${this.env.PORT}`
  }

  output(): string {
    return this.current?.output() ?? ''
  }
}

/** Runs `tasks` with at most `limit` in flight. */
export async function pooled<T>(limit: number, tasks: (() => Promise<T>)[]): Promise<T[]> {
  const results: T[] = new Array(tasks.length)
  let next = 0
  const lanes = Array.from({ length: Math.min(limit, tasks.length) }, async () => {
    while (next < tasks.length) {
      const index = next++
      results[index] = await (tasks[index] as () => Promise<T>)()
    }
  })
  await Promise.all(lanes)
  return results
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
