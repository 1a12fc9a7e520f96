import { type CaseTransferBody, type CityId, todayIn } from '@pilot/schemas'
import type { Static } from 'typebox'
import type { CaseRow } from '../db/schema.ts'
import { assessCase, type BenefitAssessment, NoPolicyInForce } from '../domain/benefits.ts'
import type { CaseContext } from './context.ts'
import { openForm } from './sealing.ts'

/**
 * What the policy tables say about an incoming case's household today: the categories it fits and the amounts the
 * reviewer is advised to decide. Computed on read from the transferred form, so it always reflects the policy in
 * force on the day of the decision. Null when no policy covers that day.
 */
export function recommendationFor(context: CaseContext, row: CaseRow): BenefitAssessment | null {
  if (row.side !== 'incoming') return null
  const form = openForm<Static<typeof CaseTransferBody>>(context.piiKey, row.form_sealed)
  try {
    return assessCase(context.pilot, {
      hukouCity: context.city as CityId,
      residenceCity: row.partner_city as CityId,
      on: todayIn(context.timeZone),
      household: {
        members: form.household.map((member) => ({
          birthDate: member.birthDate,
          monthlyIncomeFen: member.monthlyIncomeFen,
          assetsFen: member.assetsFen,
          ...(member.disability ? { disability: member.disability } : {}),
        })),
        rigidExpenditures: form.rigidExpenditures,
      },
    })
  } catch (error) {
    if (error instanceof NoPolicyInForce) return null
    throw error
  }
}
