import { beforeEach, describe, expect, it } from 'vitest'
import { mountWith, setup } from '../../testing'
import type { ConversationView } from '../../types/model'
import ConversationListItem from './ConversationListItem.vue'
import { useProfilesStore } from '../../stores/profiles'
import { useConversationsStore } from '../../stores/conversations'
import type { MessageView } from '../../types/model'

const base: ConversationView = {
  conv: 'ch:lobby', kind: 'channel', channel: 'lobby', last_seq: 9, last_ts: 1, synced_seq: 9, read_seq: 7, unread: 2,
  peer_read_seq: 0, peer_recv_seq: 0, mentions_unread: 0, pins: [],
}

describe('ConversationListItem', () => {
  beforeEach(() => {
    setup()
    document.body.innerHTML = ''
  })

  it('shows an @ badge while unread messages mention the user', () => {
    const w = mountWith(ConversationListItem, { props: { conversation: { ...base, mentions_unread: 1 }, active: false, now: 2 } })
    const badge = w.find('[data-testid="mention-badge"]')
    expect(badge.text()).toBe('@')
    expect(badge.attributes('aria-label')).toBe('You were mentioned')
    expect(w.find('[data-testid="unread-badge"]').text()).toBe('2')
  })

  it('shows no @ badge without unread mentions', () => {
    const w = mountWith(ConversationListItem, { props: { conversation: base, active: false, now: 2 } })
    expect(w.find('[data-testid="mention-badge"]').exists()).toBe(false)
  })

  it('previews mentions by display name, not the stored user id', () => {
    useProfilesStore().setProfile({ user: 'bob', name: 'Bob Stone', avatar: '', status: '' })
    const last_message = {
      conv: 'ch:lobby', seq: 9, mid: 'm9', cid: 'c9', from: 'sam', to: { channel: 'lobby' }, kind: 'text',
      body: { text: '@bob and @nobody, look', mentions: ['bob'] }, ts: 1, status: 'received',
    } as MessageView
    useConversationsStore().noteMessage(last_message)
    const w = mountWith(ConversationListItem, { props: { conversation: base, active: false, now: 2 } })
    const text = w.find('[data-testid="conv-preview"]').text()
    expect(text).toContain('@Bob Stone and @nobody, look')
    expect(text).not.toContain('@bob ')
  })
})
