import { beforeEach, describe, expect, it } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import type { MockTransport } from '../../services/mockTransport'
import { msg, mountWith, setup } from '../../testing'
import type { DeliveryStatus } from '../../types/model'
import type { JsonObject } from '../../types/protocol'
import { useProfilesStore } from '../../stores/profiles'
import { useMessagesStore } from '../../stores/messages'
import MessageBubble from './MessageBubble.vue'

const flags = { daySeparator: false, newDivider: false, runStart: true }
const NOW = 1_700_000_100_000
let t: MockTransport

function bubble(status: DeliveryStatus, mine = true, extra = {}) {
  return mountWith(MessageBubble, {
    props: { message: msg({ seq: status === 'pending' || status === 'failed' ? null : 5, from: mine ? 'me' : 'alice', status, ...extra }), mine, flags, now: NOW },
  })
}

describe('MessageBubble', () => {
  beforeEach(() => {
    t = setup()
    document.body.innerHTML = ''
  })

  it.each([
    ['pending', 'Sending…', null],
    ['sent', 'Sent', '1'],
    ['delivered', 'Delivered', '2'],
    ['read', 'Read', '2'],
  ] as const)('shows %s own messages unambiguously', (status, label, ticks) => {
    const w = bubble(status)
    const t = w.find('[data-testid="ticks"]')
    expect(t.attributes('aria-label')).toBe(label)
    expect(t.attributes('data-status')).toBe(status)
    const svg = t.find('svg')
    expect(svg.attributes('data-ticks') ?? null).toBe(ticks)
    expect(w.find('[data-testid="failed"]').exists()).toBe(false)
  })

  it('colours the two ticks of a read message but not of a delivered one', () => {
    expect(bubble('read').find('[data-ticks="2"]').classes().join(' ')).toMatch(/text-brand/)
    expect(bubble('delivered').find('[data-ticks="2"]').classes().join(' ')).not.toMatch(/text-brand/)
  })

  it('shows failed with the reason, Retry and Delete', async () => {
    const w = bubble('failed', true, { error: 'too_large' })
    expect(w.find('[data-testid="ticks"]').exists()).toBe(false)
    expect(w.find('[data-testid="failed"]').text()).toContain('Not sent (too_large)')
    await w.find('[data-testid="retry"]').trigger('click')
    await w.find('[data-testid="discard"]').trigger('click')
    expect(w.emitted('retry')?.[0][0]).toMatchObject({ status: 'failed' })
    expect(w.emitted('discard')).toHaveLength(1)
  })

  it('shows no ticks on messages of others, and their avatar on the first of a run', () => {
    const w = bubble('received', false)
    expect(w.find('[data-testid="ticks"]').exists()).toBe(false)
    expect(w.find('[data-testid="avatar"]').exists()).toBe(true)
    const next = mountWith(MessageBubble, { props: { message: msg({ seq: 6 }), mine: false, flags: { ...flags, runStart: false }, now: NOW } })
    expect(next.find('[data-testid="avatar"]').exists()).toBe(false)
  })

  it('shows the day separator and the new-messages divider when asked', () => {
    const w = mountWith(MessageBubble, { props: { message: msg({ seq: 1, ts: NOW }), mine: false, flags: { daySeparator: true, newDivider: true, runStart: true }, now: NOW } })
    expect(w.find('[data-testid="day-separator"]').text()).toBe('Today')
    expect(w.find('[data-testid="new-divider"]').text()).toBe('New messages')
  })

  it('quotes the message it replies to', () => {
    const quoted = msg({ seq: 2, from: 'me', body: { text: 'the question' } })
    const w = mountWith(MessageBubble, { props: { message: msg({ seq: 3, reply_to: 'm2' }), mine: false, flags, quoted, now: NOW } })
    expect(w.find('[data-testid="reply-quote"]').text()).toContain('the question')
  })

  it('renders images at their final size before loading, and files with name and size', () => {
    const img = mountWith(MessageBubble, {
      props: { message: msg({ seq: 1, kind: 'image', body: { media: 'm_1', mime: 'image/png', size: 10, name: 'cat.png', width: 1200, height: 600 } }), mine: false, flags, now: NOW },
    })
    const box = img.find('[data-testid="image-attachment"]').attributes('style')
    expect(box).toContain('width: 360px')
    expect(box).toContain('height: 180px')
    const file = mountWith(MessageBubble, {
      props: { message: msg({ seq: 2, kind: 'file', body: { media: 'm_2', mime: 'application/pdf', size: 1_482_113, name: 'spec.pdf' } }), mine: false, flags, now: NOW },
    })
    expect(file.find('[data-testid="file-attachment"]').text()).toContain('spec.pdf')
    expect(file.find('[data-testid="file-attachment"]').text()).toContain('1.4 MB')
  })

  it('marks an edited message "edited" with the edit time in a tooltip', () => {
    const edited = NOW - 60_000
    const w = mountWith(MessageBubble, { props: { message: msg({ seq: 5, body: { text: 'fixed' }, edited }), mine: false, flags, now: NOW } })
    const mark = w.find('[data-testid="edited"]')
    expect(mark.text()).toBe('edited')
    expect(mark.attributes('title')).toMatch(/^Edited /)
    expect(mark.attributes('title')).toContain(String(new Date(edited).getFullYear()))
    expect(w.find('[data-testid="message-text"]').text()).toBe('fixed')
    expect(bubble('read').find('[data-testid="edited"]').exists()).toBe(false)
  })

  it('shows a recalled message as a placeholder, without text, reactions or ticks', () => {
    const theirs = mountWith(MessageBubble, { props: { message: msg({ seq: 5, recalled: true, body: {}, reactions: { '👍': ['me'] } }), mine: false, flags, now: NOW } })
    expect(theirs.find('[data-testid="recalled"]').text()).toBe('This message was recalled')
    expect(theirs.find('[data-testid="message-text"]').exists()).toBe(false)
    expect(theirs.find('[data-testid="reactions"]').exists()).toBe(false)
    const own = mountWith(MessageBubble, { props: { message: msg({ seq: 6, from: 'me', status: 'read', recalled: true, body: {} }), mine: true, flags, now: NOW } })
    expect(own.find('[data-testid="recalled"]').text()).toBe('You recalled this message')
    expect(own.find('[data-testid="ticks"]').exists()).toBe(false)
  })

  it('labels a forwarded message with its original author once the original is found here', async () => {
    useProfilesStore().setProfile({ user: 'carol', name: 'Carol King', avatar: '', status: '' })
    const original = t.addMessage({ conv: 'dm:carol:me', from: 'carol', body: { text: 'news' } })
    const forward = { text: 'news', forwarded_from: { conv: 'dm:carol:me', mid: original.mid, from: 'carol' } }
    // Only in the core's store: "Forwarded" until the lookup answers.
    const w = mountWith(MessageBubble, { props: { message: msg({ seq: 5, body: forward }), mine: false, flags, now: NOW } })
    expect(w.find('[data-testid="forwarded"]').text()).toBe('Forwarded')
    await flushPromises()
    expect(w.find('[data-testid="forwarded"]').text()).toBe('Forwarded from Carol King')
    expect(t.callsOf('messageByMid')).toEqual([['dm:carol:me', original.mid]])
    // In a loaded window: named at once, without asking the core.
    await useMessagesStore().openLatest('dm:carol:me')
    const loaded = mountWith(MessageBubble, { props: { message: msg({ seq: 6, body: forward }), mine: false, flags, now: NOW } })
    expect(loaded.find('[data-testid="forwarded"]').text()).toBe('Forwarded from Carol King')
    expect(t.callsOf('messageByMid')).toHaveLength(1)
  })

  it('shows a message it cannot read, or of a kind it does not know, as a placeholder', () => {
    const bad = mountWith(MessageBubble, { props: { message: msg({ seq: 30, kind: 'unreadable', body: {} }), mine: false, flags, now: NOW } })
    expect(bad.find('[data-testid="placeholder"]').text()).toBe('This message could not be read')
    const poll = mountWith(MessageBubble, { props: { message: msg({ seq: 31, kind: 'poll', body: { q: '?' } }), mine: false, flags, now: NOW } })
    expect(poll.find('[data-testid="placeholder"]').text()).toBe('A poll message this version cannot show')
  })

  it('names no author a sender made up for a forward', async () => {
    useProfilesStore().setProfile({ user: 'boss', name: 'The Boss', avatar: '', status: '' })
    const carols = t.addMessage({ conv: 'dm:carol:me', from: 'carol', body: { text: 'hi' } })
    const boss = t.addMessage({ conv: 'dm:boss:me', from: 'boss', body: { text: 'see you monday' } })
    const made: JsonObject[] = [
      { conv: 'dm:boss:me', mid: 'm404', from: 'boss' }, // no such message here
      { conv: 'dm:carol:me', mid: carols.mid!, from: 'boss' }, // a real message, someone else's
      { conv: 'dm:carol:me', from: 'boss' }, // no mid at all
      { conv: 'dm:boss:me', mid: boss.mid!, from: 'boss' }, // a real message of boss's, other words
    ]
    for (const [i, forwarded_from] of made.entries()) {
      const w = mountWith(MessageBubble, {
        props: { message: msg({ seq: 10 + i, from: 'mallory', body: { text: 'pay this', forwarded_from } }), mine: false, flags, now: NOW },
      })
      await flushPromises()
      expect(w.find('[data-testid="forwarded"]').text()).toBe('Forwarded')
      expect(w.text()).not.toContain('Boss')
    }
  })

  it('highlights mentions, a mention of the user more strongly, and marks that bubble', () => {
    useProfilesStore().setProfile({ user: 'bob', name: 'Bob Stone', avatar: '', status: '' })
    const w = mountWith(MessageBubble, {
      props: { message: msg({ seq: 5, body: { text: '@me and @bob: lunch?', mentions: ['me', 'bob'] } }), mine: false, flags, now: NOW },
    })
    const [me, bob] = w.findAll('[data-testid="mention"]')
    expect(bob.text()).toBe('@Bob Stone')
    expect(me.attributes('data-me')).toBe('true')
    expect(bob.attributes('data-me')).toBeUndefined()
    expect(me.classes().join(' ')).toMatch(/amber/)
    expect(bob.classes().join(' ')).not.toMatch(/amber/)
    expect(w.find('[data-testid="bubble"]').attributes('data-mentions-me')).toBe('true')
    // Not mentioned: no mark. Text "@bob" without mentions stays plain text.
    const plain = mountWith(MessageBubble, { props: { message: msg({ seq: 6, body: { text: '@bob hi' } }), mine: false, flags, now: NOW } })
    expect(plain.find('[data-testid="mention"]').exists()).toBe(false)
    expect(plain.find('[data-testid="bubble"]').attributes('data-mentions-me')).toBeUndefined()
  })

  it('opens the actions menu on a right click and from the toolbar', async () => {
    const w = bubble('sent', false)
    await w.find('[data-testid="bubble"]').trigger('contextmenu', { clientX: 40, clientY: 50 })
    expect(w.emitted('menu')?.[0][1]).toEqual({ x: 40, y: 50 })
    await w.find('[data-testid="toolbar-more"]').trigger('click')
    expect(w.emitted('menu')).toHaveLength(2)
    await w.find('[data-testid="toolbar-reply"]').trigger('click')
    expect(w.emitted('reply')).toHaveLength(1)
  })
})
