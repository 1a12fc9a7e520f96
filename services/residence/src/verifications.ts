import { randomUUID } from 'node:crypto'
import { blindIndex } from '@pilot/kit'
import type { CityProfile, PilotProfile, VerificationResult } from '@pilot/schemas'
import { matchingHash, type Signer, signAttestation } from '@pilot/signing'
import type pg from 'pg'
import { findEvidenceOfMany, type StoredEvidence } from './db/evidence-repository.ts'
import { decideResidence, RULE_VERSION } from './domain/three-month-rule.ts'

export interface VerificationContext {
  pool: pg.Pool
  pilot: PilotProfile
  city: CityProfile
  blindIndexKey: Buffer
  matchingKey: Buffer
  signer: Signer
}

const DAY_SECONDS = 24 * 3600

/**
 * Decides the 3-month rule for one person from this city's own records and signs the outcome. The attestation names
 * the person only by the pilot-wide matching hash, and carries the decision, not the evidence: the hukou city learns
 * that the rule is met and since when, nothing about where or how the person lives.
 */
export async function verifyResidence(
  context: VerificationContext,
  request: { idNumber: string; hukouCity: string; asOf: string },
  now = new Date(),
): Promise<VerificationResult> {
  return (await verifyResidenceMany(context, [request], now))[0] as VerificationResult
}

/**
 * Decides many verifications at once (the intake service batches the submissions that arrive together): one lookup
 * for everyone's records, then each decided and signed on its own.
 */
export async function verifyResidenceMany(
  context: VerificationContext,
  requests: { idNumber: string; hukouCity: string; asOf: string }[],
  now = new Date(),
): Promise<VerificationResult[]> {
  const indexes = requests.map((request) => blindIndex(context.blindIndexKey, request.idNumber))
  const byPerson = await findEvidenceOfMany(context.pool, indexes, context.city.policy.residence.countedEvidenceKinds)
  return Promise.all(
    requests.map((request, i) =>
      decideAndSign(context, request, byPerson.get((indexes[i] as Buffer).toString('hex')) ?? [], now),
    ),
  )
}

async function decideAndSign(
  context: VerificationContext,
  request: { idNumber: string; hukouCity: string; asOf: string },
  evidence: StoredEvidence[],
  now: Date,
): Promise<VerificationResult> {
  const policy = context.city.policy.residence
  const decision = decideResidence({
    asOf: request.asOf,
    thisCity: context.city.id,
    hukouCity: request.hukouCity,
    pilotCities: context.pilot.cities.map((city) => city.id),
    evidence,
    policy,
  })
  const iat = Math.floor(now.getTime() / 1000)
  const attestation = await signAttestation(context.signer, {
    iss: context.city.id,
    sub: matchingHash(request.idNumber, context.matchingKey),
    iat,
    exp: iat + policy.attestationValidityDays * DAY_SECONDS,
    jti: randomUUID(),
    asOf: request.asOf,
    residenceSince: decision.residenceSince,
    qualifiesOn: decision.qualifiesOn,
    eligible: decision.eligible,
    rule: RULE_VERSION,
    hukouCity: request.hukouCity,
  })
  return {
    eligible: decision.eligible,
    reasons: decision.reasons,
    asOf: request.asOf,
    residenceSince: decision.residenceSince,
    qualifiesOn: decision.qualifiesOn,
    monthsResided: decision.monthsResided,
    evidenceUsed: decision.evidenceUsed.map(({ kind, validFrom, validTo, sourceRef }) => ({
      kind: kind as VerificationResult['evidenceUsed'][number]['kind'],
      validFrom,
      validTo,
      sourceRef,
    })),
    rule: RULE_VERSION,
    attestation,
  }
}
