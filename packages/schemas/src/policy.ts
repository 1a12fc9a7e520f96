import { type Static, Type } from 'typebox'
import { IsoDate, StrictObject } from './common.ts'
import { Fen } from './federation.ts'

/**
 * The assistance figures of a city (DOMAIN.md, "Categories" and "Figures"), as the pilot profile states them: a list of
 * versions, each in force from its `effectiveFrom` until the next version's. A case is assessed with the version in
 * force on its decision date, so a standard that changes on 1 January changes the amount of a case decided that day
 * and no earlier one.
 *
 * Every version is a complete set of figures rather than a change to the previous one, so that the figures a case was
 * assessed with can be read off one entry. Money is integer fen; multipliers and ratios are integer per mille (1.5 is
 * 1500), so no float ever touches an amount.
 *
 * Some figures are not in the public record we have. They still have to be there for the pilot to run, so each
 * version names them in `placeholders`, and every assessment carries that list to the reviewer.
 */

export const SCHOOL_LEVELS = ['junior_high', 'high_school', 'university'] as const
export const SchoolLevel = Type.Enum([...SCHOOL_LEVELS])
export type SchoolLevel = (typeof SCHOOL_LEVELS)[number]

/**
 * The household-level categories: what a household as a whole qualifies for. Rigid-expenditure hardship is one of
 * them but is not (yet) an AssistanceCategory a case can be filed under: it decides eligibility for the special
 * assistance (medical, education).
 */
export const HOUSEHOLD_CATEGORIES = [
  'subsistence_allowance',
  'low_income_margin',
  'extreme_poverty_support',
  'rigid_expenditure_hardship',
] as const
export const HouseholdCategory = Type.Enum([...HOUSEHOLD_CATEGORIES])
export type HouseholdCategory = (typeof HOUSEHOLD_CATEGORIES)[number]

export const BENEFIT_CATEGORIES = [...HOUSEHOLD_CATEGORIES, 'education_assistance', 'medical_assistance'] as const
export type BenefitCategory = (typeof BENEFIT_CATEGORIES)[number]

/** The figures a version can mark as placeholders; dotted names are fields of the nested objects. */
export const POLICY_FIGURES = [
  'effectiveFrom',
  'subsistenceStandardFen',
  'lowIncomeMarginPerMille',
  'extremePovertyPerMille',
  'assetLimitMonths',
  'noWorkAbilityDisabilities',
  'rigidExpenditure.disposableIncomeYearFen',
  'rigidExpenditure.sharePerMille',
  'education.yearFen',
  'education.universityCapYearFen',
  'education.eligibleHouseholds',
  'medical.recipientMajorIllnessPerMille',
  'medical.hardshipMajorIllnessPerMille',
] as const
export const PolicyFigure = Type.Enum([...POLICY_FIGURES])
export type PolicyFigure = (typeof POLICY_FIGURES)[number]

const PerMille = (description: string) => Type.Integer({ minimum: 0, maximum: 10_000, description })

export const BenefitsPolicy = StrictObject(
  {
    effectiveFrom: IsoDate,
    source: Type.String({ minLength: 1, maxLength: 1000, description: 'Where the figures come from' }),
    placeholders: Type.Array(PolicyFigure, {
      uniqueItems: true,
      description: 'The figures of this version that are not from the public record; [] when all are',
    }),
    subsistenceStandardFen: Type.Integer({
      minimum: 1,
      maximum: 100_000_000,
      description: 'Subsistence allowance standard, fen per person per month',
    }),
    lowIncomeMarginPerMille: PerMille('Low-income margin line as a multiple of the standard (1.5 = 1500)'),
    extremePovertyPerMille: PerMille('Extreme poverty support as a multiple of the standard (1.6 = 1600)'),
    assetLimitMonths: Type.Integer({
      minimum: 0,
      maximum: 1200,
      description: 'Per-capita assets may be at most this many months of the standard',
    }),
    noWorkAbilityDisabilities: Type.Array(Type.String({ pattern: '^[a-z0-9_]{1,40}$' }), {
      uniqueItems: true,
      description: 'Disability codes that mean no ability to work, whatever the age',
    }),
    rigidExpenditure: StrictObject({
      disposableIncomeYearFen: Type.Integer({
        minimum: 1,
        maximum: 1_000_000_000,
        description: "Last year's local per-capita disposable income, fen per person per year",
      }),
      sharePerMille: PerMille('Rigid spending over this share of household income makes a hardship household'),
    }),
    education: StrictObject({
      yearFen: StrictObject(
        { junior_high: Fen, high_school: Fen, university: Fen },
        { description: 'Education assistance per student per year, by school level' },
      ),
      universityCapYearFen: Type.Integer({
        minimum: 0,
        maximum: 1_000_000_000,
        description: "A university student's education aid per year from all sources together is at most this",
      }),
      eligibleHouseholds: Type.Array(HouseholdCategory, {
        uniqueItems: true,
        description: 'Students of a household qualifying for any of these categories get education assistance',
      }),
    }),
    medical: StrictObject({
      recipientMajorIllnessPerMille: PerMille(
        'Share of in-policy medical costs covered for a subsistence or extreme poverty household with a major illness',
      ),
      hardshipMajorIllnessPerMille: PerMille(
        'Share of in-policy medical costs covered for a rigid-expenditure hardship household with a major illness',
      ),
    }),
  },
  { title: 'BenefitsPolicy' },
)
export type BenefitsPolicy = Static<typeof BenefitsPolicy>

export const CityBenefitsPolicies = Type.Array(BenefitsPolicy, {
  minItems: 1,
  description:
    'Versions by effective date; the one in force on a date is the latest whose effectiveFrom is not after it',
})

export const STANDARD_CITY_RULES = ['hukou', 'residence'] as const
export type StandardCityRule = (typeof STANDARD_CITY_RULES)[number]

/** Pilot-wide assistance settings: who the figures of a cross-city case come from is not published (DOMAIN.md). */
export const PilotBenefitsSettings = StrictObject({
  standardCity: Type.Enum([...STANDARD_CITY_RULES], {
    description: "Whose figures apply to a cross-city case: the hukou city's (the default) or the residence city's",
  }),
})
export type PilotBenefitsSettings = Static<typeof PilotBenefitsSettings>
