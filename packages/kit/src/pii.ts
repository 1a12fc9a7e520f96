import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto'
import { hmacKey } from '@pilot/signing'

/**
 * Personal data at rest (DESIGN.md, "Personal data"). An identity number is stored twice, neither time in clear:
 * - a blind index, HMAC-SHA256 under the city's own key, so rows can be found by number without the number being
 *   readable in the database or comparable with another city's database;
 * - the number itself, encrypted with AES-256-GCM under the city's data key, for the rare reader whose role needs it.
 */

const VERSION = 1
const IV_BYTES = 12
const TAG_BYTES = 16

/** Normal form before hashing: the check character X is case-insensitive and surrounding space is noise. */
export function normaliseIdentity(idNumber: string): string {
  return idNumber.trim().toUpperCase()
}

export function blindIndex(key: Buffer, idNumber: string): Buffer {
  return createHmac('sha256', hmacKey(key)).update(normaliseIdentity(idNumber)).digest()
}

/** Random bytes are drawn this many at a time, and handed out a few at a time. */
const RANDOM_POOL_BYTES = 4096
let randomPool = Buffer.alloc(0)
let randomPoolOffset = 0

/**
 * `size` bytes from the CSPRNG, as randomBytes gives them, but drawn 4 KiB at a time: each randomBytes call is a
 * synchronous crypto job with a fixed cost several times that of copying a few bytes, and a submission needs three
 * small draws (two IVs and its reference). Node does the same for randomUUID. For nonces and identifiers, not for keys:
 * the pool stays in memory until used (a key is generated once, with randomBytes).
 */
export function pooledRandomBytes(size: number): Buffer {
  if (size > RANDOM_POOL_BYTES / 8) return randomBytes(size)
  if (randomPoolOffset + size > randomPool.length) {
    randomPool = randomBytes(RANDOM_POOL_BYTES)
    randomPoolOffset = 0
  }
  // A copy, so no caller can reach the bytes handed to the next.
  const out = Buffer.from(randomPool.subarray(randomPoolOffset, randomPoolOffset + size))
  randomPoolOffset += size
  return out
}

/** version (1 byte) | IV (12) | GCM tag (16) | ciphertext */
export function encryptPii(key: Buffer, plaintext: string): Buffer {
  const iv = pooledRandomBytes(IV_BYTES)
  const cipher = createCipheriv('aes-256-gcm', key, iv)
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
  return Buffer.concat([Buffer.from([VERSION]), iv, cipher.getAuthTag(), ciphertext])
}

export function decryptPii(key: Buffer, sealed: Buffer): string {
  if (sealed[0] !== VERSION) throw new Error(`unknown encryption version ${sealed[0]}`)
  const iv = sealed.subarray(1, 1 + IV_BYTES)
  const tag = sealed.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES)
  const decipher = createDecipheriv('aes-256-gcm', key, iv)
  decipher.setAuthTag(tag)
  return Buffer.concat([decipher.update(sealed.subarray(1 + IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8')
}
