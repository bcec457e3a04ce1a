import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import { mountWith, setup } from '../../testing'
import type { MockTransport } from '../../services/mockTransport'
import type { InviteView } from '../../types/model'
import { useInvitationsStore } from '../../stores/invitations'
import { useProfilesStore } from '../../stores/profiles'
import OutgoingCallDialog from './OutgoingCallDialog.vue'
import IncomingCallDialog from './IncomingCallDialog.vue'
import InCallView from './InCallView.vue'
import { ENDED_SHOWN_MS } from '../../stores/calls'
import { useServerStore } from '../../stores/server'

let t: MockTransport
const now = Date.now()

function inv(p: Partial<InviteView> = {}): InviteView {
  return {
    iid: 'i1', from: 'alice', to: 'me', room: 'call-i1', content: {}, state: 'pending', created: now, expires: now + 30_000,
    received: false, incoming: true, ringing: true, ...p,
  }
}

describe('outgoing call dialog', () => {
  beforeEach(() => {
    t = setup()
    document.body.innerHTML = ''
    useProfilesStore().setProfile({ user: 'bob', name: 'Bob Stone', avatar: 'avatar:2', status: '' })
  })

  const cases: Array<[Partial<InviteView>, string, boolean]> = [
    [{ state: 'pending', received: false }, 'Ringing…', true],
    [{ state: 'pending', received: true }, 'Ringing (seen)', true],
    [{ state: 'refused' }, 'Declined', false],
    [{ state: 'canceled' }, 'Cancelled', false],
    [{ state: 'expired' }, 'No answer', false],
    [{ state: 'failed', reason: 'unknown_user' }, "Couldn't call: this user has never signed in", false],
  ]
  it.each(cases)('%o reads "%s"', async (p, label, cancellable) => {
    const s = useInvitationsStore()
    s.byIid.set('o1', inv({ iid: 'o1', from: 'me', to: 'bob', incoming: false, ringing: false, ...p }))
    s.outgoingIid = 'o1'
    const w = mountWith(OutgoingCallDialog)
    await flushPromises()
    expect(w.find('[data-testid="call-phase"]').text()).toBe(label)
    expect(w.text()).toContain('Bob Stone')
    expect(w.find('[data-testid="cancel-call"]').exists()).toBe(cancellable)
    expect(w.find('[data-testid="countdown-ring"]').exists()).toBe(cancellable)
  })

  it('Cancel cancels the invitation', async () => {
    const s = useInvitationsStore()
    t.profilesByUser.set('bob', { user: 'bob', name: 'Bob Stone', avatar: '', status: '' })
    await s.callUser('bob')
    const w = mountWith(OutgoingCallDialog)
    await flushPromises()
    await w.find('[data-testid="cancel-call"]').trigger('click')
    await flushPromises()
    expect(t.callsOf('cancelInvite')).toHaveLength(1)
    expect(w.find('[data-testid="call-phase"]').text()).toBe('Cancelled')
  })
})

describe('incoming call dialog', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    t = setup()
    document.body.innerHTML = ''
    useProfilesStore().setProfile({ user: 'alice', name: 'Alice Martin', avatar: 'avatar:3', status: '' })
  })
  afterEach(() => vi.useRealTimers())

  function ring() {
    t.inviteMap.set('i1', inv())
    t.emit({ type: 'invite', invite: inv() })
  }

  it('rings with the caller’s name and Accept / Decline', async () => {
    ring()
    const w = mountWith(IncomingCallDialog)
    await flushPromises()
    expect(w.find('[data-testid="caller-name"]').text()).toBe('Alice Martin')
    expect(w.find('[data-testid="call-phase"]').text()).toBe('Incoming call')
    expect(w.find('[data-testid="accept"]').attributes('aria-label')).toBe('Accept')
    expect(w.find('[data-testid="accept"]').classes()).toContain('bg-online')
    expect(w.find('[data-testid="decline"]').exists()).toBe(true)
  })

  it('Accept answers and opens the in-call view; hang-up ends the call, and the view closes at its end', async () => {
    ring()
    const w = mountWith(IncomingCallDialog)
    const call = mountWith(InCallView)
    await flushPromises()
    await w.find('[data-testid="accept"]').trigger('click')
    await flushPromises()
    expect(t.callsOf('answer')).toEqual([['i1', true, {}]])
    expect(w.find('[data-testid="incoming-call"]').exists()).toBe(false)
    expect(call.find('[data-testid="call-peer"]').text()).toBe('Alice Martin')
    expect(call.find('[data-testid="call-status"]').text()).toBe('In call')
    useServerStore().info = { features: ['v1.1', 'v1.2'], edit_window_s: null, recall_window_s: null }
    await flushPromises()
    expect(call.find('[data-testid="call-status"]').text()).toBe('Connecting…')
    t.emitCall({ iid: 'i1', event: { type: 'started', peer: 'alice', video: false, caller: false } })
    t.emitCall({ iid: 'i1', event: { type: 'state', phase: 'connected', reason: null, by_peer: false } })
    await flushPromises()
    expect(call.find('[data-testid="call-status"]').text()).toBe('Connected')
    await call.find('[data-testid="hang-up"]').trigger('click')
    await flushPromises()
    expect(t.callsOf('callHangup')).toHaveLength(1)
    t.emitCall({ iid: 'i1', event: { type: 'state', phase: 'ended', reason: 'hangup', by_peer: false } })
    await flushPromises()
    expect(call.find('[data-testid="call-status"]').text()).toBe('Call ended')
    vi.advanceTimersByTime(ENDED_SHOWN_MS)
    await flushPromises()
    expect(call.find('[data-testid="in-call"]').exists()).toBe(false)
  })

  it('the call timer counts from when media connected, however long the view was mounted', async () => {
    // Only Date is faked: the shared one-second clock (useNow) keeps ticking and reads it.
    vi.useFakeTimers({ toFake: ['Date'] })
    const start = Date.now()
    const call = mountWith(InCallView)
    vi.setSystemTime(start + 95_000)
    ring()
    const w = mountWith(IncomingCallDialog)
    await flushPromises()
    await w.find('[data-testid="accept"]').trigger('click')
    t.emitCall({ iid: 'i1', event: { type: 'started', peer: 'alice', video: false, caller: false } })
    await flushPromises()
    expect(call.find('[data-testid="call-timer"]').exists()).toBe(false)
    vi.setSystemTime(start + 100_000)
    t.emitCall({ iid: 'i1', event: { type: 'state', phase: 'connected', reason: null, by_peer: false } })
    vi.setSystemTime(start + 100_000 + 61_000)
    await vi.waitFor(() => expect(call.find('[data-testid="call-timer"]').text()).toBe('1:01'), { timeout: 5000 })
  })

  it('Decline refuses, shows Declined, then closes', async () => {
    ring()
    const w = mountWith(IncomingCallDialog)
    await flushPromises()
    await w.find('[data-testid="decline"]').trigger('click')
    await flushPromises()
    expect(t.callsOf('answer')).toEqual([['i1', false, {}]])
    expect(w.find('[data-testid="call-phase"]').text()).toBe('Declined')
    vi.runAllTimers()
    await flushPromises()
    expect(w.find('[data-testid="incoming-call"]').exists()).toBe(false)
  })

  it.each([
    [{ state: 'accepted' }, 'Answered on another device'],
    [{ state: 'refused' }, 'Answered on another device'],
    [{ state: 'canceled' }, 'Caller hung up'],
    [{ state: 'expired' }, 'Missed call'],
  ] as const)('closes with "%s" → "%s"', async (p, label) => {
    ring()
    const w = mountWith(IncomingCallDialog)
    await flushPromises()
    t.emit({ type: 'invite', invite: inv({ ...p, ringing: false }) })
    await flushPromises()
    expect(w.find('[data-testid="call-phase"]').text()).toBe(label)
    expect(w.find('[data-testid="accept"]').exists()).toBe(false)
    vi.runAllTimers()
    await flushPromises()
    expect(w.find('[data-testid="incoming-call"]').exists()).toBe(false)
    expect(useInvitationsStore().call).toBeNull()
  })
})
