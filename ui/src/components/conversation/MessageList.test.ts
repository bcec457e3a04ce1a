import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import { markRaw, nextTick } from 'vue'
import { msg, mountWith, setup, updated } from '../../testing'
import type { MockTransport } from '../../services/mockTransport'
import { useMessagesStore } from '../../stores/messages'
import { useConversationsStore } from '../../stores/conversations'
import { useServerStore } from '../../stores/server'
import { useUiStore } from '../../stores/ui'
import ConfirmDialog from '../dialogs/ConfirmDialog.vue'
import MessageList from './MessageList.vue'
import MessageBubble from './MessageBubble.vue'

const DM = 'dm:alice:me'
let t: MockTransport

describe('MessageList', () => {
  beforeEach(() => {
    t = setup()
    document.body.innerHTML = ''
    t.addConversation({ conv: DM })
    // happy-dom has no layout: give the scroller a viewport so rows render.
    // The virtualizer reads the viewport from clientWidth/clientHeight and row sizes from offsetHeight.
    vi.spyOn(HTMLElement.prototype, 'clientHeight', 'get').mockReturnValue(600)
    vi.spyOn(HTMLElement.prototype, 'clientWidth', 'get').mockReturnValue(800)
    vi.spyOn(HTMLElement.prototype, 'offsetHeight', 'get').mockReturnValue(60)
  })
  afterEach(() => vi.restoreAllMocks())

  async function open() {
    await useConversationsStore().load()
    const w = mountWith(MessageList, { props: { conv: DM, isChannel: false } })
    await useMessagesStore().openLatest(DM)
    await flushPromises()
    return w
  }

  it('shows skeleton rows while loading', async () => {
    const s = useMessagesStore()
    s.stateOf(DM).loading = true
    const w = mountWith(MessageList, { props: { conv: DM, isChannel: false } })
    expect(w.find('[data-testid="list-loading"]').exists()).toBe(true)
    expect(w.find('[role="log"]').attributes('aria-busy')).toBe('true')
  })

  it('invites to say hello when the conversation is empty', async () => {
    const w = await open()
    expect(w.find('[data-testid="list-empty"]').text()).toContain('Say hello')
  })

  it('offers a retry when history fails to load', async () => {
    t.failNext('history', 'internal', 'database is locked')
    await useConversationsStore().load()
    t.failNext('history', 'internal', 'database is locked')
    const w = mountWith(MessageList, { props: { conv: DM, isChannel: false } })
    await useMessagesStore().openLatest(DM)
    await flushPromises()
    expect(w.find('[data-testid="list-error"]').text()).toContain('database is locked')
    await w.find('[data-testid="list-error"] button').trigger('click')
    await flushPromises()
    expect(w.find('[data-testid="list-error"]').exists()).toBe(false)
  })

  it('renders messages in a polite log with a day separator and the unread divider', async () => {
    t.addMessage({ conv: DM, from: 'me', ts: Date.now() - 60_000, body: { text: 'question' } })
    t.addMessage({ conv: DM, from: 'alice', ts: Date.now() - 30_000, body: { text: 'answer one' } })
    t.addMessage({ conv: DM, from: 'alice', ts: Date.now() - 20_000, body: { text: 'answer two' } })
    const w = await open()
    const log = w.find('[role="log"]')
    expect(log.attributes('aria-live')).toBe('polite')
    const texts = w.findAll('[data-testid="message-text"]').map((n) => n.text())
    expect(texts).toEqual(['question', 'answer one', 'answer two'])
    expect(w.findAll('[data-testid="day-separator"]')).toHaveLength(1)
    const divider = w.find('[data-testid="new-divider"]')
    expect(divider.exists()).toBe(true)
    // The divider sits right above the first unread message.
    expect(divider.element.closest('[data-seq]')?.getAttribute('data-seq')).toBe('2')
  })

  it('marks a conversation read when its unread messages fit on screen without scrolling', async () => {
    vi.spyOn(HTMLElement.prototype, 'scrollHeight', 'get').mockReturnValue(600)
    t.addMessage({ conv: DM, from: 'me', ts: Date.now() - 60_000, body: { text: 'question' } })
    t.addMessage({ conv: DM, from: 'alice', ts: Date.now() - 30_000, body: { text: 'answer' } })
    await open()
    await flushPromises()
    expect(t.callsOf('markRead').length).toBe(1)
    expect(useConversationsStore().byConv.get(DM)?.unread).toBe(0)
  })

  it('leaves it unread while the unread messages run below the fold', async () => {
    vi.spyOn(HTMLElement.prototype, 'scrollHeight', 'get').mockReturnValue(6000)
    t.addMessage({ conv: DM, from: 'me', ts: Date.now() - 60_000, body: { text: 'question' } })
    for (let i = 0; i < 3; i++) t.addMessage({ conv: DM, from: 'alice', ts: Date.now() - 30_000 + i, body: { text: `a${i}` } })
    await open()
    await flushPromises()
    expect(t.callsOf('markRead').length).toBe(0)
    expect(useConversationsStore().byConv.get(DM)?.unread).toBe(3)
  })

  it('shows a failed own message with Retry, which requeues it', async () => {
    t.addMessage({ conv: DM, from: 'me', seq: null, mid: null, ts: null, status: 'failed', error: 'forbidden', body: { text: 'blocked' }, cid: 'f1' })
    const w = await open()
    expect(w.find('[data-testid="failed"]').text()).toContain('forbidden')
    await w.find('[data-testid="retry"]').trigger('click')
    await flushPromises()
    expect(t.callsOf('retry')).toEqual([['f1']])
    expect(w.find('[data-testid="failed"]').exists()).toBe(false)
    expect(w.find('[data-testid="ticks"]').attributes('data-status')).toBe('pending')
  })

  it('renders only a window of rows for 100,000 messages', async () => {
    const w = await open()
    const all = Array.from({ length: 100_000 }, (_, i) =>
      msg({ conv: DM, seq: i + 1, cid: `g${i + 1}`, body: { text: `#${i + 1}` }, ts: 1_700_000_000_000 + i * 60_000 }),
    )
    useMessagesStore().stateOf(DM).items = markRaw(all)
    await flushPromises()
    const rendered = w.findAll('[data-testid="bubble"]').length
    expect(rendered).toBeGreaterThan(0)
    expect(rendered).toBeLessThan(100)
  })

  it('draws a loaded window from its bottom: the first rows on mount are the latest', async () => {
    for (let i = 0; i < 100; i++) t.addMessage({ conv: DM, from: 'alice', ts: 1_700_000_000_000 + i * 1000, body: { text: `#${i + 1}` } })
    await open()
    document.body.innerHTML = ''
    // Mounted again (the conversation re-opened): before any scroll or tick.
    const w = mountWith(MessageList, { props: { conv: DM, isChannel: false } })
    const texts = w.findAll('[data-testid="message-text"]').map((e) => e.text())
    expect(texts).toContain('#100')
    expect(texts).not.toContain('#1')
  })

  it('draws the first window of a conversation from its bottom as it arrives', async () => {
    await useConversationsStore().load()
    const w = mountWith(MessageList, { props: { conv: DM, isChannel: false } })
    const s = useMessagesStore().stateOf(DM)
    s.items = markRaw(Array.from({ length: 100 }, (_, i) => msg({ conv: DM, seq: i + 1, cid: `g${i + 1}`, body: { text: `#${i + 1}` } })))
    s.generation++
    await nextTick() // the render, before the list is placed
    const texts = w.findAll('[data-testid="message-text"]').map((e) => e.text())
    expect(texts).toContain('#100')
    expect(texts).not.toContain('#1')
  })

  it('re-opening an unchanged conversation keeps every row as it was (same message and flags)', async () => {
    // Own messages only: nothing unread, so no divider comes or goes between the two opens.
    for (let i = 0; i < 30; i++) t.addMessage({ conv: DM, from: 'me', ts: 1_700_000_000_000 + i * 400_000, body: { text: `#${i + 1}` } })
    const w = await open()
    const props = () => w.findAllComponents(MessageBubble).map((b) => [b.props('message'), b.props('flags')])
    const before = props()
    expect(before.length).toBeGreaterThan(0)
    await useMessagesStore().openLatest(DM)
    await flushPromises()
    const after = props()
    expect(after.length).toBe(before.length)
    after.forEach(([m, f], i) => {
      expect(m).toBe(before[i][0])
      expect(f).toBe(before[i][1])
    })
  })

  it('loads older pages in front of what is shown', async () => {
    for (let i = 0; i < 250; i++) t.addMessage({ conv: DM, from: 'alice', ts: 1_700_000_000_000 + i * 1000, body: { text: `#${i + 1}` } })
    const s = useMessagesStore()
    await open()
    expect(s.byConv.get(DM)!.items[0].seq).toBe(151)
    expect(await s.loadOlder(DM)).toBe(100)
    expect(await s.loadOlder(DM)).toBe(50)
    expect(s.byConv.get(DM)!.hasOlder).toBe(false)
    expect(s.byConv.get(DM)!.items.map((m) => m.seq)).toEqual(Array.from({ length: 250 }, (_, i) => i + 1))
  })

  describe('message actions', () => {
    async function rightClick(w: Awaited<ReturnType<typeof open>>, text: string) {
      const b = w.findAll('[data-testid="bubble"]').find((x) => x.text().includes(text))!
      await b.trigger('contextmenu', { clientX: 20, clientY: 20 })
      await flushPromises()
    }

    it('edits inline from the menu: Enter saves, the bubble says edited', async () => {
      await useServerStore().load()
      const m = t.addMessage({ conv: DM, from: 'me', body: { text: 'teh plan' } })
      t.when('editMessage').emit((_conv, _mid, text) => updated(m, { body: { text }, edited: Date.now() }))
      const w = await open()
      await rightClick(w, 'teh plan')
      await w.find('[data-action="edit"]').trigger('click')
      await flushPromises()
      const input = w.find('[data-testid="edit-input"]')
      expect((input.element as HTMLTextAreaElement).value).toBe('teh plan')
      await input.setValue('the plan')
      await input.trigger('keydown', { key: 'Enter' })
      await flushPromises()
      expect(t.callsOf('editMessage').map((c) => c[2])).toEqual(['the plan'])
      expect(w.find('[data-testid="edit-input"]').exists()).toBe(false)
      expect(w.find('[data-testid="message-text"]').text()).toBe('the plan')
      expect(w.find('[data-testid="edited"]').exists()).toBe(true)
    })

    it('cancels an edit on Esc without a request', async () => {
      await useServerStore().load()
      t.addMessage({ conv: DM, from: 'me', body: { text: 'keep me' } })
      const w = await open()
      await rightClick(w, 'keep me')
      await w.find('[data-action="edit"]').trigger('click')
      await flushPromises()
      const input = w.find('[data-testid="edit-input"]')
      await input.setValue('changed')
      await input.trigger('keydown', { key: 'Escape' })
      await flushPromises()
      expect(w.find('[data-testid="edit-input"]').exists()).toBe(false)
      expect(w.find('[data-testid="message-text"]').text()).toBe('keep me')
      expect(t.callsOf('editMessage')).toEqual([])
    })

    it('recalls only after confirmation, then shows the placeholder', async () => {
      await useServerStore().load()
      const m = t.addMessage({ conv: DM, from: 'me', body: { text: 'wrong chat' } })
      t.when('recallMessage').emit(updated(m, { recalled: true, body: {} }))
      const w = await open()
      const dialog = mountWith(ConfirmDialog)
      await rightClick(w, 'wrong chat')
      await w.find('[data-action="recall"]').trigger('click')
      await flushPromises()
      expect(dialog.find('[data-testid="confirm-message"]').text()).toContain('removed for everyone')
      await dialog.find('[data-testid="confirm-cancel"]').trigger('click')
      await flushPromises()
      expect(t.callsOf('recallMessage')).toEqual([])
      await rightClick(w, 'wrong chat')
      await w.find('[data-action="recall"]').trigger('click')
      await flushPromises()
      expect(useUiStore().confirming).not.toBeNull()
      await dialog.find('[data-testid="confirm-ok"]').trigger('click')
      await flushPromises()
      expect(t.callsOf('recallMessage')).toHaveLength(1)
      expect(w.find('[data-testid="recalled"]').text()).toBe('You recalled this message')
    })

    it('reacts from the quick row of the menu', async () => {
      await useServerStore().load()
      const m = t.addMessage({ conv: DM, from: 'alice', body: { text: 'shipped!' } })
      t.when('react').emit(updated(m, { reactions: { '🎉': ['me'] } }))
      const w = await open()
      await rightClick(w, 'shipped!')
      await w.find('[data-reaction="🎉"]').trigger('click')
      await flushPromises()
      expect(t.callsOf('react').map((c) => [c[2], c[3]])).toEqual([['🎉', true]])
      expect(w.find('[data-testid="message-menu"]').exists()).toBe(false)
      expect(w.find('[data-testid="reaction-chip"]').attributes('data-key')).toBe('🎉')
    })
  })
})
