import { problems } from './problems.ts'

/**
 * Keyset pagination over (timestamp, uuid), newest first. The cursor is opaque to clients: base64url of the last row's
 * position. It is decoded strictly, so a forged cursor is a 400, never an SQL surprise.
 */
export function encodeCursor(at: Date, id: string): string {
  return Buffer.from(JSON.stringify([at.toISOString(), id])).toString('base64url')
}

export function decodeCursor(cursor: string): [string, string] {
  try {
    const [at, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as [unknown, unknown]
    if (
      typeof at !== 'string' ||
      Number.isNaN(Date.parse(at)) ||
      typeof id !== 'string' ||
      !/^[0-9a-f-]{36}$/.test(id)
    ) {
      throw new Error('bad cursor')
    }
    return [at, id]
  } catch {
    throw problems.invalidField('/cursor', 'is not a cursor this service issued', 'querystring')
  }
}
