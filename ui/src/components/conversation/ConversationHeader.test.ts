// The DM header's call buttons: one places an audio call, the other a
// video call (the invitation's `content.video`); channels have neither.
import { beforeEach, describe, expect, it } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import { mountWith, setup } from '../../testing'
import type { MockTransport } from '../../services/mockTransport'
import ConversationHeader from './ConversationHeader.vue'

const dm = { conv: 'dm:alice:me', isChannel: false, peer: 'alice', channel: null, title: 'Alice', avatarUser: 'alice', avatar: '' }
const channel = { conv: 'ch:lobby', isChannel: true, peer: null, channel: 'lobby', title: 'lobby', avatarUser: 'lobby', avatar: '' }

describe('ConversationHeader calls', () => {
  let t: MockTransport
  beforeEach(() => {
    t = setup()
  })

  it('audio and video buttons place the matching call', async () => {
    const w = mountWith(ConversationHeader, { props: { info: dm } })
    expect(w.find('[data-testid="call-button"]').attributes('aria-label')).toBe('Audio call')
    expect(w.find('[data-testid="video-call-button"]').attributes('aria-label')).toBe('Video call')
    await w.find('[data-testid="video-call-button"]').trigger('click')
    await flushPromises()
    await w.find('[data-testid="call-button"]').trigger('click')
    await flushPromises()
    expect(t.callsOf('invite').map((a) => [a[0], (a[1] as { video: boolean }).video])).toEqual([['alice', true], ['alice', false]])
  })

  it('a channel offers no call', () => {
    const w = mountWith(ConversationHeader, { props: { info: channel } })
    expect(w.find('[data-testid="call-button"]').exists()).toBe(false)
    expect(w.find('[data-testid="video-call-button"]').exists()).toBe(false)
  })
})
