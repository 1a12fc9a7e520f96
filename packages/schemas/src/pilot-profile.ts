import { type Static, Type } from 'typebox'
import { CITY_IDS, CityId, IsoDate, StrictObject } from './common.ts'
import { PARTNER_MESSAGE_TYPES } from './federation.ts'
import { CityBenefitsPolicies, PilotBenefitsSettings } from './policy.ts'

/**
 * The pilot profile: one file (infra/pilot.yaml) that every service of every city reads. It names the cities, where
 * their services listen in the local pilot, and the policy each city applies. A wrong profile stops a service at
 * start, naming the field.
 */

export const SERVICE_NAMES = ['residence', 'intake', 'gateway'] as const
export type ServiceName = (typeof SERVICE_NAMES)[number]

export const EVIDENCE_KINDS = [
  'residence_registration',
  'residence_permit',
  'social_insurance',
  'rental_registration',
] as const
export const EvidenceKind = Type.Union(EVIDENCE_KINDS.map((kind) => Type.Literal(kind)))
export type EvidenceKind = (typeof EVIDENCE_KINDS)[number]

const Port = Type.Integer({ minimum: 1, maximum: 65535 })
const HttpUrl = Type.String({ pattern: '^https?://[^\\s]+$' })

const ServiceEndpoint = StrictObject({
  port: Port,
  url: Type.String({ pattern: '^https?://[^\\s]+$', description: 'Base URL other services use to reach it' }),
})

const ResidencePolicy = StrictObject({
  countedEvidenceKinds: Type.Array(EvidenceKind, {
    minItems: 1,
    uniqueItems: true,
    description: 'Which kinds of residence evidence count towards the 3-month rule in this city',
  }),
  gapToleranceDays: Type.Integer({
    minimum: 0,
    maximum: 31,
    description: 'Intervals separated by at most this many uncovered days merge into one',
  }),
  requiredMonths: Type.Integer({ minimum: 1, maximum: 24, description: 'Continuous months of residence required' }),
  attestationValidityDays: Type.Integer({ minimum: 1, maximum: 90 }),
})

const ReviewDeadlines = StrictObject({
  sameCityWorkingDays: Type.Integer({ minimum: 1, maximum: 90 }),
  crossCityWorkingDays: Type.Integer({ minimum: 1, maximum: 90 }),
})

export const CityProfile = StrictObject({
  id: CityId,
  name: StrictObject({ zh: Type.String({ minLength: 1 }), en: Type.String({ minLength: 1 }) }),
  regionCode: Type.String({ pattern: '^[0-9]{6}$', description: 'GB/T 2260 administrative division code' }),
  services: StrictObject({ residence: ServiceEndpoint, intake: ServiceEndpoint, gateway: ServiceEndpoint }),
  federation: StrictObject({
    gatewayUrl: HttpUrl,
    jwksUrl: HttpUrl,
    acceptsFrom: Type.Record(
      Type.String({ pattern: '^[a-z]+$' }),
      Type.Array(Type.Enum([...PARTNER_MESSAGE_TYPES]), { uniqueItems: true }),
      {
        description:
          'Which message types this city accepts from each partner city; a partner or type not listed is refused',
      },
    ),
    // Operators' answer to a partner's compromised key: our gateway caches a partner's JWKS (and keeps a stale copy
    // while the partner's JWKS is unreachable), so a key the partner has withdrawn can otherwise still verify for a
    // while. A kid listed here is refused (401 revoked-key) whatever the JWKS says. Read at start: restart to apply.
    revokedKids: Type.Optional(
      Type.Record(
        Type.String({ pattern: `^(${CITY_IDS.join('|')})$` }),
        Type.Array(Type.String({ pattern: '^[A-Za-z0-9_-]{43}$', description: 'RFC 7638 thumbprint (SHA-256)' }), {
          uniqueItems: true,
        }),
        {
          additionalProperties: false,
          description:
            "Key ids of each partner city's signing keys that this city refuses, whatever the partner's JWKS says " +
            '(a compromised key); a partner id that is not a pilot city is an error',
        },
      ),
    ),
  }),
  policy: StrictObject({
    residence: ResidencePolicy,
    reviewDeadlines: ReviewDeadlines,
    benefits: CityBenefitsPolicies,
  }),
})
export type CityProfile = Static<typeof CityProfile>

export const PilotProfile = StrictObject({
  version: Type.Literal(1),
  name: Type.String({ minLength: 1 }),
  timeZone: Type.String({ minLength: 1, description: 'IANA time zone in which dates such as "today" are taken' }),
  startsOn: IsoDate,
  benefits: Type.Optional(PilotBenefitsSettings),
  cities: Type.Array(CityProfile, { minItems: 2 }),
})
export type PilotProfile = Static<typeof PilotProfile>
