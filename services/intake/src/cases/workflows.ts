import { createHash, randomUUID } from 'node:crypto'
import { blindIndex, encryptPii, HttpProblem, pooledRandomBytes, problems } from '@pilot/kit'
import {
  type ApplicationRequest,
  addDays,
  type CaseView,
  ID_NUMBER_REJECTIONS,
  type InboundMessage,
  problemType,
  todayIn,
  type VerificationResult,
  validateIdNumber,
} from '@pilot/schemas'
import { canonicalJson, matchingHash } from '@pilot/signing'
import type { Transaction } from 'kysely'
import type { CaseRow, IntakeDatabase } from '../db/schema.ts'
import { type Action, nextStatus } from '../domain/lifecycle.ts'
import type { WorkingDayCalendar } from '../domain/working-days.ts'
import { appendAudit } from './audit.ts'
import type { Actor, CaseContext } from './context.ts'
import { openForm, sealForm } from './sealing.ts'
import { type ApplicationForm, birthDateOf, transferBodyOf } from './transfer.ts'
import { caseView, caseViewOf, type EventFields } from './views.ts'

type Trx = Transaction<IntakeDatabase>

export const INTAKE_PROBLEMS = {
  idempotencyMismatch: problemType('idempotency-key-reused'),
  illegalTransition: problemType('illegal-transition'),
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
 *
 * It depends only on today and the period, so it is counted once per day and period and kept: every submission and
 * every received transfer asks for it.
 */
export function reviewDeadline(context: CaseContext, crossCity: boolean, today = todayIn(context.timeZone)): Deadline {
  const days = crossCity ? context.reviewWorkingDays.crossCity : context.reviewWorkingDays.sameCity
  let counted = countedDeadlines.get(context.calendar)
  if (counted?.today !== today) {
    counted = { today, byDays: new Map() }
    countedDeadlines.set(context.calendar, counted)
  }
  let deadline = counted.byDays.get(days)
  if (!deadline) {
    deadline = Object.freeze(countDeadline(context.calendar, today, days))
    counted.byDays.set(days, deadline)
  }
  return deadline
}

/** Deadlines counted today, per calendar (one per process, but tests build their own) and period in working days. */
const countedDeadlines = new WeakMap<WorkingDayCalendar, { today: string; byDays: Map<number, Deadline> }>()

function countDeadline(calendar: WorkingDayCalendar, today: string, days: number): Deadline {
  let date = today
  let provisional = false
  for (let counted = 0; counted < days; ) {
    date = addDays(date, 1)
    // An unknown year is no exception here: asking with isWorkingDay and catching CalendarYearUnknown for every day of
    // such a year cost several per cent of a submission's CPU time.
    let working = calendar.isWorkingDayIfKnown(date)
    if (working === undefined) {
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

/** What an earlier submission with the same caseworker and Idempotency-Key stored. */
interface StoredSubmission {
  request_hash: string
  status_code: number
  response: object | null
  response_sealed: Buffer | null
}

async function storedSubmission(
  context: CaseContext,
  actor: string,
  idempotencyKey: string,
): Promise<StoredSubmission | undefined> {
  const { rows } = await context.pool.query<StoredSubmission>({
    name: 'intake-stored-submission',
    text: `select request_hash, status_code, response, response_sealed from idempotency_keys
           where actor = $1 and key = $2`,
    values: [actor, idempotencyKey],
  })
  return rows[0]
}

/** The stored answer to a repeat with the same body; 422 for a different body under the same key. */
function repeatAnswer(
  context: CaseContext,
  earlier: StoredSubmission,
  requestHash: string,
): { statusCode: number; body: CaseView } {
  if (earlier.request_hash !== requestHash) {
    throw new HttpProblem(
      422,
      INTAKE_PROBLEMS.idempotencyMismatch,
      'Idempotency-Key reused',
      'This Idempotency-Key was used with a different application; use a new key for a new application.',
    )
  }
  // A response stored before a view field existed lacks it; for an application the field's value is null.
  const response = earlier.response_sealed
    ? openForm<object>(context.piiKey, earlier.response_sealed)
    : earlier.response
  return {
    statusCode: earlier.status_code,
    body: { recommendation: null, benefitCheck: null, ...response } as CaseView,
  }
}

/**
 * Submits an application in the residence city. Idempotent per caseworker and Idempotency-Key: the response is stored
 * with the key in the statement that writes the case, its events, the outbox row for case.transfer and the audit row,
 * and only the submission whose insert of the key succeeds writes the rest. Every repeat — concurrent, or a retry
 * after a crash between commit and response — gets the stored response, or 422 when its body differs.
 *
 * Built for the load of a city's caseworkers: the writes are one statement, prepared by name and shared with the
 * submissions written at the same moment (submission-writer.ts; a repeat adds a read of the stored response), where a
 * transaction of a dozen round trips built by the query builder made the submission CPU-bound. The case id, times and
 * the response are made here beforehand, by the very function a read of the case uses
 * (caseViewOf), from the row as it is written, so the response equals a later GET of the case.
 */
export async function submitApplication(
  context: CaseContext,
  actor: Actor,
  idempotencyKey: string,
  request: ApplicationRequest,
): Promise<{ statusCode: number; body: CaseView; json?: string }> {
  const requestHash = createHash('sha256').update(canonicalJson(request)).digest('base64url')
  const today = todayIn(context.timeZone)
  const applicantId = checkIdentity('/applicant/idNumber', request.applicant.idNumber, today)
  const memberIds = request.household.map((member, index) =>
    checkIdentity(`/household/${index}/idNumber`, member.idNumber, today),
  )
  if (new Set([applicantId, ...memberIds]).size !== memberIds.length + 1) {
    throw problems.invalidField('/household', 'the same person appears twice in the household')
  }

  // The residence service is asked before anything is read or written, so no connection or lock waits on an HTTP call,
  // and a first submission (nearly every one) does not read its key beforehand: that read was one of the submission's
  // two statements, and each statement costs a round trip and a socket write. A repeat asks again (a read, its answer
  // unused) and gets the stored response below; concurrent repeats may each ask, and the key's unique index lets
  // exactly one of them write. Should the residence service fail or refuse, a finished submission is still answered
  // from what it stored, as if it had not been asked.
  let verification: VerificationResult
  try {
    verification = await context.residence.verify(
      { idNumber: applicantId, hukouCity: request.hukouCity },
      actor.requestId ?? randomUUID(),
    )
  } catch (error) {
    const finished = await storedSubmission(context, actor.id, idempotencyKey)
    if (finished) return repeatAnswer(context, finished, requestHash)
    throw error
  }

  const system: Actor = { id: 'system', role: 'system', requestId: actor.requestId }
  const action: Action = verification.eligible ? 'residence_verified' : 'residence_rejected'
  const step = nextStatus('outgoing', 'submitted', action, 'system')
  if (!step.ok) throw new Error(`lifecycle table does not allow ${action} from submitted`)
  const now = new Date()
  const reference = `${context.regionCode}-${today.replaceAll('-', '')}-${pooledRandomBytes(5).toString('hex').toUpperCase()}`
  const subject = matchingHash(applicantId, context.matchingKey)
  const memberSubjects = memberIds.map((memberId) => matchingHash(memberId, context.matchingKey))
  const form: ApplicationForm = {
    ...request,
    applicant: { ...request.applicant, idNumber: applicantId, birthDate: birthDateOf(applicantId) },
  }
  const deadline = verification.eligible ? reviewDeadline(context, true, today) : undefined
  // The case row exactly as the statement below writes it.
  const row: CaseRow = {
    id: randomUUID(),
    reference,
    side: 'outgoing',
    partner_city: request.hukouCity,
    status: step.to,
    category: request.category,
    applicant_subject: subject,
    applicant_index: blindIndex(context.blindIndexKey, applicantId),
    caseworker_id: actor.id,
    form_sealed: sealForm(context.piiKey, form),
    household_size: request.household.length + 1,
    household_subjects: [subject, ...memberSubjects],
    residence: {
      eligible: verification.eligible,
      reasons: verification.reasons,
      residenceSince: verification.residenceSince,
      qualifiesOn: verification.qualifiesOn,
    },
    attestation: verification.attestation,
    review_deadline: deadline?.date ?? null,
    review_deadline_provisional: deadline?.provisional ?? false,
    partner_latest: null,
    decision: null,
    open_info_request: null,
    benefit_check: null,
    submitted_at: now,
    updated_at: now,
  }
  const verified = { reasons: verification.reasons, residenceSince: verification.residenceSince }
  const events: EventFields[] = [
    {
      at: now,
      action: 'submit',
      from_status: null,
      to_status: 'submitted',
      actor: actor.id,
      role: actor.role,
      detail: null,
    },
    {
      at: now,
      action,
      from_status: 'submitted',
      to_status: step.to,
      actor: system.id,
      role: system.role,
      detail: verified,
    },
  ]
  const view = caseViewOf(context, row, form, events, actor.role, today)
  // Serialised once: these bytes are both the 201's body and, sealed, the response stored for a repeat.
  const json = JSON.stringify(view)

  // Built from the row and the form exactly as they are stored, as the outbox relay would rebuild it (transfer.ts).
  const transfer = step.sends === 'case.transfer' ? transferBodyOf(context.city, row, form) : undefined

  const written = await context.submissions.add({
    actor: actor.id,
    role: actor.role,
    key: idempotencyKey,
    requestHash,
    responseSealed: encryptPii(context.piiKey, json),
    row,
    action,
    verified,
    transfer: transfer ? { id: randomUUID(), body: transfer } : null,
    requestId: actor.requestId,
  })
  if (written) return { statusCode: 201, body: view, json }
  // The key was taken meanwhile, by a concurrent submission that has committed by now (the insert waited for it).
  const earlier = await storedSubmission(context, actor.id, idempotencyKey)
  if (!earlier) throw new Error('an idempotency record vanished between two statements')
  return repeatAnswer(context, earlier, requestHash)
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
