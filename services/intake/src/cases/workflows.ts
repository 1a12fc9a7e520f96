import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { blindIndex, HttpProblem, problems } from '@pilot/kit'
import {
  type ApplicationRequest,
  addDays,
  type CaseTransferBody,
  type CaseView,
  ID_NUMBER_REJECTIONS,
  type InboundMessage,
  problemType,
  todayIn,
  validateIdNumber,
} from '@pilot/schemas'
import { canonicalJson, matchingHash } from '@pilot/signing'
import { type Selectable, sql, type Transaction } from 'kysely'
import type { Static } from 'typebox'
import type { CaseTable, IntakeDatabase } from '../db/schema.ts'
import { type Action, nextStatus } from '../domain/lifecycle.ts'
import { CalendarYearUnknown } from '../domain/working-days.ts'
import { appendAudit } from './audit.ts'
import type { Actor, CaseContext } from './context.ts'
import { sealForm } from './sealing.ts'
import { caseView } from './views.ts'

type Trx = Transaction<IntakeDatabase>
type CaseRow = Selectable<CaseTable>

export const INTAKE_PROBLEMS = {
  idempotencyMismatch: problemType('idempotency-key-reused'),
  illegalTransition: problemType('illegal-transition'),
}

function birthDateOf(idNumber: string): string {
  return `${idNumber.slice(6, 10)}-${idNumber.slice(10, 12)}-${idNumber.slice(12, 14)}`
}

export interface Deadline {
  date: string
  /** True when the period runs into a year whose holiday notice is not yet published (counted as weekdays there). */
  provisional: boolean
}

/**
 * The review deadline: the review period in working days from today. Where the period runs into a year the State
 * Council has not yet published, those days are counted as plain weekdays and the deadline is marked provisional —
 * shown to the caseworker as such, never passed off as final.
 */
export function reviewDeadline(context: CaseContext, crossCity: boolean): Deadline {
  const days = crossCity ? context.reviewWorkingDays.crossCity : context.reviewWorkingDays.sameCity
  let date = todayIn(context.timeZone)
  let provisional = false
  for (let counted = 0; counted < days; ) {
    date = addDays(date, 1)
    let working: boolean
    try {
      working = context.calendar.isWorkingDay(date)
    } catch (error) {
      if (!(error instanceof CalendarYearUnknown)) throw error
      provisional = true
      const weekday = new Date(`${date}T00:00:00Z`).getUTCDay()
      working = weekday !== 0 && weekday !== 6
    }
    if (working) counted++
  }
  return { date, provisional }
}

export function deadlineColumns(deadline: Deadline) {
  return { review_deadline: deadline.date, review_deadline_provisional: deadline.provisional }
}

export async function loadCase(trx: Trx | CaseContext['db'], side: 'outgoing' | 'incoming', id: string, lock = false) {
  let query = trx.selectFrom('cases').selectAll().where('id', '=', id).where('side', '=', side)
  if (lock) query = query.forUpdate()
  return query.executeTakeFirst()
}

export async function loadEvents(trx: Trx | CaseContext['db'], caseId: string) {
  return trx.selectFrom('case_events').selectAll().where('case_id', '=', caseId).orderBy('id').execute()
}

export async function recordEvent(
  trx: Trx,
  event: {
    caseId: string
    action: string
    from: string | null
    to: string
    actor: Actor
    detail?: Record<string, unknown>
    messageId?: string
  },
): Promise<void> {
  await trx
    .insertInto('case_events')
    .values({
      case_id: event.caseId,
      action: event.action,
      from_status: event.from,
      to_status: event.to,
      actor: event.actor.id,
      role: event.actor.role,
      detail: event.detail ? JSON.stringify(event.detail) : null,
      message_id: event.messageId ?? null,
    })
    .execute()
}

export async function writeOutbox(
  trx: Trx,
  message: { caseId: string | null; to: string; type: string; ref: string; usr?: string; body: unknown },
): Promise<string> {
  const id = randomUUID()
  await trx
    .insertInto('outbox')
    .values({
      id,
      case_id: message.caseId,
      to_city: message.to,
      type: message.type,
      ref: message.ref,
      usr: message.usr ?? null,
      body: JSON.stringify(message.body),
      relayed_at: null,
      outcome: null,
      outcome_at: null,
      outcome_reason: null,
    })
    .execute()
  return id
}

/** Marks an inbound message as applied; false when it already was (the gateway hands off at least once). */
export async function firstTime(trx: Trx, message: InboundMessage, outcome: string): Promise<boolean> {
  const inserted = await trx
    .insertInto('inbound_processed')
    .values({ message_id: message.messageId, from_city: message.from, type: message.type, outcome })
    .onConflict((conflict) => conflict.column('message_id').doNothing())
    .returning('message_id')
    .executeTakeFirst()
  return inserted !== undefined
}

function checkIdentity(pointer: string, idNumber: string, today: string): string {
  const identity = validateIdNumber(idNumber, today)
  if (!identity.ok) throw problems.invalidField(pointer, ID_NUMBER_REJECTIONS[identity.reason])
  return identity.idNumber
}

/**
 * Submits an application in the residence city. Idempotent per caseworker and Idempotency-Key: the first request does
 * the work while holding a transaction-scoped lock on the key, and stores its response in the same transaction as the
 * case; every repeat — concurrent, or a retry after a crash between commit and response — gets that response. The
 * case, its members, the attestation, its events, the outbox row for case.transfer and the audit row commit together.
 */
export async function submitApplication(
  context: CaseContext,
  actor: Actor,
  callerToken: string,
  idempotencyKey: string,
  request: ApplicationRequest,
): Promise<{ statusCode: number; body: CaseView }> {
  const requestHash = createHash('sha256').update(canonicalJson(request)).digest('base64url')
  const today = todayIn(context.timeZone)
  const applicantId = checkIdentity('/applicant/idNumber', request.applicant.idNumber, today)
  const memberIds = request.household.map((member, index) =>
    checkIdentity(`/household/${index}/idNumber`, member.idNumber, today),
  )
  if (new Set([applicantId, ...memberIds]).size !== memberIds.length + 1) {
    throw problems.invalidField('/household', 'the same person appears twice in the household')
  }

  const stored = () =>
    context.db
      .selectFrom('idempotency_keys')
      .selectAll()
      .where('actor', '=', actor.id)
      .where('key', '=', idempotencyKey)
  // A repeat of a finished submission is answered without asking the residence service again.
  const finished = await stored().executeTakeFirst()
  // The residence service is asked before the transaction opens, so no connection or lock waits on an HTTP call;
  // concurrent repeats may each ask (a read), and the lock below lets exactly one of them write.
  const verification = finished
    ? undefined
    : await context.residence.verify(
        callerToken,
        { idNumber: applicantId, hukouCity: request.hukouCity },
        actor.requestId ?? randomUUID(),
      )

  return context.db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(hashtextextended(${`${actor.id}|${idempotencyKey}`}, 0))`.execute(trx)
    const earlier = await trx
      .selectFrom('idempotency_keys')
      .selectAll()
      .where('actor', '=', actor.id)
      .where('key', '=', idempotencyKey)
      .executeTakeFirst()
    if (earlier) {
      if (earlier.request_hash !== requestHash) {
        throw new HttpProblem(
          422,
          INTAKE_PROBLEMS.idempotencyMismatch,
          'Idempotency-Key reused',
          'This Idempotency-Key was used with a different application; use a new key for a new application.',
        )
      }
      // A response stored before a view field existed lacks it; for an application the field's value is null.
      return {
        statusCode: earlier.status_code,
        body: { recommendation: null, benefitCheck: null, ...(earlier.response as object) } as CaseView,
      }
    }

    if (!verification) throw new Error('an idempotency record vanished between two reads')
    const reference = `${context.regionCode}-${today.replaceAll('-', '')}-${randomBytes(5).toString('hex').toUpperCase()}`
    const subject = matchingHash(applicantId, context.matchingKey)
    const memberSubjects = memberIds.map((memberId) => matchingHash(memberId, context.matchingKey))
    const form = {
      ...request,
      applicant: { ...request.applicant, idNumber: applicantId, birthDate: birthDateOf(applicantId) },
    }
    const status = verification.eligible ? 'queued' : 'residence_rejected'
    const inserted = await trx
      .insertInto('cases')
      .values({
        reference,
        side: 'outgoing',
        partner_city: request.hukouCity,
        status,
        category: request.category,
        applicant_subject: subject,
        applicant_index: blindIndex(context.blindIndexKey, applicantId),
        caseworker_id: actor.id,
        form_sealed: sealForm(context.piiKey, form),
        household_size: request.household.length + 1,
        household_subjects: [subject, ...memberSubjects],
        residence: JSON.stringify({
          eligible: verification.eligible,
          reasons: verification.reasons,
          residenceSince: verification.residenceSince,
          qualifiesOn: verification.qualifiesOn,
        }),
        attestation: verification.attestation,
        ...(verification.eligible ? deadlineColumns(reviewDeadline(context, true)) : {}),
        partner_latest: null,
        decision: null,
        open_info_request: null,
        benefit_check: null,
      })
      .returning('id')
      .executeTakeFirstOrThrow()
    const caseId = inserted.id
    await recordEvent(trx, { caseId, action: 'submit', from: null, to: 'submitted', actor })
    const system: Actor = { id: 'system', role: 'system', requestId: actor.requestId }
    const action: Action = verification.eligible ? 'residence_verified' : 'residence_rejected'
    const step = nextStatus('outgoing', 'submitted', action, 'system')
    if (!step.ok) throw new Error(`lifecycle table does not allow ${action} from submitted`)
    await recordEvent(trx, {
      caseId,
      action,
      from: 'submitted',
      to: step.to,
      actor: system,
      detail: { reasons: verification.reasons, residenceSince: verification.residenceSince },
    })
    if (step.sends === 'case.transfer') {
      const body: Static<typeof CaseTransferBody> = {
        residenceCity: context.city as never,
        hukouCity: request.hukouCity as never,
        category: request.category,
        submittedAt: new Date().toISOString(),
        applicant: { subject, name: request.applicant.name, birthDate: birthDateOf(applicantId) },
        household: [
          {
            subject,
            name: request.applicant.name,
            relation: 'self',
            birthDate: birthDateOf(applicantId),
            monthlyIncomeFen: request.applicant.monthlyIncomeFen,
            assetsFen: request.applicant.assetsFen,
            ...(request.applicant.disability ? { disability: request.applicant.disability } : {}),
          },
          ...request.household.map((member, index) => ({
            subject: memberSubjects[index] as string,
            name: member.name,
            relation: member.relation,
            birthDate: birthDateOf(memberIds[index] as string),
            monthlyIncomeFen: member.monthlyIncomeFen,
            assetsFen: member.assetsFen,
            ...(member.disability ? { disability: member.disability } : {}),
          })),
        ],
        circumstances: request.circumstances,
        rigidExpenditures: request.rigidExpenditures,
        consent: { recordedBy: request.consent.recordedBy, recordedAt: request.consent.recordedAt },
        documents: request.documents,
        attestation: verification.attestation,
      }
      await writeOutbox(trx, {
        caseId,
        to: request.hukouCity,
        type: 'case.transfer',
        ref: reference,
        usr: actor.id,
        body,
      })
    }
    const row = await loadCase(trx, 'outgoing', caseId)
    const view = caseView(context, row as NonNullable<typeof row>, await loadEvents(trx, caseId), actor.role)
    await trx
      .insertInto('idempotency_keys')
      .values({
        actor: actor.id,
        key: idempotencyKey,
        request_hash: requestHash,
        status_code: 201,
        response: JSON.stringify(view),
      })
      .execute()
    // Last, so the audit log's lock (one chain per city) is held only for this insert and the commit.
    await appendAudit(trx, {
      actor: actor.id,
      role: actor.role,
      city: context.city,
      action: 'application.submit',
      caseId,
      requestId: actor.requestId,
      detail: { status: step.to },
    })
    return { statusCode: 201, body: view }
  })
}

/** Reads one case, writing the read to the audit log. */
export async function readCase(
  context: CaseContext,
  side: 'outgoing' | 'incoming',
  id: string,
  actor: Actor,
): Promise<CaseView> {
  return context.db.transaction().execute(async (trx) => {
    const row = await loadCase(trx, side, id)
    if (!row) throw problems.notFound(`no ${side === 'outgoing' ? 'application' : 'incoming case'} ${id}`)
    const view = caseView(context, row, await loadEvents(trx, id), actor.role)
    await appendAudit(trx, {
      actor: actor.id,
      role: actor.role,
      city: context.city,
      action: `${side}.read`,
      caseId: id,
      requestId: actor.requestId,
    })
    return view
  })
}

export interface CaseActionInput {
  action: Action
  /** The body of the message the other city gets, when the action sends one (may depend on the case). */
  messageBody?:
    | Record<string, unknown>
    | ((row: NonNullable<Awaited<ReturnType<typeof loadCase>>>) => Record<string, unknown>)
  /** Changes to the case row that come with the action. */
  changes?: Partial<Record<'decision' | 'open_info_request', unknown>>
  detail?: Record<string, unknown>
  /** A rule the transition table cannot express; an HttpProblem thrown here refuses the action like an illegal one. */
  check?: (row: CaseRow) => void
  /** Further writes that commit with the action, once it is allowed (the row is as it was before the action). */
  alongside?: (trx: Trx, row: CaseRow, actor: Actor) => Promise<void>
}

/**
 * A caseworker's or reviewer's action on a case: checked against the transition table (an illegal one is a 409 and
 * leaves nothing behind but its audit row), then the new status, the event, the outbox row for the other city and
 * the audit row commit together.
 */
export async function actOnCase(
  context: CaseContext,
  side: 'outgoing' | 'incoming',
  id: string,
  actor: Actor,
  input: CaseActionInput,
): Promise<CaseView> {
  const refused = await context.db.transaction().execute(async (trx) => {
    const row = await loadCase(trx, side, id, true)
    if (!row) throw problems.notFound(`no ${side === 'outgoing' ? 'application' : 'incoming case'} ${id}`)
    const step = nextStatus(side, row.status as never, input.action, actor.role as never)
    if (!step.ok) return { row, allowed: step.allowed }
    try {
      input.check?.(row)
    } catch (error) {
      if (error instanceof HttpProblem) return { row, problem: error }
      throw error
    }
    const decisionChange = input.changes?.decision
    const infoChange = input.changes?.open_info_request
    await trx
      .updateTable('cases')
      .set({
        status: step.to,
        updated_at: new Date(),
        ...(decisionChange !== undefined
          ? { decision: decisionChange === null ? null : JSON.stringify(decisionChange) }
          : {}),
        ...(infoChange !== undefined
          ? { open_info_request: infoChange === null ? null : JSON.stringify(infoChange) }
          : {}),
      })
      .where('id', '=', id)
      .execute()
    await recordEvent(trx, {
      caseId: id,
      action: input.action,
      from: row.status,
      to: step.to,
      actor,
      detail: input.detail,
    })
    if (step.sends) {
      const body = typeof input.messageBody === 'function' ? input.messageBody(row) : (input.messageBody ?? {})
      await writeOutbox(trx, {
        caseId: id,
        to: row.partner_city,
        type: step.sends,
        ref: row.reference,
        usr: actor.id,
        body,
      })
    }
    await input.alongside?.(trx, row, actor)
    await appendAudit(trx, {
      actor: actor.id,
      role: actor.role,
      city: context.city,
      action: `${side}.${input.action}`,
      caseId: id,
      requestId: actor.requestId,
      detail: { to: step.to },
    })
    return undefined
  })
  if (refused) {
    // The refusal leaves no trace in the case, only in the audit log.
    await context.db.transaction().execute((trx) =>
      appendAudit(trx, {
        actor: actor.id,
        role: actor.role,
        city: context.city,
        action: `${side}.${input.action}.refused`,
        caseId: id,
        requestId: actor.requestId,
        detail: {
          status: refused.row.status,
          ...(refused.problem ? { problem: refused.problem.type } : {}),
        },
      }),
    )
    if (refused.problem) throw refused.problem
    throw new HttpProblem(
      409,
      INTAKE_PROBLEMS.illegalTransition,
      'Not possible in this state',
      `A case in status ${refused.row.status} does not allow ${input.action}`,
      { caseStatus: refused.row.status, allowedActions: refused.allowed },
    )
  }
  return readCaseWithoutAudit(context, side, id, actor.role)
}

async function readCaseWithoutAudit(context: CaseContext, side: 'outgoing' | 'incoming', id: string, role: string) {
  const row = await loadCase(context.db, side, id)
  if (!row) throw problems.notFound(`no case ${id}`)
  return caseView(context, row, await loadEvents(context.db, id), role)
}
