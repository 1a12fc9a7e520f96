import { join } from 'node:path'
import { addDays, fromDayNumber, toDayNumber } from '@pilot/schemas'
import { repoRoot } from '@pilot/testing'
import { describe, expect, it } from 'vitest'
import type { CaseContext } from '../src/cases/context.ts'
import { reviewDeadline } from '../src/cases/workflows.ts'
import { CalendarYearUnknown, loadWorkingDayCalendar, type WorkingDayCalendar } from '../src/domain/working-days.ts'

const calendar = loadWorkingDayCalendar(join(repoRoot, 'infra/data/cn-workdays.json'))

function contextWith(days: { sameCity: number; crossCity: number }, ofCalendar = calendar): CaseContext {
  return { calendar: ofCalendar, reviewWorkingDays: days, timeZone: 'Asia/Shanghai' } as CaseContext
}

/** The count as it was written before it was kept per day: isWorkingDay, and a weekday for every unknown day. */
function countedByExceptions(ofCalendar: WorkingDayCalendar, today: string, days: number) {
  let date = today
  let provisional = false
  for (let counted = 0; counted < days; ) {
    date = addDays(date, 1)
    let working: boolean
    try {
      working = ofCalendar.isWorkingDay(date)
    } catch (error) {
      if (!(error instanceof CalendarYearUnknown)) throw error
      provisional = true
      const weekday = new Date(`${date}T00:00:00Z`).getUTCDay()
      working = weekday !== 0 && weekday !== 6
    }
    if (working) counted++
  }
  return { date, provisional }
}

describe('the review deadline', () => {
  it('is what counting day by day with isWorkingDay gives, on every day of the covered years and into the next', () => {
    for (const days of [1, 13, 30, 45]) {
      const context = contextWith({ sameCity: days, crossCity: days })
      for (let day = toDayNumber('2021-12-01'); day <= toDayNumber('2027-01-31'); day++) {
        const today = fromDayNumber(day)
        const expected = countedByExceptions(calendar, today, days)
        expect(reviewDeadline(context, true, today)).toEqual(expected)
        // Asked again the same day: the kept answer, still the same.
        expect(reviewDeadline(context, false, today)).toEqual(expected)
      }
    }
  })

  it('is provisional when the period runs into a year the calendar does not list', () => {
    const context = contextWith({ sameCity: 30, crossCity: 45 })
    expect(reviewDeadline(context, true, '2026-06-01')).toEqual({
      date: calendar.addWorkingDays('2026-06-01', 45),
      provisional: false,
    })
    expect(reviewDeadline(context, true, '2026-12-01')).toMatchObject({ provisional: true })
    expect(reviewDeadline(context, false, '2026-12-01')).toMatchObject({ provisional: true })
  })

  it('keeps answers per calendar and period, not across them', () => {
    const other = loadWorkingDayCalendar(join(repoRoot, 'infra/data/cn-workdays.json'))
    const a = reviewDeadline(contextWith({ sameCity: 1, crossCity: 45 }), true, '2026-09-25')
    const b = reviewDeadline(contextWith({ sameCity: 1, crossCity: 45 }, other), false, '2026-09-25')
    expect(a).toEqual(countedByExceptions(calendar, '2026-09-25', 45))
    expect(b).toEqual({ date: other.addWorkingDays('2026-09-25', 1), provisional: false })
  })
})

describe('isWorkingDayIfKnown', () => {
  it('agrees with isWorkingDay where the year is known, and is undefined where isWorkingDay throws', () => {
    for (let day = toDayNumber('2021-01-01'); day <= toDayNumber('2028-12-31'); day++) {
      const date = fromDayNumber(day)
      const known = calendar.isWorkingDayIfKnown(date)
      if (calendar.covers(date)) expect(known).toBe(calendar.isWorkingDay(date))
      else {
        expect(known).toBeUndefined()
        expect(() => calendar.isWorkingDay(date)).toThrow(CalendarYearUnknown)
      }
    }
  })
})
