/**
 * Walks one case through each of the six directions of the running pilot (`pnpm pilot` in another terminal):
 * a caseworker submits in the residence city, the hukou city's reviewer accepts, asks for information, the caseworker
 * supplies it, the reviewer decides; each step is printed as it happens, and both cities' views at the end.
 * Running it again picks up the same six cases (same idempotency keys) and reports where they stand.
 */
import { loadPilotProfile, mintDevToken, type Role } from '@pilot/kit'
import type { CityProfile } from '@pilot/schemas'
import { demoResidents } from './demo-data.ts'
import { keysDir, pilotSettings } from './pilot-settings.ts'

const profile = loadPilotProfile(pilotSettings.config)
const city = (id: string) => profile.cities.find((candidate) => candidate.id === id) as CityProfile

// biome-ignore lint/suspicious/noExplicitAny: the demo prints whatever the services answer
type Json = any

async function call(
  cityId: string,
  role: Role,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Json> {
  const token = await mintDevToken(keysDir, cityId, { roles: [role], subject: `${cityId}-demo-${role}` })
  const response = await fetch(`${city(cityId).services.intake.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body ? JSON.stringify(body) : undefined,
  })
  const answer = (await response.json()) as Json
  if (!response.ok) throw new Error(`${method} ${path} in ${cityId}: ${response.status} ${answer.detail ?? ''}`)
  return answer
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const value = await probe()
    if (value !== undefined) return value
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  throw new Error(`timed out waiting for ${what}`)
}

// Fixed, so that running the demo again sends the same application under the same Idempotency-Key and gets the same
// case back instead of a 422.
const DEMO_CONSENT_AT = '2026-01-05T09:00:00+08:00'

const step = (direction: string, text: string) => console.log(`${direction.padEnd(22)} ${text}`)

async function walk(
  residenceCity: string,
  hukouCity: string,
): Promise<{ direction: string; residence: string; hukou: string }> {
  const direction = `${residenceCity} → ${hukouCity}`
  const resident = demoResidents().find(
    (candidate) =>
      candidate.residenceCity === residenceCity && candidate.hukouCity === hukouCity && candidate.expect === 'eligible',
  )
  if (!resident) throw new Error(`no demo resident for ${direction}`)
  const submitted = await call(
    residenceCity,
    'caseworker',
    'POST',
    '/v1/applications',
    {
      applicant: {
        idNumber: resident.idNumber,
        name: resident.name,
        phone: '13800000000',
        address: `${city(residenceCity).name.zh}示范路1号`,
        monthlyIncomeFen: 40_000,
        assetsFen: 0,
      },
      hukouCity,
      category: 'subsistence_allowance',
      household: [],
      circumstances: 'Demo case of the pilot walk-through.',
      rigidExpenditures: { medicalFen: 0, educationFen: 0, otherFen: 0 },
      consent: {
        economicCheckAuthorised: true,
        recordedBy: `${residenceCity}-demo-caseworker`,
        recordedAt: DEMO_CONSENT_AT,
      },
      documents: [],
    },
    { 'idempotency-key': `pilot-demo-${residenceCity}-${hukouCity}` },
  )
  step(
    direction,
    `submitted ${submitted.reference}: ${submitted.status} (residence since ${submitted.residence?.residenceSince})`,
  )
  const applicationId = submitted.id

  const incoming = await waitFor('the incoming case', async () => {
    const page = await call(hukouCity, 'reviewer', 'GET', '/v1/incoming-cases?limit=200')
    return page.items.find((item: Json) => item.reference === submitted.reference)
  })
  step(direction, `arrived in ${hukouCity} as an incoming case: ${incoming.status}`)
  const act = async (path: string, body: unknown = {}) => {
    const current = await call(hukouCity, 'reviewer', 'GET', `/v1/incoming-cases/${incoming.id}`)
    if (!current.allowedActions.includes(path.replace('-', '_'))) return current
    return call(hukouCity, 'reviewer', 'POST', `/v1/incoming-cases/${incoming.id}/${path}`, body)
  }
  const residenceStatus = (wanted: string[]) =>
    waitFor(`the application to reach ${wanted.join(' or ')}`, async () => {
      const view = await call(residenceCity, 'caseworker', 'GET', `/v1/applications/${applicationId}`)
      return wanted.includes(view.status) ? view : undefined
    })

  step(direction, `reviewer: ${(await act('accept')).status}`)
  step(
    direction,
    `${residenceCity} sees: ${(await residenceStatus(['accepted', 'info_requested', 'info_supplied', 'decided'])).status}`,
  )
  step(direction, `reviewer: ${(await act('request-info', { missing: ['Latest bank statement'] })).status}`)
  const asked = await residenceStatus(['info_requested', 'info_supplied', 'decided'])
  if (asked.status === 'info_requested') {
    const supplied = await call(residenceCity, 'caseworker', 'POST', `/v1/applications/${applicationId}/supply-info`, {
      requestId: asked.openInfoRequest.requestId,
      note: 'Statement attached.',
      documents: [{ name: 'statement.pdf', mediaType: 'application/pdf', sha256: 'c'.repeat(64) }],
    })
    step(direction, `caseworker supplied the information: ${supplied.status}`)
  }
  await waitFor('the information in the hukou city', async () => {
    const view = await call(hukouCity, 'reviewer', 'GET', `/v1/incoming-cases/${incoming.id}`)
    return ['info_supplied', 'decided'].includes(view.status) ? view : undefined
  })
  const review = await call(hukouCity, 'reviewer', 'GET', `/v1/incoming-cases/${incoming.id}`)
  const recommended = review.recommendation?.recommendations?.subsistenceMonthlyFen ?? 0
  step(
    direction,
    `policy recommends ${recommended / 100} yuan a month (${review.recommendation?.policy?.city} figures)`,
  )
  const decided = await act('decide', {
    outcome: 'approved',
    monthlyAmountFen: recommended,
    startMonth: '2027-01',
    reviewDate: '2027-12-01',
  })
  step(direction, `reviewer decided: ${decided.status} (${decided.decision?.outcome ?? 'already decided'})`)
  const final = await residenceStatus(['decided'])
  step(
    direction,
    `${residenceCity} sees: ${final.status}, ${final.decision.outcome}, ${final.decision.monthlyAmountFen / 100} yuan a month from ${final.decision.startMonth}`,
  )
  return { direction, residence: final.status, hukou: decided.status }
}

const directions = profile.cities.flatMap((from) =>
  profile.cities.filter((to) => to.id !== from.id).map((to) => [from.id, to.id] as const),
)
const results = await Promise.all(directions.map(([from, to]) => walk(from, to)))
console.log('\nDirection               residence city   hukou city')
for (const result of results)
  console.log(`${result.direction.padEnd(22)}  ${result.residence.padEnd(15)}  ${result.hukou}`)
const allDecided = results.every((result) => result.residence === 'decided' && result.hukou === 'decided')
console.log(allDecided ? '\nSix decided cases, each visible in both cities.' : '\nNot every case reached a decision.')
process.exitCode = allDecided ? 0 : 1
