// The pinned bar: shown while the conversation has pins, the newest first;
// a click asks the list to show it and moves to the next older pin.
import { beforeEach, describe, expect, it } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import { mountWith, setup, updated } from '../../testing'
import type { MockTransport } from '../../services/mockTransport'
import { useConversationsStore } from '../../stores/conversations'
import { useMessagesStore } from '../../stores/messages'
import { useServerStore } from '../../stores/server'
import { useUiStore } from '../../stores/ui'
import PinnedBar from './PinnedBar.vue'

const DM = 'dm:alice:me'
let t: MockTransport

describe('PinnedBar', () => {
  beforeEach(async () => {
    t = setup()
    document.body.innerHTML = ''
    t.addConversation({ conv: DM })
    await useServerStore().load()
  })

  it('is hidden without pins', async () => {
    t.addMessage({ conv: DM, from: 'alice', body: { text: 'x' } })
    await useConversationsStore().load()
    const w = mountWith(PinnedBar, { props: { conv: DM } })
    await flushPromises()
    expect(w.find('[data-testid="pinned-bar"]').exists()).toBe(false)
  })

  it('shows the newest pin, cycles to older ones on click and asks the list to jump', async () => {
    const a = t.addMessage({ conv: DM, from: 'alice', body: { text: 'first pin' }, pinned: 1 })
    const b = t.addMessage({ conv: DM, from: 'alice', body: { text: 'second pin' }, pinned: 2 })
    await useConversationsStore().load()
    const w = mountWith(PinnedBar, { props: { conv: DM } })
    await flushPromises()
    const text = () => w.find('[data-testid="pinned-bar-text"]').text()
    expect(text()).toContain('second pin')
    expect(w.find('[data-testid="pinned-bar"]').text()).toContain('Pinned message 2 of 2')
    await w.find('[data-testid="pinned-bar-jump"]').trigger('click')
    expect(useMessagesStore().jumpRequest?.mid).toBe(b.mid)
    expect(text()).toContain('first pin')
    await w.find('[data-testid="pinned-bar-jump"]').trigger('click')
    expect(useMessagesStore().jumpRequest?.mid).toBe(a.mid)
    expect(text()).toContain('second pin')
  })

  it('follows pins made elsewhere and opens the pinned list', async () => {
    const m = t.addMessage({ conv: DM, from: 'alice', body: { text: 'pin me' } })
    await useConversationsStore().load()
    const w = mountWith(PinnedBar, { props: { conv: DM } })
    await flushPromises()
    // Pinned on another device: the core reports the message and the conversation's pins.
    t.emit(updated(m, { pinned: 5 }))
    t.changeConversation(DM, { pins: [m.mid!] })
    await flushPromises()
    expect(w.find('[data-testid="pinned-bar-text"]').text()).toContain('pin me')
    await w.find('[data-testid="pinned-bar-list"]').trigger('click')
    expect(useUiStore().rightPanel).toBe('pins')
    t.emit(updated(m, { pinned: undefined }))
    t.changeConversation(DM, { pins: [] })
    await flushPromises()
    expect(w.find('[data-testid="pinned-bar"]').exists()).toBe(false)
  })
})
