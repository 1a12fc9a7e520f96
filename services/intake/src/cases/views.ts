import { type CaseView, compareDates, maskIdNumber, todayIn } from '@pilot/schemas'
import type { Selectable } from 'kysely'
import type { CaseEventTable, CaseRow } from '../db/schema.ts'
import { allowedActions, isFinal } from '../domain/lifecycle.ts'
import { benefitCheckView, mayResolveMatches } from './benefit-check.ts'
import type { CaseContext } from './context.ts'
import { recommendationFor } from './recommendation.ts'
import { openForm } from './sealing.ts'

type EventRow = Selectable<CaseEventTable>

export interface ApplicantForm {
  applicant: { name: string; idNumber?: string; birthDate?: string }
  /** Incoming cases (the transfer body) name each member's subject; applications do not. */
  household?: { subject?: string; name: string; relation: string }[]
}

export function isOverdue(
  context: CaseContext,
  row: Pick<CaseRow, 'side' | 'status' | 'review_deadline'>,
  today?: string,
): boolean {
  if (!row.review_deadline || isFinal(row.side, row.status as never)) return false
  return compareDates(today ?? todayIn(context.timeZone), row.review_deadline) > 0
}

/** The columns of an event that its view shows. */
export type EventFields = Pick<EventRow, 'at' | 'action' | 'from_status' | 'to_status' | 'actor' | 'role' | 'detail'>

/**
 * What a caseworker or reviewer sees of a case. The applicant's identity number is shown masked: no route's role needs
 * the full number back, and a response is a copy of personal data that may end up anywhere.
 */
export function caseView(context: CaseContext, row: CaseRow, events: EventFields[], callerRole: string): CaseView {
  return caseViewOf(context, row, openForm<ApplicantForm>(context.piiKey, row.form_sealed), events, callerRole)
}

/**
 * The same view from a row and its form in hand, unsealed or not yet sealed: a submission builds its response from the
 * row it is about to write, so that the response and a later read of the case are one function of the same values.
 */
export function caseViewOf(
  context: CaseContext,
  row: CaseRow,
  form: ApplicantForm,
  events: EventFields[],
  callerRole: string,
  today?: string,
): CaseView {
  const idNumber = form.applicant.idNumber
  return {
    id: row.id,
    reference: row.reference,
    side: row.side,
    status: row.status,
    partnerCity: row.partner_city,
    category: row.category as CaseView['category'],
    applicant: {
      name: form.applicant.name,
      idNumberMasked: idNumber ? maskIdNumber(idNumber) : null,
      birthDate:
        form.applicant.birthDate ??
        (idNumber ? `${idNumber.slice(6, 10)}-${idNumber.slice(10, 12)}-${idNumber.slice(12, 14)}` : null),
    },
    householdSize: row.household_size,
    residence: row.residence
      ? {
          eligible: row.residence.eligible,
          reasons: row.residence.reasons as NonNullable<CaseView['residence']>['reasons'],
          residenceSince: row.residence.residenceSince,
          qualifiesOn: row.residence.qualifiesOn,
        }
      : null,
    submittedAt: row.submitted_at.toISOString(),
    reviewDeadline: row.review_deadline,
    reviewDeadlineProvisional: row.review_deadline_provisional,
    overdue: isOverdue(context, row, today),
    partnerLatest: row.partner_latest,
    decision: row.decision,
    openInfoRequest: row.open_info_request,
    recommendation: recommendationFor(context, row) as unknown as Record<string, unknown> | null,
    benefitCheck: benefitCheckView(row.benefit_check, form.household ?? []),
    allowedActions: [
      ...allowedActions(row.side, row.status as never, callerRole === 'reviewer' ? 'reviewer' : 'caseworker'),
      // Not a transition (the status stays), but something the reviewer has to do before approving.
      ...(callerRole === 'reviewer' && mayResolveMatches(row) ? ['resolve_benefit_matches'] : []),
    ],
    events: events.map((event) => ({
      at: event.at.toISOString(),
      action: event.action,
      from: event.from_status,
      to: event.to_status,
      actor: event.actor,
      role: event.role,
      detail: event.detail,
    })),
  }
}
