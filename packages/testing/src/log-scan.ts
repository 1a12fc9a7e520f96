import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { checkCharacter } from '@pilot/schemas'

/**
 * The scan of everything the services logged during a test run for personal data. Tests use generated identity
 * numbers, mainland mobile numbers and Chinese names; the services must never write any of them to a log (DESIGN.md,
 * "Personal data"). Rather than list every value each test used, the scan looks for their shapes, which no log line
 * has a reason to contain: an identity number with a valid check character, an 11-digit mobile number, or any Chinese
 * character (log messages and field names are English; names are the only Chinese text the tests send).
 */

export interface LogFinding {
  file: string
  line: number
  kind: 'identity_number' | 'phone_number' | 'chinese_text'
  /** The match with its middle masked, so the report of a leak is not itself a leak. */
  masked: string
}

const ID_NUMBER = /(?<![0-9])([1-9][0-9]{16})([0-9Xx])(?![0-9])/g
const PHONE = /(?<![0-9.])(1[3-9][0-9]{9})(?![0-9])/g
const CHINESE = /[\u3400-\u9fff\uf900-\ufaff]+/g

function mask(value: string): string {
  return value.length <= 4
    ? '*'.repeat(value.length)
    : `${value.slice(0, 2)}${'*'.repeat(value.length - 4)}${value.slice(-2)}`
}

/** Findings in one log text (one line per entry, as pino writes). */
export function scanLogText(text: string, file = '(text)'): LogFinding[] {
  const findings: LogFinding[] = []
  const lines = text.split('\n')
  for (const [index, line] of lines.entries()) {
    for (const match of line.matchAll(ID_NUMBER)) {
      const [whole, first17, check] = match as unknown as [string, string, string]
      if (checkCharacter(first17) === check.toUpperCase()) {
        findings.push({ file, line: index + 1, kind: 'identity_number', masked: mask(whole) })
      }
    }
    for (const match of line.matchAll(PHONE)) {
      findings.push({ file, line: index + 1, kind: 'phone_number', masked: mask(match[1] as string) })
    }
    for (const match of line.matchAll(CHINESE)) {
      findings.push({ file, line: index + 1, kind: 'chinese_text', masked: mask(match[0]) })
    }
  }
  return findings
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    const stat = statSync(path)
    if (stat.isDirectory()) return filesUnder(path)
    return /\.(log|ndjson)$/.test(name) ? [path] : []
  })
}

/** Scans every log file under `dir` (recursively). */
export function scanLogDirectory(dir: string): { files: number; lines: number; findings: LogFinding[] } {
  let lines = 0
  const findings: LogFinding[] = []
  const files = filesUnder(dir)
  for (const path of files) {
    const text = readFileSync(path, 'utf8')
    lines += text.split('\n').filter((line) => line.length > 0).length
    findings.push(...scanLogText(text, relative(dir, path)))
  }
  return { files: files.length, lines, findings }
}
