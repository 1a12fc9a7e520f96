import {
  type BuildOptions,
  batchSizeMetric,
  buildServiceApp,
  type QueueRegistry,
  type ServiceDefinition,
  ServiceIdentity,
} from '@pilot/kit'
import type { FederationQueues } from '@pilot/schemas'
import type { FastifyInstance } from 'fastify'
import type { Kysely } from 'kysely'
import type { CaseContext } from './cases/context.ts'
import { profileJwksSource } from './cases/inbound.ts'
import { createSubmissionWriter } from './cases/submission-writer.ts'
import { ResidenceClient } from './clients/residence.ts'
import type { IntakeConfig } from './config.ts'
import { migrations } from './db/migrations/index.ts'
import type { IntakeDatabase } from './db/schema.ts'
import { loadWorkingDayCalendar } from './domain/working-days.ts'
import { applicationRoutes } from './routes/applications.ts'
import { auditTrailRoutes } from './routes/audit-trail.ts'
import { incomingRoutes } from './routes/incoming.ts'
import { startIntakeWorkers } from './workers/federation.ts'

export const intakeService: ServiceDefinition = {
  name: 'intake',
  title: 'Application intake and case lifecycle',
  description:
    'Applications submitted in the residence city, incoming cases reviewed in the hukou city, their lifecycle, deadlines and audit trail.',
  version: '0.1.0',
  migrations,
}

/** The most submissions one statement writes (a statement of 28 array parameters; PostgreSQL takes far more). */
const SUBMISSION_BATCH_MAX = 64

export async function buildApp(config: IntakeConfig, options: BuildOptions = {}): Promise<FastifyInstance> {
  return buildServiceApp(
    intakeService,
    config,
    async (app) => {
      const identity = new ServiceIdentity(config.serviceIdentityKeyFile, {
        issuer: config.auth.issuer,
        audience: config.auth.audience,
        city: config.city,
        service: 'intake',
      })
      const batchSize = batchSizeMetric(app.metrics)
      const queues = app.queues as unknown as QueueRegistry<FederationQueues>
      const context: CaseContext = {
        city: config.city,
        regionCode: config.cityProfile.regionCode,
        pilot: config.pilot,
        timeZone: config.pilot.timeZone,
        db: app.db as Kysely<IntakeDatabase>,
        pool: app.pgPool,
        // Measured (pnpm bench intake, 50 caseworkers): 2 statements at once and one residence call at once gave batches
        // of about 7 submissions and 11 verifications and 29 % of the baseline, against 21 % for 5 and 2 (batches of 3
        // and 7). The pool's other connections stay for reads, the relay, the chainer and the inbound workers.
        submissions: createSubmissionWriter(app.pgPool, queues, config.city, app.log, {
          concurrency: Math.min(config.submissionWriteConcurrency, config.databasePoolMax),
          maxSize: SUBMISSION_BATCH_MAX,
          onBatch: batchSize('submission_write'),
        }),
        queues,
        piiKey: config.piiKey,
        blindIndexKey: config.blindIndexKey,
        matchingKey: config.matchingKey,
        calendar: loadWorkingDayCalendar(config.calendarFile),
        residence: new ResidenceClient(config.residenceUrl, identity, {
          timeoutMs: config.residenceTimeoutMs,
          concurrency: config.residenceVerifyConcurrency,
          onBatch: batchSize('residence_verification'),
        }),
        reviewWorkingDays: {
          sameCity: config.cityProfile.policy.reviewDeadlines.sameCityWorkingDays,
          crossCity: config.cityProfile.policy.reviewDeadlines.crossCityWorkingDays,
        },
        log: app.log,
      }
      if (config.mode !== 'api' && options.connect !== false) {
        startIntakeWorkers(app, context, {
          relayIntervalMs: config.outboxRelayIntervalMs,
          resendAfterSeconds: config.outboxResendAfterSeconds,
          auditChainIntervalMs: config.auditChainIntervalMs,
          idempotencyRetentionDays: config.idempotencyRetentionDays,
          jwksOf: profileJwksSource(context, config.partnerJwks),
        })
      }
      if (config.mode !== 'worker') {
        await app.register(applicationRoutes, { context })
        // Transfers being handed to the gateway's queue finish before the connections close.
        app.addHook('onClose', () => context.submissions.settled())
        await app.register(incomingRoutes, { context })
        await app.register(auditTrailRoutes, { context })
      }
    },
    options,
  )
}
