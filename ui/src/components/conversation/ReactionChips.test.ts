// Reaction chips: one per key with its count, the user's own highlighted, a
// click turns the user's reaction on or off (react with on true / false), and
// the tooltip names who reacted.
import { beforeEach, describe, expect, it } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import { mountWith, setup, updated } from '../../testing'
import type { MockTransport } from '../../services/mockTransport'
import type { MessageView } from '../../types/model'
import { useServerStore } from '../../stores/server'
import { useMessagesStore } from '../../stores/messages'
import { useProfilesStore } from '../../stores/profiles'
import ReactionChips from './ReactionChips.vue'

const DM = 'dm:alice:me'
let t: MockTransport
let m: MessageView

function chips(message: MessageView, canReact = true) {
  return mountWith(ReactionChips, { props: { message, canReact } })
}

function chip(w: ReturnType<typeof chips>, key: string) {
  return w.find(`[data-testid="reaction-chip"][data-key="${key}"]`)
}

describe('ReactionChips', () => {
  beforeEach(async () => {
    t = setup()
    document.body.innerHTML = ''
    await useServerStore().load()
    t.addConversation({ conv: DM })
    m = t.addMessage({ conv: DM, from: 'alice', body: { text: 'lunch?' }, reactions: { '👍': ['alice', 'me', 'bob'], '🎉': ['bob'] } })
    const profiles = useProfilesStore()
    profiles.setProfile({ user: 'alice', name: 'Alice Martin', avatar: '', status: '' })
    profiles.setProfile({ user: 'bob', name: 'Bob Stone', avatar: '', status: '' })
    await useMessagesStore().openLatest(DM)
  })

  it('shows each reaction with its count', () => {
    const w = chips(m)
    expect(w.findAll('[data-testid="reaction-chip"]').map((c) => c.attributes('data-key'))).toEqual(['👍', '🎉'])
    expect(chip(w, '👍').find('[data-testid="reaction-count"]').text()).toBe('3')
    expect(chip(w, '🎉').find('[data-testid="reaction-count"]').text()).toBe('1')
  })

  it('highlights the reactions the user gave', () => {
    const w = chips(m)
    expect(chip(w, '👍').attributes('aria-pressed')).toBe('true')
    expect(chip(w, '👍').classes().join(' ')).toMatch(/bg-brand-50/)
    expect(chip(w, '🎉').attributes('aria-pressed')).toBe('false')
    expect(chip(w, '🎉').classes().join(' ')).not.toMatch(/bg-brand-50/)
  })

  it('names who reacted, with display names and "you" last', () => {
    const w = chips(m)
    const tips = w.findAll('[data-testid="reaction-tooltip"]').map((x) => x.text())
    expect(tips[0]).toBe('Alice Martin, Bob Stone, and you reacted with 👍')
    expect(tips[1]).toBe('Bob Stone reacted with 🎉')
    expect(chip(w, '🎉').attributes('aria-label')).toContain('Bob Stone reacted with 🎉')
  })

  it('turns the user\'s reaction off on an own chip and on on another', async () => {
    t.when('react').once().emit(updated(m, { reactions: { '👍': ['alice', 'bob'], '🎉': ['bob'] } }))
    t.when('react').once().emit(updated(m, { reactions: { '👍': ['alice', 'bob'], '🎉': ['bob', 'me'] } }))
    const w = chips(m)
    await chip(w, '👍').trigger('click')
    await flushPromises()
    expect(t.callsOf('react')).toEqual([[DM, m.mid, '👍', false]])
    await chip(w, '🎉').trigger('click')
    await flushPromises()
    expect(t.callsOf('react')).toEqual([[DM, m.mid, '👍', false], [DM, m.mid, '🎉', true]])
    // The loaded message follows what the core reports: 👍 without me, 🎉 with me.
    const row = useMessagesStore().byConv.get(DM)!.items.find((x) => x.cid === m.cid)!
    expect(row.reactions).toEqual({ '👍': ['alice', 'bob'], '🎉': ['bob', 'me'] })
  })

  it('is read-only where the user may not react', async () => {
    const w = chips(m, false)
    expect(chip(w, '👍').attributes('disabled')).toBeDefined()
    expect(w.find('[data-testid="add-reaction"]').exists()).toBe(false)
    await chip(w, '👍').trigger('click')
    expect(t.callsOf('react')).toEqual([])
  })

  it('renders nothing without reactions', () => {
    expect(chips({ ...m, reactions: undefined }).find('[data-testid="reactions"]').exists()).toBe(false)
  })
})
