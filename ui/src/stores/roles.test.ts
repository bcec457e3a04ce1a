// Channel roles in the channels store: member lists with roles, role
// changes and removals from events, and being removed oneself.
import { beforeEach, describe, expect, it } from 'vitest'
import { setup } from '../testing'
import type { MockTransport } from '../services/mockTransport'
import { routeEvent } from './events'
import { useChannelsStore } from './channels'
import { useToastsStore } from './toasts'

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

  it('transfers ownership: the old owner becomes an admin', async () => {
    await useChannelsStore().setRole('team', 'bob', 'owner')
    expect(t.callsOf('setRole')).toEqual([['team', 'bob', 'owner']])
    const c = useChannelsStore()
    expect(c.roleOf('team', 'bob')).toBe('owner')
    expect(c.roleOf('team', 'me')).toBe('admin')
    // Now an admin: another role change is the owner's alone.
    await expect(c.setRole('team', 'alice', 'member')).rejects.toMatchObject({ code: 'forbidden' })
  })

  it('removes a member, who cannot join again until added back', async () => {
    await useChannelsStore().removeMember('team', 'bob')
    expect(useChannelsStore().members.get('team')!.map((m) => m.user)).toEqual(['me', 'alice'])
    expect(t.removedFrom.get('team')?.has('bob')).toBe(true)
    await t.addMember('team', 'bob')
    expect(t.removedFrom.get('team')?.has('bob')).toBe(false)
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

  it('keeps an ordinary leave of the user unmarked', () => {
    routeEvent({ type: 'member', channel: 'team', user: 'me', joined: false, removed: false })
    expect(useChannelsStore().removed.has('team')).toBe(false)
  })
})

describe('mock server rules for roles (§11)', () => {
  beforeEach(() => {
    t = setup()
    t.memberLists.set('team', [
      { user: 'owner', online: true, role: 'owner' },
      { user: 'me', online: true, role: 'admin' },
      { user: 'adm2', online: true, role: 'admin' },
      { user: 'bob', online: false, role: 'member' },
    ])
  })

  it('lets an admin remove plain members only, and change no roles', async () => {
    await expect(t.removeMember('team', 'adm2')).rejects.toMatchObject({ code: 'forbidden' })
    await expect(t.removeMember('team', 'owner')).rejects.toMatchObject({ code: 'forbidden' })
    await expect(t.setRole('team', 'bob', 'admin')).rejects.toMatchObject({ code: 'forbidden' })
    await t.removeMember('team', 'bob')
    await expect(t.removeMember('team', 'bob')).rejects.toMatchObject({ code: 'not_found' })
  })

  it('hands a channel to the longest-standing admin when its owner leaves', async () => {
    t.me = 'owner'
    await t.leave('team')
    expect(t.roleIn('team', 'me')).toBe('owner')
    expect(t.roleIn('team', 'adm2')).toBe('admin')
  })

  it('treats a server admin as owner of every channel', async () => {
    t.me = 'root'
    t.serverAdmins.add('root')
    await t.setRole('team', 'bob', 'admin')
    expect(t.roleIn('team', 'bob')).toBe('admin')
  })
})
