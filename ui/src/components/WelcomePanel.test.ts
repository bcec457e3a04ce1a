import { beforeEach, describe, expect, it } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import { mountWith, setup } from '../testing'
import type { MockTransport } from '../services/mockTransport'
import { useConversationsStore } from '../stores/conversations'
import WelcomePanel from './WelcomePanel.vue'

let t: MockTransport

describe('WelcomePanel (no conversation open)', () => {
  beforeEach(() => {
    t = setup('me')
    document.body.innerHTML = ''
    t.channelList = [
      { channel: 'lobby', title: 'Lobby', topic: 'Say hi', private: false, members: 12 },
      { channel: 'tech', title: 'Tech', topic: '', private: false, members: 3 },
    ]
  })

  it('on first run lists the public channels to join, and joining opens the channel', async () => {
    await t.join('tech') // auto-joined (a default channel): offered as "Open", after the others
    // Mounted before the list has loaded (as right after sign-in).
    const w = mountWith(WelcomePanel)
    await flushPromises()
    expect(t.callsOf('channels')).toEqual([])
    await useConversationsStore().load()
    await flushPromises()
    expect(w.text()).toContain('Welcome to Courier')
    const rows = w.findAll('[data-testid="welcome-channels"] li')
    expect(rows.map((r) => r.text())).toEqual([expect.stringContaining('# lobby'), expect.stringContaining('# tech')])
    expect(w.get('[data-testid="welcome-join-lobby"]').text()).toBe('Join')
    expect(w.get('[data-testid="welcome-join-tech"]').text()).toBe('Open')
    await w.get('[data-testid="welcome-join-lobby"]').trigger('click')
    await flushPromises()
    expect(t.callsOf('join')).toEqual([['tech'], ['lobby']])
    expect(useConversationsStore().activeConv).toBe('ch:lobby')
  })

  it('starts a chat by user id and refuses an invalid one', async () => {
    await useConversationsStore().load()
    const w = mountWith(WelcomePanel)
    await flushPromises()
    await w.get('[data-testid="welcome-user"]').setValue('not valid!')
    await w.get('[data-testid="welcome-start"]').trigger('submit')
    expect(w.get('[role="alert"]').text()).toContain('letters')
    expect(useConversationsStore().activeConv).toBeNull()
    await w.get('[data-testid="welcome-user"]').setValue('@bob')
    await w.get('[data-testid="welcome-start"]').trigger('submit')
    expect(useConversationsStore().activeConv).toBe('dm:bob:me')
  })

  it('once there is a direct chat it only hints how to pick one', async () => {
    const conversations = useConversationsStore()
    await conversations.load()
    conversations.openDm('me', 'alice')
    conversations.activeConv = null
    const w = mountWith(WelcomePanel)
    await flushPromises()
    expect(w.text()).toContain('Pick a conversation')
    expect(w.find('[data-testid="welcome-channels"]').exists()).toBe(false)
  })
})
