import { keyPublishersFor } from '@pilot/kit'
import type { CaseTransferBody, CityProfile, DeliveryOutcome, InboundMessage } from '@pilot/schemas'
import {
  type JwksVerifier,
  kidOf,
  PartnerKeyRevoked,
  PartnerKeys,
  type PartnerKeysOptions,
  VerificationError,
  verifyAttestation,
} from '@pilot/signing'
import type { Static } from 'typebox'
import { actionForInbound, nextStatus } from '../domain/lifecycle.ts'
import { appendAudit, partnerAudit } from './audit.ts'
import {
  answerBenefitCheck,
  householdSubjects,
  receiveBenefitCheckResult,
  recordDeliveredCheck,
  recordUndeliveredCheck,
} from './benefit-check.ts'
import type { Actor, CaseContext } from './context.ts'
import { sealForm } from './sealing.ts'
import { deadlineColumns, firstTime, recordEvent, reviewDeadline, writeOutbox } from './workflows.ts'

/**
 * The verifier for a pilot city's published keys, given the kid a JWS names (to check a residence attestation it
 * signed): refused outright for a kid our operators revoked, refetched early for a kid not yet seen.
 */
export type JwksSource = (city: string, kid: string | undefined) => Promise<JwksVerifier>

/**
 * The pilot profile's cities and their JWKS URLs, with this city's `revokedKids`: the same rules as the gateway applies
 * to the messages themselves, so an attestation signed with a key revoked here is refused even when the message that
 * carries it is signed with a good one.
 */
export function profileJwksSource(context: CaseContext, options: PartnerKeysOptions): JwksSource {
  const keys = new PartnerKeys(options)
  const self = context.pilot.cities.find((city) => city.id === context.city) as CityProfile
  const publishers = keyPublishersFor(context.pilot, self)
  return (city, kid) => {
    const publisher = publishers.get(city)
    if (!publisher) return Promise.reject(new Error(`${city} is not another pilot city`))
    return keys.verifierFor(publisher, kid)
  }
}

/**
 * Applies a message from another city, exactly once per message id, in one transaction with its effects. A message
 * about a case the sender is not party to, or one the case's state does not allow, changes nothing and is audited.
 */
export async function applyInbound(context: CaseContext, message: InboundMessage, jwksOf: JwksSource): Promise<string> {
  const partner: Actor = { id: message.from, role: 'partner', requestId: message.messageId }
  const type = message.type
  if (type === 'case.transfer') return receiveTransfer(context, message, jwksOf)
  // The duplicate-benefit check asks about people, not about a case the two cities share: no lifecycle step.
  if (type === 'benefit.check') return answerBenefitCheck(context, message)
  if (type === 'benefit.check_result') return receiveBenefitCheckResult(context, message)

  return context.db.transaction().execute(async (trx) => {
    const audit = partnerAudit(trx, context.city, message)
    const mapping = actionForInbound(type)
    const side = message.type === 'case.info_supplied' || message.type === 'case.withdrawn' ? 'incoming' : 'outgoing'
    const row = await trx
      .selectFrom('cases')
      .selectAll()
      .where('side', '=', side)
      .where('reference', '=', message.ref)
      .forUpdate()
      .executeTakeFirst()
    if (!row || row.partner_city !== message.from || !mapping) {
      const outcome = !row ? 'unknown_case' : 'not_party_to_case'
      if (!(await firstTime(trx, message, outcome))) return 'duplicate'
      await audit('federation.refused', row?.id ?? null, { reason: outcome, type: message.type, ref: message.ref })
      return outcome
    }
    const step = nextStatus(side, row.status as never, mapping, 'partner')
    if (!step.ok) {
      if (!(await firstTime(trx, message, 'illegal_transition'))) return 'duplicate'
      await audit('federation.ignored', row.id, {
        reason: 'illegal_transition',
        type: message.type,
        status: row.status,
      })
      return 'illegal_transition'
    }
    if (!(await firstTime(trx, message, 'applied'))) return 'duplicate'
    const body = (message.body ?? {}) as Record<string, unknown>
    const partnerLatest = { type: message.type, at: message.receivedAt, detail: body }
    await trx
      .updateTable('cases')
      .set({
        status: step.to,
        partner_latest: JSON.stringify(partnerLatest),
        updated_at: new Date(),
        ...(message.type === 'case.info_requested'
          ? { open_info_request: JSON.stringify({ requestId: body.requestId, missing: body.missing }) }
          : {}),
        ...(message.type === 'case.info_supplied' ? { open_info_request: null } : {}),
        ...(message.type === 'case.decided' ? { decision: JSON.stringify(body) } : {}),
      })
      .where('id', '=', row.id)
      .execute()
    await recordEvent(trx, {
      caseId: row.id,
      action: mapping,
      from: row.status,
      to: step.to,
      actor: partner,
      messageId: message.messageId,
      detail: summarise(message.type, body),
    })
    await audit(`${side}.${mapping}`, row.id, { type: message.type })
    return 'applied'
  })
}

/** What the case history keeps of a partner's message: the decision-relevant fields, not free text about people. */
function summarise(type: string, body: Record<string, unknown>): Record<string, unknown> {
  switch (type) {
    case 'case.refused':
      return { reason: body.reason }
    case 'case.info_requested':
      return { requestId: body.requestId, missing: body.missing }
    case 'case.decided':
      return {
        outcome: body.outcome,
        monthlyAmountFen: body.monthlyAmountFen ?? null,
        startMonth: body.startMonth ?? null,
      }
    default:
      return {}
  }
}

/**
 * A case.transfer in the hukou city: the residence attestation must verify against the sending city's keys, be about
 * this applicant, say eligible and be meant for us; the applicant must be registered here. A transfer that fails the
 * attestation creates no case (it cannot be trusted to be about anyone); one for a person not registered here becomes
 * a refused case, and the refusal goes back either way.
 */
async function receiveTransfer(context: CaseContext, message: InboundMessage, jwksOf: JwksSource): Promise<string> {
  const body = message.body as Static<typeof CaseTransferBody>
  let refusal: { reason: string; detail: string } | undefined
  try {
    const claims = await verifyAttestation(body.attestation, await jwksOf(message.from, kidOf(body.attestation)), {
      expectedIssuer: message.from,
      expectedSubject: body.applicant.subject,
    })
    if (!claims.eligible)
      refusal = { reason: 'residence_not_attested', detail: 'the attestation says the 3-month rule is not met' }
    else if (claims.hukouCity !== context.city)
      refusal = { reason: 'attestation_for_another_city', detail: `the attestation is for ${claims.hukouCity}` }
  } catch (error) {
    if (error instanceof PartnerKeyRevoked) {
      refusal = { reason: 'invalid_attestation', detail: 'the residence attestation is signed with a revoked key' }
    } else if (error instanceof VerificationError) {
      refusal = { reason: 'invalid_attestation', detail: `the residence attestation does not verify (${error.code})` }
    } else {
      // The residence city's keys cannot be had (PartnerKeysUnavailable) or the database failed: the job is retried.
      throw error
    }
  }
  const registration = refusal
    ? undefined
    : await context.residence.confirmRegistration(body.applicant.subject, message.messageId)

  return context.db.transaction().execute(async (trx) => {
    const system: Actor = { id: 'system', role: 'system', requestId: message.messageId }
    const partner: Actor = { id: message.from, role: 'partner', requestId: message.messageId }
    if (refusal) {
      if (!(await firstTime(trx, message, refusal.reason))) return 'duplicate'
      await writeOutbox(trx, { caseId: null, to: message.from, type: 'case.refused', ref: message.ref, body: refusal })
      await appendAudit(trx, {
        actor: message.from,
        role: 'partner',
        city: context.city,
        action: 'incoming.transfer_refused',
        caseId: null,
        requestId: message.messageId,
        detail: { reason: refusal.reason, ref: message.ref },
      })
      return refusal.reason
    }
    const existing = await trx
      .selectFrom('cases')
      .select('id')
      .where('side', '=', 'incoming')
      .where('reference', '=', message.ref)
      .executeTakeFirst()
    if (!(await firstTime(trx, message, 'applied')) || existing) return 'duplicate'
    const registered = registration?.registered === true
    const inserted = await trx
      .insertInto('cases')
      .values({
        reference: message.ref,
        side: 'incoming',
        partner_city: message.from,
        status: 'received',
        category: body.category,
        applicant_subject: body.applicant.subject,
        applicant_index: null,
        caseworker_id: null,
        form_sealed: sealForm(context.piiKey, body),
        household_size: body.household.length,
        household_subjects: householdSubjects(
          body.applicant.subject,
          body.household.map((member) => member.subject),
        ),
        residence: null,
        attestation: body.attestation,
        ...(registered ? deadlineColumns(reviewDeadline(context, true)) : {}),
        partner_latest: JSON.stringify({
          type: message.type,
          at: message.receivedAt,
          detail: { category: body.category },
        }),
        decision: null,
        open_info_request: null,
        benefit_check: null,
      })
      .returning('id')
      .executeTakeFirstOrThrow()
    await recordEvent(trx, {
      caseId: inserted.id,
      action: 'receive',
      from: null,
      to: 'received',
      actor: partner,
      messageId: message.messageId,
    })
    if (!registered) {
      const refused = {
        reason: 'not_registered_here',
        detail: `the applicant has no household registration in ${context.city}`,
      }
      await trx
        .updateTable('cases')
        .set({ status: 'refused', updated_at: new Date() })
        .where('id', '=', inserted.id)
        .execute()
      await recordEvent(trx, {
        caseId: inserted.id,
        action: 'refuse',
        from: 'received',
        to: 'refused',
        actor: system,
        detail: { reason: refused.reason },
      })
      await writeOutbox(trx, {
        caseId: inserted.id,
        to: message.from,
        type: 'case.refused',
        ref: message.ref,
        body: refused,
      })
    }
    await appendAudit(trx, {
      actor: message.from,
      role: 'partner',
      city: context.city,
      action: 'incoming.receive',
      caseId: inserted.id,
      requestId: message.messageId,
      detail: { registered },
    })
    return registered ? 'received' : 'not_registered_here'
  })
}

/**
 * The gateway's word on one of our messages: a delivered transfer moves the case on; a dead one is recorded. A message
 * reported dead may still be delivered — an operator redrives it once its cause is fixed — and that later word
 * replaces the first: the transfer moves on as if it had gone through at once, a benefit check no longer counts as
 * undelivered, and the case history shows the recovery after the failure. Any other repeat changes nothing.
 */
export async function applyDeliveryOutcome(context: CaseContext, outcome: DeliveryOutcome): Promise<string> {
  return context.db.transaction().execute(async (trx) => {
    const earlier = await trx
      .selectFrom('outbox')
      .select(['outcome'])
      .where('id', '=', outcome.messageId)
      .forUpdate()
      .executeTakeFirst()
    const recovered = earlier?.outcome === 'dead' && outcome.outcome === 'delivered'
    if (!earlier || (earlier.outcome !== null && !recovered)) return 'duplicate'
    const row = await trx
      .updateTable('outbox')
      .set({ outcome: outcome.outcome, outcome_at: new Date(outcome.at), outcome_reason: outcome.reason ?? null })
      .where('id', '=', outcome.messageId)
      .returning(['case_id', 'type'])
      .executeTakeFirstOrThrow()
    if (!row.case_id) return 'recorded'
    const system: Actor = { id: 'system', role: 'system', requestId: outcome.messageId }
    if (recovered && row.type === 'benefit.check') {
      await recordDeliveredCheck(trx, row.case_id, outcome.to)
      return 'recovered'
    }
    if (recovered && row.type !== 'case.transfer') {
      await recordDeliveryEvent(trx, row.case_id, 'delivery_recovered', system, { type: row.type })
      return 'recovered'
    }
    // A check that cannot reach a city is shown on the check, not as a step of the case: it blocks nothing.
    if (outcome.outcome === 'dead' && row.type === 'benefit.check') {
      await recordUndeliveredCheck(trx, row.case_id, outcome.to)
      return 'dead'
    }
    if (outcome.outcome === 'dead') {
      await recordDeliveryEvent(trx, row.case_id, 'delivery_failed', system, {
        type: row.type,
        reason: outcome.reason ?? null,
      })
      return 'dead'
    }
    if (row.type !== 'case.transfer') return 'recorded'
    const current = await trx
      .selectFrom('cases')
      .select(['status'])
      .where('id', '=', row.case_id)
      .forUpdate()
      .executeTakeFirstOrThrow()
    const step = nextStatus('outgoing', current.status as never, 'transfer_delivered', 'system')
    // The partner's answer may have overtaken this report; then the case has already moved past `queued`.
    if (!step.ok) return 'superseded'
    await trx
      .updateTable('cases')
      .set({ status: step.to, updated_at: new Date() })
      .where('id', '=', row.case_id)
      .execute()
    await recordEvent(trx, {
      caseId: row.case_id,
      action: 'transfer_delivered',
      from: current.status,
      to: step.to,
      actor: system,
      detail: { receipt: outcome.receiptStatus ?? null },
    })
    return 'transferred'
  })
}

/** A step of the case's history about one of its messages' delivery, which leaves the case's status as it is. */
async function recordDeliveryEvent(
  trx: Parameters<typeof recordEvent>[0],
  caseId: string,
  action: 'delivery_failed' | 'delivery_recovered',
  actor: Actor,
  detail: Record<string, unknown>,
): Promise<void> {
  const current = await trx.selectFrom('cases').select('status').where('id', '=', caseId).executeTakeFirstOrThrow()
  await recordEvent(trx, { caseId, action, from: current.status, to: current.status, actor, detail })
}
