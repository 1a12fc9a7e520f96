import { compareDates, isValidDate, todayIn } from './civil-date.ts'

/**
 * Resident identity numbers (GB 11643-1999): a 6-digit address code, the birth date as YYYYMMDD, a 3-digit order code
 * (odd for men, even for women) and a check character.
 *
 * The address code is where the holder was first registered, normally the birthplace, and the number never changes
 * when the holder moves their hukou. It is therefore never evidence of the hukou city: that comes from the household
 * registration records.
 */

/** For JSON schemas: the shape only. Date and check character need validateIdNumber. */
export const ID_NUMBER_PATTERN = '^[0-9]{17}[0-9Xx]$'

const WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2] as const
const CHECK_CHARACTERS = '10X98765432'
const SHAPE = /^[0-9]{17}[0-9X]$/
const EARLIEST_BIRTH_DATE = '1900-01-01'
// Identity numbers are issued in the PRC, so "born in the future" is judged by the date there, not the server's.
const ISSUING_TIME_ZONE = 'Asia/Shanghai'

export type IdNumberRejection = 'format' | 'checksum' | 'birth_date'

export type IdNumberCheck =
  | { ok: true; idNumber: string; birthDate: string; sex: 'male' | 'female'; regionCode: string }
  | { ok: false; reason: IdNumberRejection }

/** The check character (0–9 or X) for the first 17 digits. Weighted sum mod 11, ISO 7064 MOD 11-2. */
export function checkCharacter(first17: string): string {
  if (!/^[0-9]{17}$/.test(first17)) throw new RangeError('checkCharacter needs exactly 17 digits')
  let sum = 0
  for (const [index, weight] of WEIGHTS.entries()) sum += Number(first17[index]) * weight
  return CHECK_CHARACTERS.charAt(sum % 11)
}

/** Trims and upper-cases the check character: people and forms write a lowercase x as often as not. */
export function normaliseIdNumber(raw: string): string {
  return raw.trim().toUpperCase()
}

/**
 * Checks shape, birth date and check character, in that order: a typo in the birth date also breaks the check
 * character, and "birth date" tells the applicant where to look. The birth date must exist, lie between 1900-01-01
 * and `today` (default: today in China), inclusive.
 */
export function validateIdNumber(raw: string, today: string = todayIn(ISSUING_TIME_ZONE)): IdNumberCheck {
  const idNumber = normaliseIdNumber(raw)
  if (!SHAPE.test(idNumber)) return { ok: false, reason: 'format' }

  const birthDate = `${idNumber.slice(6, 10)}-${idNumber.slice(10, 12)}-${idNumber.slice(12, 14)}`
  if (
    !isValidDate(birthDate) ||
    compareDates(birthDate, EARLIEST_BIRTH_DATE) < 0 ||
    compareDates(birthDate, today) > 0
  ) {
    return { ok: false, reason: 'birth_date' }
  }

  if (checkCharacter(idNumber.slice(0, 17)) !== idNumber.charAt(17)) return { ok: false, reason: 'checksum' }

  return {
    ok: true,
    idNumber,
    birthDate,
    sex: Number(idNumber.charAt(16)) % 2 === 1 ? 'male' : 'female',
    regionCode: idNumber.slice(0, 6),
  }
}

/**
 * For responses to callers whose role does not need the number: the first 4 and last 4 characters stay, so staff
 * can tell two applicants apart on a screen, e.g. 4403**********123X. Anything not 18 characters long is masked whole.
 */
export function maskIdNumber(idNumber: string): string {
  const normalised = normaliseIdNumber(idNumber)
  if (normalised.length !== 18) return '*'.repeat(normalised.length)
  return `${normalised.slice(0, 4)}${'*'.repeat(10)}${normalised.slice(14)}`
}

/** What to tell a caseworker or a registry about a rejected identity number. */
export const ID_NUMBER_REJECTIONS: Record<IdNumberRejection, string> = {
  format: 'is not 17 digits and a check character',
  checksum: 'fails its check character (GB 11643)',
  birth_date: 'has an impossible birth date',
}
