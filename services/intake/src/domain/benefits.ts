import {
  type BenefitCategory,
  type BenefitsPolicy,
  type CityId,
  type HouseholdCategory,
  type PilotProfile,
  type PolicyFigure,
  type SchoolLevel,
  type StandardCityRule,
  toDayNumber,
  wholeMonthsBetween,
} from '@pilot/schemas'

/**
 * What a household qualifies for under the figures in force on a date, and the amounts to recommend (DOMAIN.md,
 * "Categories"). The reviewer sees the result beside the case; the decision stays theirs.
 *
 * Money is integer fen throughout and multipliers are per mille, so every comparison is exact:
 * - "Per-capita income below a line" is tested as total income < line × household size, never on a rounded
 *   per-capita figure. "Below" is strict: a household exactly at the standard does not qualify for the subsistence
 *   allowance, and one exactly at 1.5 × the standard is not low-income margin.
 * - The subsistence allowance is the gap standard × size − total income (the same as (standard − per-capita income) ×
 *   size, without rounding the per-capita income), so it needs no rounding at all.
 * - Lines derived from the standard (1.5 ×, 1.6 ×) are rounded half up to the whole yuan, as Shenzhen publishes them:
 *   1.5 × 1365 = 2047.5 is its low-income line of 2048 yuan.
 * - Every other division (per-capita income shown to the reviewer, a ratio of medical costs) rounds half up to the fen.
 */

/** No ability to work by age (DOMAIN.md, extreme poverty support): 60 or older, or under 16. */
const OLD_AGE = 60
const WORKING_AGE = 16

const PER_MILLE = 1000
const FEN_PER_YUAN = 100
const MONTHS_PER_YEAR = 12

export interface HouseholdMember {
  birthDate: string
  monthlyIncomeFen: number
  assetsFen: number
  /**
   * A code from the policy's `noWorkAbilityDisabilities` (e.g. 'physical_1'); any other text counts as a disability
   * that leaves the ability to work. The application form's free-text field has to offer these codes.
   */
  disability?: string
  /** The level the member studies at this school year; not on the application form yet. */
  schoolLevel?: SchoolLevel
  /** Diagnosed with a major illness; not on the application form yet. */
  majorIllness?: boolean
  /**
   * Education aid this school year from other sources, for the cap on a university student's total aid; not on the
   * application form yet, and 0 when unknown.
   */
  otherEducationAidYearFen?: number
}

export interface Household {
  /** Every member of the co-resident family, the applicant included. */
  members: readonly HouseholdMember[]
  /**
   * Over the last 12 months. `medicalFen` is taken to be the out-of-pocket medical cost within policy limits, the base
   * of medical assistance.
   */
  rigidExpenditures: { medicalFen: number; educationFen: number; otherFen: number }
}

/** Each reason names one condition checked and whether it held; a category lists every condition it looked at. */
export const BENEFIT_REASONS = [
  'income_below_standard',
  'income_not_below_standard',
  'assets_within_limit',
  'assets_over_limit',
  'eligible_for_subsistence',
  'income_below_margin_line',
  'income_not_below_margin_line',
  'member_unable_to_work',
  'no_member_unable_to_work',
  'no_able_member_with_income',
  'able_member_with_income',
  'income_below_disposable_income',
  'income_not_below_disposable_income',
  'rigid_spending_over_share',
  'rigid_spending_within_share',
  'student_in_household',
  'no_student',
  'household_eligible',
  'household_not_eligible',
  'university_cap_applied',
  'major_illness',
  'no_major_illness',
  'assistance_recipient',
  'expenditure_hardship',
] as const
export type BenefitReason = (typeof BENEFIT_REASONS)[number]

export interface CategoryResult {
  category: BenefitCategory
  qualifies: boolean
  reasons: BenefitReason[]
}

export interface BenefitAssessment {
  policy: {
    city: CityId
    effectiveFrom: string
    source: string
    /** True when any figure of the version is a placeholder; `placeholders` names them. */
    placeholder: boolean
    placeholders: PolicyFigure[]
  }
  on: string
  householdSize: number
  totalMonthlyIncomeFen: number
  /** Rounded half up to the fen, for display: eligibility is decided on the exact figure. */
  perCapitaIncomeFen: number
  /** Per person per month. */
  lines: { subsistenceFen: number; lowIncomeMarginFen: number; extremePovertyFen: number }
  /** One entry per category, in the order of BENEFIT_CATEGORIES. */
  categories: CategoryResult[]
  /** 0 for a category the household does not qualify for. */
  recommendations: {
    subsistenceMonthlyFen: number
    extremePovertyMonthlyFen: number
    educationYearlyFen: number
    medicalFen: number
  }
}

/** The date is before the city's first figures: there is nothing to assess with, which the caller must show. */
export class NoPolicyInForce extends Error {
  override name = 'NoPolicyInForce'
  readonly city: CityId
  readonly on: string

  constructor(city: CityId, on: string, firstEffectiveFrom: string | undefined) {
    const first = firstEffectiveFrom ? `the first take effect on ${firstEffectiveFrom}` : 'it lists none'
    super(`${city} has no assistance figures in force on ${on} (${first})`)
    this.city = city
    this.on = on
  }
}

/**
 * The version in force on `on`: the one with the latest effectiveFrom not after it, whatever the order of the list.
 * Undefined before the first version. Two versions taking effect the same day would make the answer depend on the
 * order of the file, so that throws RangeError.
 */
export function policyInForce(versions: readonly BenefitsPolicy[], on: string): BenefitsPolicy | undefined {
  const day = toDayNumber(on)
  const seen = new Set<number>()
  let chosen: { policy: BenefitsPolicy; from: number } | undefined
  for (const policy of versions) {
    const from = toDayNumber(policy.effectiveFrom)
    if (seen.has(from))
      throw new RangeError(`two versions of the assistance figures take effect on ${policy.effectiveFrom}`)
    seen.add(from)
    if (from <= day && (chosen === undefined || from > chosen.from)) chosen = { policy, from }
  }
  return chosen?.policy
}

/** Whose figures a cross-city case is assessed with, by the pilot's setting. */
export function standardCity(rule: StandardCityRule, parties: { hukouCity: CityId; residenceCity: CityId }): CityId {
  return rule === 'residence' ? parties.residenceCity : parties.hukouCity
}

/** Assesses a household with `city`'s figures in force on `on`. Throws NoPolicyInForce before the first version. */
export function assessBenefits(
  city: CityId,
  versions: readonly BenefitsPolicy[],
  on: string,
  household: Household,
): BenefitAssessment {
  const policy = policyInForce(versions, on)
  if (!policy) {
    const first = versions.map((version) => version.effectiveFrom).sort()[0]
    throw new NoPolicyInForce(city, on, first)
  }
  return assessWith(city, policy, on, household)
}

/**
 * Assesses a cross-city case with the figures of the city the pilot profile names (`benefits.standardCity`, the hukou
 * city's when the profile does not say).
 */
export function assessCase(
  profile: Pick<PilotProfile, 'benefits' | 'cities'>,
  request: { hukouCity: CityId; residenceCity: CityId; on: string; household: Household },
): BenefitAssessment {
  const city = standardCity(profile.benefits?.standardCity ?? 'hukou', request)
  const entry = profile.cities.find((candidate) => candidate.id === city)
  if (!entry) throw new RangeError(`the pilot profile has no city ${city}`)
  return assessBenefits(city, entry.policy.benefits, request.on, request.household)
}

function assessWith(city: CityId, policy: BenefitsPolicy, on: string, household: Household): BenefitAssessment {
  checkHousehold(household, on)
  const { members, rigidExpenditures } = household
  const size = members.length
  const standard = policy.subsistenceStandardFen
  const totalIncome = sum(members.map((member) => member.monthlyIncomeFen))
  const totalAssets = sum(members.map((member) => member.assetsFen))
  const lowIncomeMarginLine = derivedLine(standard, policy.lowIncomeMarginPerMille)
  const extremePovertyLine = derivedLine(standard, policy.extremePovertyPerMille)

  const belowStandard = totalIncome < standard * size
  const assetsWithin = totalAssets <= policy.assetLimitMonths * standard * size
  const incomeReason = belowStandard ? 'income_below_standard' : 'income_not_below_standard'
  const assetsReason = assetsWithin ? 'assets_within_limit' : 'assets_over_limit'

  const subsistence = result('subsistence_allowance', belowStandard && assetsWithin, [incomeReason, assetsReason])

  const belowMarginLine = totalIncome < lowIncomeMarginLine * size
  const lowIncomeMargin = subsistence.qualifies
    ? result('low_income_margin', false, ['eligible_for_subsistence'])
    : result('low_income_margin', belowMarginLine && assetsWithin, [
        belowMarginLine ? 'income_below_margin_line' : 'income_not_below_margin_line',
        assetsReason,
      ])

  // Only the household is known, not supporters living elsewhere, so "no supporter able to support" is read as no
  // member who can work and has an income; supporters outside the household are for the reviewer to check.
  const unableToWork = members.filter((member) => cannotWork(member, policy, on))
  const ableWithIncome = members.some((member) => !cannotWork(member, policy, on) && member.monthlyIncomeFen > 0)
  const extremePoverty = result(
    'extreme_poverty_support',
    unableToWork.length > 0 && !ableWithIncome && belowStandard && assetsWithin,
    [
      unableToWork.length > 0 ? 'member_unable_to_work' : 'no_member_unable_to_work',
      ableWithIncome ? 'able_member_with_income' : 'no_able_member_with_income',
      incomeReason,
      assetsReason,
    ],
  )

  // Both sides over 12 months: the disposable income is a yearly figure and rigid spending is counted over a year.
  const yearIncome = totalIncome * MONTHS_PER_YEAR
  const belowDisposable = yearIncome < policy.rigidExpenditure.disposableIncomeYearFen * size
  const rigidSpending = rigidExpenditures.medicalFen + rigidExpenditures.educationFen + rigidExpenditures.otherFen
  const spendingOverShare = rigidSpending * PER_MILLE > yearIncome * policy.rigidExpenditure.sharePerMille
  const rigidHardship = result('rigid_expenditure_hardship', belowDisposable && spendingOverShare, [
    belowDisposable ? 'income_below_disposable_income' : 'income_not_below_disposable_income',
    spendingOverShare ? 'rigid_spending_over_share' : 'rigid_spending_within_share',
  ])

  const householdCategories = [subsistence, lowIncomeMargin, extremePoverty, rigidHardship]
  const qualified = new Set<HouseholdCategory>(
    householdCategories.filter((entry) => entry.qualifies).map((entry) => entry.category),
  )

  const education = educationAssistance(members, policy, qualified)
  const medical = medicalAssistance(members, rigidExpenditures.medicalFen, policy, qualified)

  return {
    policy: {
      city,
      effectiveFrom: policy.effectiveFrom,
      source: policy.source,
      placeholder: policy.placeholders.length > 0,
      placeholders: [...policy.placeholders],
    },
    on,
    householdSize: size,
    totalMonthlyIncomeFen: totalIncome,
    perCapitaIncomeFen: divideRoundingHalfUp(totalIncome, size),
    lines: { subsistenceFen: standard, lowIncomeMarginFen: lowIncomeMarginLine, extremePovertyFen: extremePovertyLine },
    categories: [...householdCategories, education.result, medical.result],
    recommendations: {
      subsistenceMonthlyFen: subsistence.qualifies ? standard * size - totalIncome : 0,
      // Support goes to the members who cannot work; any other member is for the subsistence allowance.
      extremePovertyMonthlyFen: extremePoverty.qualifies ? extremePovertyLine * unableToWork.length : 0,
      educationYearlyFen: education.yearFen,
      medicalFen: medical.fen,
    },
  }
}

/**
 * Each student gets the amount of their level (the published amounts are minimums, and the minimum is recommended).
 * A university student's aid from all sources is capped per year, so their amount is cut to what the cap leaves after
 * aid from elsewhere.
 */
function educationAssistance(
  members: readonly HouseholdMember[],
  policy: BenefitsPolicy,
  qualified: ReadonlySet<HouseholdCategory>,
): { result: CategoryResult; yearFen: number } {
  const { yearFen, universityCapYearFen, eligibleHouseholds } = policy.education
  const householdEligible = eligibleHouseholds.some((category) => qualified.has(category))
  let total = 0
  let capApplied = false
  let students = 0
  for (const member of members) {
    if (member.schoolLevel === undefined) continue
    students++
    let amount = yearFen[member.schoolLevel]
    if (member.schoolLevel === 'university') {
      const room = Math.max(0, universityCapYearFen - (member.otherEducationAidYearFen ?? 0))
      if (room < amount) {
        amount = room
        capApplied = true
      }
    }
    total += amount
  }
  const qualifies = householdEligible && students > 0
  const reasons: BenefitReason[] = [
    students > 0 ? 'student_in_household' : 'no_student',
    householdEligible ? 'household_eligible' : 'household_not_eligible',
  ]
  if (qualifies && capApplied) reasons.push('university_cap_applied')
  return { result: result('education_assistance', qualifies, reasons), yearFen: qualifies ? total : 0 }
}

/**
 * Major-illness assistance (DOMAIN.md): the higher share for a household that receives the subsistence allowance or
 * extreme poverty support, the lower one for a rigid-expenditure hardship household. Both are "at least" figures; the
 * minimum is recommended. Without a major illness in the household no share is known, so nothing is recommended.
 */
function medicalAssistance(
  members: readonly HouseholdMember[],
  medicalFen: number,
  policy: BenefitsPolicy,
  qualified: ReadonlySet<HouseholdCategory>,
): { result: CategoryResult; fen: number } {
  const illness = members.some((member) => member.majorIllness === true)
  const recipient = qualified.has('subsistence_allowance') || qualified.has('extreme_poverty_support')
  const hardship = qualified.has('rigid_expenditure_hardship')
  const sharePerMille = !illness
    ? 0
    : recipient
      ? policy.medical.recipientMajorIllnessPerMille
      : hardship
        ? policy.medical.hardshipMajorIllnessPerMille
        : 0
  const reasons: BenefitReason[] = [
    illness ? 'major_illness' : 'no_major_illness',
    recipient ? 'assistance_recipient' : hardship ? 'expenditure_hardship' : 'household_not_eligible',
  ]
  return {
    result: result('medical_assistance', illness && (recipient || hardship), reasons),
    fen: divideRoundingHalfUp(medicalFen * sharePerMille, PER_MILLE),
  }
}

function cannotWork(member: HouseholdMember, policy: BenefitsPolicy, on: string): boolean {
  const age = Math.floor(wholeMonthsBetween(member.birthDate, on) / MONTHS_PER_YEAR)
  if (age >= OLD_AGE || age < WORKING_AGE) return true
  return member.disability !== undefined && policy.noWorkAbilityDisabilities.includes(member.disability)
}

/** standard × multiplier, rounded half up to the whole yuan. */
function derivedLine(standardFen: number, perMille: number): number {
  return divideRoundingHalfUp(standardFen * perMille, PER_MILLE * FEN_PER_YUAN) * FEN_PER_YUAN
}

/** n / d rounded half up, for n ≥ 0 and d > 0. */
function divideRoundingHalfUp(n: number, d: number): number {
  return Math.floor((2 * n + d) / (2 * d))
}

function result<C extends BenefitCategory>(
  category: C,
  qualifies: boolean,
  reasons: BenefitReason[],
): CategoryResult & { category: C } {
  return { category, qualifies, reasons }
}

function sum(values: readonly number[]): number {
  return values.reduce((total, value) => total + value, 0)
}

function checkAmount(value: number | undefined, what: string): void {
  if (value !== undefined && (!Number.isSafeInteger(value) || value < 0)) {
    throw new RangeError(`${what} must be a whole number of fen, not negative: ${value}`)
  }
}

/** The calculator is reached from stored cases as well as validated requests, so it checks what it relies on. */
function checkHousehold(household: Household, on: string): void {
  if (household.members.length === 0) throw new RangeError('a household has at least one member')
  const day = toDayNumber(on)
  household.members.forEach((member, index) => {
    if (toDayNumber(member.birthDate) > day) throw new RangeError(`member ${index} is born after ${on}`)
    checkAmount(member.monthlyIncomeFen, `member ${index} monthlyIncomeFen`)
    checkAmount(member.assetsFen, `member ${index} assetsFen`)
    checkAmount(member.otherEducationAidYearFen, `member ${index} otherEducationAidYearFen`)
  })
  const { medicalFen, educationFen, otherFen } = household.rigidExpenditures
  checkAmount(medicalFen, 'rigidExpenditures.medicalFen')
  checkAmount(educationFen, 'rigidExpenditures.educationFen')
  checkAmount(otherFen, 'rigidExpenditures.otherFen')
}
