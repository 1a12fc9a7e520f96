import type { CaseMessageType } from '@pilot/schemas'

/**
 * The case lifecycle (DESIGN.md, "Case lifecycle") as one table. Routes, the inbound message handler and the
 * generated documentation all read TRANSITIONS; nothing else decides whether a case may move.
 *
 * A case has one of two sides in a city: `outgoing` in the residence city, which takes the application and transfers
 * it, and `incoming` in the hukou city, which receives the transfer and decides. The same word can name a status on
 * both sides (`accepted`, `decided`, ...), so a status only means something together with its side.
 */

export const SIDES = ['outgoing', 'incoming'] as const
export type Side = (typeof SIDES)[number]

export const OUTGOING_STATUSES = [
  'submitted',
  'residence_rejected',
  'queued',
  'transferred',
  'accepted',
  'refused',
  'info_requested',
  'info_supplied',
  'decided',
  'withdrawn',
] as const
export type OutgoingStatus = (typeof OUTGOING_STATUSES)[number]

export const INCOMING_STATUSES = [
  'received',
  'accepted',
  'refused',
  'under_review',
  'info_requested',
  'info_supplied',
  'decided',
  'withdrawn',
] as const
export type IncomingStatus = (typeof INCOMING_STATUSES)[number]

export type Status = OutgoingStatus | IncomingStatus
export type StatusOf<S extends Side> = S extends 'outgoing' ? OutgoingStatus : IncomingStatus

export const OUTGOING_ACTIONS = [
  'residence_rejected',
  'residence_verified',
  'transfer_delivered',
  'partner_accepted',
  'partner_refused',
  'partner_requested_info',
  'supply_info',
  'partner_decided',
  'withdraw',
] as const
export type OutgoingAction = (typeof OUTGOING_ACTIONS)[number]

export const INCOMING_ACTIONS = [
  'accept',
  'refuse',
  'start_review',
  'request_info',
  'partner_supplied_info',
  'decide',
  'partner_withdrew',
] as const
export type IncomingAction = (typeof INCOMING_ACTIONS)[number]

export type Action = OutgoingAction | IncomingAction
export type ActionOf<S extends Side> = S extends 'outgoing' ? OutgoingAction : IncomingAction

export const STATUSES = { outgoing: OUTGOING_STATUSES, incoming: INCOMING_STATUSES } as const
export const ACTIONS = { outgoing: OUTGOING_ACTIONS, incoming: INCOMING_ACTIONS } as const

/** `partner` is the other city, acting through a federation message; `system` is this city's own automation. */
export const ACTORS = ['caseworker', 'reviewer', 'partner', 'system'] as const
export type Actor = (typeof ACTORS)[number]

export const INITIAL_STATUS = { outgoing: 'submitted', incoming: 'received' } as const satisfies {
  [S in Side]: StatusOf<S>
}

export const FINAL_STATUSES = {
  outgoing: ['residence_rejected', 'refused', 'decided', 'withdrawn'],
  incoming: ['refused', 'decided', 'withdrawn'],
} as const satisfies { [S in Side]: readonly StatusOf<S>[] }

/**
 * The only refusal reason the system may give on its own: the hukou city's registry has no such person, which needs
 * no judgement. The transition table cannot see reasons, so the caller that lets `system` refuse checks this.
 */
export const SYSTEM_REFUSAL_REASON = 'not_registered_here'

interface TransitionOf<S extends Side> {
  side: S
  action: ActionOf<S>
  from: readonly StatusOf<S>[]
  to: StatusOf<S>
  actors: readonly Actor[]
  /** The federation message that tells the other city; written to the outbox in the same transaction. */
  sends?: CaseMessageType
  /** A condition the table cannot express, shown in the generated documentation. */
  note?: string
}
export type Transition = { [S in Side]: TransitionOf<S> }[Side]

const NON_FINAL_OUTGOING = OUTGOING_STATUSES.filter((status) => !isFinal('outgoing', status))
const NON_FINAL_INCOMING = INCOMING_STATUSES.filter((status) => !isFinal('incoming', status))

export const TRANSITIONS: readonly Transition[] = [
  { side: 'outgoing', action: 'residence_rejected', from: ['submitted'], to: 'residence_rejected', actors: ['system'] },
  {
    side: 'outgoing',
    action: 'residence_verified',
    from: ['submitted'],
    to: 'queued',
    actors: ['system'],
    sends: 'case.transfer',
  },
  {
    side: 'outgoing',
    action: 'transfer_delivered',
    from: ['queued'],
    to: 'transferred',
    actors: ['system'],
    note: 'on the partner’s receipt for `case.transfer`',
  },
  // The partner's answer can overtake our delivery report, and an answer implies the receipt, so it also applies to a
  // case still queued.
  {
    side: 'outgoing',
    action: 'partner_accepted',
    from: ['transferred', 'queued'],
    to: 'accepted',
    actors: ['partner'],
  },
  { side: 'outgoing', action: 'partner_refused', from: ['transferred', 'queued'], to: 'refused', actors: ['partner'] },
  {
    side: 'outgoing',
    action: 'partner_requested_info',
    from: ['accepted', 'info_supplied'],
    to: 'info_requested',
    actors: ['partner'],
  },
  {
    side: 'outgoing',
    action: 'supply_info',
    from: ['info_requested'],
    to: 'info_supplied',
    actors: ['caseworker'],
    sends: 'case.info_supplied',
  },
  {
    side: 'outgoing',
    action: 'partner_decided',
    from: ['accepted', 'info_requested', 'info_supplied'],
    to: 'decided',
    actors: ['partner'],
  },
  // Before the residence check passes no case.transfer has been written, so the partner has nothing to withdraw. From
  // queued on the transfer is in the outbox ahead of the withdrawal, and the partner learns of both in that order.
  {
    side: 'outgoing',
    action: 'withdraw',
    from: ['submitted'],
    to: 'withdrawn',
    actors: ['caseworker'],
    note: 'the partner has not been sent the case yet',
  },
  {
    side: 'outgoing',
    action: 'withdraw',
    from: NON_FINAL_OUTGOING.filter((status) => status !== 'submitted'),
    to: 'withdrawn',
    actors: ['caseworker'],
    sends: 'case.withdrawn',
  },
  {
    side: 'incoming',
    action: 'accept',
    from: ['received'],
    to: 'accepted',
    actors: ['reviewer'],
    sends: 'case.accepted',
  },
  {
    side: 'incoming',
    action: 'refuse',
    from: ['received'],
    to: 'refused',
    actors: ['reviewer', 'system'],
    sends: 'case.refused',
    note: `system only with reason \`${SYSTEM_REFUSAL_REASON}\``,
  },
  { side: 'incoming', action: 'start_review', from: ['accepted'], to: 'under_review', actors: ['reviewer'] },
  {
    side: 'incoming',
    action: 'request_info',
    from: ['accepted', 'under_review', 'info_supplied'],
    to: 'info_requested',
    actors: ['reviewer'],
    sends: 'case.info_requested',
  },
  {
    side: 'incoming',
    action: 'partner_supplied_info',
    from: ['info_requested'],
    to: 'info_supplied',
    actors: ['partner'],
  },
  {
    side: 'incoming',
    action: 'decide',
    from: ['accepted', 'under_review', 'info_supplied'],
    to: 'decided',
    actors: ['reviewer'],
    sends: 'case.decided',
  },
  { side: 'incoming', action: 'partner_withdrew', from: NON_FINAL_INCOMING, to: 'withdrawn', actors: ['partner'] },
]

/** What an inbound federation message does to the receiving city's copy of the case. */
export type InboundEffect =
  | { kind: 'create'; side: 'incoming'; status: 'received' }
  | { kind: 'transition'; side: 'outgoing'; action: OutgoingAction; actor: 'partner' }
  | { kind: 'transition'; side: 'incoming'; action: IncomingAction; actor: 'partner' }

export const INBOUND_EFFECTS: { readonly [T in CaseMessageType]: InboundEffect } = {
  'case.transfer': { kind: 'create', side: 'incoming', status: 'received' },
  'case.accepted': { kind: 'transition', side: 'outgoing', action: 'partner_accepted', actor: 'partner' },
  'case.refused': { kind: 'transition', side: 'outgoing', action: 'partner_refused', actor: 'partner' },
  'case.info_requested': { kind: 'transition', side: 'outgoing', action: 'partner_requested_info', actor: 'partner' },
  'case.decided': { kind: 'transition', side: 'outgoing', action: 'partner_decided', actor: 'partner' },
  'case.info_supplied': { kind: 'transition', side: 'incoming', action: 'partner_supplied_info', actor: 'partner' },
  'case.withdrawn': { kind: 'transition', side: 'incoming', action: 'partner_withdrew', actor: 'partner' },
}

export type NextStatus<S extends Side> =
  | { ok: true; to: StatusOf<S>; sends?: CaseMessageType }
  | { ok: false; reason: 'illegal_transition' | 'actor_not_allowed'; allowed: ActionOf<S>[] }

/**
 * Where `action` by `actor` takes a case of `side` that is in `from`. `illegal_transition` when the action does not
 * apply to that status at all, `actor_not_allowed` when it does but not for this actor; both are a 409 for the caller.
 * `allowed` lists what this actor could do instead, so the answer can say so.
 */
export function nextStatus<S extends Side>(
  side: S,
  from: StatusOf<S>,
  action: ActionOf<S>,
  actor: Actor,
): NextStatus<S> {
  const row = rowsOf(side).find((candidate) => candidate.action === action && candidate.from.includes(from))
  if (!row) return { ok: false, reason: 'illegal_transition', allowed: allowedActions(side, from, actor) }
  if (!row.actors.includes(actor)) {
    return { ok: false, reason: 'actor_not_allowed', allowed: allowedActions(side, from, actor) }
  }
  return row.sends === undefined ? { ok: true, to: row.to } : { ok: true, to: row.to, sends: row.sends }
}

/** The actions that apply to a case in `status`, in table order; only those `actor` may take when it is given. */
export function allowedActions<S extends Side>(side: S, status: StatusOf<S>, actor?: Actor): ActionOf<S>[] {
  return rowsOf(side)
    .filter((row) => row.from.includes(status) && (actor === undefined || row.actors.includes(actor)))
    .map((row) => row.action)
}

export function isFinal<S extends Side>(side: S, status: StatusOf<S>): boolean {
  return (FINAL_STATUSES[side] as readonly string[]).includes(status)
}

/**
 * The action an inbound message takes on the receiving side's case, always as actor `partner`; null for
 * `case.transfer`, which creates an incoming case instead of moving one. INBOUND_EFFECTS also names the side.
 */
export function actionForInbound(messageType: CaseMessageType): Action | null {
  const effect = INBOUND_EFFECTS[messageType]
  return effect.kind === 'transition' ? effect.action : null
}

/** For values read from the database or a request: narrows a string to a status of that side. */
export function isStatus<S extends Side>(side: S, value: string): value is StatusOf<S> {
  return (STATUSES[side] as readonly string[]).includes(value)
}

export function isAction<S extends Side>(side: S, value: string): value is ActionOf<S> {
  return (ACTIONS[side] as readonly string[]).includes(value)
}

function rowsOf<S extends Side>(side: S): TransitionOf<S>[] {
  // The union of rows narrows by side only through the discriminant; the filter keeps exactly the rows of `side`.
  return TRANSITIONS.filter((row) => row.side === side) as unknown as TransitionOf<S>[]
}

/**
 * The lifecycle as Markdown, generated from TRANSITIONS so that the documentation cannot drift from the code: one
 * table of transitions per side with its final statuses, then what each inbound message does.
 */
export function describeLifecycle(): string {
  const code = (text: string) => `\`${text}\``
  const list = (items: readonly string[]) => items.map(code).join(', ')
  const lines: string[] = []
  for (const side of SIDES) {
    const city = side === 'outgoing' ? 'residence city' : 'hukou city'
    lines.push(`### ${side === 'outgoing' ? 'Outgoing' : 'Incoming'} cases (${city})`, '')
    lines.push(`Initial status ${code(INITIAL_STATUS[side])}; final: ${list(FINAL_STATUSES[side])}.`, '')
    lines.push('| Action | From | To | Who | Tells the partner | Note |', '| --- | --- | --- | --- | --- | --- |')
    for (const row of rowsOf(side)) {
      const cells = [
        code(row.action),
        list(row.from),
        code(row.to),
        row.actors.join(', '),
        row.sends ? code(row.sends) : '',
        row.note ?? '',
      ]
      lines.push(`| ${cells.join(' | ')} |`)
    }
    lines.push('')
  }
  lines.push('### Inbound messages', '', '| Message | Effect |', '| --- | --- |')
  for (const [type, effect] of Object.entries(INBOUND_EFFECTS)) {
    const text =
      effect.kind === 'create'
        ? `creates an ${effect.side} case in ${code(effect.status)}`
        : `${code(effect.action)} on the ${effect.side} case`
    lines.push(`| ${code(type)} | ${text} |`)
  }
  return `${lines.join('\n')}\n`
}
