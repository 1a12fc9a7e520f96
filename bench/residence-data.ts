/**
 * The residence benchmark's synthetic population, defined once here and mirrored in SQL for the bulk load: person
 * number p (0 ≤ p < 2,000,000) has a fixed identity number and fixed evidence rows, so the load generator can ask for
 * any person and the data can be rebuilt, resumed or checked row by row. The bench checks the SQL mirror against
 * these functions before and after trusting it.
 */
import { checkCharacter, type EvidenceKind, fromDayNumber, toDayNumber } from '@pilot/schemas'

export const PEOPLE = 2_000_000
/** Persons 0 … IMPORT_PEOPLE-1 come through the real importer: 400,000 people × 2.5 rows = 1,000,000 feed rows. */
export const IMPORT_PEOPLE = 400_000
/** Even persons hold 2 rows, odd ones 3: 2.5 on average, so 2,000,000 people make exactly 5,000,000 rows. */
export const rowCountOf = (p: number): number => 2 + (p % 2)
export const rowsForPeople = (people: number): number => people * 2 + Math.floor(people / 2)
export const TOTAL_ROWS = rowsForPeople(PEOPLE)
export const IMPORT_ROWS = rowsForPeople(IMPORT_PEOPLE)

/**
 * Every request decides for this date, and every evidence date is placed relative to it: with "today" the mix would
 * drift as the kept data ages between runs (the too-recent residents would all qualify three months later).
 */
export const AS_OF = '2026-06-30'

/** Birthplace codes (the first 6 digits of the number): Shenzhen districts, Zhuhai, Zhongshan, two inland cities. */
const REGIONS = ['440303', '440304', '440305', '440306', '440402', '442000', '430102', '450102'] as const
const BIRTH_EPOCH = '1950-01-01'
const BIRTH_DAYS = 18_000
const FIRST_ORDER_CODE = 100

/**
 * p → region (p mod 8), birth date (1950-01-01 + ⌊p/8⌋ mod 18000 days) and order code (100 + ⌊p/8/18000⌋). That is a
 * bijection onto valid numbers for p below 8 × 18000 × 900, far above PEOPLE.
 */
export function first17Of(p: number): string {
  const region = REGIONS[p % REGIONS.length] as string
  const q = Math.floor(p / REGIONS.length)
  const birth = fromDayNumber(toDayNumber(BIRTH_EPOCH) + (q % BIRTH_DAYS)).replaceAll('-', '')
  return `${region}${birth}${String(FIRST_ORDER_CODE + Math.floor(q / BIRTH_DAYS)).padStart(3, '0')}`
}

export function idNumberOf(p: number): string {
  const first17 = first17Of(p)
  return first17 + checkCharacter(first17)
}

export type Group = 'eligible' | 'too_recent' | 'ended' | 'rental_only'

// Knuth's multiplicative hash, so that a person's group and dates do not follow their number's region or parity.
// p × 2654435761 stays below 2^53 for p < 3.39 million, so JavaScript numbers and SQL bigints agree.
const mixOf = (p: number): number => (p * 2654435761) % 4294967296
/** 70 % eligible, 10 % resident for less than 3 months, 10 % whose residence ended years ago, 10 % rental only. */
const groupOf = (mix: number): Group => {
  const bucket = Math.floor(mix / 256) % 10
  return bucket <= 6 ? 'eligible' : bucket === 7 ? 'too_recent' : bucket === 8 ? 'ended' : 'rental_only'
}
const spreadOf = (mix: number): number => Math.floor(mix / 4096) % 2000

/** Where a person's residence starts (and for `ended`, stops), in days relative to AS_OF. */
function spanOf(group: Group, spread: number): { start: number; end: number } {
  const start = group === 'too_recent' ? -10 - (spread % 75) : group === 'ended' ? -1500 - spread : -120 - spread
  return { start, end: start + 400 + (spread % 300) }
}

interface Template {
  kind: EvidenceKind
  ref: string
  /** Days after the person's start. */
  from: number
  /** Days after the person's start, the person's end, or open. */
  to: number | 'end' | null
}

/**
 * Row i of a person of each group. Rental registration counts in Shenzhen (the city this bench runs as) but not in
 * Zhuhai, so `rental_only` people are eligible here and would not be there: the query still filters by counted kind.
 */
const TEMPLATES: Record<Group, [Template, Template, Template]> = {
  eligible: [
    { kind: 'residence_registration', ref: 'RR', from: 0, to: null },
    { kind: 'social_insurance', ref: 'SI', from: 15, to: null },
    { kind: 'residence_permit', ref: 'RP', from: 30, to: null },
  ],
  too_recent: [
    { kind: 'residence_registration', ref: 'RR', from: 0, to: null },
    { kind: 'social_insurance', ref: 'SI', from: 0, to: null },
    { kind: 'rental_registration', ref: 'RENT1', from: 0, to: 364 },
  ],
  ended: [
    { kind: 'residence_registration', ref: 'RR', from: 0, to: 'end' },
    { kind: 'social_insurance', ref: 'SI', from: 0, to: 'end' },
    { kind: 'residence_permit', ref: 'RP', from: 30, to: 'end' },
  ],
  // The current lease, then the yearly ones before it, each ending the day before the next starts.
  rental_only: [
    { kind: 'rental_registration', ref: 'RENT1', from: 0, to: null },
    { kind: 'rental_registration', ref: 'RENT2', from: -365, to: -1 },
    { kind: 'rental_registration', ref: 'RENT3', from: -730, to: -366 },
  ],
}

export interface PersonRow {
  kind: EvidenceKind
  validFrom: string
  validTo: string | null
  sourceRef: string
}

export function groupOfPerson(p: number): Group {
  return groupOf(mixOf(p))
}

export function rowsOf(p: number): PersonRow[] {
  const mix = mixOf(p)
  const group = groupOf(mix)
  const { start, end } = spanOf(group, spreadOf(mix))
  const asOf = toDayNumber(AS_OF)
  return TEMPLATES[group].slice(0, rowCountOf(p)).map((template) => ({
    kind: template.kind,
    validFrom: fromDayNumber(asOf + start + template.from),
    validTo: template.to === null ? null : fromDayNumber(asOf + (template.to === 'end' ? end : start + template.to)),
    sourceRef: `${template.ref}-${p}`,
  }))
}

// ---- The SQL mirror. Generated from the same constants, so only the arithmetic is written twice. ----

const WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
const literal = (text: string): string => `'${text.replaceAll("'", "''")}'`

/**
 * Session-local (pg_temp) functions for one connection: the identity number of person p, with the GB 11643 check
 * character as plain arithmetic (sum of digit × weight, mod 11, indexes '10X98765432'), which PostgreSQL inlines.
 */
export const SQL_FUNCTIONS = `
create or replace function pg_temp.bench_first17(p bigint) returns text language sql immutable as $$
  select (array[${REGIONS.map(literal).join(', ')}])[(p % ${REGIONS.length}) + 1]
    || to_char(date ${literal(BIRTH_EPOCH)} + ((p / ${REGIONS.length}) % ${BIRTH_DAYS})::int, 'YYYYMMDD')
    || lpad((${FIRST_ORDER_CODE} + p / ${REGIONS.length} / ${BIRTH_DAYS})::text, 3, '0')
$$;
create or replace function pg_temp.gb11643_check(f text) returns text language sql immutable as $$
  select substr('10X98765432', ((${WEIGHTS.map((weight, i) => `substr(f, ${i + 1}, 1)::int * ${weight}`).join(' + ')}) % 11) + 1, 1)
$$;
create or replace function pg_temp.bench_id_number(p bigint) returns text language sql immutable as $$
  select pg_temp.bench_first17(p) || pg_temp.gb11643_check(pg_temp.bench_first17(p))
$$;`

const templateValues = (Object.entries(TEMPLATES) as [Group, Template[]][])
  .flatMap(([group, templates]) =>
    templates.map(
      (t, slot) =>
        `(${literal(group)}, ${slot}, ${literal(t.kind)}, ${literal(t.ref)}, ${t.from}, ` +
        `${typeof t.to === 'number' ? t.to : 'null'}::int, ${t.to === 'end'})`,
    ),
  )
  .join(',\n      ')

/**
 * One statement inserting every row of persons $1 … $2 (inclusive) with the blind index under key $3 (base64),
 * import id $4. Rows already present are left alone, so a cut-off load resumes where it stopped.
 *
 * id_number_sealed is a 1-byte placeholder instead of AES-GCM ciphertext: the benchmark never decrypts (verification
 * reads the blind index only), and version byte 0 makes decryptPii refuse it loudly rather than misread it.
 */
export const BULK_INSERT = `
with people as (
  select p, pg_temp.bench_id_number(p) as id_number, (p * 2654435761) % 4294967296 as mix
  from generate_series($1::bigint, $2::bigint) as p
), shaped as (
  select p, id_number, mix,
    case when (mix / 256) % 10 <= 6 then 'eligible' when (mix / 256) % 10 = 7 then 'too_recent'
      when (mix / 256) % 10 = 8 then 'ended' else 'rental_only' end as grp,
    (mix / 4096) % 2000 as spread
  from people
), spans as (
  select *,
    case grp when 'too_recent' then -10 - spread % 75 when 'ended' then -1500 - spread else -120 - spread end::int
      as start
  from shaped
), templates (grp, slot, kind, ref, from_days, to_days, to_end) as (
  values
      ${templateValues}
)
insert into residence.evidence (person_index, id_number_sealed, city, kind, valid_from, valid_to, source_ref, import_id)
select hmac(convert_to(s.id_number, 'UTF8'), decode($3, 'base64'), 'sha256'), '\\x00'::bytea, 'shenzhen', t.kind,
  date ${literal(AS_OF)} + s.start + t.from_days,
  case when t.to_end then date ${literal(AS_OF)} + s.start + 400 + (s.spread % 300)::int
    when t.to_days is not null then date ${literal(AS_OF)} + s.start + t.to_days end,
  t.ref || '-' || s.p, $4::uuid
from spans s join templates t on t.grp = s.grp and t.slot < 2 + (s.p % 2)
order by 1
on conflict do nothing`
