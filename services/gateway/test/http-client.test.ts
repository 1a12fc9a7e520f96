import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { PartnerHttpClient, PartnerUnreachable } from '../src/federation/http.ts'

type Handler = (request: IncomingMessage, body: string, response: ServerResponse) => void

/** A stand-in partner gateway on loopback; counts the TCP connections it was opened. */
async function partner(handler: Handler, server: Server = createHttpServer()) {
  let connections = 0
  server.on('connection', () => connections++)
  server.on('secureConnection', () => {})
  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    let body = ''
    request.setEncoding('utf8')
    request.on('data', (chunk: string) => {
      body += chunk
    })
    request.on('end', () => handler(request, body, response))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    port,
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

const HEADERS = { 'content-type': 'application/jose', accept: 'application/jose, application/problem+json' }

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

describe('the partner HTTP client (node:http with keep-alive)', () => {
  const client = new PartnerHttpClient({ maxSockets: 4 })
  const servers: { close: () => Promise<void> }[] = []
  afterEach(async () => {
    client.close()
    await Promise.all(servers.splice(0).map((server) => server.close()))
  })
  afterAll(() => client.close())

  it('POSTs the JWS with its headers, answers status and body, and reuses the connection', async () => {
    const seen: { method?: string; type?: string; accept?: string; length?: string; body: string }[] = []
    const gateway = await partner((request, body, response) => {
      seen.push({
        method: request.method,
        type: request.headers['content-type'],
        accept: request.headers.accept,
        length: request.headers['content-length'],
        body,
      })
      response.writeHead(202, { 'content-type': 'application/jose' })
      response.end(`receipt-for-${body}`)
    })
    servers.push(gateway)
    const url = new URL(`http://127.0.0.1:${gateway.port}/federation/v1/messages`)
    for (let i = 0; i < 5; i++) {
      expect(await client.post(url, `jws-${i}`, HEADERS, 2000)).toEqual({ status: 202, text: `receipt-for-jws-${i}` })
    }
    expect(seen[0]).toEqual({
      method: 'POST',
      type: 'application/jose',
      accept: 'application/jose, application/problem+json',
      length: '5',
      body: 'jws-0',
    })
    // One after the other: every request on the first connection.
    expect(gateway.connections()).toBe(1)
  })

  it('answers any status with its body (the caller decides what is retried)', async () => {
    const gateway = await partner((_request, _body, response) => {
      response.writeHead(503, { 'content-type': 'application/problem+json' })
      response.end('{"type":"urn:x","detail":"down"}')
    })
    servers.push(gateway)
    const url = new URL(`http://127.0.0.1:${gateway.port}/federation/v1/messages`)
    expect(await client.post(url, 'x', HEADERS, 2000)).toEqual({
      status: 503,
      text: '{"type":"urn:x","detail":"down"}',
    })
  })

  it('fails PartnerUnreachable when nothing listens, and when no answer comes within the timeout', async () => {
    const silent = await partner(() => {})
    servers.push(silent)
    const started = Date.now()
    const timedOut = client.post(new URL(`http://127.0.0.1:${silent.port}/`), 'x', HEADERS, 300)
    await expect(timedOut).rejects.toBeInstanceOf(PartnerUnreachable)
    await expect(timedOut).rejects.toThrow('no answer within 300 ms')
    expect(Date.now() - started).toBeLessThan(2000)

    const closed = await partner(() => {})
    const port = closed.port
    await closed.close()
    await expect(client.post(new URL(`http://127.0.0.1:${port}/`), 'x', HEADERS, 2000)).rejects.toBeInstanceOf(
      PartnerUnreachable,
    )
  })

  it('times out a partner that sends its status line and then stalls, as fetch did', async () => {
    const stalling = await partner((_request, _body, response) => {
      response.writeHead(202, { 'content-type': 'application/jose' })
      response.write('half a receipt')
    })
    servers.push(stalling)
    // The status stands, the body is lost: the caller's receipt check fails and the delivery is retried.
    expect(await client.post(new URL(`http://127.0.0.1:${stalling.port}/`), 'x', HEADERS, 300)).toEqual({
      status: 202,
      text: '',
    })
  })

  it.skipIf(!hasOpenssl())('POSTs over HTTPS to an https partner URL', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gateway-tls-'))
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    )
    const cert = readFileSync(join(dir, 'cert.pem'), 'utf8')
    const gateway = await partner(
      (request, body, response) => {
        response.writeHead(202, { 'content-type': 'application/jose' })
        response.end(`${(request.socket as { encrypted?: boolean }).encrypted ? 'tls' : 'plain'}:${body}`)
      },
      createHttpsServer({ key: readFileSync(join(dir, 'key.pem')), cert }),
    )
    servers.push(gateway)
    const url = new URL(`https://127.0.0.1:${gateway.port}/federation/v1/messages`)
    const trusting = new PartnerHttpClient({ maxSockets: 2, ca: cert })
    try {
      expect(await trusting.post(url, 'a', HEADERS, 2000)).toEqual({ status: 202, text: 'tls:a' })
      expect(await trusting.post(url, 'b', HEADERS, 2000)).toEqual({ status: 202, text: 'tls:b' })
      expect(gateway.connections()).toBe(1)
    } finally {
      trusting.close()
    }
    // A certificate nobody vouches for is a network failure (retried), never a delivery.
    await expect(client.post(url, 'c', HEADERS, 2000)).rejects.toBeInstanceOf(PartnerUnreachable)
  })
})
