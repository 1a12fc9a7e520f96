import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  addDays,
  addMonths,
  compareDates,
  daysBetween,
  daysInMonth,
  fromDayNumber,
  isValidDate,
  toDayNumber,
  todayIn,
  wholeMonthsBetween,
} from '../src/index.ts'

const MIN_DAY = toDayNumber('0001-01-01')
const MAX_DAY = toDayNumber('9999-12-31')

const anyDate = fc.integer({ min: MIN_DAY, max: MAX_DAY }).map(fromDayNumber)
// Months ends and leap days are where month arithmetic goes wrong, so half the dates are drawn from them.
const monthEnd = fc
  .tuple(fc.integer({ min: 1900, max: 2100 }), fc.integer({ min: 1, max: 12 }), fc.integer({ min: 0, max: 3 }))
  .map(([year, month, back]) => {
    const day = Math.max(1, daysInMonth(year, month) - back)
    return `${year}-${String(month).padStart(2, '0')}-${String(day).padStart(2, '0')}`
  })
const pilotDate = fc.oneof(
  fc.integer({ min: toDayNumber('1900-01-01'), max: toDayNumber('2100-12-31') }).map(fromDayNumber),
  monthEnd,
)
const months = fc.integer({ min: -36, max: 36 })

/** The reference: JavaScript's UTC calendar, with the year set explicitly so that years below 100 stay themselves. */
function utcDayNumber(s: string): number {
  const [year, month, day] = s.split('-').map(Number) as [number, number, number]
  const date = new Date(0)
  date.setUTCFullYear(year, month - 1, day)
  return date.getTime() / 86_400_000
}

describe('isValidDate', () => {
  it.each(['2024-02-29', '2000-02-29', '2023-12-31', '0001-01-01', '9999-12-31'])('accepts %s', (date) => {
    expect(isValidDate(date)).toBe(true)
  })

  it.each([
    '2023-02-29',
    '1900-02-29',
    '2023-04-31',
    '2023-13-01',
    '2023-00-10',
    '2023-01-00',
    '0000-01-01',
    '2023-1-01',
    '20230101',
    ' 2023-01-01',
    '2023-01-01T00:00:00Z',
    '+02023-01-01',
  ])('rejects %j', (date) => {
    expect(isValidDate(date)).toBe(false)
    expect(() => toDayNumber(date)).toThrow(RangeError)
  })
})

describe('day numbers', () => {
  it('counts from 1970-01-01', () => {
    expect(toDayNumber('1970-01-01')).toBe(0)
    expect(toDayNumber('1969-12-31')).toBe(-1)
    expect(toDayNumber('2000-03-01')).toBe(11017)
    expect(fromDayNumber(19782)).toBe('2024-02-29')
  })

  it('agrees with the UTC calendar and round-trips', () => {
    fc.assert(
      fc.property(anyDate, (date) => {
        expect(toDayNumber(date)).toBe(utcDayNumber(date))
        expect(fromDayNumber(toDayNumber(date))).toBe(date)
      }),
    )
  })

  it('refuses day numbers outside years 1–9999 and fractions', () => {
    expect(() => fromDayNumber(MIN_DAY - 1)).toThrow(RangeError)
    expect(() => fromDayNumber(MAX_DAY + 1)).toThrow(RangeError)
    expect(() => fromDayNumber(0.5)).toThrow(RangeError)
  })

  it('adds days across month, year and leap-day boundaries', () => {
    expect(addDays('2024-02-28', 1)).toBe('2024-02-29')
    expect(addDays('2023-02-28', 1)).toBe('2023-03-01')
    expect(addDays('2023-12-31', 1)).toBe('2024-01-01')
    expect(addDays('2024-03-01', -1)).toBe('2024-02-29')
    expect(daysBetween('2024-02-28', '2024-03-01')).toBe(2)
    expect(daysBetween('2024-03-01', '2024-02-28')).toBe(-2)
  })

  it('compares as the calendar does, which for these strings is also string order', () => {
    expect(compareDates('2024-02-29', '2024-03-01')).toBe(-1)
    expect(compareDates('2024-03-01', '2024-03-01')).toBe(0)
    expect(compareDates('2024-03-01', '2024-02-29')).toBe(1)
    fc.assert(
      fc.property(anyDate, anyDate, (a, b) => {
        expect(compareDates(a, b)).toBe(a < b ? -1 : a > b ? 1 : 0)
      }),
    )
  })
})

describe('addMonths (PRC Civil Code: corresponding day, else the last day of the month)', () => {
  it.each([
    ['2021-11-30', 3, '2022-02-28'],
    ['2023-11-30', 3, '2024-02-29'],
    ['2024-01-31', 1, '2024-02-29'],
    ['2023-01-31', 1, '2023-02-28'],
    ['2024-02-29', 12, '2025-02-28'],
    ['2024-02-29', 48, '2028-02-29'],
    ['2024-03-31', 1, '2024-04-30'],
    ['2024-10-15', 3, '2025-01-15'],
    ['2024-05-31', -3, '2024-02-29'],
    ['2024-01-15', -1, '2023-12-15'],
    ['2024-01-15', 0, '2024-01-15'],
  ])('%s + %i months = %s', (start, n, end) => {
    expect(addMonths(start, n)).toBe(end)
  })

  it('is not associative, which is why periods are counted from their start', () => {
    expect(addMonths(addMonths('2024-01-31', 1), 1)).toBe('2024-03-29')
    expect(addMonths('2024-01-31', 2)).toBe('2024-03-31')
  })

  it('refuses fractions of months and results outside years 1–9999', () => {
    expect(() => addMonths('2024-01-31', 1.5)).toThrow(RangeError)
    expect(() => addMonths('9999-12-01', 1)).toThrow(RangeError)
    expect(() => addMonths('0001-01-31', -1)).toThrow(RangeError)
  })

  it('lands on the same day of the month, or on the last day when the month is shorter', () => {
    fc.assert(
      fc.property(pilotDate, months, (start, n) => {
        const end = addMonths(start, n)
        const [year, month, day] = start.split('-').map(Number) as [number, number, number]
        const [endYear, endMonth, endDay] = end.split('-').map(Number) as [number, number, number]
        expect((endYear - year) * 12 + (endMonth - month)).toBe(n)
        expect(endDay).toBe(Math.min(day, daysInMonth(endYear, endMonth)))
        expect(endDay).toBeLessThanOrEqual(day)
      }),
    )
  })

  it('never moves an earlier start past a later one (monotone, not strictly)', () => {
    fc.assert(
      fc.property(pilotDate, pilotDate, months, (a, b, n) => {
        const [earlier, later] = compareDates(a, b) <= 0 ? [a, b] : [b, a]
        expect(compareDates(addMonths(earlier, n), addMonths(later, n))).toBeLessThanOrEqual(0)
      }),
    )
    // Not strictly: three different starts end on the same day.
    const ends = ['2021-11-28', '2021-11-29', '2021-11-30'].map((start) => addMonths(start, 3))
    expect(ends).toEqual(['2022-02-28', '2022-02-28', '2022-02-28'])
    expect(addMonths('2021-12-01', 3)).toBe('2022-03-01')
  })

  it('is strictly increasing in the number of months', () => {
    fc.assert(
      fc.property(pilotDate, months, (start, n) => {
        expect(compareDates(addMonths(start, n), addMonths(start, n + 1))).toBe(-1)
      }),
    )
  })
})

describe('wholeMonthsBetween', () => {
  it.each([
    ['2021-11-30', '2022-02-27', 2],
    ['2021-11-30', '2022-02-28', 3],
    ['2022-01-31', '2022-02-28', 1],
    ['2024-01-31', '2024-02-28', 0],
    ['2024-01-31', '2024-02-29', 1],
    ['2024-02-29', '2025-02-28', 12],
    ['2024-05-15', '2024-05-15', 0],
    ['2024-05-15', '2024-05-14', 0],
    ['2020-01-01', '2024-01-01', 48],
  ])('%s to %s is %i', (start, end, expected) => {
    expect(wholeMonthsBetween(start, end)).toBe(expected)
  })

  it('is the largest m with addMonths(start, m) on or before end', () => {
    fc.assert(
      fc.property(pilotDate, pilotDate, (start, end) => {
        const m = wholeMonthsBetween(start, end)
        if (compareDates(end, start) < 0) {
          expect(m).toBe(0)
          return
        }
        expect(compareDates(addMonths(start, m), end)).toBeLessThanOrEqual(0)
        expect(compareDates(addMonths(start, m + 1), end)).toBe(1)
      }),
    )
  })

  it('counts exactly n months from start to addMonths(start, n)', () => {
    fc.assert(
      fc.property(pilotDate, fc.integer({ min: 0, max: 36 }), (start, n) => {
        expect(wholeMonthsBetween(start, addMonths(start, n))).toBe(n)
      }),
    )
  })
})

describe('todayIn', () => {
  it('takes the date in the given time zone, not the server one', () => {
    const instant = new Date('2024-02-28T16:30:00Z')
    expect(todayIn('Asia/Shanghai', instant)).toBe('2024-02-29')
    expect(todayIn('UTC', instant)).toBe('2024-02-28')
    expect(todayIn('America/Los_Angeles', instant)).toBe('2024-02-28')
    expect(todayIn('Asia/Shanghai', new Date('2023-12-31T15:59:59Z'))).toBe('2023-12-31')
    expect(todayIn('Asia/Shanghai', new Date('2023-12-31T16:00:00Z'))).toBe('2024-01-01')
  })

  it('gives a valid date for now', () => {
    expect(isValidDate(todayIn('Asia/Shanghai'))).toBe(true)
  })

  it('refuses an unknown time zone', () => {
    expect(() => todayIn('Mars/Olympus_Mons')).toThrow(RangeError)
  })
})
