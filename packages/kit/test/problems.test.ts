import { PROBLEM_TYPES } from '@pilot/schemas'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildFixtureApp } from './fixture-app.ts'

const valid = { applicant: { idNumber: '11010519491231002X', name: '张三' }, householdSize: 2 }

describe('problem+json errors', () => {
  let app: FastifyInstance
  beforeAll(async () => {
    app = await buildFixtureApp({ BODY_LIMIT_BYTES: '2048' })
  })
  afterAll(() => app.close())

  function post(payload: string, contentType = 'application/json') {
    return app.inject({
      method: 'POST',
      url: '/fixture/applications',
      payload,
      headers: { 'content-type': contentType },
    })
  }

  it('accepts a valid body', async () => {
    const response = await post(JSON.stringify(valid))
    expect(response.statusCode).toBe(201)
  })

  it('answers malformed JSON with 400 malformed-json', async () => {
    const response = await post('{"applicant": {')
    expect(response.statusCode).toBe(400)
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/)
    expect(response.json()).toMatchObject({ type: PROBLEM_TYPES.malformedJson, status: 400 })
  })

  it('answers a wrong content type with 415', async () => {
    const response = await post('applicant=1', 'application/x-www-form-urlencoded')
    expect(response.statusCode).toBe(415)
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/)
    expect(response.json()).toMatchObject({ type: PROBLEM_TYPES.unsupportedMediaType, status: 415 })
  })

  it('answers an over-limit body with 413', async () => {
    const response = await post(JSON.stringify({ ...valid, padding: 'x'.repeat(4096) }))
    expect(response.statusCode).toBe(413)
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/)
    expect(response.json()).toMatchObject({ type: PROBLEM_TYPES.payloadTooLarge, status: 413 })
  })

  it('rejects an unknown property, naming it, instead of dropping it', async () => {
    const response = await post(JSON.stringify({ ...valid, applicant: { ...valid.applicant, nickname: 'x' } }))
    expect(response.statusCode).toBe(400)
    const problem = response.json()
    expect(problem.type).toBe(PROBLEM_TYPES.validation)
    expect(problem.errors).toContainEqual({ in: 'body', pointer: '/applicant/nickname', detail: 'unknown property' })
  })

  it('names every failing field, including missing ones', async () => {
    const response = await post(JSON.stringify({ applicant: { idNumber: 'abc' }, householdSize: '2' }))
    expect(response.statusCode).toBe(400)
    const pointers = response.json().errors.map((issue: { pointer: string }) => issue.pointer)
    expect(pointers).toEqual(expect.arrayContaining(['/applicant/idNumber', '/applicant/name', '/householdSize']))
  })

  it('answers an unknown route with 404 problem+json', async () => {
    const response = await app.inject({ method: 'GET', url: '/no/such/route' })
    expect(response.statusCode).toBe(404)
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/)
    expect(response.json()).toMatchObject({ type: PROBLEM_TYPES.notFound, status: 404 })
  })

  it('answers an unexpected error with 500 and no internal detail', async () => {
    const response = await app.inject({ method: 'GET', url: '/fixture/boom' })
    expect(response.statusCode).toBe(500)
    expect(response.json()).toMatchObject({ type: PROBLEM_TYPES.internal, status: 500 })
    expect(response.body).not.toContain('secret internal detail')
    expect(response.body).not.toContain('.ts')
    expect(response.json().requestId).toBe(response.headers['x-request-id'])
  })
})
