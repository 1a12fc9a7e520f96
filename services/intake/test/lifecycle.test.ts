import { CASE_MESSAGE_TYPES } from '@pilot/schemas'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  ACTIONS,
  ACTORS,
  type Action,
  type Actor,
  actionForInbound,
  allowedActions,
  describeLifecycle,
  FINAL_STATUSES,
  INBOUND_EFFECTS,
  INITIAL_STATUS,
  isAction,
  isFinal,
  isStatus,
  type NextStatus,
  nextStatus,
  SIDES,
  type Side,
  STATUSES,
  type Status,
  TRANSITIONS,
} from '../src/domain/lifecycle.ts'

// Tests range over both sides at once, so they work with the union types; nextStatus checks the side at run time.
const statusesOf = (side: Side): readonly Status[] => STATUSES[side]
const actionsOf = (side: Side): readonly Action[] => ACTIONS[side]
const finalsOf = (side: Side): readonly Status[] => FINAL_STATUSES[side]

// The brief's table, written out once more by hand: a change to TRANSITIONS has to be made here as well.
const EXPECTED: [Side, string, string[], string, Actor[], string | undefined][] = [
  ['outgoing', 'residence_rejected', ['submitted'], 'residence_rejected', ['system'], undefined],
  ['outgoing', 'residence_verified', ['submitted'], 'queued', ['system'], 'case.transfer'],
  ['outgoing', 'transfer_delivered', ['queued'], 'transferred', ['system'], undefined],
  ['outgoing', 'partner_accepted', ['transferred', 'queued'], 'accepted', ['partner'], undefined],
  ['outgoing', 'partner_refused', ['transferred', 'queued'], 'refused', ['partner'], undefined],
  ['outgoing', 'partner_requested_info', ['accepted', 'info_supplied'], 'info_requested', ['partner'], undefined],
  ['outgoing', 'supply_info', ['info_requested'], 'info_supplied', ['caseworker'], 'case.info_supplied'],
  ['outgoing', 'partner_decided', ['accepted', 'info_requested', 'info_supplied'], 'decided', ['partner'], undefined],
  ['outgoing', 'withdraw', ['submitted'], 'withdrawn', ['caseworker'], undefined],
  [
    'outgoing',
    'withdraw',
    ['queued', 'transferred', 'accepted', 'info_requested', 'info_supplied'],
    'withdrawn',
    ['caseworker'],
    'case.withdrawn',
  ],
  ['incoming', 'accept', ['received'], 'accepted', ['reviewer'], 'case.accepted'],
  ['incoming', 'refuse', ['received'], 'refused', ['reviewer', 'system'], 'case.refused'],
  ['incoming', 'start_review', ['accepted'], 'under_review', ['reviewer'], undefined],
  [
    'incoming',
    'request_info',
    ['accepted', 'under_review', 'info_supplied'],
    'info_requested',
    ['reviewer'],
    'case.info_requested',
  ],
  ['incoming', 'partner_supplied_info', ['info_requested'], 'info_supplied', ['partner'], undefined],
  ['incoming', 'decide', ['accepted', 'under_review', 'info_supplied'], 'decided', ['reviewer'], 'case.decided'],
  [
    'incoming',
    'partner_withdrew',
    ['received', 'accepted', 'under_review', 'info_requested', 'info_supplied'],
    'withdrawn',
    ['partner'],
    undefined,
  ],
]

describe('the transition table', () => {
  it('is the table of the design', () => {
    expect(TRANSITIONS.map((row) => [row.side, row.action, row.from, row.to, row.actors, row.sends])).toEqual(EXPECTED)
  })

  it('takes every row, from every listed status, for every listed actor', () => {
    for (const row of TRANSITIONS) {
      for (const from of row.from) {
        for (const actor of row.actors) {
          const expected = row.sends ? { ok: true, to: row.to, sends: row.sends } : { ok: true, to: row.to }
          // The row's side and its statuses and actions belong together, which the union type does not carry over.
          expect(nextStatus(row.side as Side, from, row.action, actor)).toEqual(expected)
        }
        for (const actor of ACTORS.filter((a) => !row.actors.includes(a))) {
          expect(nextStatus(row.side as Side, from, row.action, actor)).toMatchObject({
            ok: false,
            reason: 'actor_not_allowed',
          })
        }
      }
    }
  })

  it('has at most one row for an action in a status, so the answer never depends on row order', () => {
    for (const side of SIDES) {
      for (const status of statusesOf(side)) {
        for (const action of actionsOf(side)) {
          const rows = TRANSITIONS.filter(
            (row) => row.side === side && row.action === action && (row.from as readonly string[]).includes(status),
          )
          expect(rows.length).toBeLessThanOrEqual(1)
        }
      }
    }
  })

  it('uses only statuses and actions of the row’s own side', () => {
    for (const row of TRANSITIONS) {
      expect(isAction(row.side, row.action)).toBe(true)
      expect(isStatus(row.side, row.to)).toBe(true)
      for (const from of row.from) expect(isStatus(row.side, from)).toBe(true)
    }
  })

  it('reaches every status of a side from its initial status, and every non-final status can move on', () => {
    for (const side of SIDES) {
      const seen = new Set<string>([INITIAL_STATUS[side]])
      const queue: string[] = [INITIAL_STATUS[side]]
      for (let status = queue.shift(); status !== undefined; status = queue.shift()) {
        for (const row of TRANSITIONS) {
          if (row.side !== side || !(row.from as readonly string[]).includes(status) || seen.has(row.to)) continue
          seen.add(row.to)
          queue.push(row.to)
        }
      }
      expect([...seen].sort()).toEqual([...statusesOf(side)].sort())
      for (const status of statusesOf(side)) {
        expect(allowedActions(side, status).length === 0).toBe(isFinal(side, status))
      }
    }
  })

  it('has the final statuses of the design', () => {
    expect(FINAL_STATUSES).toEqual({
      outgoing: ['residence_rejected', 'refused', 'decided', 'withdrawn'],
      incoming: ['refused', 'decided', 'withdrawn'],
    })
    expect(isFinal('outgoing', 'accepted')).toBe(false)
    expect(isFinal('incoming', 'received')).toBe(false)
    expect(isFinal('incoming', 'decided')).toBe(true)
  })
})

describe('nextStatus', () => {
  it('refuses a decision on a case that has only been received', () => {
    expect(nextStatus('incoming', 'received', 'decide', 'reviewer')).toEqual({
      ok: false,
      reason: 'illegal_transition',
      allowed: ['accept', 'refuse'],
    })
  })

  it('refuses to supply information nobody asked for', () => {
    expect(nextStatus('outgoing', 'transferred', 'supply_info', 'caseworker')).toEqual({
      ok: false,
      reason: 'illegal_transition',
      allowed: ['withdraw'],
    })
  })

  it('lets the partner’s acceptance overtake our delivery report', () => {
    expect(nextStatus('outgoing', 'queued', 'partner_accepted', 'partner')).toEqual({ ok: true, to: 'accepted' })
    expect(nextStatus('outgoing', 'queued', 'partner_refused', 'partner')).toEqual({ ok: true, to: 'refused' })
    // The late report itself is then no transition; the caller treats it as already done.
    expect(nextStatus('outgoing', 'accepted', 'transfer_delivered', 'system')).toMatchObject({
      ok: false,
      reason: 'illegal_transition',
    })
  })

  it('says actor_not_allowed when the action applies but not for that actor, and lists what the actor may do', () => {
    expect(nextStatus('incoming', 'received', 'accept', 'caseworker')).toEqual({
      ok: false,
      reason: 'actor_not_allowed',
      allowed: [],
    })
    expect(nextStatus('incoming', 'received', 'accept', 'system')).toEqual({
      ok: false,
      reason: 'actor_not_allowed',
      allowed: ['refuse'],
    })
    expect(nextStatus('outgoing', 'info_requested', 'supply_info', 'partner')).toEqual({
      ok: false,
      reason: 'actor_not_allowed',
      allowed: ['partner_decided'],
    })
  })

  it('moves nothing out of a final status', () => {
    for (const side of SIDES) {
      for (const status of finalsOf(side)) {
        for (const action of actionsOf(side)) {
          for (const actor of ACTORS) {
            expect(nextStatus(side, status, action, actor)).toEqual({
              ok: false,
              reason: 'illegal_transition',
              allowed: [],
            })
          }
        }
      }
    }
  })

  it('tells the partner of a withdrawal only once it has been sent the case', () => {
    expect(nextStatus('outgoing', 'submitted', 'withdraw', 'caseworker')).toEqual({ ok: true, to: 'withdrawn' })
    expect(nextStatus('outgoing', 'queued', 'withdraw', 'caseworker')).toEqual({
      ok: true,
      to: 'withdrawn',
      sends: 'case.withdrawn',
    })
  })

  it('does not let one side’s action apply to the other side, even where the status names agree', () => {
    // As a caller with a side read from the database passes them.
    expect(nextStatus('incoming' as Side, 'accepted', 'partner_decided', 'partner')).toMatchObject({
      reason: 'illegal_transition',
    })
    expect(nextStatus('outgoing' as Side, 'accepted', 'decide', 'reviewer')).toMatchObject({
      reason: 'illegal_transition',
    })
  })
})

describe('allowedActions', () => {
  it('lists the actions from a status in table order, for one actor when given', () => {
    expect(allowedActions('outgoing', 'queued')).toEqual([
      'transfer_delivered',
      'partner_accepted',
      'partner_refused',
      'withdraw',
    ])
    expect(allowedActions('outgoing', 'queued', 'partner')).toEqual(['partner_accepted', 'partner_refused'])
    expect(allowedActions('incoming', 'under_review', 'reviewer')).toEqual(['request_info', 'decide'])
    expect(allowedActions('incoming', 'info_supplied', 'partner')).toEqual(['partner_withdrew'])
  })
})

describe('federation messages', () => {
  it('maps every inbound case message to the partner action it triggers on the receiving side', () => {
    expect(Object.fromEntries(CASE_MESSAGE_TYPES.map((type) => [type, actionForInbound(type)]))).toEqual({
      'case.transfer': null,
      'case.accepted': 'partner_accepted',
      'case.refused': 'partner_refused',
      'case.info_requested': 'partner_requested_info',
      'case.info_supplied': 'partner_supplied_info',
      'case.decided': 'partner_decided',
      'case.withdrawn': 'partner_withdrew',
    })
    expect(INBOUND_EFFECTS).toEqual({
      'case.transfer': { kind: 'create', side: 'incoming', status: 'received' },
      'case.accepted': { kind: 'transition', side: 'outgoing', action: 'partner_accepted', actor: 'partner' },
      'case.refused': { kind: 'transition', side: 'outgoing', action: 'partner_refused', actor: 'partner' },
      'case.info_requested': {
        kind: 'transition',
        side: 'outgoing',
        action: 'partner_requested_info',
        actor: 'partner',
      },
      'case.info_supplied': { kind: 'transition', side: 'incoming', action: 'partner_supplied_info', actor: 'partner' },
      'case.decided': { kind: 'transition', side: 'outgoing', action: 'partner_decided', actor: 'partner' },
      'case.withdrawn': { kind: 'transition', side: 'incoming', action: 'partner_withdrew', actor: 'partner' },
    })
  })

  it('sends each message from one side and receives it on the other, and moves the two copies alike', () => {
    for (const row of TRANSITIONS) {
      if (!row.sends) continue
      const effect = INBOUND_EFFECTS[row.sends]
      expect(effect.side).not.toBe(row.side)
      if (effect.kind === 'create') {
        expect(row.sends).toBe('case.transfer')
        continue
      }
      const received = TRANSITIONS.find((r) => r.side === effect.side && r.action === effect.action)
      expect(received?.actors).toEqual(['partner'])
      // Both copies of the case name the same status afterwards.
      expect(received?.to).toBe(row.to)
    }
  })

  it('has a message behind every partner action, and every sent message type is one the design lists', () => {
    const triggered = CASE_MESSAGE_TYPES.map((type) => INBOUND_EFFECTS[type]).flatMap((effect) =>
      effect.kind === 'transition' ? [`${effect.side}:${effect.action}`] : [],
    )
    const partnerActions = TRANSITIONS.filter((row) => row.actors.includes('partner')).map(
      (row) => `${row.side}:${row.action}`,
    )
    expect([...new Set(partnerActions)].sort()).toEqual(triggered.sort())
    const sent = TRANSITIONS.flatMap((row) => (row.sends ? [row.sends] : []))
    expect([...new Set(sent)].sort()).toEqual([...CASE_MESSAGE_TYPES].sort())
  })
})

describe('describeLifecycle', () => {
  it('renders every row of the table', () => {
    const markdown = describeLifecycle()
    const tableRows = markdown.split('\n').filter((line) => line.startsWith('| `'))
    expect(tableRows).toHaveLength(TRANSITIONS.length + CASE_MESSAGE_TYPES.length)
    expect(markdown).toContain('| `partner_accepted` | `transferred`, `queued` | `accepted` | partner |  |  |')
    expect(markdown).toContain('| `refuse` | `received` | `refused` | reviewer, system | `case.refused` |')
    expect(markdown).toContain('| `case.withdrawn` | `partner_withdrew` on the incoming case |')
    expect(markdown).toContain('final: `residence_rejected`, `refused`, `decided`, `withdrawn`.')
  })
})

describe('lifecycle properties', () => {
  // Random (action, actor) pairs seldom fit the current status, so a walk would rarely leave the initial one. Half the
  // steps therefore pick one of the moves that applies (by index), the other half anything at all.
  const step = fc.oneof(
    fc.record({ kind: fc.constant('random' as const), action: fc.nat(), actor: fc.constantFrom(...ACTORS) }),
    fc.record({ kind: fc.constant('applicable' as const), pick: fc.nat() }),
  )

  type Step = typeof step extends fc.Arbitrary<infer T> ? T : never

  const canWithdraw = (side: Side, status: Status) => nextStatus(side, status, 'withdraw', 'caseworker').ok

  function walk(side: Side, steps: Step[]) {
    let status: Status = INITIAL_STATUS[side]
    const actions = actionsOf(side)
    for (const s of steps) {
      let action: Action | undefined
      let actor: Actor
      if (s.kind === 'random') {
        action = actions[s.action % actions.length]
        actor = s.actor
      } else {
        const moves = ACTORS.flatMap((a) => allowedActions(side, status, a).map((act) => [act, a] as const))
        const move = moves[s.pick % Math.max(moves.length, 1)]
        if (!move) {
          expect(isFinal(side, status)).toBe(true)
          continue
        }
        ;[action, actor] = move
      }
      if (action === undefined) throw new Error('no action')

      const final = isFinal(side, status)
      expect(canWithdraw(side, status)).toBe(side === 'outgoing' && !final)

      const result: NextStatus<Side> = nextStatus(side, status, action, actor)
      if (final) {
        expect(result).toEqual({ ok: false, reason: 'illegal_transition', allowed: [] })
        continue
      }
      if (!result.ok) {
        expect(result.allowed).toEqual(allowedActions(side, status, actor))
        expect(result.allowed).not.toContain(action)
        continue
      }
      const from = status
      const row = TRANSITIONS.find(
        (r) => r.side === side && r.action === action && (r.from as readonly string[]).includes(from),
      )
      expect(row).toBeDefined()
      expect(row?.actors).toContain(actor)
      expect(result.to).toBe(row?.to)
      expect(result.sends).toBe(row?.sends)
      status = result.to
    }
  }

  it('only ever follows table rows, never leaves a final status, and withdraws exactly from non-final ones', () => {
    fc.assert(
      fc.property(fc.constantFrom(...SIDES), fc.array(step, { maxLength: 30 }), (side, steps) => walk(side, steps)),
      { numRuns: 500 },
    )
  })
})
