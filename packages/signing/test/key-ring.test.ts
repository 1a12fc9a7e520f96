import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import {
  generateSigningKey,
  JwksVerifier,
  loadKeyRing,
  type PrivateJwk,
  publicJwk,
  publishedJwks,
  Signer,
  saveKeyFile,
} from '../src/index.ts'

const directory = mkdtempSync(join(tmpdir(), 'pilot-signing-'))
afterAll(() => rmSync(directory, { recursive: true, force: true }))

let counter = 0
function file(name: string): string {
  counter += 1
  return join(directory, `${counter}`, name)
}

function writeJson(path: string, value: unknown): string {
  saveKeyFile(path, value as PrivateJwk)
  return path
}

const current = await generateSigningKey('ES256')
const next = await generateSigningKey('EdDSA')
const retired = [await generateSigningKey('ES256'), await generateSigningKey('EdDSA')]

describe('key files', () => {
  it('saves a key readable by its owner only, creating directories, even over a more open file', () => {
    const path = file('keys/current.jwk')
    saveKeyFile(path, current)
    expect(statSync(path).mode & 0o777).toBe(0o600)
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual(current)

    chmodSync(path, 0o644)
    saveKeyFile(path, next)
    expect(statSync(path).mode & 0o777).toBe(0o600)
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual(next)
  })

  it('loads current, next and retired keys', () => {
    const ring = loadKeyRing({
      currentFile: writeJson(file('current.jwk'), current),
      nextFile: writeJson(file('next.jwk'), next),
      retiredFile: writeJson(file('retired.jwks'), { keys: retired.map(publicJwk) }),
    })
    expect(ring).toEqual({ current, next, retired: retired.map(publicJwk) })
  })

  it('loads a current key alone', () => {
    expect(loadKeyRing({ currentFile: writeJson(file('current.jwk'), current) })).toEqual({ current, retired: [] })
  })

  it('rejects a current key whose kid is not its thumbprint, naming the file', () => {
    const path = writeJson(file('current.jwk'), { ...current, kid: 'shenzhen-2026-01' })
    expect(() => loadKeyRing({ currentFile: path })).toThrow(path)
    expect(() => loadKeyRing({ currentFile: path })).toThrow(/thumbprint/)
  })

  it('rejects a current or next file without a private part', () => {
    const path = writeJson(file('current.jwk'), publicJwk(current))
    expect(() => loadKeyRing({ currentFile: path })).toThrow(/not a private key/)
    const nextPath = writeJson(file('next.jwk'), publicJwk(next))
    expect(() => loadKeyRing({ currentFile: writeJson(file('c.jwk'), current), nextFile: nextPath })).toThrow(nextPath)
  })

  it('rejects a private part that belongs to another key', () => {
    const other = retired[0] as PrivateJwk
    const path = writeJson(file('current.jwk'), { ...current, d: other.d })
    expect(() => loadKeyRing({ currentFile: path })).toThrow(/does not belong/)
    const otherEd = retired[1] as PrivateJwk
    const nextPath = writeJson(file('next.jwk'), { ...next, d: otherEd.d })
    expect(() => loadKeyRing({ currentFile: writeJson(file('c.jwk'), current), nextFile: nextPath })).toThrow(
      /does not belong/,
    )
  })

  it('rejects algorithms other than ES256 and EdDSA, and keys that do not fit their alg', () => {
    for (const bad of [{ alg: 'HS256' }, { alg: 'RS256' }, { alg: undefined }, { alg: 'EdDSA' }, { use: 'enc' }]) {
      const path = writeJson(file('current.jwk'), { ...current, ...bad })
      expect(() => loadKeyRing({ currentFile: path }), JSON.stringify(bad)).toThrow(path)
    }
  })

  it('rejects a retired file that holds a private key', () => {
    const path = writeJson(file('retired.jwks'), { keys: [publicJwk(retired[0] as PrivateJwk), retired[1]] })
    const load = () => loadKeyRing({ currentFile: writeJson(file('current.jwk'), current), retiredFile: path })
    expect(load).toThrow(path)
    expect(load).toThrow(/private key material \(d\)/)
  })

  it('rejects a retired file that is not a JWKS', () => {
    const path = writeJson(file('retired.jwks'), [publicJwk(current)])
    expect(() => loadKeyRing({ currentFile: writeJson(file('c.jwk'), current), retiredFile: path })).toThrow(
      /not a JWKS/,
    )
  })

  it('reports a file that is not JSON without quoting it', () => {
    const path = file('current.jwk')
    saveKeyFile(path, current)
    writeFileSync(path, `${JSON.stringify(current)},`)
    expect(() => loadKeyRing({ currentFile: path })).toThrow(`${path}: not valid JSON`)
    expect(() => loadKeyRing({ currentFile: file('missing.jwk') })).toThrow(/cannot read key file/)
  })
})

describe('publishedJwks', () => {
  const ring = { current, next, retired: [...retired.map(publicJwk), publicJwk(current)] }

  it('publishes current, next and retired public keys once each, never a private member', () => {
    const jwks = publishedJwks(ring)
    expect(jwks.keys.map((key) => key.kid)).toEqual([current.kid, next.kid, ...retired.map((key) => key.kid)])
    const text = JSON.stringify(jwks)
    for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) expect(text).not.toContain(`"${member}":`)
  })

  it('lets partners verify what the current and next keys sign', async () => {
    const verifier = new JwksVerifier(publishedJwks(ring))
    for (const key of [current, next]) {
      const jws = await new Signer(key).sign({ iss: 'zhuhai' }, { typ: 'pilot-msg+jwt' })
      await expect(verifier.verify(jws, { typ: 'pilot-msg+jwt' })).resolves.toMatchObject({ claims: { iss: 'zhuhai' } })
    }
  })
})
