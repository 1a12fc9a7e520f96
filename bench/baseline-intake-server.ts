/**
 * The intake benchmark's baseline: the least a submission could cost on this machine. Bare Fastify, one route that
 * stores the application as it came (jsonb) under a new uuid with one INSERT through a pg Pool of the service's size,
 * and answers 201 with the id — no auth, no schema validation, no residence check, no sealing, no case history, no
 * audit chain, no outbox, no idempotency. The service's throughput is read as a ratio of this one's.
 *
 *   DATABASE_URL=… PORT=… tsx bench/baseline-intake-server.ts
 */
import { randomUUID } from 'node:crypto'
import Fastify from 'fastify'
import pg from 'pg'
import { requiredEnv, serveBaseline } from './baseline-common.ts'

const env = requiredEnv

const pool = new pg.Pool({
  connectionString: env('DATABASE_URL'),
  max: Number(process.env.DATABASE_POOL_MAX ?? 10),
  application_name: 'bench-intake-baseline',
})
pool.on('error', () => {})

// In its own schema of the city's database, beside the service's tables; created here so the baseline needs nothing.
await pool.query('create schema if not exists bench_baseline')
await pool.query(
  `create table if not exists bench_baseline.applications (
     id uuid primary key, idempotency_key text not null, payload jsonb not null,
     created_at timestamptz not null default now())`,
)

const app = Fastify({ logger: false })

app.post<{ Body: unknown; Headers: { 'idempotency-key'?: string } }>('/v1/applications', async (request, reply) => {
  const id = randomUUID()
  // Unnamed (parsed on every call), as Kysely sends the service's statements: the baseline gets no driver advantage.
  await pool.query('INSERT INTO bench_baseline.applications (id, idempotency_key, payload) VALUES ($1, $2, $3)', [
    id,
    request.headers['idempotency-key'] ?? '',
    JSON.stringify(request.body),
  ])
  return reply.status(201).send({ id })
})

await serveBaseline(app, pool)
