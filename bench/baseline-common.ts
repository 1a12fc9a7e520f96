import type { FastifyInstance } from 'fastify'
import type pg from 'pg'

/** A variable a baseline process cannot run without: missing, it exits 78 naming it (as the services do). */
export function requiredEnv(name: string): string {
  const value = process.env[name]
  if (!value) {
    process.stderr.write(`${name} is required\n`)
    process.exit(78)
  }
  return value
}

/**
 * What every baseline server shares besides its one measured route: a health route the bench waits on, a clean stop
 * on SIGTERM/SIGINT, and listening on loopback at PORT.
 */
export async function serveBaseline(app: FastifyInstance, pool: pg.Pool): Promise<void> {
  app.get('/health', async () => {
    await pool.query('select 1')
    return { ok: true }
  })
  const close = async () => {
    await app.close()
    await pool.end()
    process.exit(0)
  }
  process.on('SIGTERM', close)
  process.on('SIGINT', close)
  await app.listen({ host: '127.0.0.1', port: Number(requiredEnv('PORT')) })
}
