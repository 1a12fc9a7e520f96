import { randomUUID } from 'node:crypto'
import { HttpProblem, problems } from '@pilot/kit'
import {
  type BenefitCheckBody,
  type BenefitCheckResultBody,
  type BenefitMatch,
  type CaseView,
  compareDates,
  type InboundMessage,
  problemType,
  todayIn,
} from '@pilot/schemas'
import { sql, type Transaction } from 'kysely'
import type { Static } from 'typebox'
import type { BenefitCheckState, CaseRow, IntakeDatabase, StoredBenefitMatch } from '../db/schema.ts'
import { isFinal } from '../domain/lifecycle.ts'
import { appendAudit, partnerAudit } from './audit.ts'
import type { Actor, CaseContext } from './context.ts'
import { firstTime, loadCase, recordEvent, writeOutbox } from './workflows.ts'

/**
 * The duplicate-benefit check. When the hukou city accepts a case it asks every other pilot city whether any household
 * member already has a benefit or an open application there. Members are named only by their matching hash; an answer
 * names the city (the sender), category, case reference and months, never a person. The reviewer sees the matches on
 * the case and must resolve them before approving.
 */

type Trx = Transaction<IntakeDatabase>
type Match = Static<typeof BenefitMatch>

export const BENEFIT_CHECK_PROBLEMS = {
  matchesUnresolved: problemType('benefit-matches-unresolved'),
}

/** The most matches one answer carries (the body schema's limit); active benefits go first. */
const MAX_MATCHES = 100

/** Every member's subject once, the applicant's first. */
export function householdSubjects(applicant: string, members: readonly string[]): string[] {
  return [...new Set([applicant, ...members])]
}

/**
 * Asks every other city of the pilot, in the transaction that accepts the case. The residence city is asked too: an
 * application it holds for a member under another reference is as much a duplicate as one elsewhere.
 */
export async function askOtherCities(context: CaseContext, trx: Trx, row: CaseRow, actor: Actor): Promise<void> {
  if (row.household_subjects.length === 0) return
  const asked = context.pilot.cities.map((city) => city.id).filter((city) => city !== context.city)
  const body: Static<typeof BenefitCheckBody> = {
    checkId: randomUUID(),
    subjects: row.household_subjects,
    asOf: todayIn(context.timeZone),
  }
  for (const city of asked) {
    await writeOutbox(trx, {
      caseId: row.id,
      to: city,
      type: 'benefit.check',
      ref: row.reference,
      usr: actor.id,
      body,
    })
  }
  const state: BenefitCheckState = {
    checkId: body.checkId,
    asOf: body.asOf,
    asked,
    answered: [],
    undelivered: [],
    matches: [],
    resolved: null,
  }
  await trx
    .updateTable('cases')
    .set({ benefit_check: JSON.stringify(state) })
    .where('id', '=', row.id)
    .execute()
}

/**
 * Answers another city's check from this city's cases, on either side: an approved decision here whose review date is
 * not before the asking city's `asOf` is an active benefit; any case not yet final is an open application. The asking
 * case itself is left out, and so is its outgoing twin when we are its residence city (same reference).
 */
export async function answerBenefitCheck(context: CaseContext, message: InboundMessage): Promise<string> {
  const body = message.body as Static<typeof BenefitCheckBody>
  return context.db.transaction().execute(async (trx) => {
    if (!(await firstTime(trx, message, 'answered'))) return 'duplicate'
    const rows = await trx
      .selectFrom('cases')
      .select(['id', 'reference', 'side', 'status', 'category', 'decision', 'household_subjects'])
      .where(sql<boolean>`household_subjects && ${body.subjects}::text[]`)
      .where('reference', '<>', message.ref)
      .orderBy('submitted_at')
      .execute()
    const asked = new Set(body.subjects)
    const found: { caseId: string; match: Match }[] = []
    for (const row of rows) {
      const decision = row.decision as { outcome?: string; startMonth?: string; reviewDate?: string } | null
      const active =
        row.side === 'incoming' &&
        row.status === 'decided' &&
        decision?.outcome === 'approved' &&
        (!decision.reviewDate || compareDates(decision.reviewDate, body.asOf) >= 0)
      if (!active && isFinal(row.side, row.status as never)) continue
      for (const subject of row.household_subjects.filter((candidate) => asked.has(candidate))) {
        const match: Match = active
          ? {
              subject,
              kind: 'active_benefit',
              category: row.category as Match['category'],
              caseReference: row.reference,
              ...(decision?.startMonth ? { activeFrom: decision.startMonth } : {}),
              ...(decision?.reviewDate ? { activeUntil: decision.reviewDate } : {}),
            }
          : {
              subject,
              kind: 'open_application',
              category: row.category as Match['category'],
              caseReference: row.reference,
            }
        found.push({ caseId: row.id, match })
      }
    }
    found.sort((a, b) => Number(b.match.kind === 'active_benefit') - Number(a.match.kind === 'active_benefit'))
    const told = found.slice(0, MAX_MATCHES)
    const result: Static<typeof BenefitCheckResultBody> = {
      checkId: body.checkId,
      matches: told.map((entry) => entry.match),
    }
    await writeOutbox(trx, {
      caseId: null,
      to: message.from,
      type: 'benefit.check_result',
      ref: message.ref,
      body: result,
    })
    const audit = partnerAudit(trx, context.city, message)
    await audit('benefit.check_answered', null, { askingCity: message.from, ref: message.ref, matches: told.length })
    // Telling another city that a case exists is a read of that case: each one disclosed is in its own audit trail.
    for (const caseId of new Set(told.map((entry) => entry.caseId))) {
      await audit('benefit.check_disclosed', caseId, { askingCity: message.from, ref: message.ref })
    }
    return 'answered'
  })
}

/**
 * An answer to our check: kept on the case, tagged with the answering city, only from a city that was asked for that
 * check. A later answer with matches reopens a resolution the reviewer made without them.
 */
export async function receiveBenefitCheckResult(context: CaseContext, message: InboundMessage): Promise<string> {
  const body = message.body as Static<typeof BenefitCheckResultBody>
  return context.db.transaction().execute(async (trx) => {
    const row = await trx
      .selectFrom('cases')
      .selectAll()
      .where('side', '=', 'incoming')
      .where('reference', '=', message.ref)
      .forUpdate()
      .executeTakeFirst()
    const check = row?.benefit_check ?? null
    const refusal = !row
      ? 'unknown_case'
      : !check?.asked.includes(message.from)
        ? 'not_party_to_case'
        : check.checkId !== body.checkId
          ? 'unknown_check'
          : undefined
    if (!row || !check || refusal) {
      const reason = refusal ?? 'not_party_to_case'
      if (!(await firstTime(trx, message, reason))) return 'duplicate'
      await appendAudit(trx, {
        actor: message.from,
        role: 'partner',
        city: context.city,
        action: 'federation.refused',
        caseId: row?.id ?? null,
        requestId: message.messageId,
        detail: { reason, type: message.type, ref: message.ref },
      })
      return reason
    }
    if (!(await firstTime(trx, message, 'applied'))) return 'duplicate'
    const matches: StoredBenefitMatch[] = body.matches.map((match) => ({
      city: message.from,
      subject: match.subject,
      kind: match.kind,
      category: match.category,
      caseReference: match.caseReference,
      activeFrom: match.activeFrom ?? null,
      activeUntil: match.activeUntil ?? null,
    }))
    const reopened = check.resolved !== null && matches.length > 0
    const next: BenefitCheckState = {
      ...check,
      answered: [...new Set([...check.answered, message.from])],
      matches: [...check.matches.filter((match) => match.city !== message.from), ...matches],
      resolved: reopened ? null : check.resolved,
    }
    await trx
      .updateTable('cases')
      .set({ benefit_check: JSON.stringify(next), updated_at: new Date() })
      .where('id', '=', row.id)
      .execute()
    // Only answers that found something enter the case history: the reviewer has to act on those. The others show in
    // `answered` and in the audit log.
    if (matches.length > 0) {
      await recordEvent(trx, {
        caseId: row.id,
        action: 'benefit_check_answered',
        from: row.status,
        to: row.status,
        actor: { id: message.from, role: 'partner', requestId: message.messageId },
        messageId: message.messageId,
        detail: { city: message.from, matches: matches.length, ...(reopened ? { resolutionReopened: true } : {}) },
      })
    }
    await appendAudit(trx, {
      actor: message.from,
      role: 'partner',
      city: context.city,
      action: 'incoming.benefit_check_answered',
      caseId: row.id,
      requestId: message.messageId,
      detail: { city: message.from, matches: matches.length },
    })
    return 'applied'
  })
}

/** A check that could not be delivered to a city (dead-lettered): shown on the case until that city answers. */
export function recordUndeliveredCheck(trx: Trx, caseId: string, city: string): Promise<void> {
  return markUndelivered(trx, caseId, city, true)
}

/** A check reported undelivered to `city` reached it after all (an operator redrove it): its answer may come. */
export function recordDeliveredCheck(trx: Trx, caseId: string, city: string): Promise<void> {
  return markUndelivered(trx, caseId, city, false)
}

async function markUndelivered(trx: Trx, caseId: string, city: string, undelivered: boolean): Promise<void> {
  const row = await trx
    .selectFrom('cases')
    .select('benefit_check')
    .where('id', '=', caseId)
    .forUpdate()
    .executeTakeFirst()
  const check = row?.benefit_check
  if (!check) return
  const others = check.undelivered.filter((other) => other !== city)
  const marked = check.undelivered.includes(city) ? check.undelivered : [...check.undelivered, city]
  const next: BenefitCheckState = { ...check, undelivered: undelivered ? marked : others }
  await trx
    .updateTable('cases')
    .set({ benefit_check: JSON.stringify(next) })
    .where('id', '=', caseId)
    .execute()
}

function unresolved(check: BenefitCheckState | null): check is BenefitCheckState {
  return check !== null && check.matches.length > 0 && check.resolved === null
}

/** Whether the reviewer may resolve the case's matches now (for the view's allowedActions). */
export function mayResolveMatches(row: Pick<CaseRow, 'side' | 'status' | 'benefit_check'>): boolean {
  return row.side === 'incoming' && !isFinal('incoming', row.status as never) && unresolved(row.benefit_check)
}

/**
 * Approving with matches the reviewer has not resolved is refused. Cities that have not answered (yet) do not block:
 * a city that is down must not freeze a decision; the view shows which ones are missing.
 */
export function requireMatchesResolved(row: CaseRow): void {
  const check = row.benefit_check
  if (!unresolved(check)) return
  const named = check.matches.map((match) => `${match.city}: ${match.kind} ${match.category} (${match.caseReference})`)
  throw new HttpProblem(
    409,
    BENEFIT_CHECK_PROBLEMS.matchesUnresolved,
    'Benefit matches not resolved',
    `Other cities report ${named.join('; ')}. Resolve them (resolve-benefit-matches) before approving.`,
    { matches: check.matches.map(({ subject: _subject, ...match }) => match) },
  )
}

/**
 * The reviewer's resolution of the matches, with the reasoning in `note`: recorded on the case, in its history and in
 * the audit log. Not a lifecycle transition: the status stays; it lifts the guard on approving.
 */
export async function resolveBenefitMatches(
  context: CaseContext,
  id: string,
  actor: Actor,
  note: string,
): Promise<CaseRow> {
  return context.db.transaction().execute(async (trx) => {
    const row = await loadCase(trx, 'incoming', id, true)
    if (!row) throw problems.notFound(`no incoming case ${id}`)
    const check = row.benefit_check
    if (isFinal('incoming', row.status as never)) {
      throw problems.conflict(`the case is ${row.status}: there is no decision left to guard`)
    }
    if (!check || check.matches.length === 0) throw problems.conflict('the case has no benefit matches to resolve')
    if (check.resolved) {
      throw problems.conflict(`the matches were resolved by ${check.resolved.by} at ${check.resolved.at}`)
    }
    const resolved = { by: actor.id, at: new Date().toISOString(), note, matches: check.matches.length }
    await trx
      .updateTable('cases')
      .set({ benefit_check: JSON.stringify({ ...check, resolved }), updated_at: new Date() })
      .where('id', '=', id)
      .execute()
    // The note stays in the case record; history and audit keep only that it was resolved, and how many matches.
    await recordEvent(trx, {
      caseId: id,
      action: 'resolve_benefit_matches',
      from: row.status,
      to: row.status,
      actor,
      detail: { matches: check.matches.length },
    })
    await appendAudit(trx, {
      actor: actor.id,
      role: actor.role,
      city: context.city,
      action: 'incoming.resolve_benefit_matches',
      caseId: id,
      requestId: actor.requestId,
      detail: { matches: check.matches.length },
    })
    return { ...row, benefit_check: { ...check, resolved } }
  })
}

/** What the reviewer sees of the check: members named from the transferred household, never by subject. */
export function benefitCheckView(
  check: BenefitCheckState | null,
  household: readonly { subject?: string; name: string; relation: string }[],
): CaseView['benefitCheck'] {
  if (!check) return null
  const member = (subject: string) => {
    const found = household.find((candidate) => candidate.subject === subject)
    return found ? { name: found.name, relation: found.relation } : null
  }
  return {
    asOf: check.asOf,
    asked: check.asked,
    answered: check.answered,
    undelivered: check.undelivered.filter((city) => !check.answered.includes(city)),
    matches: check.matches.map((match) => ({
      city: match.city,
      member: member(match.subject),
      kind: match.kind,
      category: match.category as NonNullable<CaseView['benefitCheck']>['matches'][number]['category'],
      caseReference: match.caseReference,
      activeFrom: match.activeFrom,
      activeUntil: match.activeUntil,
    })),
    resolved: check.resolved,
  }
}
