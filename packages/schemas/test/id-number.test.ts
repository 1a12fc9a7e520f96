import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  addDays,
  checkCharacter,
  fromDayNumber,
  ID_NUMBER_PATTERN,
  maskIdNumber,
  normaliseIdNumber,
  toDayNumber,
  validateIdNumber,
} from '../src/index.ts'

const TODAY = '2026-06-30'

/** 17 digits with the given birth date, completed with their check character. */
function idWithBirthDate(regionCode: string, yyyymmdd: string, order: string): string {
  const first17 = `${regionCode}${yyyymmdd}${order}`
  return `${first17}${checkCharacter(first17)}`
}

const birthDates = fc
  .integer({ min: toDayNumber('1900-01-01'), max: toDayNumber(TODAY) })
  .map((day) => fromDayNumber(day).replaceAll('-', ''))
const digits = (length: number) => fc.array(fc.integer({ min: 0, max: 9 }), { minLength: length, maxLength: length })
const first17Digits = fc
  .tuple(digits(6), birthDates, digits(3))
  .map(([region, birth, order]) => `${region.join('')}${birth}${order.join('')}`)
const validIdNumbers = first17Digits.map((first17) => `${first17}${checkCharacter(first17)}`)

describe('check character (GB 11643-1999)', () => {
  it('computes the standard example and a Shenzhen number', () => {
    expect(checkCharacter('11010519491231002')).toBe('X')
    expect(checkCharacter('44030419900101123')).toBe('3')
  })

  it('refuses anything but 17 digits', () => {
    expect(() => checkCharacter('1101051949123100')).toThrow(RangeError)
    expect(() => checkCharacter('1101051949123100X')).toThrow(RangeError)
  })
})

describe('validateIdNumber', () => {
  it('accepts a valid number and reads birth date, sex and region code from it', () => {
    expect(validateIdNumber('11010519491231002X', TODAY)).toEqual({
      ok: true,
      idNumber: '11010519491231002X',
      birthDate: '1949-12-31',
      sex: 'female',
      regionCode: '110105',
    })
    expect(validateIdNumber('440304199001011233', TODAY)).toEqual({
      ok: true,
      idNumber: '440304199001011233',
      birthDate: '1990-01-01',
      sex: 'male',
      regionCode: '440304',
    })
  })

  it('normalises a lowercase x and surrounding spaces', () => {
    expect(normaliseIdNumber(' 11010519491231002x\n')).toBe('11010519491231002X')
    expect(validateIdNumber(' 11010519491231002x ', TODAY)).toMatchObject({ ok: true, idNumber: '11010519491231002X' })
  })

  it('rejects a wrong check character', () => {
    expect(validateIdNumber('440304199001011236', TODAY)).toEqual({ ok: false, reason: 'checksum' })
    expect(validateIdNumber('110105194912310021', TODAY)).toEqual({ ok: false, reason: 'checksum' })
  })

  it.each([
    ['17 characters', '11010519491231002'],
    ['19 characters', '11010519491231002X1'],
    ['X before the last place', '1101051949123100X2'],
    ['a letter other than X', '11010519491231002Y'],
    ['inner spaces', '110105 19491231002X'],
    ['the 15-digit first-generation form', '110105491231002'],
  ])('rejects the format: %s', (_case, raw) => {
    expect(validateIdNumber(raw, TODAY)).toEqual({ ok: false, reason: 'format' })
  })

  it('rejects 29 February of a common year, accepts it in a leap year', () => {
    expect(validateIdNumber(idWithBirthDate('442000', '20230229', '001'), TODAY)).toEqual({
      ok: false,
      reason: 'birth_date',
    })
    expect(validateIdNumber(idWithBirthDate('440400', '20240229', '001'), TODAY)).toMatchObject({
      ok: true,
      birthDate: '2024-02-29',
    })
  })

  it('rejects a birth date after today, accepts one born today, rejects one before 1900', () => {
    const tomorrow = addDays(TODAY, 1).replaceAll('-', '')
    expect(validateIdNumber(idWithBirthDate('440300', tomorrow, '002'), TODAY)).toEqual({
      ok: false,
      reason: 'birth_date',
    })
    expect(validateIdNumber(idWithBirthDate('440300', TODAY.replaceAll('-', ''), '002'), TODAY)).toMatchObject({
      ok: true,
    })
    expect(validateIdNumber(idWithBirthDate('440300', '18991231', '002'), TODAY)).toEqual({
      ok: false,
      reason: 'birth_date',
    })
    expect(validateIdNumber(idWithBirthDate('440300', '19000101', '002'), TODAY)).toMatchObject({ ok: true })
  })

  it('rejects month 13 and day 00', () => {
    for (const date of ['19901301', '19900100', '19900431']) {
      expect(validateIdNumber(idWithBirthDate('440300', date, '003'), TODAY)).toEqual({
        ok: false,
        reason: 'birth_date',
      })
    }
  })

  it('takes today in China when no date is given', () => {
    expect(validateIdNumber(idWithBirthDate('440300', '29991231', '002'))).toEqual({ ok: false, reason: 'birth_date' })
    expect(validateIdNumber('440304199001011233')).toMatchObject({ ok: true })
  })

  it('accepts 17 digits with a real birth date completed by their check character', () => {
    fc.assert(
      fc.property(first17Digits, (first17) => {
        const result = validateIdNumber(`${first17}${checkCharacter(first17)}`, TODAY)
        expect(result.ok).toBe(true)
      }),
    )
  })

  // The weights are 2^(18-i) mod 11, none of them 0 mod 11, and a digit changes by at most 9: the weighted sum mod 11
  // always moves, so every single-character substitution is caught, by the check character or by the birth date.
  it('rejects every change of a single character', () => {
    fc.assert(
      fc.property(
        validIdNumbers,
        fc.integer({ min: 0, max: 17 }),
        fc.constantFrom(...'0123456789X'),
        (valid, position, replacement) => {
          fc.pre(valid.charAt(position) !== replacement)
          const changed = `${valid.slice(0, position)}${replacement}${valid.slice(position + 1)}`
          expect(validateIdNumber(changed, TODAY).ok).toBe(false)
        },
      ),
    )
  })

  it('rejects every swap of two different adjacent characters', () => {
    fc.assert(
      fc.property(validIdNumbers, fc.integer({ min: 0, max: 16 }), (valid, position) => {
        const [a, b] = [valid.charAt(position), valid.charAt(position + 1)]
        fc.pre(a !== b)
        const swapped = `${valid.slice(0, position)}${b}${a}${valid.slice(position + 2)}`
        expect(validateIdNumber(swapped, TODAY).ok).toBe(false)
      }),
    )
  })

  // Positions i and i+10 carry the same weight (2 has order 10 modulo 11), so swapping them keeps the check
  // character: the checksum is no guard against that error, and this test pins the limit down.
  it('does not detect swapping digits ten places apart', () => {
    const valid = '440304199001011233'
    const swapped = `${valid.charAt(0)}${valid.charAt(11)}${valid.slice(2, 11)}${valid.charAt(1)}${valid.slice(12)}`
    expect(swapped).toBe('410304199004011233')
    expect(validateIdNumber(swapped, TODAY)).toMatchObject({ ok: true, regionCode: '410304', birthDate: '1990-04-01' })
  })
})

describe('maskIdNumber', () => {
  it('keeps the first four and last four characters', () => {
    expect(maskIdNumber('44030419900101123x')).toBe('4403**********123X')
    expect(maskIdNumber('11010519491231002X')).toBe('1101**********002X')
  })

  it('masks anything of another length whole', () => {
    expect(maskIdNumber('110105491231002')).toBe('*'.repeat(15))
  })

  it('never shows the birth date', () => {
    fc.assert(
      fc.property(validIdNumbers, (id) => {
        expect(maskIdNumber(id).slice(4, 14)).toBe('*'.repeat(10))
      }),
    )
  })
})

describe('ID_NUMBER_PATTERN', () => {
  it('matches the shape of valid numbers, either case of x', () => {
    const pattern = new RegExp(ID_NUMBER_PATTERN)
    expect(pattern.test('11010519491231002X')).toBe(true)
    expect(pattern.test('11010519491231002x')).toBe(true)
    expect(pattern.test('1101051949123100X2')).toBe(false)
    fc.assert(fc.property(validIdNumbers, (id) => pattern.test(id)))
  })
})
