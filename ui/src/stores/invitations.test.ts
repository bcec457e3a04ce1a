import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { toRaw } from 'vue'
import { setup } from '../testing'
import type { MockTransport } from '../services/mockTransport'
import type { InviteView } from '../types/model'
import type { InviteState } from '../types/protocol'
import { routeEvent } from './events'
import { FINAL_STATE_MS, incomingPhase, outgoingPhase, useInvitationsStore } from './invitations'

let t: MockTransport

/** How many times `needle` is reachable from `root` (objects, arrays, maps, sets). */
function retainedStrings(root: unknown, needle: string): number {
  const seen = new Set<object>()
  let n = 0
  const walk = (v: unknown): void => {
    if (v === needle) n++
    if (v === null || typeof v !== 'object' || seen.has(v)) return
    seen.add(v)
    const o = toRaw(v)
    if (o instanceof Map) o.forEach((x, k) => (walk(k), walk(x)))
    else if (o instanceof Set) o.forEach(walk)
    else Object.values(o).forEach(walk)
  }
  walk(root)
  return n
}

function inv(p: Partial<InviteView> = {}): InviteView {
  return {
    iid: 'i1', from: 'alice', to: 'me', room: 'call-i1', content: {}, state: 'pending', created: 1000, expires: 61_000,
    received: false, incoming: true, ringing: true, ...p,
  }
}

describe('what the cards say', () => {
  it('outgoing: every state', () => {
    const cases: Array<[InviteState, boolean, string]> = [
      ['pending', false, 'ringing'],
      ['pending', true, 'ringing_seen'],
      ['accepted', true, 'accepted'],
      ['refused', true, 'declined'],
      ['canceled', false, 'cancelled'],
      ['expired', true, 'no_answer'],
      ['failed', false, 'failed'],
    ]
    for (const [state, received, phase] of cases) expect(outgoingPhase(inv({ state, received, incoming: false }))).toBe(phase)
  })

  it('incoming: every state, answered here or elsewhere', () => {
    expect(incomingPhase(inv(), null)).toBe('ringing')
    expect(incomingPhase(inv({ state: 'accepted' }), 'accept')).toBe('accepted')
    expect(incomingPhase(inv({ state: 'accepted' }), null)).toBe('answered_elsewhere')
    expect(incomingPhase(inv({ state: 'refused' }), 'refuse')).toBe('declined')
    expect(incomingPhase(inv({ state: 'refused' }), null)).toBe('answered_elsewhere')
    expect(incomingPhase(inv({ state: 'canceled' }), null)).toBe('cancelled')
    expect(incomingPhase(inv({ state: 'expired' }), null)).toBe('missed')
    expect(incomingPhase(inv({ state: 'failed' }), null)).toBe('missed')
  })
})

describe('invitations store', () => {
  beforeEach(() => {
    vi.useFakeTimers()
    t = setup()
    t.profilesByUser.set('bob', { user: 'bob', name: 'Bob', avatar: '', status: '' })
  })
  afterEach(() => vi.useRealTimers())

  it('outgoing: ringing → seen → accepted opens the call', async () => {
    const s = useInvitationsStore()
    await s.callUser('bob')
    expect(t.callsOf('invite')[0][0]).toBe('bob')
    expect(s.outgoingState).toBe('ringing')
    const v = s.outgoing!
    routeEvent({ type: 'invite', invite: { ...v, received: true } })
    expect(s.outgoingState).toBe('ringing_seen')
    routeEvent({ type: 'invite', invite: { ...v, received: true, state: 'accepted' } })
    expect(s.outgoing).toBeNull()
    expect(s.call?.iid).toBe(v.iid)
    expect(s.call?.room).toBe(`call-${v.iid}`)
  })

  for (const [state, phase] of [['refused', 'declined'], ['expired', 'no_answer']] as const) {
    it(`outgoing: ${state} shows "${phase}" for a moment, then closes`, async () => {
      const s = useInvitationsStore()
      await s.callUser('bob')
      routeEvent({ type: 'invite', invite: { ...s.outgoing!, state } })
      expect(s.outgoingState).toBe(phase)
      expect(s.call).toBeNull()
      vi.advanceTimersByTime(FINAL_STATE_MS)
      expect(s.outgoing).toBeNull()
    })
  }

  it('outgoing: Cancel cancels on the server and shows "cancelled"', async () => {
    const s = useInvitationsStore()
    await s.callUser('bob')
    await s.cancel()
    expect(t.callsOf('cancelInvite')).toHaveLength(1)
    expect(s.outgoingState).toBe('cancelled')
    vi.advanceTimersByTime(FINAL_STATE_MS)
    expect(s.outgoing).toBeNull()
  })

  it('outgoing: an unknown callee fails at once', async () => {
    const s = useInvitationsStore()
    t.when('invite').answer((to) => t.putInvite(inv({ iid: 'i7', from: 'me', to, incoming: false, ringing: false, state: 'failed', reason: 'unknown_user' })))
    await s.callUser('nobody')
    expect(s.outgoingState).toBe('failed')
    expect(s.outgoing?.reason).toBe('unknown_user')
    vi.advanceTimersByTime(FINAL_STATE_MS)
    expect(s.outgoing).toBeNull()
  })

  it('outgoing: a stale pending copy never reopens a final invitation', async () => {
    const s = useInvitationsStore()
    await s.callUser('bob')
    const v = s.outgoing!
    routeEvent({ type: 'invite', invite: { ...v, state: 'refused' } })
    routeEvent({ type: 'invite', invite: { ...v, state: 'pending', received: true } })
    expect(s.outgoingState).toBe('declined')
  })

  it('incoming: rings, Accept answers and opens the call', async () => {
    const s = useInvitationsStore()
    t.inviteMap.set('i1', inv())
    routeEvent({ type: 'invite', invite: inv() })
    expect(s.incomingState).toBe('ringing')
    await s.answer(true)
    expect(t.callsOf('answer')).toEqual([['i1', true, {}]])
    expect(s.incoming).toBeNull()
    expect(s.call?.iid).toBe('i1')
  })

  it('incoming: Decline refuses and closes', async () => {
    const s = useInvitationsStore()
    t.inviteMap.set('i1', inv())
    routeEvent({ type: 'invite', invite: inv() })
    await s.answer(false)
    expect(t.callsOf('answer')).toEqual([['i1', false, {}]])
    expect(s.incomingState).toBe('declined')
    expect(s.call).toBeNull()
    vi.advanceTimersByTime(FINAL_STATE_MS)
    expect(s.incoming).toBeNull()
  })

  it('incoming: answered on another device closes with that message', () => {
    const s = useInvitationsStore()
    routeEvent({ type: 'invite', invite: inv() })
    routeEvent({ type: 'invite', invite: inv({ state: 'accepted', ringing: false }) })
    expect(s.incomingState).toBe('answered_elsewhere')
    expect(s.call).toBeNull()
    vi.advanceTimersByTime(FINAL_STATE_MS)
    expect(s.incoming).toBeNull()
  })

  /** Routes `invite` events of i1 in these states, as this device's own answer when `here`. */
  const deliver = (...states: Array<[InviteView['state'], boolean?]>) =>
    states.forEach(([state, here]) => routeEvent({ type: 'invite', invite: inv({ state, ringing: state === 'pending', answered_here: here }) }))

  it('incoming: Decline on the OS notification says declined, not answered elsewhere', () => {
    const s = useInvitationsStore()
    // The server's event may come first; the shell's answer then reports it
    // as this device's, and a later copy (a sync) does not take it back.
    deliver(['pending'], ['refused'], ['refused', true])
    expect(s.incomingState).toBe('declined')
    deliver(['refused'])
    expect([s.incomingState, s.call]).toEqual(['declined', null])
  })

  it('incoming: Accept on the OS notification opens the call', () => {
    const s = useInvitationsStore()
    deliver(['pending'], ['accepted', true])
    expect([s.incoming, s.call?.iid]).toEqual([null, 'i1'])
  })

  it('incoming: losing the race to another device (invite_final) shows answered elsewhere', async () => {
    const s = useInvitationsStore()
    t.failNext('answer', 'invite_final', 'already answered')
    routeEvent({ type: 'invite', invite: inv() })
    await s.answer(true)
    expect(s.error).toBe('already answered')
    routeEvent({ type: 'invite', invite: inv({ state: 'accepted', ringing: false }) })
    expect(s.incomingState).toBe('answered_elsewhere')
    expect(s.call).toBeNull()
  })

  it('incoming: the caller hanging up or the time running out stops the ringing', () => {
    const s = useInvitationsStore()
    routeEvent({ type: 'invite', invite: inv() })
    routeEvent({ type: 'invite', invite: inv({ state: 'canceled', ringing: false }) })
    expect(s.incomingState).toBe('cancelled')
    vi.advanceTimersByTime(FINAL_STATE_MS)
    routeEvent({ type: 'invite', invite: inv({ iid: 'i2' }) })
    routeEvent({ type: 'invite', invite: inv({ iid: 'i2', state: 'expired', ringing: false }) })
    expect(s.incomingState).toBe('missed')
  })

  it('hang-up ends a running call through the media engine; a call without media just closes', async () => {
    const s = useInvitationsStore()
    await s.callUser('bob')
    const iid = s.outgoing!.iid
    routeEvent({ type: 'invite', invite: { ...s.outgoing!, state: 'accepted' } })
    t.emitCall({ iid, event: { type: 'started', peer: 'bob', video: false, caller: true } })
    await s.hangUp()
    expect(t.callsOf('callHangup')).toHaveLength(1)
    expect(s.call?.iid).toBe(iid)
    expect(t.callsOf('signal')).toEqual([])

    routeEvent({ type: 'invite', invite: inv({ iid: 'i9', state: 'pending' }) })
    await (t.inviteMap.set('i9', inv({ iid: 'i9' })), s.answer(true))
    expect(s.call?.iid).toBe('i9')
    t.failNext('callHangup', 'no_call', 'no call')
    await s.hangUp()
    expect(s.call).toBeNull()
    expect(s.error).toBeNull()
    expect(t.callsOf('callHangup')).toHaveLength(2)
  })

  it('a hang-up before the shell started the accepted call reaches the shell, and the start does not reopen the view', async () => {
    const s = useInvitationsStore()
    routeEvent({ type: 'invite', invite: inv({ iid: 'i7', state: 'pending' }) })
    await (t.inviteMap.set('i7', inv({ iid: 'i7' })), s.answer(true))
    expect(s.call?.iid).toBe('i7')
    await s.hangUp()
    expect(s.call).toBeNull()
    expect(t.callsOf('callHangup')).toHaveLength(1)
    // The shell starts the call (and ends it at once): the view stays closed.
    t.emitCall({ iid: 'i7', event: { type: 'started', peer: 'alice', video: false, caller: false } })
    expect(s.call).toBeNull()
    // A later call is shown as usual.
    routeEvent({ type: 'invite', invite: inv({ iid: 'i8', state: 'pending' }) })
    await (t.inviteMap.set('i8', inv({ iid: 'i8' })), s.answer(true))
    t.emitCall({ iid: 'i8', event: { type: 'started', peer: 'alice', video: false, caller: false } })
    expect(s.call?.iid).toBe('i8')
  })

  it('a peer without a media engine ends the view with its hangup signal; a running call ignores it', async () => {
    const s = useInvitationsStore()
    routeEvent({ type: 'invite', invite: inv({ iid: 'i9', state: 'pending' }) })
    await (t.inviteMap.set('i9', inv({ iid: 'i9' })), s.answer(true))
    routeEvent({ type: 'signal', from: 'alice', to: { call: 'other' }, body: { type: 'hangup' }, ts: 1 })
    expect(s.call?.iid).toBe('i9')
    t.emitCall({ iid: 'i9', event: { type: 'started', peer: 'alice', video: false, caller: false } })
    routeEvent({ type: 'signal', from: 'alice', to: { call: 'i9' }, body: { type: 'hangup' }, ts: 2 })
    expect(s.call?.iid).toBe('i9')
    t.emitCall({ iid: 'i9', event: { type: 'state', phase: 'ended', reason: 'hangup', by_peer: true } })
    routeEvent({ type: 'signal', from: 'alice', to: { call: 'i9' }, body: { type: 'hangup' }, ts: 3 })
    expect(s.call).toBeNull()
  })

  it('a peer flooding the open call with large signals leaves nothing of them in the store', async () => {
    const s = useInvitationsStore()
    routeEvent({ type: 'invite', invite: inv({ iid: 'i9', state: 'pending' }) })
    await (t.inviteMap.set('i9', inv({ iid: 'i9' })), s.answer(true))
    t.emitCall({ iid: 'i9', event: { type: 'started', peer: 'alice', video: false, caller: false } })
    const blob = 'x'.repeat(60_000)
    for (let i = 0; i < 10_000; i++) {
      routeEvent({ type: 'signal', from: 'alice', to: { call: 'i9' }, body: { type: 'candidate', blob }, ts: i })
    }
    expect(s.call?.iid).toBe('i9')
    expect(retainedStrings(s.$state, blob)).toBe(0)
  })

  it('a video call asks for video in the invitation', async () => {
    const s = useInvitationsStore()
    await s.callUser('bob', true)
    await s.callUser('carol')
    expect(t.callsOf('invite').map((a) => a[1])).toEqual([
      { kind: 'call', media: 'video', video: true },
      { kind: 'call', media: 'audio', video: false },
    ])
  })
})
