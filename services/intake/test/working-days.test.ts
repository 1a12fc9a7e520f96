import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { addDays, compareDates, fromDayNumber, toDayNumber } from '@pilot/schemas'
import { repoRoot } from '@pilot/testing'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  CalendarYearUnknown,
  loadWorkingDayCalendar,
  WorkingDayCalendar,
  type WorkingDayCalendarData,
} from '../src/domain/working-days.ts'

const CALENDAR_FILE = join(repoRoot, 'infra/data/cn-workdays.json')
const calendar = loadWorkingDayCalendar(CALENDAR_FILE)
const data = JSON.parse(readFileSync(CALENDAR_FILE, 'utf8')) as WorkingDayCalendarData

function unknownYearOf(run: () => unknown): number | undefined {
  try {
    run()
  } catch (error) {
    if (error instanceof CalendarYearUnknown) return error.year
    throw error
  }
  return undefined
}

describe('the working-day calendar', () => {
  it('covers the years the file lists', () => {
    expect(calendar.coveredYears()).toEqual([2022, 2023, 2024, 2025, 2026])
  })

  it('follows the 2026 National Day and Mid-Autumn holidays', () => {
    expect(calendar.isWorkingDay('2026-09-24')).toBe(true)
    // Mid-Autumn falls on Friday 25 September; the Sunday before is worked instead.
    expect(calendar.isWorkingDay('2026-09-25')).toBe(false)
    expect(calendar.isWorkingDay('2026-09-20')).toBe(true)
    expect(calendar.isWorkingDay('2026-10-01')).toBe(false)
    expect(calendar.isWorkingDay('2026-10-07')).toBe(false)
    expect(calendar.isWorkingDay('2026-10-08')).toBe(true)
    expect(calendar.isWorkingDay('2026-10-10')).toBe(true)
    expect(calendar.isWorkingDay('2026-10-11')).toBe(false)
  })

  it('counts 30 working days from 2026-09-25 across National Day to 12 November', () => {
    // By hand: 28–30 Sep (3); 1–7 Oct off; 8, 9 and Saturday 10 Oct (6); four full weeks 12 Oct – 6 Nov (26);
    // 9–12 Nov (30).
    expect(calendar.addWorkingDays('2026-09-25', 30)).toBe('2026-11-12')
    expect(calendar.addWorkingDays('2026-09-25', 3)).toBe('2026-09-30')
    expect(calendar.addWorkingDays('2026-09-25', 4)).toBe('2026-10-08')
    expect(calendar.addWorkingDays('2026-09-25', 6)).toBe('2026-10-10')
    expect(calendar.addWorkingDays('2026-09-25', 7)).toBe('2026-10-12')
    expect(calendar.workingDaysBetween('2026-09-25', '2026-11-12')).toBe(30)
  })

  it('counts the 2025 Spring Festival with its two worked weekend days', () => {
    // Friday 24 Jan; Sunday 26 Jan is worked; 28 Jan – 4 Feb off; Saturday 8 Feb is worked.
    expect(calendar.isWorkingDay('2025-01-25')).toBe(false)
    expect(calendar.isWorkingDay('2025-01-26')).toBe(true)
    expect(calendar.isWorkingDay('2025-02-08')).toBe(true)
    expect(calendar.isWorkingDay('2025-02-09')).toBe(false)
    expect(calendar.addWorkingDays('2025-01-24', 1)).toBe('2025-01-26')
    expect(calendar.addWorkingDays('2025-01-24', 2)).toBe('2025-01-27')
    expect(calendar.addWorkingDays('2025-01-24', 3)).toBe('2025-02-05')
    expect(calendar.addWorkingDays('2025-01-24', 6)).toBe('2025-02-08')
    expect(calendar.addWorkingDays('2025-01-24', 7)).toBe('2025-02-10')
    expect(calendar.workingDaysBetween('2025-01-27', '2025-02-05')).toBe(1)
  })

  it('counts from a start date that is itself a holiday', () => {
    expect(calendar.addWorkingDays('2026-10-01', 1)).toBe('2026-10-08')
    // Saturday 3 October is a holiday; the next three working days include Saturday 10 October.
    expect(calendar.addWorkingDays('2026-10-03', 3)).toBe('2026-10-10')
  })

  it('returns the start for n = 0, working day or not', () => {
    expect(calendar.addWorkingDays('2026-10-01', 0)).toBe('2026-10-01')
    expect(calendar.addWorkingDays('2026-09-24', 0)).toBe('2026-09-24')
  })

  it('crosses from one listed year into the next', () => {
    // 1–3 January 2026 are off, Sunday 4 January is worked.
    expect(calendar.addWorkingDays('2025-12-31', 1)).toBe('2026-01-04')
    expect(calendar.addWorkingDays('2025-12-31', 2)).toBe('2026-01-05')
  })

  it('counts the year’s working days: 261 weekdays, 19 of them holidays, and 6 worked weekend days in 2026', () => {
    expect(calendar.workingDaysBetween('2025-12-31', '2026-12-31')).toBe(248)
  })

  it('counts (a, b], negative when b is before a', () => {
    expect(calendar.workingDaysBetween('2026-09-30', '2026-10-08')).toBe(1)
    expect(calendar.workingDaysBetween('2026-10-08', '2026-09-30')).toBe(-1)
    expect(calendar.workingDaysBetween('2026-09-24', '2026-09-24')).toBe(0)
    expect(calendar.workingDaysBetween('2026-09-23', '2026-09-24')).toBe(1)
    expect(calendar.workingDaysBetween('2026-09-24', '2026-09-25')).toBe(0)
  })

  it('throws CalendarYearUnknown for a year the file does not list, even when the question is only about weekdays', () => {
    expect(unknownYearOf(() => calendar.isWorkingDay('2021-06-01'))).toBe(2021)
    expect(unknownYearOf(() => calendar.isWorkingDay('2027-01-05'))).toBe(2027)
    expect(unknownYearOf(() => calendar.addWorkingDays('2021-12-31', 0))).toBe(2021)
    expect(unknownYearOf(() => calendar.workingDaysBetween('2026-12-30', '2027-01-05'))).toBe(2027)
    expect(calendar.covers('2026-12-31')).toBe(true)
    expect(calendar.covers('2027-01-01')).toBe(false)
    expect(() => calendar.isWorkingDay('2027-01-05')).toThrow(/2027 are not known/)
  })

  it('throws for a deadline late in the last listed year that would end in the next one', () => {
    expect(calendar.addWorkingDays('2026-12-15', 12)).toBe('2026-12-31')
    expect(unknownYearOf(() => calendar.addWorkingDays('2026-12-15', 13))).toBe(2027)
    expect(unknownYearOf(() => calendar.addWorkingDays('2026-11-20', 30))).toBe(2027)
  })

  it('agrees with the definition on every day it covers', () => {
    const off = new Set(Object.values(data.years).flatMap((year) => year.off))
    const work = new Set(Object.values(data.years).flatMap((year) => year.work))
    for (let day = toDayNumber('2022-01-01'); day <= toDayNumber('2026-12-31'); day++) {
      const date = fromDayNumber(day)
      const weekday = new Date(`${date}T00:00:00Z`).getUTCDay()
      const weekend = weekday === 0 || weekday === 6
      expect(calendar.isWorkingDay(date), date).toBe(weekend ? work.has(date) : !off.has(date))
    }
  })
})

describe('WorkingDayCalendar from data', () => {
  const empty = { off: [], work: [] }

  it('indexes each listed date by itself, not by the year it is listed under', () => {
    // Friday 30 December 2022, listed under 2023 the way the 2023 notice lists 2022-12-31.
    const reachingBack = new WorkingDayCalendar({ years: { '2022': empty, '2023': { off: ['2022-12-30'], work: [] } } })
    expect(reachingBack.isWorkingDay('2022-12-30')).toBe(false)
    expect(reachingBack.isWorkingDay('2022-12-29')).toBe(true)
    expect(calendar.isWorkingDay('2022-12-31')).toBe(false)
    expect(calendar.isWorkingDay('2023-01-02')).toBe(false)
  })

  it('does not let a date listed under another year make its own year known', () => {
    const only2023 = new WorkingDayCalendar({ years: { '2023': { off: ['2022-12-31', '2023-01-02'], work: [] } } })
    expect(only2023.coveredYears()).toEqual([2023])
    expect(unknownYearOf(() => only2023.isWorkingDay('2022-12-31'))).toBe(2022)
    expect(only2023.isWorkingDay('2023-01-02')).toBe(false)
  })

  it('treats a year between two listed years as unknown', () => {
    const gap = new WorkingDayCalendar({ years: { '2022': empty, '2024': empty } })
    expect(gap.isWorkingDay('2022-12-30')).toBe(true)
    expect(unknownYearOf(() => gap.addWorkingDays('2022-12-30', 1))).toBe(2023)
    expect(gap.isWorkingDay('2024-01-01')).toBe(true)
  })

  it('refuses data that contradicts itself or is malformed', () => {
    expect(() => new WorkingDayCalendar({ years: {} })).toThrow(/no year/)
    expect(() => new WorkingDayCalendar({ years: { '26': empty } })).toThrow(/YYYY/)
    expect(() => new WorkingDayCalendar({ years: { '2026': { off: ['2026-02-30'], work: [] } } })).toThrow(
      /not YYYY-MM-DD/,
    )
    expect(() => new WorkingDayCalendar({ years: { '2026': { off: ['2026-10-10'], work: ['2026-10-10'] } } })).toThrow(
      /both/,
    )
    // Friday 9 October: an adjusted working day on a weekday is a mistyped date.
    expect(() => new WorkingDayCalendar({ years: { '2026': { off: [], work: ['2026-10-09'] } } })).toThrow(
      /not a weekend day/,
    )
  })

  it('refuses a negative or fractional n', () => {
    expect(() => calendar.addWorkingDays('2026-09-24', -1)).toThrow(RangeError)
    expect(() => calendar.addWorkingDays('2026-09-24', 1.5)).toThrow(RangeError)
  })
})

describe('loadWorkingDayCalendar', () => {
  const dir = mkdtempSync(join(tmpdir(), 'intake-calendar-'))

  it('names the file when it cannot be read, parsed or used', () => {
    expect(() => loadWorkingDayCalendar(join(dir, 'missing.json'))).toThrow(/missing\.json cannot be read/)
    const notJson = join(dir, 'not.json')
    writeFileSync(notJson, '{ years:')
    expect(() => loadWorkingDayCalendar(notJson)).toThrow(/not\.json cannot be read/)
    const wrongShape = join(dir, 'shape.json')
    writeFileSync(wrongShape, JSON.stringify({ years: { '2026': { off: '2026-10-01' } } }))
    expect(() => loadWorkingDayCalendar(wrongShape)).toThrow(/shape\.json is not/)
    const contradictory = join(dir, 'contradictory.json')
    writeFileSync(contradictory, JSON.stringify({ years: { '2026': { off: ['2026-10-09'], work: ['2026-10-09'] } } }))
    expect(() => loadWorkingDayCalendar(contradictory)).toThrow(/contradictory\.json is invalid/)
  })
})

describe('working-day properties', () => {
  // Starts and counts that stay inside the listed years: 80 working days take well under 150 calendar days.
  const FIRST = toDayNumber('2022-01-01')
  const LAST_START = toDayNumber('2026-07-31')
  const start = fc.integer({ min: FIRST, max: LAST_START }).map(fromDayNumber)
  const count = fc.integer({ min: 0, max: 80 })

  it('is monotone in n, and strictly so', () => {
    fc.assert(
      fc.property(start, count, count, (s, a, b) => {
        const [low, high] = a <= b ? [a, b] : [b, a]
        const sign = compareDates(calendar.addWorkingDays(s, low), calendar.addWorkingDays(s, high))
        expect(sign).toBe(low === high ? 0 : -1)
      }),
    )
  })

  it('is monotone in the start', () => {
    fc.assert(
      fc.property(start, fc.integer({ min: 0, max: 30 }), count, (s, later, n) => {
        expect(compareDates(calendar.addWorkingDays(s, n), calendar.addWorkingDays(addDays(s, later), n))).toBeLessThan(
          1,
        )
      }),
    )
  })

  it('lands on a working day when n > 0, with exactly n working days counted', () => {
    fc.assert(
      fc.property(start, count, (s, n) => {
        const end = calendar.addWorkingDays(s, n)
        expect(calendar.workingDaysBetween(s, end)).toBe(n)
        expect(calendar.workingDaysBetween(end, s)).toBe(0 - n)
        if (n > 0) {
          expect(calendar.isWorkingDay(end)).toBe(true)
          // ... and on the first such day: the day before still has only n - 1 behind it.
          expect(calendar.workingDaysBetween(s, addDays(end, -1))).toBe(n - 1)
        }
      }),
    )
  })

  it('adds in steps: n + m working days are n, then m more', () => {
    fc.assert(
      fc.property(start, fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 40 }), (s, n, m) => {
        expect(calendar.addWorkingDays(calendar.addWorkingDays(s, n), m)).toBe(calendar.addWorkingDays(s, n + m))
      }),
    )
  })
})
