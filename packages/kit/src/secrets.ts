import { readFileSync } from 'node:fs'
import { ConfigError } from './config-error.ts'

/** Reads a base64 secret key of exactly `bytes` bytes from a file, naming the variable when it is wrong. */
export function readKeyFile(variable: string, path: string, bytes = 32): Buffer {
  let text: string
  try {
    text = readFileSync(path, 'utf8').trim()
  } catch (error) {
    throw new ConfigError(`Invalid configuration:\n  ${variable}=${path} cannot be read (${(error as Error).message})`)
  }
  const key = Buffer.from(text, 'base64')
  if (key.length !== bytes) {
    throw new ConfigError(`Invalid configuration:\n  ${variable}=${path} must hold ${bytes} bytes in base64`)
  }
  return key
}
