import type { Readable } from 'node:stream'
import { AUTH_PROBLEMS, BEARER_SECURITY, standardProblemResponses } from '@pilot/kit'
import { ImportSummary } from '@pilot/schemas'
import type { FastifyInstance } from 'fastify'
import type { Kysely } from 'kysely'
import { Type } from 'typebox'
import type { ResidenceConfig } from '../config.ts'
import type { ResidenceDatabase } from '../db/schema.ts'
import { importEvidence } from '../feeds/import-evidence.ts'
import type { FeedFormat } from '../feeds/parse.ts'

const FEED_TYPES: Record<string, FeedFormat> = { 'application/x-ndjson': 'ndjson', 'text/csv': 'csv' }

export async function evidenceImportRoutes(app: FastifyInstance, options: { config: ResidenceConfig }) {
  const { config } = options
  // Feeds are handed to the importer as streams, never buffered whole; the body limit does not apply to them.
  app.addContentTypeParser(Object.keys(FEED_TYPES), (_request, payload, done) => done(null, payload))

  app.post(
    // `::` is a literal colon for the router (a single one would start a path parameter).
    '/v1/residence/evidence::import',
    {
      onRequest: app.authorize(['operator']),
      bodyLimit: Number.MAX_SAFE_INTEGER,
      schema: {
        tags: ['residence'],
        summary: 'Load residence evidence from a registry feed (NDJSON or CSV stream)',
        description:
          'Body: `application/x-ndjson` (one object a line) or `text/csv` (header row) with the fields idNumber, kind, ' +
          'validFrom, validTo (empty or null: still valid), sourceRef and optionally city. Good rows are stored, bad ' +
          'rows are reported by line number and reason. Idempotent on (idNumber, kind, sourceRef): sending a feed ' +
          'again changes nothing, and a record whose dates changed is updated.',
        security: BEARER_SECURITY,
        consumes: Object.keys(FEED_TYPES),
        // Documented as text; read as a stream (see the content-type parser above), so nothing to validate here.
        body: Type.Unknown({
          description: 'NDJSON: {"idNumber","kind","validFrom","validTo","sourceRef"} a line. CSV: the same columns.',
        }),
        response: { 200: ImportSummary, ...standardProblemResponses(AUTH_PROBLEMS) },
      },
    },
    async (request) => {
      const contentType = (request.headers['content-type'] ?? '').split(';')[0]?.trim() ?? ''
      const format = FEED_TYPES[contentType] ?? 'ndjson'
      return importEvidence(
        {
          db: app.db as Kysely<ResidenceDatabase>,
          city: config.city,
          timeZone: config.pilot.timeZone,
          blindIndexKey: config.blindIndexKey,
          piiKey: config.piiKey,
          batchSize: config.importBatchSize,
          actor: request.caller?.id ?? 'unknown',
        },
        format,
        request.body as Readable,
      )
    },
  )
}
