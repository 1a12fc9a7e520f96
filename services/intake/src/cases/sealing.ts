import { decryptPii, encryptPii } from '@pilot/kit'

/** Personal data at rest: a form is stored as one AES-256-GCM sealed JSON document under the city's data key. */
export function sealForm(key: Buffer, form: unknown): Buffer {
  return encryptPii(key, JSON.stringify(form))
}

export function openForm<T>(key: Buffer, sealed: Buffer): T {
  return JSON.parse(decryptPii(key, sealed)) as T
}
