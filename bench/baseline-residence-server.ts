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
import { requiredEnv, serveBaseline } from './baseline-common.ts'

const env = requiredEnv

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

await serveBaseline(app, pool)
