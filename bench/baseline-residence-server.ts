/**
 * The residence benchmark's baseline: the least a verification could cost on this machine. Bare Fastify, one route,
 * the same blind index and the same single indexed SELECT through a pg Pool of the service's size — no auth, no
 * schema validation, no rule, no signing, no logging. The service's throughput is read as a ratio of this one's.
 *
 *   DATABASE_URL=… BLIND_INDEX_KEY_FILE=… PORT=… tsx bench/baseline-residence-server.ts
 */
import { readFileSync } from 'node:fs'
import { blindIndex } from '@pilot/kit'
import Fastify from 'fastify'
import pg from 'pg'

const env = (name: string): string => {
  const value = process.env[name]
  if (!value) {
    process.stderr.write(`${name} is required\n`)
    process.exit(78)
  }
  return value
}

// As the service does: DATE columns stay 'YYYY-MM-DD' strings, so both serialise the same JSON.
pg.types.setTypeParser(pg.types.builtins.DATE, (value) => value)

const key = Buffer.from(readFileSync(env('BLIND_INDEX_KEY_FILE'), 'utf8').trim(), 'base64')
const pool = new pg.Pool({
  connectionString: env('DATABASE_URL'),
  max: Number(process.env.DATABASE_POOL_MAX ?? 10),
  application_name: 'bench-baseline',
})
pool.on('error', () => {})

const app = Fastify({ logger: false })

app.post<{ Body: { idNumber: string } }>('/lookup', async (request) => {
  // Unnamed (parsed on every call), as Kysely sends the service's queries: the baseline gets no driver advantage.
  const { rows } = await pool.query(
    'SELECT kind, valid_from, valid_to, source_ref FROM residence.evidence WHERE person_index = $1',
    [blindIndex(key, request.body.idNumber)],
  )
  return rows
})

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

await app.listen({ host: '127.0.0.1', port: Number(env('PORT')) })
