import { addMonths, daysInMonth, fromDayNumber, toDayNumber } from '@pilot/schemas'
import { testResources } from '@pilot/testing'
import fc from 'fast-check'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

// DESIGN.md defines the end of the residence period as PostgreSQL's `S + interval '3 months'`; residence queries may
// compute it in SQL, so the TypeScript rule must agree with PostgreSQL on every date, above all at month ends.

const pad = (n: number) => String(n).padStart(2, '0')

const anyDate = fc.integer({ min: toDayNumber('1900-01-01'), max: toDayNumber('2199-12-31') }).map(fromDayNumber)
const monthEnd = fc
  .tuple(fc.integer({ min: 1900, max: 2199 }), fc.integer({ min: 1, max: 12 }), fc.integer({ min: 28, max: 31 }))
  .map(([year, month, day]) => `${year}-${pad(month)}-${pad(Math.min(day, daysInMonth(year, month)))}`)
const leapDay = fc
  .integer({ min: 475, max: 549 })
  .map((quadrennium) => quadrennium * 4)
  .filter((year) => year % 100 !== 0 || year % 400 === 0)
  .map((year) => `${year}-02-29`)
const startDate = fc.oneof(anyDate, monthEnd, leapDay)

/** PostgreSQL's answer for each (start, months) pair, in one round trip. */
async function postgresAddMonths(client: pg.Client, starts: string[], months: number[]): Promise<string[]> {
  const { rows } = await client.query<{ ends_on: string }>(
    `select (start::date + make_interval(months => n))::date::text as ends_on
       from unnest($1::text[], $2::int[]) with ordinality as pairs(start, n, position)
      order by position`,
    [starts, months],
  )
  return rows.map((row) => row.ends_on)
}

describe('addMonths agrees with PostgreSQL', () => {
  let client: pg.Client
  beforeAll(async () => {
    client = new pg.Client({ connectionString: testResources().databaseUrl })
    await client.connect()
  })
  afterAll(() => client.end())

  it("matches date + interval '3 months' on the month ends of the design", async () => {
    const starts = ['2021-11-30', '2023-11-30', '2024-01-31', '2023-11-29', '2024-02-29', '2023-12-31']
    expect(
      await postgresAddMonths(
        client,
        starts,
        starts.map(() => 3),
      ),
    ).toEqual(starts.map((s) => addMonths(s, 3)))
  })

  it("matches (S::date + interval '3 months')::date for random dates, month ends and leap days", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(startDate, { minLength: 200, maxLength: 200 }), async (starts) => {
        const ours = starts.map((start) => addMonths(start, 3))
        expect(ours).toEqual(
          await postgresAddMonths(
            client,
            starts,
            starts.map(() => 3),
          ),
        )
      }),
      { numRuns: 5 },
    )
  })

  it('matches for every number of months a city policy may require, and for going back', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(startDate, fc.integer({ min: -24, max: 24 })), { minLength: 200, maxLength: 200 }),
        async (pairs) => {
          const ours = pairs.map(([start, months]) => addMonths(start, months))
          const theirs = await postgresAddMonths(
            client,
            pairs.map(([start]) => start),
            pairs.map(([, months]) => months),
          )
          expect(ours).toEqual(theirs)
        },
      ),
      { numRuns: 5 },
    )
  })
})
