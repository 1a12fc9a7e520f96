/**
 * The pilot's demo residents: generated, not real people. For each of the six directions (residence city → hukou
 * city) a few residents who meet the 3-month rule and are registered in their hukou city, and one who fails for each
 * reason: residence too short, residence ended, no residence record, and registered nowhere in the pilot.
 */
import { addDays, addMonths, CITY_IDS, type CityId, checkCharacter, todayIn } from '@pilot/schemas'

export interface DemoResident {
  idNumber: string
  name: string
  residenceCity: CityId
  hukouCity: CityId
  expect: 'eligible' | 'residence_too_short' | 'not_resident_on_date' | 'no_residence_record' | 'not_registered_here'
}

const REGION: Record<CityId, string> = { shenzhen: '440304', zhuhai: '440402', zhongshan: '442000' }
const SURNAMES = ['陈', '林', '黄', '张', '李', '王', '吴', '刘', '蔡', '杨']
const GIVEN = ['晓明', '丽华', '建国', '美玲', '志强', '秀英', '文杰', '海燕', '国华', '雅婷']
const OUTCOMES: DemoResident['expect'][] = [
  'eligible',
  'eligible',
  'eligible',
  'residence_too_short',
  'not_resident_on_date',
  'no_residence_record',
  'not_registered_here',
]

export function demoResidents(): DemoResident[] {
  const residents: DemoResident[] = []
  let serial = 0
  for (const residenceCity of CITY_IDS) {
    for (const hukouCity of CITY_IDS) {
      if (residenceCity === hukouCity) continue
      for (const expect of OUTCOMES) {
        serial++
        const birth = `19${String(60 + (serial % 40)).padStart(2, '0')}${String((serial % 12) + 1).padStart(2, '0')}${String((serial % 27) + 1).padStart(2, '0')}`
        const first17 = `${REGION[hukouCity]}${birth}${String(serial).padStart(3, '0')}`
        residents.push({
          idNumber: first17 + checkCharacter(first17),
          name: `${SURNAMES[serial % SURNAMES.length]}${GIVEN[(serial * 3) % GIVEN.length]}`,
          residenceCity,
          hukouCity,
          expect,
        })
      }
    }
  }
  return residents
}

/** Residence evidence lines (NDJSON) for `city`'s residence service. */
export function demoEvidence(city: CityId, timeZone = 'Asia/Shanghai'): string {
  const today = todayIn(timeZone)
  const lines: object[] = []
  for (const [index, resident] of demoResidents().entries()) {
    if (resident.residenceCity !== city || resident.expect === 'no_residence_record') continue
    const base = { idNumber: resident.idNumber, sourceRef: `DEMO-${city}-${index}` }
    if (resident.expect === 'residence_too_short') {
      lines.push({ ...base, kind: 'residence_registration', validFrom: addMonths(today, -1), validTo: null })
    } else if (resident.expect === 'not_resident_on_date') {
      lines.push({
        ...base,
        kind: 'residence_registration',
        validFrom: '2023-01-01',
        validTo: addDays(addMonths(today, -2), 0),
      })
    } else {
      lines.push({ ...base, kind: 'residence_registration', validFrom: '2024-03-01', validTo: null })
    }
  }
  return `${lines.map((line) => JSON.stringify(line)).join('\n')}\n`
}

/** Household registration lines (NDJSON) for `city`: everyone whose hukou is here, but the deliberately unregistered. */
export function demoRegistrations(city: CityId): string {
  const lines = demoResidents()
    .map((resident, index) => ({ resident, index }))
    .filter(({ resident }) => resident.hukouCity === city && resident.expect !== 'not_registered_here')
    .map(({ resident, index }) =>
      JSON.stringify({
        idNumber: resident.idNumber,
        registeredSince: '1990-01-01',
        householdRef: `HH-${city}-${index}`,
        sourceRef: `DEMO-HK-${city}-${index}`,
      }),
    )
  return `${lines.join('\n')}\n`
}
