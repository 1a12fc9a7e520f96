import { LogCapture } from '@pilot/testing'
import fc from 'fast-check'
import pino from 'pino'
import { describe, expect, it } from 'vitest'
import { addRequestLogFields, loggerOptions, requestLogger, scrubPersonalData } from '../src/index.ts'
import { buildFixtureApp } from './fixture-app.ts'

/** A GB 11643 identity number with a correct check character. */
export function idNumber(body17: string): string {
  const weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
  const sum = [...body17].reduce((total, digit, index) => total + Number(digit) * (weights[index] ?? 0), 0)
  return body17 + '10X98765432'[sum % 11]
}

const idNumbers = fc.stringMatching(/^[1-9][0-9]{16}$/).map(idNumber)
const filler = fc.string({ unit: fc.constantFrom(' ', '"', ':', ',', '=', '/', '?', '&', 'a', 'X', '中', '%') })

describe('scrubbing personal data from log lines', () => {
  it('removes any identity number wherever it stands in a line', () => {
    fc.assert(
      fc.property(filler, idNumbers, filler, (before, id, after) => {
        expect(scrubPersonalData(before + id + after)).not.toContain(id)
      }),
    )
  })

  it('removes mainland mobile numbers, with or without +86', () => {
    expect(scrubPersonalData('call 13912345678 or +86 13812345678')).toBe('call [REDACTED] or [REDACTED]')
  })

  it('keeps timestamps, UUIDs and hashes intact', () => {
    const line =
      '{"time":1764474000123,"requestId":"0b9c6a52-6f1e-4a9e-9a4b-3b7c2d1e0f99","digest":"9f86d081884c7d659a2feaa0c55ad015"}'
    expect(scrubPersonalData(line)).toBe(line)
  })
})

describe('request logging', () => {
  it('leaves no trace of an identity number, name or phone carried in a request', async () => {
    const logs = new LogCapture()
    const app = await buildFixtureApp({}, { logStream: logs })
    const id = idNumber('44030419900101123')
    let requestId = ''
    try {
      const response = await app.inject({
        method: 'POST',
        url: `/fixture/applications?idNumber=${id}`,
        headers: { 'x-applicant-id': id, authorization: 'Bearer secret-token' },
        payload: { applicant: { idNumber: id, name: '陈小梅', phone: '13912345678' }, householdSize: 3 },
      })
      expect(response.statusCode).toBe(201)
      requestId = response.headers['x-request-id'] as string
      // A refused request with the number in the body is logged too.
      await app.inject({ method: 'POST', url: '/fixture/applications', payload: { applicant: { idNumber: id } } })
    } finally {
      await app.close()
    }
    expect(logs.lines.length).toBeGreaterThanOrEqual(4)
    expect(logs.text).toContain('fixture received an application')
    // The handler's line carries the request's id (the one the response names).
    expect(logs.records().find((record) => record.msg === 'fixture received an application')).toMatchObject({
      requestId,
    })
    for (const secret of [id, id.slice(0, 17), '陈小梅', '13912345678', 'secret-token']) {
      expect(logs.text).not.toContain(secret)
    }
    expect(
      logs.records().every((record) => typeof record.requestId === 'string' || record.msg !== 'incoming request'),
    ).toBe(true)
  })
})

describe('a request’s own log fields', () => {
  it('are on every line of the request’s logger and its children, and of no other logger', () => {
    const logs = new LogCapture()
    const root = pino(loggerOptions('info', { service: 'fixture', city: 'shenzhen' }), logs)
    const first = requestLogger(root, { requestId: 'request-1' }, {})
    const second = requestLogger(root, { requestId: 'request-2' }, {})
    addRequestLogFields(first, { caller: 'shenzhen-caseworker-7' })
    first.info('one')
    first.child({ step: 'two' }).warn({ applicant: { name: '陈小梅' } }, 'two')
    second.info('three')
    root.info('four')
    addRequestLogFields(root, { worker: 'relay' })
    root.info('five')
    const byMessage = Object.fromEntries(logs.records().map((record) => [record.msg, record]))
    expect(byMessage.one).toMatchObject({ service: 'fixture', requestId: 'request-1', caller: 'shenzhen-caseworker-7' })
    expect(byMessage.two).toMatchObject({ requestId: 'request-1', caller: 'shenzhen-caseworker-7', step: 'two' })
    // The line's own fields are still redacted.
    expect(byMessage.two?.applicant).toBe('[REDACTED]')
    expect(byMessage.three).toMatchObject({ requestId: 'request-2' })
    expect(byMessage.three).not.toHaveProperty('caller')
    expect(byMessage.four).not.toHaveProperty('requestId')
    // Any other logger takes them as bindings.
    expect(byMessage.five).toMatchObject({ worker: 'relay' })
  })
})
