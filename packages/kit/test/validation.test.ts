import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildFixtureApp } from './fixture-app.ts'

// Query strings, parameters and headers arrive as strings: the kit's validator gives them their schema's defaults and
// converts them before checking, and a value that already passes (with no default to add) is taken as it is.

describe('validating what arrives as strings', () => {
  let app: Awaited<ReturnType<typeof buildFixtureApp>>
  beforeAll(async () => {
    app = await buildFixtureApp()
  })
  afterAll(() => app.close())

  const search = (query: string, key?: string) =>
    app.inject({ method: 'GET', url: `/fixture/search${query}`, headers: key ? { 'x-fixture-key': key } : {} })

  it('converts a number and fills in a default, and keeps a header that passes as it is', async () => {
    expect((await search('?limit=5&name=abc', 'token')).json()).toEqual({
      query: { limit: 5, name: 'abc' },
      key: 'token',
    })
    expect((await search('', 'token')).json()).toEqual({ query: { limit: 20 }, key: 'token' })
  })

  it('refuses what does not pass, converted or not, with a problem naming it', async () => {
    for (const [query, key] of [
      ['?limit=0', 'token'],
      ['?limit=many', 'token'],
      ['', 'TOKEN'],
      ['', undefined],
    ] as const) {
      const answer = await search(query, key)
      expect(answer.statusCode, `${query} ${key}`).toBe(400)
      expect(answer.headers['content-type']).toContain('application/problem+json')
    }
  })
})
