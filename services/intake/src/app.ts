import {
  type BuildOptions,
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
      const context: CaseContext = {
        city: config.city,
        regionCode: config.cityProfile.regionCode,
        pilot: config.pilot,
        timeZone: config.pilot.timeZone,
        db: app.db as Kysely<IntakeDatabase>,
        pool: app.pgPool,
        queues: app.queues as unknown as QueueRegistry<FederationQueues>,
        piiKey: config.piiKey,
        blindIndexKey: config.blindIndexKey,
        matchingKey: config.matchingKey,
        calendar: loadWorkingDayCalendar(config.calendarFile),
        residence: new ResidenceClient(config.residenceUrl, identity, config.residenceTimeoutMs),
        reviewWorkingDays: {
          sameCity: config.cityProfile.policy.reviewDeadlines.sameCityWorkingDays,
          crossCity: config.cityProfile.policy.reviewDeadlines.crossCityWorkingDays,
        },
        log: app.log,
      }
      const workersRun = config.mode !== 'api' && options.connect !== false
      const workers = workersRun
        ? startIntakeWorkers(app, context, {
            relayIntervalMs: config.outboxRelayIntervalMs,
            resendAfterSeconds: config.outboxResendAfterSeconds,
            auditChainIntervalMs: config.auditChainIntervalMs,
            idempotencyRetentionDays: config.idempotencyRetentionDays,
            jwksOf: profileJwksSource(context, config.partnerJwks),
          })
        : undefined
      if (config.mode !== 'worker') {
        await app.register(applicationRoutes, { context, relaySoon: () => workers?.relaySoon() })
        await app.register(incomingRoutes, { context })
        await app.register(auditTrailRoutes, { context })
      }
    },
    options,
  )
}
