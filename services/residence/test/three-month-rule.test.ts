import { addDays, compareDates, fromDayNumber, toDayNumber } from '@pilot/schemas'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  decideResidence,
  type EvidenceRecord,
  mergeIntervals,
  RESIDENCE_REASONS,
  type ResidenceQuestion,
  RULE_VERSION,
} from '../src/domain/three-month-rule.ts'

const COUNTED = ['residence_registration', 'social_insurance']

function ask(asOf: string, evidence: EvidenceRecord[], overrides: Partial<ResidenceQuestion> = {}) {
  return decideResidence({
    asOf,
    thisCity: 'zhuhai',
    hukouCity: 'zhongshan',
    pilotCities: ['shenzhen', 'zhuhai', 'zhongshan'],
    evidence,
    policy: { countedEvidenceKinds: COUNTED, gapToleranceDays: 0, requiredMonths: 3 },
    ...overrides,
  })
}

let sequence = 0
function registration(validFrom: string, validTo: string | null, kind = 'residence_registration'): EvidenceRecord {
  sequence += 1
  return { kind, validFrom, validTo, sourceRef: `zhuhai-police:${sequence}` }
}

describe('the 3-month rule', () => {
  it('names its version', () => {
    expect(RULE_VERSION).toBe('residence-continuous-months/1')
  })

  it('ends a period that starts on 30 November on the last day of February', () => {
    const evidence = [registration('2021-11-30', null)]
    expect(ask('2022-02-27', evidence)).toEqual({
      eligible: false,
      reasons: ['residence_too_short'],
      residenceSince: '2021-11-30',
      qualifiesOn: '2022-02-28',
      monthsResided: 2,
      evidenceUsed: evidence,
    })
    expect(ask('2022-02-28', evidence)).toEqual({
      eligible: true,
      reasons: [],
      residenceSince: '2021-11-30',
      qualifiesOn: '2022-02-28',
      monthsResided: 3,
      evidenceUsed: evidence,
    })
  })

  it('ends it on 29 February in a leap year', () => {
    const evidence = [registration('2023-11-30', null)]
    expect(ask('2024-02-28', evidence)).toMatchObject({ eligible: false, qualifiesOn: '2024-02-29' })
    expect(ask('2024-02-29', evidence)).toMatchObject({ eligible: true, qualifiesOn: '2024-02-29', monthsResided: 3 })
  })

  it('counts a closed interval that still covers the as-of date', () => {
    expect(ask('2024-06-30', [registration('2024-01-15', '2024-06-30')])).toMatchObject({
      eligible: true,
      residenceSince: '2024-01-15',
      monthsResided: 5,
    })
  })

  it('treats two touching intervals, of different counted kinds, as one residence', () => {
    const first = registration('2024-01-10', '2024-02-29')
    const second = registration('2024-03-01', null, 'social_insurance')
    expect(ask('2024-04-10', [second, first])).toMatchObject({
      eligible: true,
      residenceSince: '2024-01-10',
      qualifiesOn: '2024-04-10',
      evidenceUsed: [first, second],
    })
  })

  it('breaks continuity at a one-day gap without tolerance, bridges it with a tolerance of one day', () => {
    const first = registration('2024-01-10', '2024-02-28')
    const second = registration('2024-03-01', null)
    expect(ask('2024-04-10', [first, second])).toMatchObject({
      eligible: false,
      reasons: ['residence_too_short'],
      residenceSince: '2024-03-01',
      evidenceUsed: [second],
    })
    const tolerant = { countedEvidenceKinds: COUNTED, gapToleranceDays: 1, requiredMonths: 3 }
    expect(ask('2024-04-10', [first, second], { policy: tolerant })).toMatchObject({
      eligible: true,
      residenceSince: '2024-01-10',
      evidenceUsed: [first, second],
    })
    const twoDayGap = registration('2024-03-02', null)
    expect(ask('2024-04-10', [first, twoDayGap], { policy: tolerant })).toMatchObject({
      eligible: false,
      residenceSince: '2024-03-02',
    })
  })

  it('answers not_resident_on_date when the residence ended before the as-of date', () => {
    expect(ask('2024-07-01', [registration('2023-01-01', '2024-06-30')])).toEqual({
      eligible: false,
      reasons: ['not_resident_on_date'],
      residenceSince: null,
      qualifiesOn: null,
      monthsResided: 0,
      evidenceUsed: [],
    })
  })

  it('does not stretch the tolerance past the last record', () => {
    const tolerant = { countedEvidenceKinds: COUNTED, gapToleranceDays: 5, requiredMonths: 3 }
    expect(ask('2024-07-01', [registration('2023-01-01', '2024-06-30')], { policy: tolerant }).reasons).toEqual([
      'not_resident_on_date',
    ])
  })

  it('ignores kinds the city does not count', () => {
    const permit = registration('2020-01-01', null, 'residence_permit')
    const recent = registration('2024-05-01', null)
    expect(ask('2024-06-01', [permit, recent])).toMatchObject({
      reasons: ['residence_too_short'],
      residenceSince: '2024-05-01',
      evidenceUsed: [recent],
    })
    expect(ask('2024-06-01', [permit])).toMatchObject({ reasons: ['no_residence_record'], evidenceUsed: [] })
  })

  it('ignores evidence that starts after the as-of date', () => {
    const later = registration('2024-06-02', null)
    expect(ask('2024-06-01', [later]).reasons).toEqual(['no_residence_record'])
    const current = registration('2024-01-01', '2024-06-01')
    expect(ask('2024-06-01', [current, later])).toMatchObject({ eligible: true, evidenceUsed: [current] })
  })

  it('answers no_residence_record when there is no evidence', () => {
    expect(ask('2024-06-01', [])).toEqual({
      eligible: false,
      reasons: ['no_residence_record'],
      residenceSince: null,
      qualifiesOn: null,
      monthsResided: 0,
      evidenceUsed: [],
    })
  })

  it('answers same_city when the hukou is in this city, together with any other reason', () => {
    const settled = [registration('2020-01-01', null)]
    expect(ask('2024-06-01', settled, { hukouCity: 'zhuhai' })).toMatchObject({
      eligible: false,
      reasons: ['same_city'],
      residenceSince: '2020-01-01',
    })
    expect(ask('2024-06-01', [registration('2024-05-01', null)], { hukouCity: 'zhuhai' }).reasons).toEqual([
      'residence_too_short',
      'same_city',
    ])
  })

  it('answers hukou_city_not_in_pilot for a hukou outside the pilot', () => {
    expect(ask('2024-06-01', [registration('2020-01-01', null)], { hukouCity: 'guangzhou' })).toMatchObject({
      eligible: false,
      reasons: ['hukou_city_not_in_pilot'],
    })
    expect(ask('2024-06-01', [], { hukouCity: 'guangzhou' }).reasons).toEqual([
      'no_residence_record',
      'hukou_city_not_in_pilot',
    ])
  })

  it('applies the required months of the policy', () => {
    const sixMonths = { countedEvidenceKinds: COUNTED, gapToleranceDays: 0, requiredMonths: 6 }
    const evidence = [registration('2023-08-31', null)]
    expect(ask('2024-02-29', evidence, { policy: sixMonths })).toMatchObject({
      eligible: true,
      qualifiesOn: '2024-02-29',
    })
    expect(ask('2024-02-28', evidence, { policy: sixMonths }).eligible).toBe(false)
  })
})

describe('mergeIntervals', () => {
  it('merges overlapping, touching and open-ended spans, keeps separated ones apart', () => {
    const spans = [
      { validFrom: '2024-03-01', validTo: '2024-03-31' },
      { validFrom: '2024-01-01', validTo: '2024-01-31' },
      { validFrom: '2024-02-01', validTo: '2024-02-10' },
      { validFrom: '2024-01-15', validTo: '2024-01-20' },
      { validFrom: '2024-05-01', validTo: null },
      { validFrom: '2024-06-01', validTo: '2024-06-30' },
    ]
    expect(mergeIntervals(spans, 0).map(({ from, to }) => [from, to])).toEqual([
      ['2024-01-01', '2024-02-10'],
      ['2024-03-01', '2024-03-31'],
      ['2024-05-01', null],
    ])
    expect(mergeIntervals(spans, 19).map(({ from, to }) => [from, to])).toEqual([
      ['2024-01-01', '2024-03-31'],
      ['2024-05-01', null],
    ])
    expect(mergeIntervals(spans, 30).map(({ from, to }) => [from, to])).toEqual([['2024-01-01', null]])
  })

  it('leaves out a span that ends before it starts', () => {
    expect(mergeIntervals([{ validFrom: '2024-02-01', validTo: '2024-01-31' }], 0)).toEqual([])
  })

  it('refuses a negative or fractional tolerance', () => {
    expect(() => mergeIntervals([], -1)).toThrow(RangeError)
    expect(() => mergeIntervals([], 0.5)).toThrow(RangeError)
  })
})

// Properties run in a short window of days, so that overlaps are common. Touching spans and gaps just under, at and
// just over the tolerance are what the rule turns on, and random spans seldom meet exactly: half the cases are chains
// in which each span starts a few days before or after the previous one ends.
const WINDOW_START = toDayNumber('2023-01-01')
const WINDOW_DAYS = 400
const HORIZON_DAYS = 1000
const KINDS = ['residence_registration', 'residence_permit', 'social_insurance', 'rental_registration']

type Span = { validFrom: string; validTo: string | null }
const day = (offset: number) => fromDayNumber(WINDOW_START + offset)

const dayInWindow = fc.integer({ min: 0, max: WINDOW_DAYS }).map(day)
const span = fc
  .record({
    start: fc.integer({ min: 0, max: WINDOW_DAYS }),
    length: fc.option(fc.integer({ min: 0, max: 90 }), { freq: 5 }),
  })
  .map(({ start, length }): Span => ({ validFrom: day(start), validTo: length === null ? null : day(start + length) }))
const chain = fc
  .record({
    start: fc.integer({ min: 0, max: 200 }),
    links: fc.array(
      fc.record({
        gap: fc.integer({ min: -10, max: 4 }),
        length: fc.integer({ min: 0, max: 60 }),
        open: fc.integer({ min: 0, max: 7 }).map((n) => n === 0),
      }),
      { minLength: 1, maxLength: 6 },
    ),
  })
  .map(({ start, links }) => {
    let from = start
    return links.map(({ gap, length, open }): Span => {
      const spanned = { validFrom: day(from), validTo: open ? null : day(from + length) }
      from = Math.max(0, from + length + 1 + gap)
      return spanned
    })
  })
const spanList = fc.oneof(
  fc.array(span, { maxLength: 12 }),
  chain,
  fc.tuple(chain, fc.array(span, { maxLength: 4 })).map(([linked, loose]) => [...linked, ...loose]),
)
const evidenceList = spanList.chain((spans) =>
  fc.tuple(
    ...spans.map((spanned) =>
      fc
        .record({
          kind: fc.oneof({ arbitrary: fc.constant('residence_registration'), weight: 2 }, fc.constantFrom(...KINDS)),
          sourceRef: fc.constantFrom('a', 'b', 'c'),
        })
        .map((tags): EvidenceRecord => ({ ...spanned, ...tags })),
    ),
  ),
)
const policy = fc.record({
  countedEvidenceKinds: fc.oneof(
    fc.constant<string[]>(['residence_registration', 'social_insurance']),
    fc.subarray(KINDS, { minLength: 1 }),
  ),
  gapToleranceDays: fc.integer({ min: 0, max: 5 }),
  requiredMonths: fc.integer({ min: 1, max: 6 }),
})
const OUR_CASE = { thisCity: 'zhuhai', hukouCity: 'zhongshan', pilotCities: ['shenzhen', 'zhuhai', 'zhongshan'] }
// The as-of date is often a few months into some record, where the answer is neither trivially yes nor no.
const question = evidenceList.chain((evidence) =>
  fc.record({
    asOf: fc.oneof(
      dayInWindow,
      evidence.length === 0
        ? dayInWindow
        : fc
            .tuple(fc.constantFrom(...evidence), fc.integer({ min: 0, max: 150 }))
            .map(([record, offset]) => addDays(record.validFrom, offset)),
    ),
    thisCity: fc.constantFrom('shenzhen', 'zhuhai'),
    hukouCity: fc.constantFrom('zhuhai', 'zhongshan', 'guangzhou'),
    pilotCities: fc.constant(['shenzhen', 'zhuhai', 'zhongshan']),
    evidence: fc.constant(evidence),
    policy,
  }),
)

/** Which days from the window's start up to the horizon some span covers; an open end covers up to the horizon. */
function coveredDays(spans: readonly Span[]): boolean[] {
  const covered = Array.from({ length: HORIZON_DAYS + 1 }, () => false)
  for (const { validFrom, validTo } of spans) {
    const last = validTo === null ? HORIZON_DAYS : toDayNumber(validTo) - WINDOW_START
    for (let offset = toDayNumber(validFrom) - WINDOW_START; offset <= last; offset++) covered[offset] = true
  }
  return covered
}

describe('3-month rule properties', () => {
  it('does not depend on the order of the evidence', () => {
    fc.assert(
      fc.property(
        question.chain((q) =>
          fc
            .shuffledSubarray(q.evidence, { minLength: q.evidence.length, maxLength: q.evidence.length })
            .map((shuffled) => [q, shuffled] as const),
        ),
        ([q, shuffled]) => {
          expect(decideResidence({ ...q, evidence: shuffled })).toEqual(decideResidence(q))
        },
      ),
    )
  })

  it('is unchanged by evidence of a kind the city does not count', () => {
    fc.assert(
      fc.property(question, span, (q, extra) => {
        const uncounted = KINDS.find((kind) => !q.policy.countedEvidenceKinds.includes(kind))
        fc.pre(uncounted !== undefined)
        const more = { ...q, evidence: [...q.evidence, { ...extra, kind: uncounted ?? '', sourceRef: 'x' }] }
        expect(decideResidence(more)).toEqual(decideResidence(q))
      }),
    )
  })

  it('gives eligible exactly when there is no reason, and reasons in their stable order', () => {
    fc.assert(
      fc.property(question, (q) => {
        const decision = decideResidence(q)
        expect(decision.eligible).toBe(decision.reasons.length === 0)
        expect(decision.reasons).toEqual(RESIDENCE_REASONS.filter((reason) => decision.reasons.includes(reason)))
        if (decision.residenceSince === null) {
          expect(decision).toMatchObject({ qualifiesOn: null, monthsResided: 0, evidenceUsed: [] })
        }
      }),
    )
  })

  // An independent reading of the rule, one day at a time: from the as-of date walk back over covered days and over
  // gaps of at most gapToleranceDays uncovered days; where the walk stops is residenceSince.
  it('finds the same residenceSince as a day-by-day walk', () => {
    fc.assert(
      fc.property(question, (q) => {
        const asOf = toDayNumber(q.asOf) - WINDOW_START
        const known = q.evidence.filter(
          (record) =>
            q.policy.countedEvidenceKinds.includes(record.kind) && toDayNumber(record.validFrom) - WINDOW_START <= asOf,
        )
        const covered = coveredDays(known)
        let since: number | null = null
        if (covered[asOf]) {
          let walk = asOf
          for (;;) {
            while (covered[walk - 1]) walk -= 1
            // walk - 1 is uncovered; a gap of g days runs back to walk - g, and residence resumes on walk - g - 1.
            const resumed = Array.from({ length: q.policy.gapToleranceDays }, (_, i) => walk - 2 - i).find(
              (offset) => covered[offset],
            )
            if (resumed === undefined) break
            walk = resumed
          }
          since = walk
        }
        const decision = decideResidence(q)
        expect(decision.residenceSince).toBe(since === null ? null : day(since))
        if (since !== null) {
          expect(decision.evidenceUsed.length).toBeGreaterThan(0)
          expect(decision.reasons.includes('residence_too_short')).toBe(
            compareDates(q.asOf, decision.qualifiesOn ?? q.asOf) < 0,
          )
        }
      }),
      { numRuns: 500 },
    )
  })

  it('stays eligible on every later day while the residence has no end', () => {
    fc.assert(
      fc.property(
        evidenceList,
        fc.integer({ min: 0, max: WINDOW_DAYS }),
        fc.integer({ min: 0, max: 200 }),
        fc.integer({ min: 1, max: 400 }),
        policy,
        (evidence, start, elapsed, later, policy) => {
          const kind = policy.countedEvidenceKinds[0] ?? 'residence_registration'
          const openEnded = registration(day(start), null, kind)
          const asOf = day(start + elapsed)
          const q = { ...OUR_CASE, asOf, evidence: [...evidence, openEnded], policy }
          const today = decideResidence(q)
          if (!today.eligible) return
          const then = decideResidence({ ...q, asOf: addDays(asOf, later) })
          expect(then).toMatchObject({ eligible: true, residenceSince: today.residenceSince })
          expect(decideResidence({ ...q, asOf: addDays(asOf, 1) }).eligible).toBe(true)
        },
      ),
    )
  })
})

describe('mergeIntervals properties', () => {
  const spans = spanList
  const tolerance = fc.integer({ min: 0, max: 5 })

  it('returns runs sorted by start, each ending before the next starts with more than the tolerance between', () => {
    fc.assert(
      fc.property(spans, tolerance, (input, gapToleranceDays) => {
        const runs = mergeIntervals(input, gapToleranceDays)
        for (const [index, run] of runs.entries()) {
          if (run.to !== null) expect(run.from <= run.to).toBe(true)
          const next = runs[index + 1]
          if (!next) continue
          expect(run.to).not.toBeNull()
          const uncoveredBetween = toDayNumber(next.from) - toDayNumber(run.to ?? next.from) - 1
          expect(uncoveredBetween).toBeGreaterThan(gapToleranceDays)
        }
      }),
    )
  })

  it('puts every span in exactly one run, which starts at its earliest start and ends at its latest end', () => {
    fc.assert(
      fc.property(spans, tolerance, (input, gapToleranceDays) => {
        const runs = mergeIntervals(input, gapToleranceDays)
        expect(runs.flatMap((run) => run.records).toSorted(byStart)).toEqual(input.toSorted(byStart))
        for (const run of runs) {
          const starts = run.records.map((record) => record.validFrom)
          expect(starts).toEqual(starts.toSorted())
          expect(run.from).toBe(run.records[0]?.validFrom)
          const ends = run.records.map((record) => record.validTo)
          expect(run.to).toBe(ends.includes(null) ? null : ends.toSorted().at(-1))
        }
      }),
    )
  })

  it('covers exactly the days the spans cover when there is no tolerance', () => {
    fc.assert(
      fc.property(spans, (input) => {
        const runs = mergeIntervals(input, 0).map(({ from, to }) => ({ validFrom: from, validTo: to }))
        expect(coveredDays(runs)).toEqual(coveredDays(input))
      }),
    )
  })

  it('adds to what the spans cover only gaps of at most the tolerance', () => {
    fc.assert(
      fc.property(spans, tolerance, (input, gapToleranceDays) => {
        const merged = coveredDays(
          mergeIntervals(input, gapToleranceDays).map(({ from, to }) => ({ validFrom: from, validTo: to })),
        )
        const original = coveredDays(input)
        const lost = original.flatMap((covered, offset) => (covered && !merged[offset] ? [offset] : []))
        expect(lost).toEqual([])
        let gap = 0
        let longestAddedGap = 0
        for (const [offset, inRun] of merged.entries()) {
          gap = inRun && !original[offset] ? gap + 1 : 0
          longestAddedGap = Math.max(longestAddedGap, gap)
        }
        expect(longestAddedGap).toBeLessThanOrEqual(gapToleranceDays)
      }),
    )
  })
})

function byStart(a: Span, b: Span) {
  return a.validFrom.localeCompare(b.validFrom) || String(a.validTo).localeCompare(String(b.validTo))
}
