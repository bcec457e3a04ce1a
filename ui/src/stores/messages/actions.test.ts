// The v1.1 actions in the messages store: edit, recall, react, pin, forward
// and the pinned lists. Each action is one command; what it changes is what
// the core reports (`message_updated`, `conversation_updated`), scripted here
// as the core would emit it — pending at once, undone when the server
// refuses. The store shows those events, closes the editor, and says in a
// toast why an action was refused.
import { beforeEach, describe, expect, it } from 'vitest'
import { setup, updated } from '../../testing'
import type { MockTransport } from '../../services/mockTransport'
import type { MessageView } from '../../types/model'
import { routeEvent } from '../events'
import { actionErrorToast, useMessagesStore } from './index'
import { useConversationsStore } from '../conversations'
import { useServerStore } from '../server'
import { useToastsStore } from '../toasts'

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
    await useServerStore().load()
  })

  it('applies nothing itself: an action shows only what the core reports', async () => {
    const m = t.addMessage({ conv: DM, from: 'me', body: { text: 'v1' } })
    await open(DM)
    const s = useMessagesStore()
    expect(await s.edit(row(DM, m.cid), 'v2')).toBe(true)
    expect(await s.react(row(DM, m.cid), '👍', true)).toBe(true)
    expect(await s.pin(row(DM, m.cid), true)).toBe(true)
    expect(await s.recall(row(DM, m.cid))).toBe(true)
    expect(t.calls.map((c) => c.method).filter((x) => ['editMessage', 'react', 'pinMessage', 'recallMessage'].includes(x)))
      .toEqual(['editMessage', 'react', 'pinMessage', 'recallMessage'])
    expect(row(DM, m.cid)).toEqual(m)
    expect(useConversationsStore().byConv.get(DM)!.pins).toEqual([])
  })

  it('maps each refusal to what the toast says', () => {
    const keys = ['forbidden', 'conflict', 'not_found', 'rate_limited', 'something_else']
      .map((code) => actionErrorToast({ code, message: 'why' }))
    expect(keys).toEqual([
      { key: 'actions.errForbidden', params: {} },
      { key: 'actions.errConflict', params: {} },
      { key: 'actions.errNotFound', params: {} },
      expect.objectContaining({ key: 'limits.rate' }),
      { key: 'actions.errOther', params: { message: 'why' } },
    ])
  })

  describe('edit', () => {
    it('shows the new text the core reports, marked edited, and closes the editor', async () => {
      const m = t.addMessage({ conv: DM, from: 'me', body: { text: 'helo' } })
      t.when('editMessage').emit((_conv, _mid, text) => updated(m, { body: { text }, edited: 123 }))
      await open(DM)
      const s = useMessagesStore()
      expect(s.startEdit(row(DM, m.cid))).toBe(true)
      expect(s.isEditing(m)).toBe(true)
      expect(await s.edit(row(DM, m.cid), 'hello\n')).toBe(true)
      expect(t.callsOf('editMessage')).toEqual([[DM, m.mid, 'hello']])
      expect(row(DM, m.cid).body.text).toBe('hello')
      expect(row(DM, m.cid).edited).toBe(123)
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

    it('follows the core when the server refuses (pending text, then undone) and says why', async () => {
      const m = t.addMessage({ conv: DM, from: 'me', body: { text: 'v1' } })
      t.when('editMessage')
        .emit(updated(m, { body: { text: 'v2' }, edited: 5 }), updated(m))
        .fail('conflict', 'the edit window has passed')
      await open(DM)
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
      routeEvent(updated(m, { body: { text: 'fixed' }, edited: 123 }))
      expect(row(DM, m.cid).body.text).toBe('fixed')
      expect(row(DM, m.cid).edited).toBe(123)
    })
  })

  describe('recall', () => {
    it('shows the recalled placeholder the core reports, also in the list preview, and closes its editor', async () => {
      const m = t.addMessage({ conv: DM, from: 'me', body: { text: 'oops' }, reactions: { '👍': ['alice'] } })
      t.when('recallMessage').emit(updated(m, { recalled: true, body: {}, reactions: undefined }))
      await open(DM)
      const s = useMessagesStore()
      s.startEdit(row(DM, m.cid))
      expect(await s.recall(row(DM, m.cid))).toBe(true)
      expect(t.callsOf('recallMessage')).toEqual([[DM, m.mid]])
      const r = row(DM, m.cid)
      expect(r.recalled).toBe(true)
      expect(r.body).toEqual({})
      expect(r.reactions).toBeUndefined()
      expect(useConversationsStore().previews.get(DM)?.recalled).toBe(true)
      expect(s.editing).toBeNull()
    })

    it('says why the server refused and leaves the message as the core shows it', async () => {
      const m = t.addMessage({ conv: CH, from: 'alice', body: { text: 'mine, not yours' } })
      t.when('recallMessage').fail('forbidden', 'only the sender or a channel owner/admin may recall a message')
      await open(CH)
      expect(await useMessagesStore().recall(row(CH, m.cid))).toBe(false)
      expect(row(CH, m.cid).recalled).toBeUndefined()
      expect(row(CH, m.cid).body.text).toBe('mine, not yours')
      expect(toastKeys()).toEqual(['actions.errForbidden'])
    })

    it('shows a recall made elsewhere and closes the editor on it', async () => {
      const m = t.addMessage({ conv: DM, from: 'me', body: { text: 'draft' } })
      await open(DM)
      const s = useMessagesStore()
      s.startEdit(row(DM, m.cid))
      routeEvent(updated(m, { recalled: true, body: {} }))
      expect(row(DM, m.cid).recalled).toBe(true)
      expect(s.editing).toBeNull()
    })
  })

  describe('reactions and pins', () => {
    it('turns the user\'s reaction on or off by what the message shows, keeping the others', async () => {
      const m = t.addMessage({ conv: DM, from: 'alice', body: { text: 'x' }, reactions: { '👍': ['alice'] } })
      t.when('react').once().emit(updated(m, { reactions: { '👍': ['alice', 'me'] } }))
      t.when('react').once().emit(updated(m, { reactions: { '👍': ['alice'] } }))
      await open(DM)
      const s = useMessagesStore()
      await s.toggleReaction(row(DM, m.cid), '👍')
      expect(row(DM, m.cid).reactions).toEqual({ '👍': ['alice', 'me'] })
      await s.toggleReaction(row(DM, m.cid), '👍')
      expect(row(DM, m.cid).reactions).toEqual({ '👍': ['alice'] })
      expect(t.callsOf('react')).toEqual([[DM, m.mid, '👍', true], [DM, m.mid, '👍', false]])
    })

    it('follows the core when a reaction is refused, and names the limit (rate_limited)', async () => {
      const m = t.addMessage({ conv: DM, from: 'alice', body: { text: 'x' } })
      t.when('react').once().emit(updated(m, { reactions: { '🎉': ['me'] } }), updated(m)).fail('rate_limited', 'slow down')
      await open(DM)
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

    it('shows a pin the core reports in the message and the conversation\'s pins', async () => {
      const a = t.addMessage({ conv: DM, from: 'alice', body: { text: 'a' } })
      t.when('pinMessage').emit(
        (_conv, _mid, on) => updated(a, { pinned: on ? 7 : undefined }),
        (conv, mid, on) => ({ type: 'conversation_updated', conversation: { ...t.convs.get(conv)!, pins: on ? [mid] : [] } }),
      )
      await open(DM)
      const s = useMessagesStore()
      await s.pin(row(DM, a.cid), true)
      expect(t.callsOf('pinMessage')).toEqual([[DM, a.mid, true]])
      expect(row(DM, a.cid).pinned).toBe(7)
      expect(useConversationsStore().byConv.get(DM)!.pins).toEqual([a.mid])
      await s.pin(row(DM, a.cid), false)
      expect(row(DM, a.cid).pinned).toBeUndefined()
      expect(useConversationsStore().byConv.get(DM)!.pins).toEqual([])
    })

    it('keeps a loaded pinned list in step: edits show, unpinned and recalled pins leave', async () => {
      const a = t.addMessage({ conv: DM, from: 'alice', body: { text: 'a' }, pinned: 1 })
      const b = t.addMessage({ conv: DM, from: 'alice', body: { text: 'b' }, pinned: 2 })
      const c = t.addMessage({ conv: DM, from: 'alice', body: { text: 'c' }, pinned: 3 })
      await open(DM)
      const s = useMessagesStore()
      await s.loadPinned(DM)
      expect(s.pinned.get(DM)!.map((m) => m.mid)).toEqual([a.mid, b.mid, c.mid])
      routeEvent(updated(a, { body: { text: 'a2' }, edited: 9 }))
      routeEvent(updated(b, { pinned: undefined }))
      routeEvent(updated(c, { recalled: true, body: {}, pinned: undefined }))
      expect(s.pinned.get(DM)!.map((m) => m.body.text)).toEqual(['a2'])
    })

    it('says why a pin was refused and changes no pins', async () => {
      const m = t.addMessage({ conv: CH, from: 'alice', body: { text: 'x' } })
      t.failNext('pinMessage', 'forbidden', 'only a channel owner or admin may pin')
      await open(CH)
      expect(await useMessagesStore().pin(row(CH, m.cid), true)).toBe(false)
      expect(useConversationsStore().byConv.get(CH)!.pins).toEqual([])
      expect(row(CH, m.cid).pinned).toBeUndefined()
      expect(toastKeys()).toEqual(['actions.errForbidden'])
    })

    it('forwards: the copy the core queued shows in the target conversation', async () => {
      const m = t.addMessage({ conv: DM, from: 'alice', body: { text: 'news' } })
      const copy = { text: 'news', forwarded_from: { conv: DM, mid: m.mid, from: 'alice' } }
      t.when('forwardMessage').answer((_conv, _mid, to) => t.enqueue(to, 'text', copy))
      await open(DM)
      await useMessagesStore().openLatest(CH)
      const sent = await useMessagesStore().forward(row(DM, m.cid), CH)
      expect(t.callsOf('forwardMessage')).toEqual([[DM, m.mid, { channel: 'team' }]])
      expect(useMessagesStore().byConv.get(CH)!.items.at(-1)).toMatchObject({ cid: sent?.cid, body: copy })
      expect(useConversationsStore().previews.get(CH)?.cid).toBe(sent?.cid)
    })

    it('says why a forward was refused', async () => {
      const m = t.addMessage({ conv: DM, from: 'alice', body: { text: 'news' } })
      t.failNext('forwardMessage', 'not_found', 'the media is gone')
      await open(DM)
      expect(await useMessagesStore().forward(row(DM, m.cid), CH)).toBeNull()
      expect(toastKeys()).toEqual(['actions.errNotFound'])
    })
  })

  it('never shows relation kinds as messages', async () => {
    await open(DM)
    routeEvent({ type: 'message_added', message: { ...t.addMessage({ conv: DM, from: 'alice', body: { text: 'real' } }) } })
    routeEvent({ type: 'message_added', message: { conv: DM, seq: 99, mid: 'r', cid: 'r', from: 'alice', to: { user: 'me' }, kind: 'reaction', body: { target: 'x', key: '👍', on: true }, ts: 1, status: 'received' } })
    expect(useMessagesStore().byConv.get(DM)!.items.map((m) => m.kind)).toEqual(['text'])
  })
})
