import { writeFileSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateEs256Jwk, ServiceIdentity } from '@pilot/kit'
import { PROBLEM_TYPES } from '@pilot/schemas'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ResidenceClient } from '../src/clients/residence.ts'

// The intake service's residence client against a loopback stand-in for the residence service's batch route: what a
// caseworker's submission gets back for each way the call can go, and that concurrent verifications share a call.

interface Call {
  authorization: string
  requests: { idNumber: string }[]
}

const body = async (request: IncomingMessage) => {
  const chunks: Buffer[] = []
  for await (const chunk of request) chunks.push(chunk as Buffer)
  return JSON.parse(Buffer.concat(chunks).toString('utf8'))
}

const verificationOf = (idNumber: string) => ({
  eligible: idNumber.endsWith('1'),
  reasons: idNumber.endsWith('1') ? [] : ['no_residence_record'],
  asOf: '2026-11-30',
  residenceSince: null,
  qualifiesOn: null,
  monthsResided: 0,
  evidenceUsed: [],
  rule: 'test',
  attestation: `attestation-of-${idNumber}`,
})

describe('the residence client', () => {
  let server: Server
  let baseUrl: string
  let identity: ServiceIdentity
  const calls: Call[] = []
  /** How the stand-in answers the next call. */
  let mode: 'answer' | 'refuse-token' | 'fail' = 'answer'

  beforeAll(async () => {
    const keyFile = join(await mkdtemp(join(tmpdir(), 'residence-client-')), 'identity.json')
    writeFileSync(keyFile, JSON.stringify(generateEs256Jwk()))
    identity = new ServiceIdentity(keyFile, { issuer: 'idp', audience: 'pilot', city: 'shenzhen', service: 'intake' })
    server = createServer(async (request, response) => {
      const { requests } = await body(request)
      calls.push({ authorization: request.headers.authorization ?? '', requests })
      if (request.url !== '/v1/residence/verifications:batch' || mode === 'refuse-token' || mode === 'fail') {
        const status = mode === 'fail' ? 500 : 403
        response.writeHead(status, { 'content-type': 'application/problem+json' })
        response.end(JSON.stringify({ type: PROBLEM_TYPES.forbidden, title: 'Forbidden', status }))
        return
      }
      // Slow enough that the verifications asked for meanwhile wait for the next call.
      await new Promise((resolve) => setTimeout(resolve, 30))
      const results = requests.map(({ idNumber }: { idNumber: string }) =>
        idNumber.startsWith('bad')
          ? {
              problem: {
                type: PROBLEM_TYPES.validation,
                title: 'Request validation failed',
                status: 400,
                detail: 'body/requests/0/idNumber: checksum',
                errors: [{ in: 'body', pointer: '/requests/0/idNumber', detail: 'checksum' }],
              },
            }
          : { verification: verificationOf(idNumber) },
      )
      response.writeHead(200, { 'content-type': 'application/json' })
      response.end(JSON.stringify({ results }))
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const address = server.address() as { port: number }
    baseUrl = `http://127.0.0.1:${address.port}`
  })
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))

  const client = (concurrency = 1) => new ResidenceClient(baseUrl, identity, { timeoutMs: 2000, concurrency })

  it('asks as the service, sharing one call among the verifications asked for meanwhile, each with its own answer', async () => {
    mode = 'answer'
    calls.length = 0
    const residence = client()
    const ids = ['1001', '1002', 'bad-3', '1004']
    const answers = await Promise.all(
      ids.map((idNumber, i) =>
        residence.verify({ idNumber, hukouCity: 'zhongshan' }, `request-${i}`).then(
          (result) => result.attestation,
          (error: { status: number; type: string }) => `${error.status} ${error.type}`,
        ),
      ),
    )
    expect(answers).toEqual([
      'attestation-of-1001',
      'attestation-of-1002',
      `400 ${PROBLEM_TYPES.validation}`,
      'attestation-of-1004',
    ])
    // The first alone, the three asked for while it ran together.
    expect(calls.map((call) => call.requests.map((request) => request.idNumber))).toEqual([
      ['1001'],
      ['1002', 'bad-3', '1004'],
    ])
    const payload = calls[0]?.authorization.slice('Bearer '.length).split('.')[1] ?? ''
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'))
    expect(claims).toMatchObject({ sub: 'svc:intake', roles: ['system'], city: 'shenzhen' })
  })

  it('tells the caseworker the service is unavailable, not that they are unauthorised, when its token is refused', async () => {
    mode = 'refuse-token'
    await expect(client().verify({ idNumber: '1001', hukouCity: 'zhongshan' }, 'request-x')).rejects.toMatchObject({
      status: 503,
      type: PROBLEM_TYPES.unavailable,
    })
    mode = 'fail'
    const residence = client()
    const failed = await Promise.all(
      ['1', '2', '3'].map((idNumber) =>
        residence.verify({ idNumber, hukouCity: 'zhongshan' }, 'request-y').catch((error) => error.status),
      ),
    )
    expect(failed).toEqual([503, 503, 503])
  })
})
