// The v1.1 actions in the messages store: edit, recall, react, pin, forward
// and the pinned lists — applied at once, rolled back with a toast when the
// core refuses, confirmed by the core's message_updated.
import { beforeEach, describe, expect, it } from 'vitest'
import { setup } from '../testing'
import type { MockTransport } from '../services/mockTransport'
import type { MessageView } from '../types/model'
import { routeEvent } from './events'
import { useMessagesStore } from './messages'
import { useConversationsStore } from './conversations'
import { useServerStore } from './server'
import { useChannelsStore } from './channels'
import { useToastsStore } from './toasts'

const DM = 'dm:alice:me'
const CH = 'ch:team'
const HOUR = 3600_000
let t: MockTransport

const row = (conv: string, cid: string): MessageView => useMessagesStore().byConv.get(conv)!.items.find((m) => m.cid === cid)!
const toastKeys = () => useToastsStore().toasts.map((x) => x.key)

async function open(conv: string) {
  await useConversationsStore().load()
  await useMessagesStore().openLatest(conv)
}

describe('messages store: v1.1 actions', () => {
  beforeEach(async () => {
    t = setup()
    t.addConversation({ conv: DM })
    t.addConversation({ conv: CH })
    t.memberLists.set('team', [
      { user: 'alice', online: true, role: 'owner' },
      { user: 'me', online: true, role: 'member' },
    ])
    await useServerStore().load()
  })

  describe('edit', () => {
    it('shows the new text marked edited, then keeps what the core confirms', async () => {
      const m = t.addMessage({ conv: DM, from: 'me', body: { text: 'helo' } })
      await open(DM)
      const s = useMessagesStore()
      expect(s.startEdit(row(DM, m.cid))).toBe(true)
      expect(s.isEditing(m)).toBe(true)
      expect(await s.edit(row(DM, m.cid), 'hello\n')).toBe(true)
      expect(t.callsOf('editMessage')).toEqual([[DM, m.mid, 'hello']])
      expect(row(DM, m.cid).body.text).toBe('hello')
      expect(row(DM, m.cid).edited).toBeGreaterThan(0)
      expect(s.editing).toBeNull()
    })

    it('closes without a request when the text did not change, and refuses blank text', async () => {
      const m = t.addMessage({ conv: DM, from: 'me', body: { text: 'same' } })
      await open(DM)
      const s = useMessagesStore()
      s.startEdit(row(DM, m.cid))
      expect(await s.edit(row(DM, m.cid), 'same')).toBe(true)
      expect(await s.edit(row(DM, m.cid), '   ')).toBe(false)
      expect(t.callsOf('editMessage')).toEqual([])
    })

    it('rolls back and says why when the server refuses (window passed)', async () => {
      const m = t.addMessage({ conv: DM, from: 'me', body: { text: 'v1' } })
      await open(DM)
      t.serverInfoValue = { ...t.serverInfoValue, edit_window_s: 0 }
      m.ts = Date.now() - 1000
      expect(await useMessagesStore().edit(row(DM, m.cid), 'v2')).toBe(false)
      expect(row(DM, m.cid).body.text).toBe('v1')
      expect(row(DM, m.cid).edited).toBeUndefined()
      expect(toastKeys()).toEqual(['actions.errConflict'])
    })

    it('does not start editing somebody else\'s message or one past the window', async () => {
      const theirs = t.addMessage({ conv: DM, from: 'alice', body: { text: 'x' } })
      const old = t.addMessage({ conv: DM, from: 'me', ts: Date.now() - 72 * HOUR, body: { text: 'y' } })
      await open(DM)
      const s = useMessagesStore()
      expect(s.startEdit(row(DM, theirs.cid))).toBe(false)
      expect(s.startEdit(row(DM, old.cid))).toBe(false)
      expect(s.lastEditable(DM)).toBeNull()
    })

    it('shows an edit made on another device (message_updated)', async () => {
      const m = t.addMessage({ conv: DM, from: 'alice', body: { text: 'typo' } })
      await open(DM)
      routeEvent({ type: 'message_updated', message: { ...m, body: { text: 'fixed' }, edited: 123 } })
      expect(row(DM, m.cid).body.text).toBe('fixed')
      expect(row(DM, m.cid).edited).toBe(123)
    })
  })

  describe('recall', () => {
    it('replaces an own message with the recalled placeholder, also in the list preview', async () => {
      const m = t.addMessage({ conv: DM, from: 'me', body: { text: 'oops' }, reactions: { '👍': ['alice'] } })
      await open(DM)
      expect(await useMessagesStore().recall(row(DM, m.cid))).toBe(true)
      expect(t.callsOf('recallMessage')).toEqual([[DM, m.mid]])
      const r = row(DM, m.cid)
      expect(r.recalled).toBe(true)
      expect(r.body).toEqual({})
      expect(r.reactions).toBeUndefined()
      expect(useConversationsStore().previews.get(DM)?.recalled).toBe(true)
    })

    it('is refused for a plain member on someone else\'s channel message, and rolls back', async () => {
      await useChannelsStore().loadMembers('team')
      const m = t.addMessage({ conv: CH, from: 'alice', body: { text: 'mine, not yours' } })
      await open(CH)
      expect(await useMessagesStore().recall(row(CH, m.cid))).toBe(false)
      expect(row(CH, m.cid).recalled).toBeUndefined()
      expect(row(CH, m.cid).body.text).toBe('mine, not yours')
      expect(toastKeys()).toEqual(['actions.errForbidden'])
    })

    it('lets a channel admin recall anyone\'s message, however old', async () => {
      t.memberLists.get('team')![1].role = 'admin'
      await useChannelsStore().loadMembers('team')
      const m = t.addMessage({ conv: CH, from: 'alice', ts: Date.now() - 30 * 24 * HOUR, body: { text: 'spam' } })
      await open(CH)
      expect(await useMessagesStore().recall(row(CH, m.cid))).toBe(true)
      expect(row(CH, m.cid).recalled).toBe(true)
    })

    it('shows a recall made elsewhere and closes the editor on it', async () => {
      const m = t.addMessage({ conv: DM, from: 'me', body: { text: 'draft' } })
      await open(DM)
      const s = useMessagesStore()
      s.startEdit(row(DM, m.cid))
      routeEvent({ type: 'message_updated', message: { ...m, recalled: true, body: {} } })
      expect(row(DM, m.cid).recalled).toBe(true)
      expect(s.editing).toBeNull()
    })

    it('takes no further relation: reacting to a recalled message is refused', async () => {
      const m = t.addMessage({ conv: DM, from: 'alice', body: { text: 'x' } })
      await open(DM)
      // Alice recalls it on her side; the server announces it.
      t.applyRecall(DM, m)
      expect(await useMessagesStore().react(row(DM, m.cid), '👍', true)).toBe(false)
      expect(toastKeys()).toContain('actions.errConflict')
    })
  })

  describe('reactions and pins', () => {
    it('adds and removes the user\'s reaction keeping the others', async () => {
      const m = t.addMessage({ conv: DM, from: 'alice', body: { text: 'x' }, reactions: { '👍': ['alice'] } })
      await open(DM)
      const s = useMessagesStore()
      await s.toggleReaction(row(DM, m.cid), '👍')
      expect(row(DM, m.cid).reactions).toEqual({ '👍': ['alice', 'me'] })
      await s.toggleReaction(row(DM, m.cid), '👍')
      expect(row(DM, m.cid).reactions).toEqual({ '👍': ['alice'] })
      expect(t.callsOf('react').map((c) => c[3])).toEqual([true, false])
    })

    it('rolls a reaction back when refused', async () => {
      const m = t.addMessage({ conv: DM, from: 'alice', body: { text: 'x' } })
      await open(DM)
      t.failNext('react', 'rate_limited', 'slow down')
      expect(await useMessagesStore().react(row(DM, m.cid), '🎉', true)).toBe(false)
      expect(row(DM, m.cid).reactions).toBeUndefined()
      expect(useToastsStore().toasts[0]).toMatchObject({ key: 'limits.rate' })
    })

    it('says which cap refused a reaction (limit_reached, v1.2)', async () => {
      const m = t.addMessage({ conv: DM, from: 'alice', body: { text: 'x' } })
      await open(DM)
      t.failNext('react', 'limit_reached', 'too many keys', 'reaction_keys')
      expect(await useMessagesStore().react(row(DM, m.cid), '🎉', true)).toBe(false)
      expect(useToastsStore().toasts[0]).toMatchObject({ key: 'limits.reaction_keys' })
      t.failNext('react', 'limit_reached', 'a future cap', 'something_new')
      await useMessagesStore().react(row(DM, m.cid), '🎈', true)
      expect(useToastsStore().toasts.at(-1)).toMatchObject({ key: 'limits.other', params: { message: 'a future cap' } })
    })

    it('pins in a DM: the message, the conversation\'s pins and the pinned list follow', async () => {
      const a = t.addMessage({ conv: DM, from: 'alice', body: { text: 'a' } })
      const b = t.addMessage({ conv: DM, from: 'me', body: { text: 'b' } })
      await open(DM)
      const s = useMessagesStore()
      await s.loadPinned(DM)
      await s.pin(row(DM, a.cid), true)
      await s.pin(row(DM, b.cid), true)
      expect(useConversationsStore().byConv.get(DM)!.pins).toEqual([a.mid, b.mid])
      expect(s.pinned.get(DM)!.map((m) => m.mid)).toEqual([a.mid, b.mid])
      expect(row(DM, a.cid).pinned).toBeGreaterThan(0)
      await s.pin(row(DM, a.cid), false)
      expect(useConversationsStore().byConv.get(DM)!.pins).toEqual([b.mid])
      expect(s.pinned.get(DM)!.map((m) => m.mid)).toEqual([b.mid])
      expect(row(DM, a.cid).pinned).toBeUndefined()
    })

    it('refuses a plain channel member\'s pin and restores the pins', async () => {
      await useChannelsStore().loadMembers('team')
      const m = t.addMessage({ conv: CH, from: 'alice', body: { text: 'x' } })
      await open(CH)
      expect(await useMessagesStore().pin(row(CH, m.cid), true)).toBe(false)
      expect(useConversationsStore().byConv.get(CH)!.pins).toEqual([])
      expect(row(CH, m.cid).pinned).toBeUndefined()
    })

    it('forwards a copy marked with its origin', async () => {
      const m = t.addMessage({ conv: DM, from: 'alice', body: { text: 'news', mentions: ['me'] } })
      await open(DM)
      await useMessagesStore().openLatest(CH)
      const sent = await useMessagesStore().forward(row(DM, m.cid), CH)
      expect(t.callsOf('forwardMessage')).toEqual([[DM, m.mid, { channel: 'team' }]])
      expect(sent?.body).toEqual({ text: 'news', forwarded_from: { conv: DM, mid: m.mid, from: 'alice' } })
      expect(useMessagesStore().byConv.get(CH)!.items.at(-1)?.cid).toBe(sent?.cid)
    })
  })

  it('never shows relation kinds as messages', async () => {
    await open(DM)
    routeEvent({ type: 'message_added', message: { ...t.addMessage({ conv: DM, from: 'alice', body: { text: 'real' } }) } })
    routeEvent({ type: 'message_added', message: { conv: DM, seq: 99, mid: 'r', cid: 'r', from: 'alice', to: { user: 'me' }, kind: 'reaction', body: { target: 'x', key: '👍', on: true }, ts: 1, status: 'received' } })
    expect(useMessagesStore().byConv.get(DM)!.items.map((m) => m.kind)).toEqual(['text'])
  })
})
