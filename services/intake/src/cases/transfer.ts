import type { ApplicationRequest, CaseTransferBody } from '@pilot/schemas'
import type { Static } from 'typebox'
import type { CaseRow } from '../db/schema.ts'

/** An application's form as it is sealed into the case: the request, with the applicant's number normalised. */
export type ApplicationForm = ApplicationRequest & {
  applicant: ApplicationRequest['applicant'] & { idNumber: string; birthDate: string }
}

/** The birth date a (validated) identity number carries, YYYY-MM-DD. */
export function birthDateOf(idNumber: string): string {
  return `${idNumber.slice(6, 10)}-${idNumber.slice(10, 12)}-${idNumber.slice(12, 14)}`
}

/**
 * The case.transfer message body for an application: what the hukou city needs to review it, each person named by the
 * pilot-wide matching hash rather than the identity number.
 *
 * Built from the case as it is stored — the row and its sealed form — and from nothing else, so the submission (which
 * hands the message to the gateway itself) and the outbox relay (which rebuilds it from the case when that hand-off
 * failed, see relayOutbox) send the same body: the columns read here and the form are written once, at submission, and
 * nothing updates them. Keep it so — a resent message with another body is refused by the partner (409
 * replay-conflict, federation.md 9.1). The transfer's outbox row therefore stores no body: the one copy of the
 * applicant's personal data at rest is the sealed form, not a plaintext JSON document beside it.
 */
export function transferBodyOf(
  residenceCity: string,
  row: Pick<CaseRow, 'partner_city' | 'category' | 'submitted_at' | 'household_subjects' | 'attestation'>,
  form: ApplicationForm,
): Static<typeof CaseTransferBody> {
  const [subject, ...memberSubjects] = row.household_subjects
  if (subject === undefined || memberSubjects.length !== form.household.length || row.attestation === null) {
    throw new Error('a case.transfer needs the household subjects of every member and the residence attestation')
  }
  const { applicant } = form
  return {
    residenceCity: residenceCity as never,
    hukouCity: row.partner_city as never,
    category: row.category as never,
    submittedAt: row.submitted_at.toISOString(),
    applicant: { subject, name: applicant.name, birthDate: applicant.birthDate },
    household: [
      {
        subject,
        name: applicant.name,
        relation: 'self',
        birthDate: applicant.birthDate,
        monthlyIncomeFen: applicant.monthlyIncomeFen,
        assetsFen: applicant.assetsFen,
        ...(applicant.disability ? { disability: applicant.disability } : {}),
      },
      ...form.household.map((member, index) => ({
        subject: memberSubjects[index] as string,
        name: member.name,
        relation: member.relation,
        birthDate: birthDateOf(member.idNumber),
        monthlyIncomeFen: member.monthlyIncomeFen,
        assetsFen: member.assetsFen,
        ...(member.disability ? { disability: member.disability } : {}),
      })),
    ],
    circumstances: form.circumstances,
    rigidExpenditures: form.rigidExpenditures,
    consent: { recordedBy: form.consent.recordedBy, recordedAt: form.consent.recordedAt },
    documents: form.documents,
    attestation: row.attestation,
  }
}
