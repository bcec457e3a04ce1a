// A conversation opened by an outside link (`courier://chat/mallory`, which
// any web page can open): the DM shows, but no read receipt tells Mallory
// this user is there until the user does something in it.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import { mountWith, setup } from '../../testing'
import type { MockTransport } from '../../services/mockTransport'
import { useConversationsStore } from '../../stores/conversations'
import { useDeepLinksStore } from '../../stores/deepLinks'
import ConversationPane from './ConversationPane.vue'

const MALLORY = 'dm:mallory:me'
let t: MockTransport

describe('a conversation opened by a link', () => {
  beforeEach(async () => {
    t = setup()
    document.body.innerHTML = ''
    // happy-dom has no layout: a viewport where every message fits, so an
    // ordinary open marks the conversation read at once.
    vi.spyOn(HTMLElement.prototype, 'clientHeight', 'get').mockReturnValue(600)
    vi.spyOn(HTMLElement.prototype, 'clientWidth', 'get').mockReturnValue(800)
    vi.spyOn(HTMLElement.prototype, 'offsetHeight', 'get').mockReturnValue(60)
    vi.spyOn(HTMLElement.prototype, 'scrollHeight', 'get').mockReturnValue(600)
    t.addConversation({ conv: MALLORY, kind: 'dm', peer: 'mallory' })
    t.addMessage({ conv: MALLORY, from: 'mallory', ts: Date.now() - 30_000, body: { text: 'are you there?' } })
    t.addConversation({ conv: 'dm:bob:me', kind: 'dm', peer: 'bob' })
    await useConversationsStore().load()
  })
  afterEach(() => vi.restoreAllMocks())

  async function pane(conv: string) {
    const w = mountWith(ConversationPane, { props: { conv } })
    await flushPromises()
    await flushPromises()
    return w
  }

  it('is not marked read until the user interacts with it', async () => {
    const conversations = useConversationsStore()
    await useDeepLinksStore().handle({ kind: 'chat', user: 'mallory' })
    expect(conversations.activeConv).toBe(MALLORY)
    const w = await pane(MALLORY)
    expect(w.text()).toContain('are you there?')
    expect(t.callsOf('markRead')).toEqual([])
    expect(conversations.byConv.get(MALLORY)?.unread).toBe(1)
    // A message arriving meanwhile is not read either.
    t.receive({ conv: MALLORY, from: 'mallory', body: { text: 'hello?' } })
    await flushPromises()
    expect(t.callsOf('markRead')).toEqual([])
    // The user clicks in the conversation: read by the usual rule.
    await w.find('[data-testid="message-list"]').trigger('pointerdown')
    await flushPromises()
    expect(t.callsOf('markRead')).toEqual([[MALLORY, null]])
    expect(conversations.byConv.get(MALLORY)?.unread).toBe(0)
  })

  it('typing in the composer or focusing the list counts as interacting', async () => {
    await useDeepLinksStore().handle({ kind: 'chat', user: 'mallory' })
    const w = await pane(MALLORY)
    expect(t.callsOf('markRead')).toEqual([])
    await w.find('textarea').trigger('keydown', { key: 'h' })
    await flushPromises()
    expect(t.callsOf('markRead')).toHaveLength(1)

    t.receive({ conv: MALLORY, from: 'mallory', body: { text: 'again' } })
    useConversationsStore().holdRead(MALLORY)
    await flushPromises()
    w.unmount()
    const again = await pane(MALLORY)
    expect(t.callsOf('markRead')).toHaveLength(1)
    await again.find('[data-testid="message-list"]').trigger('focusin')
    await flushPromises()
    expect(t.callsOf('markRead')).toHaveLength(2)
  })

  it('ordinary navigation marks it read as before, also after leaving a linked one', async () => {
    const conversations = useConversationsStore()
    await useDeepLinksStore().handle({ kind: 'chat', user: 'mallory' })
    conversations.open('dm:bob:me')
    conversations.open(MALLORY)
    await pane(MALLORY)
    expect(t.callsOf('markRead')).toEqual([[MALLORY, null]])
  })
})
