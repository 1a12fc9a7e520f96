/**
 * Calendar dates as 'YYYY-MM-DD' strings, with integer arithmetic only. A JavaScript Date is an instant, not a day:
 * `new Date('2022-02-28')` is UTC midnight, which is still the 27th in any time zone west of Greenwich, and two-digit
 * years are read as 19xx. Residence periods and deadlines are days, so they never pass through a Date here.
 *
 * Dates run from 0001-01-01 to 9999-12-31 in the proleptic Gregorian calendar, as in PostgreSQL's DATE for these years.
 */

const DATE_SHAPE = /^(\d{4})-(\d{2})-(\d{2})$/

const MIN_DAY_NUMBER = dayNumberOf(1, 1, 1)
const MAX_DAY_NUMBER = dayNumberOf(9999, 12, 31)

function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0
}

export function daysInMonth(year: number, month: number): number {
  if (month === 2) return isLeapYear(year) ? 29 : 28
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31
}

interface CivilDate {
  year: number
  month: number
  day: number
}

function parse(s: string): CivilDate | null {
  const match = DATE_SHAPE.exec(s)
  if (!match) return null
  const year = Number(match[1])
  const month = Number(match[2])
  const day = Number(match[3])
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return null
  return { year, month, day }
}

function parseOrThrow(s: string): CivilDate {
  const date = parse(s)
  if (!date) throw new RangeError(`not a calendar date (YYYY-MM-DD): ${JSON.stringify(s)}`)
  return date
}

function format({ year, month, day }: CivilDate): string {
  return `${String(year).padStart(4, '0')}-${String(month).padStart(2, '0')}-${String(day).padStart(2, '0')}`
}

// Howard Hinnant's days_from_civil: counts in 400-year eras of 146097 days, with years starting in March so that the
// leap day falls last.
function dayNumberOf(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year
  const era = Math.floor(y / 400)
  const yearOfEra = y - era * 400
  const monthFromMarch = (month + 9) % 12
  const dayOfYear = Math.floor((153 * monthFromMarch + 2) / 5) + day - 1
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear
  return era * 146097 + dayOfEra - 719468
}

/** True when `s` is 'YYYY-MM-DD' naming a day that exists (2024-02-29 yes, 2023-02-29 no), years 0001–9999. */
export function isValidDate(s: string): boolean {
  return parse(s) !== null
}

/** Days since 1970-01-01 (negative before it). Throws RangeError for anything that is not a valid date. */
export function toDayNumber(s: string): number {
  const { year, month, day } = parseOrThrow(s)
  return dayNumberOf(year, month, day)
}

/** The date `n` days after 1970-01-01. Throws RangeError outside 0001-01-01..9999-12-31. */
export function fromDayNumber(n: number): string {
  if (!Number.isInteger(n) || n < MIN_DAY_NUMBER || n > MAX_DAY_NUMBER) {
    throw new RangeError(`day number out of range: ${n}`)
  }
  const z = n + 719468
  const era = Math.floor(z / 146097)
  const dayOfEra = z - era * 146097
  const yearOfEra = Math.floor(
    (dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36524) - Math.floor(dayOfEra / 146096)) / 365,
  )
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100))
  const monthFromMarch = Math.floor((5 * dayOfYear + 2) / 153)
  const day = dayOfYear - Math.floor((153 * monthFromMarch + 2) / 5) + 1
  const month = monthFromMarch < 10 ? monthFromMarch + 3 : monthFromMarch - 9
  const year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
  return format({ year, month, day })
}

export function addDays(s: string, days: number): string {
  return fromDayNumber(toDayNumber(s) + days)
}

/** Negative, zero or positive as `a` is before, on or after `b`; usable as a sort comparator. */
export function compareDates(a: string, b: string): -1 | 0 | 1 {
  return Math.sign(toDayNumber(a) - toDayNumber(b)) as -1 | 0 | 1
}

/** `b` minus `a` in days: daysBetween('2024-02-28', '2024-03-01') = 2. */
export function daysBetween(a: string, b: string): number {
  return toDayNumber(b) - toDayNumber(a)
}

/**
 * The end of a period of `months` months starting on `s`, by the PRC Civil Code rule: the corresponding day of the
 * month `months` later, or that month's last day when it has no corresponding day (2021-11-30 + 3 = 2022-02-28,
 * 2024-01-31 + 1 = 2024-02-29). Same as PostgreSQL `(date s + interval 'n months')::date`, negative `months` included.
 *
 * Not associative: addMonths(addMonths('2024-01-31', 1), 1) is 2024-03-29 but addMonths('2024-01-31', 2) is
 * 2024-03-31, so a period is always counted from its start, never chained month by month.
 */
export function addMonths(s: string, months: number): string {
  if (!Number.isInteger(months)) throw new RangeError(`months must be an integer: ${months}`)
  const { year, month, day } = parseOrThrow(s)
  const monthIndex = year * 12 + (month - 1) + months
  const targetYear = Math.floor(monthIndex / 12)
  const targetMonth = monthIndex - targetYear * 12 + 1
  if (targetYear < 1 || targetYear > 9999) throw new RangeError(`${s} + ${months} months is out of range`)
  return format({ year: targetYear, month: targetMonth, day: Math.min(day, daysInMonth(targetYear, targetMonth)) })
}

/**
 * Whole months from `start` to `end` under the same rule: the largest m ≥ 0 with addMonths(start, m) ≤ end, 0 when
 * `end` is before `start`. 2022-01-31 to 2022-02-28 is one whole month.
 */
export function wholeMonthsBetween(start: string, end: string): number {
  const from = parseOrThrow(start)
  const to = parseOrThrow(end)
  if (compareDates(end, start) < 0) return 0
  // addMonths(start, estimate) falls in end's month, so it either reaches end or is one month too many.
  const estimate = (to.year - from.year) * 12 + (to.month - from.month)
  return compareDates(addMonths(start, estimate), end) <= 0 ? estimate : estimate - 1
}

// Building an Intl.DateTimeFormat costs far more than using one (it showed as a fifth of a verification's CPU time), so
// one formatter per time zone is kept.
const formatters = new Map<string, Intl.DateTimeFormat>()

// "Today" asked for on every request changes once a day; the answer is kept for up to a second per time zone.
const recentToday = new Map<string, { at: number; today: string }>()

/** Today's date in an IANA time zone, e.g. todayIn('Asia/Shanghai'): the pilot's "today" is not the server's. */
export function todayIn(timeZone: string, now?: Date): string {
  if (now) return dateIn(timeZone, now)
  const at = Date.now()
  const recent = recentToday.get(timeZone)
  if (recent && at - recent.at < 1000 && at >= recent.at) return recent.today
  const today = dateIn(timeZone, new Date(at))
  recentToday.set(timeZone, { at, today })
  return today
}

function dateIn(timeZone: string, now: Date): string {
  let formatter = formatters.get(timeZone)
  if (!formatter) {
    formatter = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' })
    formatters.set(timeZone, formatter)
  }
  // Assembled from parts: the locale's exact pattern is ICU data that can change between Node releases.
  const parts = formatter.formatToParts(now)
  const part = (type: Intl.DateTimeFormatPartTypes) => parts.find((p) => p.type === type)?.value ?? ''
  const today = `${part('year').padStart(4, '0')}-${part('month')}-${part('day')}`
  if (!isValidDate(today)) throw new RangeError(`cannot take today's date in ${timeZone} at ${now.toISOString()}`)
  return today
}
