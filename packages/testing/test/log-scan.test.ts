import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { checkCharacter } from '@pilot/schemas'
import { describe, expect, it } from 'vitest'
import { scanLogDirectory, scanLogText } from '../src/log-scan.ts'

const first17 = '44030419900101123'
const ID = first17 + checkCharacter(first17)

describe('the log scan for personal data', () => {
  it('finds an identity number, a mobile number and a Chinese name, masked', () => {
    const line = JSON.stringify({
      msg: 'request completed',
      body: { idNumber: ID, phone: '13912345678', name: '陈伟' },
    })
    const findings = scanLogText(`${JSON.stringify({ msg: 'fine' })}\n${line}\n`, 'svc.ndjson')
    expect(findings.map((finding) => [finding.line, finding.kind])).toEqual([
      [2, 'identity_number'],
      [2, 'phone_number'],
      [2, 'chinese_text'],
    ])
    expect(findings.map((finding) => finding.masked).join(' ')).not.toMatch(/1990|912345|陈伟/)
  })

  it('passes what services do log: ids, hashes, timestamps, durations, masked numbers', () => {
    const wrong = `${first17}${checkCharacter(first17) === '0' ? '1' : '0'}`
    const text = [
      { time: '2026-11-30T06:30:54.454Z', responseTime: 29.374337000001105, at: 1764484254123 },
      { requestId: 'd9583b37-c0cd-445e-ab91-9ef6576e944e', subject: 'k3J9xQ', idNumber: '4403**********123X' },
      { note: `a number with a wrong check character is not an identity number: ${wrong}` },
    ]
      .map((entry) => JSON.stringify(entry))
      .join('\n')
    expect(scanLogText(text)).toEqual([])
  })

  it('scans every .log and .ndjson file under a directory, however deep', () => {
    const dir = mkdtempSync(join(tmpdir(), 'log-scan-'))
    mkdirSync(join(dir, 'pilot/logs'), { recursive: true })
    writeFileSync(join(dir, 'a.ndjson'), '{"msg":"ok"}\n')
    writeFileSync(join(dir, 'pilot/logs/shenzhen-intake.log'), `{"msg":"leak ${ID}"}\n`)
    writeFileSync(join(dir, 'notes.txt'), ID)
    const scan = scanLogDirectory(dir)
    expect(scan).toMatchObject({ files: 2, lines: 2 })
    expect(scan.findings).toMatchObject([{ file: 'pilot/logs/shenzhen-intake.log', line: 1, kind: 'identity_number' }])
  })
})
