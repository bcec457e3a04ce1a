import { beforeEach, describe, expect, it } from 'vitest'
import { msg, setup } from '../testing'
import type { MockTransport } from '../services/mockTransport'
import { routeEvent } from './events'
import { TYPING_TTL_MS, useConversationsStore } from './conversations'
import { useSettingsStore } from './settings'

let t: MockTransport

function seed() {
  t.addConversation({ conv: 'dm:alice:me', last_ts: 3000 })
  t.addConversation({ conv: 'dm:bob:me', last_ts: 1000 })
  t.addConversation({ conv: 'ch:lobby', last_ts: 2000 })
  t.addMessage({ conv: 'dm:alice:me', from: 'alice', ts: 3000, body: { text: 'hi from alice' } })
  t.addMessage({ conv: 'dm:alice:me', from: 'alice', ts: 3100, body: { text: 'are you there?' } })
  t.addMessage({ conv: 'ch:lobby', from: 'carol', ts: 2000, body: { text: 'lobby news' } })
}

describe('conversations store', () => {
  beforeEach(() => {
    t = setup()
    seed()
  })

  it('loads conversations with last-message previews, most recent first', async () => {
    const c = useConversationsStore()
    await c.load()
    expect(c.sorted.map((x) => x.conv)).toEqual(['dm:alice:me', 'ch:lobby', 'dm:bob:me'])
    expect(c.previews.get('dm:alice:me')?.body.text).toBe('are you there?')
    expect(c.previews.has('dm:bob:me')).toBe(false)
  })

  it('keeps the newest preview when an own send result arrives after its ack and a reply', async () => {
    const c = useConversationsStore()
    await c.load()
    const mine = msg({ conv: 'ch:lobby', cid: 'own', mid: 'm9', seq: 9, ts: 5000, from: 'me', body: { text: 'mine' } })
    c.noteMessage(mine)
    c.noteMessage(msg({ conv: 'ch:lobby', cid: 'theirs', mid: 'm10', seq: 10, ts: 5001, from: 'carol', body: { text: 'reply' } }))
    c.noteMessage({ ...mine, seq: null, mid: null, ts: null, status: 'pending' })
    expect(c.previews.get('ch:lobby')?.body.text).toBe('reply')
  })

  it('puts pinned conversations first', async () => {
    const c = useConversationsStore()
    await c.load()
    await useSettingsStore().togglePinned('dm:bob:me')
    expect(c.sorted[0].conv).toBe('dm:bob:me')
    expect(t.settings.pinned).toEqual(['dm:bob:me'])
  })

  it('moves a conversation to the top when a message arrives', async () => {
    const c = useConversationsStore()
    await c.load()
    routeEvent({ type: 'message_added', message: t.addMessage({ conv: 'dm:bob:me', from: 'bob', ts: 9000, body: { text: 'yo' } }) })
    routeEvent({ type: 'conversation_updated', conversation: { ...t.convs.get('dm:bob:me')! } })
    expect(c.sorted[0].conv).toBe('dm:bob:me')
    expect(c.previews.get('dm:bob:me')?.body.text).toBe('yo')
  })

  it('counts unread messages, leaving muted conversations out of the total', async () => {
    const c = useConversationsStore()
    await c.load()
    expect(c.byConv.get('dm:alice:me')?.unread).toBe(2)
    expect(c.totalUnread).toBe(3)
    await useSettingsStore().toggleMuted('ch:lobby')
    expect(c.totalUnread).toBe(2)
  })

  it('takes unread counts from conversation_updated events', async () => {
    const c = useConversationsStore()
    await c.load()
    routeEvent({ type: 'conversation_updated', conversation: { ...t.convs.get('dm:alice:me')!, unread: 0, read_seq: 2 } })
    expect(c.byConv.get('dm:alice:me')?.unread).toBe(0)
    expect(c.totalUnread).toBe(1)
  })

  it('marks read: unread drops at once and the core is told', async () => {
    const c = useConversationsStore()
    await c.load()
    await c.markRead('dm:alice:me')
    expect(c.byConv.get('dm:alice:me')?.unread).toBe(0)
    expect(t.callsOf('markRead')).toEqual([['dm:alice:me', null]])
    await c.markRead('dm:alice:me')
    expect(t.callsOf('markRead')).toHaveLength(1)
  })

  it('moves between conversations in list order (Alt+↑/↓)', async () => {
    const c = useConversationsStore()
    await c.load()
    expect(c.step(1)).toBe('dm:alice:me')
    expect(c.step(1)).toBe('ch:lobby')
    expect(c.step(1)).toBe('dm:bob:me')
    expect(c.step(1)).toBe('dm:bob:me')
    expect(c.step(-1)).toBe('ch:lobby')
  })

  it('shows typing for a while and stops when the typist’s message arrives', async () => {
    const c = useConversationsStore()
    await c.load()
    c.noteTyping('dm:alice:me', 'alice', 1000)
    expect(c.typingIn('dm:alice:me', 1000 + TYPING_TTL_MS - 1)).toEqual(['alice'])
    expect(c.typingIn('dm:alice:me', 1000 + TYPING_TTL_MS)).toEqual([])
    c.noteTyping('dm:alice:me', 'alice', 5000)
    c.noteMessage(t.addMessage({ conv: 'dm:alice:me', from: 'alice', body: { text: 'done' } }))
    expect(c.typingIn('dm:alice:me', 5001)).toEqual([])
  })

  it('opens a new DM by user id', () => {
    const c = useConversationsStore()
    expect(c.openDm('me', 'zed')).toBe('dm:me:zed')
    expect(c.activeConv).toBe('dm:me:zed')
    expect(c.byConv.get('dm:me:zed')?.peer).toBe('zed')
  })

  it('sends typing at most once per 2 s per conversation', () => {
    const c = useConversationsStore()
    c.noteOwnTyping('dm:alice:me', 0)
    c.noteOwnTyping('dm:alice:me', 1999)
    c.noteOwnTyping('dm:alice:me', 2000)
    c.noteOwnTyping('ch:lobby', 2001)
    expect(t.callsOf('typing')).toEqual([['dm:alice:me'], ['dm:alice:me'], ['ch:lobby']])
  })

  it('counts unread mentions (also in muted conversations) and clears them when read', async () => {
    await useSettingsStore().update({ muted: ['ch:lobby'] })
    const c = useConversationsStore()
    await c.load()
    t.receive({ conv: 'ch:lobby', from: 'carol', body: { text: '@me look', mentions: ['me'] } })
    t.changeConversation('ch:lobby', { mentions_unread: 1 }) // the core counts them
    t.receive({ conv: 'ch:lobby', from: 'carol', body: { text: 'no mention' } })
    expect(c.byConv.get('ch:lobby')?.mentions_unread).toBe(1)
    expect(c.totalMentions).toBe(1)
    await c.markRead('ch:lobby')
    expect(c.byConv.get('ch:lobby')?.mentions_unread).toBe(0)
    expect(c.totalMentions).toBe(0)
    expect(t.callsOf('markRead')).toEqual([['ch:lobby', null]])
  })
})
