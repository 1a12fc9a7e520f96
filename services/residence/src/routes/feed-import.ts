import { Readable } from 'node:stream'
import { AUTH_PROBLEMS, BEARER_SECURITY, HttpProblem, standardProblemResponses } from '@pilot/kit'
import { ImportSummary, PROBLEM_TYPES } from '@pilot/schemas'
import type { FastifyInstance } from 'fastify'
import type { Kysely } from 'kysely'
import { Type } from 'typebox'
import type { ResidenceConfig } from '../config.ts'
import type { ResidenceDatabase } from '../db/schema.ts'
import { type FeedRecordType, importFeed } from '../feeds/import.ts'
import type { FeedFormat } from '../feeds/parse.ts'
import { evidenceRecords, registrationRecords } from '../feeds/records.ts'

const FEED_TYPES: Record<string, FeedFormat> = { 'application/x-ndjson': 'ndjson', 'text/csv': 'csv' }

const notAFeed = (detail: string) =>
  new HttpProblem(
    415,
    PROBLEM_TYPES.unsupportedMediaType,
    'Unsupported media type',
    `${detail}: send ${Object.keys(FEED_TYPES).join(' or ')}`,
  )

interface FeedRoute<Sealed> {
  url: string
  records: FeedRecordType<Sealed>
  summary: string
  description: string
  bodyDescription: string
}

/** The bulk imports of the registries' feeds, one route per record type, all through the same importer. */
export async function feedImportRoutes(app: FastifyInstance, options: { config: ResidenceConfig }) {
  const { config } = options
  // Feeds are handed to the importer as streams, never buffered whole; the body limit does not apply to them. This
  // scope parses nothing else: a JSON body would otherwise be buffered without limit and reach the importer as an
  // object (a 500 after the import was recorded).
  app.removeAllContentTypeParsers()
  app.addContentTypeParser(Object.keys(FEED_TYPES), (_request, payload, done) => done(null, payload))
  app.addContentTypeParser('*', (request, _payload, done) =>
    done(notAFeed(`Content-Type ${request.headers['content-type'] ?? '(none)'} is not a feed`)),
  )

  function feedRoute<Sealed>(route: FeedRoute<Sealed>) {
    app.post(
      route.url,
      {
        onRequest: app.authorize(['operator']),
        bodyLimit: Number.MAX_SAFE_INTEGER,
        schema: {
          tags: ['residence'],
          summary: route.summary,
          description: route.description,
          security: BEARER_SECURITY,
          consumes: Object.keys(FEED_TYPES),
          // Documented as text; read as a stream (see the content-type parser above), so nothing to validate here.
          body: Type.Unknown({ description: route.bodyDescription }),
          response: { 200: ImportSummary, ...standardProblemResponses(AUTH_PROBLEMS) },
        },
      },
      async (request) => {
        const contentType = (request.headers['content-type'] ?? '').split(';')[0]?.trim() ?? ''
        // A request without a body skips the parsers altogether.
        if (!(request.body instanceof Readable)) throw notAFeed('The request has no feed in its body')
        return importFeed(
          {
            db: app.db as Kysely<ResidenceDatabase>,
            city: config.city,
            timeZone: config.pilot.timeZone,
            blindIndexKey: config.blindIndexKey,
            piiKey: config.piiKey,
            matchingKey: config.matchingKey,
            batchSize: config.importBatchSize,
            actor: request.caller?.id ?? 'unknown',
          },
          route.records,
          FEED_TYPES[contentType] ?? 'ndjson',
          request.body as Readable,
        )
      },
    )
  }

  feedRoute({
    // `::` is a literal colon for the router (a single one would start a path parameter).
    url: '/v1/residence/evidence::import',
    records: evidenceRecords,
    summary: 'Load residence evidence from a registry feed (NDJSON or CSV stream)',
    description:
      'Body: `application/x-ndjson` (one object a line) or `text/csv` (header row) with the fields idNumber, kind, ' +
      'validFrom, validTo (empty or null: still valid), sourceRef and optionally city. Good rows are stored, bad ' +
      'rows are reported by line number and reason. Idempotent on (idNumber, kind, sourceRef): sending a feed ' +
      'again changes nothing, and a record whose dates changed is updated.',
    bodyDescription: 'NDJSON: {"idNumber","kind","validFrom","validTo","sourceRef"} a line. CSV: the same columns.',
  })

  feedRoute({
    url: '/v1/residence/registrations::import',
    records: registrationRecords,
    summary: 'Load household registration (hukou) records from a registry feed (NDJSON or CSV stream)',
    description:
      'Body: `application/x-ndjson` (one object a line) or `text/csv` (header row) with the fields idNumber, ' +
      'registeredSince, cancelledOn (empty or null: still registered), sourceRef, and optionally householdRef and ' +
      'city (this city). Good rows are stored, bad rows are reported by line number and reason. Idempotent on ' +
      '(idNumber, sourceRef): sending a feed again changes nothing, and a record whose dates or household changed ' +
      'is updated.',
    bodyDescription:
      'NDJSON: {"idNumber","registeredSince","cancelledOn","householdRef","sourceRef"} a line. CSV: the same columns.',
  })
}
