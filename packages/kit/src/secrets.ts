import { readFileSync } from 'node:fs'
import { type KeyRing, type KeyRingFiles, loadKeyRing } from '@pilot/signing'
import { ConfigError } from './config-error.ts'

/** A secret file's text without surrounding whitespace; a configuration error naming the variable if unreadable. */
function readSecretFile(variable: string, path: string): string {
  try {
    return readFileSync(path, 'utf8').trim()
  } catch (error) {
    throw new ConfigError(`Invalid configuration:\n  ${variable}=${path} cannot be read (${(error as Error).message})`)
  }
}

/** Reads a base64 secret key of exactly `bytes` bytes from a file, naming the variable when it is wrong. */
export function readKeyFile(variable: string, path: string, bytes = 32): Buffer {
  const key = Buffer.from(readSecretFile(variable, path), 'base64')
  if (key.length !== bytes) {
    throw new ConfigError(`Invalid configuration:\n  ${variable}=${path} must hold ${bytes} bytes in base64`)
  }
  return key
}

/**
 * Reads a shared secret token (one line of printable ASCII, at least `minLength` characters) from a file, naming the
 * variable when it is wrong: a short token would be guessed, and one with spaces or control characters is a file
 * mistake (two lines, a BOM) that would otherwise only show as every scrape refused.
 */
export function readTokenFile(variable: string, path: string, minLength = 32): string {
  const text = readSecretFile(variable, path)
  if (text.length < minLength || !/^[\x21-\x7e]+$/.test(text)) {
    throw new ConfigError(
      `Invalid configuration:\n  ${variable}=${path} must hold one token of at least ${minLength} printable characters`,
    )
  }
  return text
}

/** Loads a city's signing key ring, turning a bad key file into a configuration error that names the variables. */
export function readKeyRing(variables: string, files: KeyRingFiles): KeyRing {
  try {
    return loadKeyRing(files)
  } catch (error) {
    throw new ConfigError(`Invalid configuration:\n  ${variables}: ${(error as Error).message}`)
  }
}
