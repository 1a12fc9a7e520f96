import { readFileSync } from 'node:fs'
import { fromDayNumber, isValidDate, toDayNumber } from '@pilot/schemas'

/**
 * Working days in mainland China (DOMAIN.md, "Time limits"): the statutory time limits of an application count working
 * days, and those follow the State Council's annual holiday notice, not the weekday alone. A weekday can be a holiday
 * and a weekend day can be an adjusted working day (调休).
 *
 * A year is only known once its notice is published, so a year the calendar does not list is unknown, not "weekends
 * only": guessing would give a deadline that silently moves when the notice comes out. Deadlines counted from late in
 * the last listed year run into the next one and then throw CalendarYearUnknown; the caller decides what to show (for
 * instance "not yet computable") and can ask `coveredYears()` or `covers()` beforehand, or `isWorkingDayIfKnown()`.
 */

/** The shape of infra/data/cn-workdays.json. */
export interface WorkingDayCalendarData {
  years: Readonly<Record<string, { readonly off: readonly string[]; readonly work: readonly string[] }>>
}

export class CalendarYearUnknown extends Error {
  override name = 'CalendarYearUnknown'
  readonly date: string
  readonly year: number

  constructor(date: string, coveredYears: readonly number[]) {
    super(`working days of ${date.slice(0, 4)} are not known (the calendar covers ${coveredYears.join(', ')})`)
    this.date = date
    this.year = Number(date.slice(0, 4))
  }
}

const UNKNOWN = -1
const OFF = 0
const WORKING = 1

const SUNDAY = 0
const SATURDAY = 6

/** 0 for Sunday to 6 for Saturday, as Date#getUTCDay; day 0 (1970-01-01) was a Thursday. */
function dayOfWeek(dayNumber: number): number {
  return (((dayNumber + 4) % 7) + 7) % 7
}

export class WorkingDayCalendar {
  readonly #years: readonly number[]
  readonly #firstDay: number
  /** One entry per day from 1 January of the first listed year to 31 December of the last: UNKNOWN, OFF or WORKING. */
  readonly #days: Int8Array

  /**
   * Every listed date counts by itself, whichever year's list it is in: a notice can reach back into the previous
   * year (the 2023 notice lists 2022-12-31). A listed date in a year that is not listed does not make that year known
   * and is left out. Throws RangeError for a malformed year or date, a date that is both off and work, or a `work` date
   * on a weekday (adjusted working days are weekend days, so a weekday there is a mistyped date).
   */
  constructor(data: WorkingDayCalendarData) {
    const years = Object.keys(data.years).map((key) => {
      if (!/^\d{4}$/.test(key) || key === '0000') throw new RangeError(`calendar year must be YYYY: ${key}`)
      return Number(key)
    })
    years.sort((a, b) => a - b)
    const firstYear = years[0]
    const lastYear = years.at(-1)
    if (firstYear === undefined || lastYear === undefined) throw new RangeError('the calendar lists no year')
    this.#years = years
    this.#firstDay = toDayNumber(`${String(firstYear).padStart(4, '0')}-01-01`)
    const lastDay = toDayNumber(`${String(lastYear).padStart(4, '0')}-12-31`)
    this.#days = new Int8Array(lastDay - this.#firstDay + 1).fill(UNKNOWN)

    for (const year of years) {
      const first = toDayNumber(`${String(year).padStart(4, '0')}-01-01`)
      const last = toDayNumber(`${String(year).padStart(4, '0')}-12-31`)
      for (let day = first; day <= last; day++) {
        const weekday = dayOfWeek(day)
        this.#days[day - this.#firstDay] = weekday === SATURDAY || weekday === SUNDAY ? OFF : WORKING
      }
    }

    const off = new Set(Object.values(data.years).flatMap((year) => year.off.map((date) => this.#listed(date))))
    const work = new Set(Object.values(data.years).flatMap((year) => year.work.map((date) => this.#listed(date))))
    for (const day of off) {
      if (work.has(day)) throw new RangeError(`${fromDayNumber(day)} is listed both as a day off and as a working day`)
      if (this.#known(day)) this.#days[day - this.#firstDay] = OFF
    }
    for (const day of work) {
      const weekday = dayOfWeek(day)
      if (weekday !== SATURDAY && weekday !== SUNDAY) {
        throw new RangeError(`${fromDayNumber(day)} is listed as an adjusted working day but is not a weekend day`)
      }
      if (this.#known(day)) this.#days[day - this.#firstDay] = WORKING
    }
  }

  /** The listed years, ascending. A year between two listed ones that is itself not listed is unknown too. */
  coveredYears(): number[] {
    return [...this.#years]
  }

  /** True when the calendar knows whether `date` is a working day. */
  covers(date: string): boolean {
    return this.#known(toDayNumber(date))
  }

  isWorkingDay(date: string): boolean {
    return this.#flag(toDayNumber(date)) === WORKING
  }

  /**
   * Like isWorkingDay, but undefined instead of CalendarYearUnknown for a day in a year the calendar does not list: for
   * a caller that has its own answer for such days (a provisional count), where an exception per day would cost more
   * than the whole count.
   */
  isWorkingDayIfKnown(date: string): boolean | undefined {
    const flag = this.#days[toDayNumber(date) - this.#firstDay]
    return flag === undefined || flag === UNKNOWN ? undefined : flag === WORKING
  }

  /**
   * The day on which `n` working days after `start` have elapsed: `start` itself is not counted, so the result is the
   * n-th working day after it (and `start` for n = 0, even when `start` is not a working day). Throws
   * CalendarYearUnknown when `start` or any day up to the result is in a year the calendar does not list.
   */
  addWorkingDays(start: string, n: number): string {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`n must be a non-negative integer: ${n}`)
    let day = toDayNumber(start)
    this.#flag(day)
    for (let remaining = n; remaining > 0; ) {
      day += 1
      if (this.#flag(day) === WORKING) remaining -= 1
    }
    return fromDayNumber(day)
  }

  /**
   * The working days in (a, b]: a itself not counted, b counted, so that workingDaysBetween(s, addWorkingDays(s, n))
   * is n. When b is before a it is minus the working days in (b, a]. Both dates and every day between must be in
   * listed years. Whether a deadline has passed is a comparison of dates, not of this count: on the Saturday after a
   * Friday deadline no working day has elapsed, yet the deadline is behind.
   */
  workingDaysBetween(a: string, b: string): number {
    const from = toDayNumber(a)
    const to = toDayNumber(b)
    const [low, high, sign] = from <= to ? [from, to, 1] : [to, from, -1]
    let count = 0
    this.#flag(low)
    for (let day = low + 1; day <= high; day++) {
      if (this.#flag(day) === WORKING) count += 1
    }
    // Never -0 for an empty backwards span: Object.is, which vitest's toBe uses, tells it apart from 0.
    return count === 0 ? 0 : sign * count
  }

  #known(day: number): boolean {
    const flag = this.#days[day - this.#firstDay]
    return flag !== undefined && flag !== UNKNOWN
  }

  #flag(day: number): number {
    const flag = this.#days[day - this.#firstDay]
    if (flag === undefined || flag === UNKNOWN) throw new CalendarYearUnknown(fromDayNumber(day), this.#years)
    return flag
  }

  #listed(date: string): number {
    if (typeof date !== 'string' || !isValidDate(date)) {
      throw new RangeError(`calendar date is not YYYY-MM-DD: ${JSON.stringify(date)}`)
    }
    return toDayNumber(date)
  }
}

/** Reads a calendar file in the shape of infra/data/cn-workdays.json. */
export function loadWorkingDayCalendar(path: string): WorkingDayCalendar {
  let document: unknown
  try {
    document = JSON.parse(readFileSync(path, 'utf8'))
  } catch (error) {
    throw new Error(`working-day calendar ${path} cannot be read: ${(error as Error).message}`, { cause: error })
  }
  if (!isCalendarData(document)) {
    throw new Error(`working-day calendar ${path} is not { years: { YYYY: { off: [dates], work: [dates] } } }`)
  }
  try {
    return new WorkingDayCalendar(document)
  } catch (error) {
    throw new Error(`working-day calendar ${path} is invalid: ${(error as Error).message}`, { cause: error })
  }
}

function isCalendarData(value: unknown): value is WorkingDayCalendarData {
  if (!isRecord(value) || !isRecord(value.years)) return false
  return Object.values(value.years).every(
    (year) => isRecord(year) && isStringArray(year.off) && isStringArray(year.work),
  )
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string')
}
