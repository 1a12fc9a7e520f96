import type { Caller, QueueRegistry } from '@pilot/kit'
import type { FederationQueues, PilotProfile } from '@pilot/schemas'
import type { FastifyInstance } from 'fastify'
import type { Kysely } from 'kysely'
import type { ResidenceClient } from '../clients/residence.ts'
import type { IntakeDatabase } from '../db/schema.ts'
import type { WorkingDayCalendar } from '../domain/working-days.ts'
import type { SubmissionWriter } from './submission-writer.ts'

export interface CaseContext {
  city: string
  regionCode: string
  pilot: PilotProfile
  timeZone: string
  db: Kysely<IntakeDatabase>
  /** The pool under `db`, for the submission's statements, which are prepared by name rather than built per request. */
  pool: FastifyInstance['pgPool']
  /** Writes submissions, batching those that are written at the same moment, and hands their transfers over. */
  submissions: SubmissionWriter
  queues: QueueRegistry<FederationQueues>
  piiKey: Buffer
  blindIndexKey: Buffer
  matchingKey: Buffer
  calendar: WorkingDayCalendar
  residence: ResidenceClient
  reviewWorkingDays: { sameCity: number; crossCity: number }
  log: { warn: (object: object, message: string) => void; info: (object: object, message: string) => void }
}

/** Who acts, as the case history and the audit log record it. */
export interface Actor {
  id: string
  role: string
  requestId: string | null
}

/** The caller acting in the role the route admitted them for. */
export function actorOf(caller: Caller, role: string, requestId: string): Actor {
  return { id: caller.id, role, requestId }
}
