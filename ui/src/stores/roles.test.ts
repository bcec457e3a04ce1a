// Channel roles in the channels store: member lists with roles, role
// changes and removals from events, and being removed oneself.
import { beforeEach, describe, expect, it } from 'vitest'
import { setup } from '../testing'
import type { MockTransport } from '../services/mockTransport'
import { routeEvent } from './events'
import { useChannelsStore } from './channels'
import { useToastsStore } from './toasts'
import { useConversationsStore } from './conversations'
import type { ConversationView } from '../types/model'

let t: MockTransport

describe('channel roles', () => {
  beforeEach(async () => {
    t = setup()
    t.channelList.push({ channel: 'team', title: 'Team', topic: '', private: true, members: 3 })
    t.memberLists.set('team', [
      { user: 'me', online: true, role: 'owner' },
      { user: 'alice', online: true, role: 'admin' },
      { user: 'bob', online: false, role: 'member' },
    ])
    await useChannelsStore().loadMembers('team')
  })

  it('knows every member\'s role', () => {
    const c = useChannelsStore()
    expect(['me', 'alice', 'bob', 'zed'].map((u) => c.roleOf('team', u))).toEqual(['owner', 'admin', 'member', null])
  })

  it('follows role changes from member events', () => {
    routeEvent({ type: 'member', channel: 'team', user: 'bob', joined: true, removed: false, role: 'admin' })
    expect(useChannelsStore().roleOf('team', 'bob')).toBe('admin')
    routeEvent({ type: 'member', channel: 'team', user: 'carol', joined: true, removed: false })
    expect(useChannelsStore().roleOf('team', 'carol')).toBe('member')
    routeEvent({ type: 'member', channel: 'team', user: 'alice', joined: false, removed: true })
    expect(useChannelsStore().roleOf('team', 'alice')).toBeNull()
  })

  it('shows a transfer as the member events the server announces', async () => {
    t.when('setRole').emit(
      { type: 'member', channel: 'team', user: 'me', joined: true, removed: false, role: 'admin' },
      { type: 'member', channel: 'team', user: 'bob', joined: true, removed: false, role: 'owner' },
    )
    await useChannelsStore().setRole('team', 'bob', 'owner')
    expect(t.callsOf('setRole')).toEqual([['team', 'bob', 'owner']])
    const c = useChannelsStore()
    expect(c.roleOf('team', 'bob')).toBe('owner')
    expect(c.roleOf('team', 'me')).toBe('admin')
  })

  it('passes a refused role change on to the caller and changes no role', async () => {
    t.failNext('setRole', 'forbidden', 'only the channel owner may change roles')
    await expect(useChannelsStore().setRole('team', 'bob', 'admin')).rejects.toMatchObject({ code: 'forbidden' })
    expect(useChannelsStore().roleOf('team', 'bob')).toBe('member')
  })

  it('removes a member from the list', async () => {
    await useChannelsStore().removeMember('team', 'bob')
    expect(t.callsOf('removeMember')).toEqual([['team', 'bob']])
    expect(useChannelsStore().members.get('team')!.map((m) => m.user)).toEqual(['me', 'alice'])
  })

  it('marks the channel when the user is removed, with a notice', () => {
    routeEvent({ type: 'member', channel: 'team', user: 'me', joined: false, removed: true })
    const c = useChannelsStore()
    expect(c.removed.has('team')).toBe(true)
    expect(c.members.has('team')).toBe(false)
    expect(useToastsStore().toasts.map((x) => x.key)).toEqual(['channels.removedToast'])
    // Added back: the mark goes.
    routeEvent({ type: 'member', channel: 'team', user: 'me', joined: true, removed: false })
    expect(c.removed.has('team')).toBe(false)
  })

  it('keeps an ordinary leave of the user unmarked, and drops the channel from the list', () => {
    const conversations = useConversationsStore()
    conversations.upsert({ conv: 'ch:team', kind: 'channel', channel: 'team' } as unknown as ConversationView)
    // Left on another device: the event is all this one hears.
    routeEvent({ type: 'member', channel: 'team', user: 'me', joined: false, removed: false })
    expect(useChannelsStore().removed.has('team')).toBe(false)
    expect(conversations.byConv.has('ch:team')).toBe(false)
    expect(useChannelsStore().members.has('team')).toBe(false)
  })
})
