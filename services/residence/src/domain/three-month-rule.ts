import {
  addMonths,
  compareDates,
  RESIDENCE_REASONS,
  type ResidenceReason,
  toDayNumber,
  wholeMonthsBetween,
} from '@pilot/schemas'

// The reason codes are part of the verification API, so the API schema owns the list; the rule only applies it.
export { RESIDENCE_REASONS, type ResidenceReason }

/**
 * The residence condition of the pilot (DESIGN.md, "The 3-month rule"): the applicant has lived in this city
 * continuously for the required months up to the as-of date, shown by the kinds of evidence the city counts, and
 * their hukou is in another pilot city.
 *
 * Recorded with each decision and attestation, so that a decision can be re-checked under the rule it was made by.
 */
export const RULE_VERSION = 'residence-continuous-months/1'

export interface EvidenceRecord {
  kind: string
  validFrom: string
  /** Last day the evidence covers; null while it is still valid. */
  validTo: string | null
  sourceRef: string
}

export interface ResidencePolicy {
  countedEvidenceKinds: readonly string[]
  /** Intervals separated by at most this many uncovered days merge into one. */
  gapToleranceDays: number
  requiredMonths: number
}

export interface ResidenceQuestion {
  asOf: string
  thisCity: string
  hukouCity: string
  pilotCities: readonly string[]
  evidence: readonly EvidenceRecord[]
  policy: ResidencePolicy
}

export interface ResidenceDecision {
  eligible: boolean
  /** In the order of RESIDENCE_REASONS; empty exactly when eligible. */
  reasons: ResidenceReason[]
  /** Start of the continuous residence that includes the as-of date. */
  residenceSince: string | null
  /** The first day on which that residence is long enough. */
  qualifiesOn: string | null
  /** Whole months from residenceSince to the as-of date, by the same month rule. */
  monthsResided: number
  /** The counted records that make up the continuous residence, by validFrom. */
  evidenceUsed: EvidenceRecord[]
}

export interface DateSpan {
  validFrom: string
  validTo: string | null
}

/** A run of covered days: [from, to], to null when it has no end yet. */
export interface MergedInterval<T extends DateSpan> {
  from: string
  to: string | null
  /** The spans that make up the run, by validFrom (input order among equal starts). */
  records: T[]
}

/**
 * Merges closed date spans into maximal runs. Two spans merge when they overlap, touch ([a,b] and [b+1,c]) or leave
 * a gap of at most `gapToleranceDays` uncovered days between them; a span without an end absorbs everything after it.
 * The runs come back sorted by start, and between two consecutive runs more than `gapToleranceDays` days are uncovered.
 * A span that ends before it starts covers no day and is left out.
 */
export function mergeIntervals<T extends DateSpan>(spans: readonly T[], gapToleranceDays: number): MergedInterval<T>[] {
  if (!Number.isInteger(gapToleranceDays) || gapToleranceDays < 0) {
    throw new RangeError(`gapToleranceDays must be a non-negative integer: ${gapToleranceDays}`)
  }
  const sorted = spans
    .filter((span) => span.validTo === null || compareDates(span.validFrom, span.validTo) <= 0)
    .toSorted((a, b) => compareDates(a.validFrom, b.validFrom))

  const runs: MergedInterval<T>[] = []
  let current: MergedInterval<T> | undefined
  for (const span of sorted) {
    if (current && joins(current.to, span.validFrom, gapToleranceDays)) {
      current.records.push(span)
      if (current.to !== null && (span.validTo === null || compareDates(span.validTo, current.to) > 0)) {
        current.to = span.validTo
      }
      continue
    }
    current = { from: span.validFrom, to: span.validTo, records: [span] }
    runs.push(current)
  }
  return runs
}

function joins(runEnd: string | null, nextStart: string, gapToleranceDays: number): boolean {
  return runEnd === null || toDayNumber(nextStart) <= toDayNumber(runEnd) + 1 + gapToleranceDays
}

/**
 * Applies the rule as of `asOf`. Evidence that starts after `asOf` is not known on that day and is left out, so the
 * answer for a day never depends on later records. Every reason that applies is given, not only the first.
 */
export function decideResidence(question: ResidenceQuestion): ResidenceDecision {
  const { asOf, policy } = question
  const reasons = new Set<ResidenceReason>()
  if (!question.pilotCities.includes(question.hukouCity)) reasons.add('hukou_city_not_in_pilot')
  if (question.hukouCity === question.thisCity) reasons.add('same_city')

  const counted = question.evidence
    .filter((record) => policy.countedEvidenceKinds.includes(record.kind) && compareDates(record.validFrom, asOf) <= 0)
    // A total order, so that evidenceUsed does not depend on the order the registries delivered the records in.
    .toSorted(byEvidenceOrder)

  const residence = mergeIntervals(counted, policy.gapToleranceDays).find(
    (run) => run.to === null || compareDates(run.to, asOf) >= 0,
  )

  let residenceSince: string | null = null
  let qualifiesOn: string | null = null
  let monthsResided = 0
  if (counted.length === 0) {
    reasons.add('no_residence_record')
  } else if (!residence) {
    reasons.add('not_resident_on_date')
  } else {
    residenceSince = residence.from
    qualifiesOn = addMonths(residenceSince, policy.requiredMonths)
    monthsResided = wholeMonthsBetween(residenceSince, asOf)
    if (compareDates(asOf, qualifiesOn) < 0) reasons.add('residence_too_short')
  }

  const ordered = RESIDENCE_REASONS.filter((reason) => reasons.has(reason))
  return {
    eligible: ordered.length === 0,
    reasons: ordered,
    residenceSince,
    qualifiesOn,
    monthsResided,
    evidenceUsed: residence?.records ?? [],
  }
}

function byEvidenceOrder(a: EvidenceRecord, b: EvidenceRecord): number {
  return (
    compareDates(a.validFrom, b.validFrom) ||
    compareEnds(a.validTo, b.validTo) ||
    compareText(a.kind, b.kind) ||
    compareText(a.sourceRef, b.sourceRef)
  )
}

function compareEnds(a: string | null, b: string | null): number {
  if (a === null || b === null) return a === b ? 0 : a === null ? 1 : -1
  return compareDates(a, b)
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}
