// The shell's own events: deep links (U1), notices as toasts (U2), settings
// from the tray (U3), and telling the shell the open conversation (U4).
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import { mountWith, setup } from '../testing'
import type { MockTransport } from '../services/mockTransport'
import { startApp, subscribeShell } from './startup'
import { useConversationsStore } from './conversations'
import { useInvitationsStore } from './invitations'
import { useToastsStore, TOAST_MS } from './toasts'
import { useSettingsStore } from './settings'
import { useUiStore } from './ui'
import { useSessionStore } from './session'
import { useProfilesStore } from './profiles'
import { DEFAULT_SETTINGS } from '../types/app'
import type { InviteView } from '../types/model'
import Toasts from '../components/common/Toasts.vue'

function invite(partial: Partial<InviteView> & { iid: string }): InviteView {
  const now = Date.now()
  return {
    from: 'alice', to: 'me', room: `call-${partial.iid}`, content: { kind: 'call' }, state: 'pending',
    created: now, expires: now + 45_000, received: true, incoming: true, ringing: false, ...partial,
  }
}

describe('deep links (U1)', () => {
  let t: MockTransport
  beforeEach(async () => {
    t = setup()
    await subscribeShell()
  })

  it('chat: opens (creating) the DM with the user', async () => {
    await startApp()
    t.emitDeepLink({ kind: 'chat', user: 'bob' })
    await flushPromises()
    const c = useConversationsStore()
    expect(c.activeConv).toBe('dm:bob:me')
    expect(c.byConv.get('dm:bob:me')?.peer).toBe('bob')
  })

  it('chat: opens an existing DM without creating another', async () => {
    t.addConversation({ conv: 'dm:alice:me', unread: 2 })
    await startApp()
    t.emitDeepLink({ kind: 'chat', user: 'alice' })
    await flushPromises()
    const c = useConversationsStore()
    expect(c.activeConv).toBe('dm:alice:me')
    expect(c.byConv.get('dm:alice:me')?.unread).toBe(2)
  })

  it('channel: shows the channel and asks; joins and opens ch:<name> only on yes', async () => {
    t.channelList.push({ channel: 'rust', title: 'Rust', topic: 'ownership', private: false, members: 3 })
    await startApp()
    t.emitDeepLink({ kind: 'channel', channel: 'rust' })
    await flushPromises()
    const ui = useUiStore()
    expect(t.callsOf('join')).toEqual([])
    expect(ui.confirming?.title).toBe('deepLink.joinTitle')
    expect(ui.confirming?.params).toMatchObject({ channel: 'rust', title: 'Rust', topic: 'ownership', members: '3' })
    ui.answerConfirm(true)
    await flushPromises()
    expect(t.callsOf('join')).toEqual([['rust']])
    expect(useConversationsStore().activeConv).toBe('ch:rust')
  })

  it('channel: a declined link joins nothing', async () => {
    t.channelList.push({ channel: 'rust', title: 'Rust', topic: '', private: false, members: 3 })
    await startApp()
    t.emitDeepLink({ kind: 'channel', channel: 'rust' })
    await flushPromises()
    useUiStore().answerConfirm(false)
    await flushPromises()
    expect(t.callsOf('join')).toEqual([])
    expect(useConversationsStore().activeConv).toBeNull()
  })

  it('channel: a member just opens it (no join)', async () => {
    t.addConversation({ conv: 'ch:general' })
    await startApp()
    t.emitDeepLink({ kind: 'channel', channel: 'general' })
    await flushPromises()
    expect(t.callsOf('join')).toEqual([])
    expect(useConversationsStore().activeConv).toBe('ch:general')
  })

  it('channel: a refused join shows an error toast and opens nothing', async () => {
    t.failNext('join', 'forbidden', 'forbidden')
    await startApp()
    t.emitDeepLink({ kind: 'channel', channel: 'secret' })
    await flushPromises()
    expect(useUiStore().confirming?.message).toBe('deepLink.joinUnlisted')
    useUiStore().answerConfirm(true)
    await flushPromises()
    expect(useConversationsStore().activeConv).toBeNull()
    expect(useToastsStore().toasts.map((x) => x.level)).toEqual(['error'])
  })

  it('call: shows a known incoming invitation', async () => {
    t.inviteMap.set('i1', invite({ iid: 'i1' }))
    await startApp()
    const inv = useInvitationsStore()
    inv.incomingIid = null
    t.emitDeepLink({ kind: 'call', iid: 'i1' })
    await flushPromises()
    expect(inv.incomingIid).toBe('i1')
  })

  it('call: fetches an invitation not known yet, and shows an outgoing one as such', async () => {
    await startApp()
    t.inviteMap.set('i2', invite({ iid: 'i2', from: 'me', to: 'bob', incoming: false }))
    t.emitDeepLink({ kind: 'call', iid: 'i2' })
    await flushPromises()
    expect(useInvitationsStore().outgoingIid).toBe('i2')
  })

  it('call: an unknown invitation is an error toast', async () => {
    await startApp()
    t.emitDeepLink({ kind: 'call', iid: 'nope' })
    await flushPromises()
    expect(useInvitationsStore().incomingIid).toBeNull()
    expect(useToastsStore().toasts[0]?.key).toBe('toast.callNotFound')
  })

  it('cold start: asks last_deep_link once after start-up and handles it', async () => {
    t.pendingDeepLink = { kind: 'chat', user: 'carol' }
    await startApp()
    await startApp()
    expect(t.callsOf('lastDeepLink')).toHaveLength(1)
    expect(useConversationsStore().activeConv).toBe('dm:carol:me')
  })

  it('a link arriving before start-up waits for it', async () => {
    t.emitDeepLink({ kind: 'chat', user: 'dave' })
    await flushPromises()
    expect(useConversationsStore().activeConv).toBeNull()
    await startApp()
    expect(useConversationsStore().activeConv).toBe('dm:dave:me')
  })
})

describe('notices (U2)', () => {
  let t: MockTransport
  beforeEach(async () => {
    vi.useFakeTimers()
    t = setup()
    await subscribeShell()
  })
  afterEach(() => vi.useRealTimers())

  it('shows a notice as a toast, errors red, gone after ~5 s', async () => {
    const w = mountWith(Toasts)
    t.emitNotice({ level: 'error', message: 'malformed link' })
    t.emitNotice({ level: 'info', message: 'hello' })
    await w.vm.$nextTick()
    const items = w.findAll('[data-testid="toast"]')
    expect(items.map((i) => i.text())).toEqual([expect.stringContaining('malformed link'), expect.stringContaining('hello')])
    expect(items[0].classes()).toContain('bg-danger')
    expect(items[0].attributes('role')).toBe('alert')
    expect(items[1].classes()).not.toContain('bg-danger')
    expect(w.find('[data-testid="toasts"]').attributes('aria-live')).toBe('polite')
    vi.advanceTimersByTime(TOAST_MS - 10)
    await w.vm.$nextTick()
    expect(w.findAll('[data-testid="toast"]')).toHaveLength(2)
    vi.advanceTimersByTime(20)
    await w.vm.$nextTick()
    expect(w.findAll('[data-testid="toast"]')).toHaveLength(0)
    w.unmount()
  })

  it('can be dismissed early', () => {
    const toasts = useToastsStore()
    t.emitNotice({ level: 'info', message: 'x' })
    toasts.dismiss(toasts.toasts[0].id)
    expect(toasts.toasts).toEqual([])
  })
})

describe('settings from the shell (U3)', () => {
  it('applies the full settings object', async () => {
    const t = setup()
    await subscribeShell()
    t.emitSettings({ ...DEFAULT_SETTINGS, do_not_disturb: true })
    expect(useSettingsStore().settings.do_not_disturb).toBe(true)
  })
})

describe('active conversation (U4)', () => {
  it('tells the shell whenever the open conversation changes', () => {
    const t = setup()
    const c = useConversationsStore()
    c.open('ch:general')
    c.openDm('me', 'bob')
    c.open(null)
    expect(t.callsOf('setActiveConversation')).toEqual([['ch:general'], ['dm:bob:me'], [null]])
  })

  it('also when the open conversation is removed', () => {
    const t = setup()
    const c = useConversationsStore()
    c.open('ch:general')
    c.remove('ch:general')
    expect(t.callsOf('setActiveConversation')).toEqual([['ch:general'], [null]])
  })
})

describe('sign-in profile (U5)', () => {
  it('shows the chosen nickname at once, without waiting for an event', async () => {
    const t = setup()
    t.emit = () => {} // no profile event reaches the stores
    const session = useSessionStore()
    session.account = null
    await session.signIn({ mode: 'embedded' } as never, { name: 'Zed', avatar: 'a1', status: 'hi' })
    expect(useProfilesStore().nameOf(session.me)).toBe('Zed')
  })
})
