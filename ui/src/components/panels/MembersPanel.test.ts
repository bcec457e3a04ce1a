// The members panel: role labels, and the actions an owner / admin may take
// on each member, with confirmation for removals and transfers.
import { beforeEach, describe, expect, it } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import { mountWith, setup } from '../../testing'
import type { MockTransport } from '../../services/mockTransport'
import type { Role } from '../../types/protocol'
import { useChannelsStore } from '../../stores/channels'
import { useServerStore } from '../../stores/server'
import { routeEvent } from '../../stores/events'
import MembersPanel from './MembersPanel.vue'
import ConfirmDialog from '../dialogs/ConfirmDialog.vue'

let t: MockTransport

async function panel(myRole: Role) {
  t.memberLists.set('team', [
    { user: 'me', online: true, role: myRole },
    { user: 'olga', online: true, role: myRole === 'owner' ? 'admin' : 'owner' },
    { user: 'adam', online: true, role: 'admin' },
    { user: 'mia', online: false, role: 'member' },
  ])
  await useChannelsStore().loadMembers('team')
  const w = mountWith(MembersPanel, { props: { channel: 'team' } })
  await flushPromises()
  return w
}

const row = (w: Awaited<ReturnType<typeof panel>>, user: string) => w.find(`[data-testid="member"][data-user="${user}"]`)

async function menuOf(w: Awaited<ReturnType<typeof panel>>, user: string): Promise<string[]> {
  const btn = row(w, user).find('[data-testid="member-actions"]')
  if (!btn.exists()) return []
  await btn.trigger('click')
  await flushPromises()
  const items = w.findAll('[data-testid="member-menu"] [data-action]').map((b) => b.attributes('data-action')!)
  await w.find('[data-testid="member-menu"]').trigger('keydown', { key: 'Escape' })
  await flushPromises()
  return items
}

describe('MembersPanel', () => {
  beforeEach(async () => {
    t = setup()
    document.body.innerHTML = ''
    await useServerStore().load()
  })

  it('labels owners and admins', async () => {
    const w = await panel('member')
    expect(row(w, 'olga').find('[data-testid="role-badge"]').text()).toBe('Owner')
    expect(row(w, 'adam').find('[data-testid="role-badge"]').text()).toBe('Admin')
    expect(row(w, 'mia').find('[data-testid="role-badge"]').exists()).toBe(false)
  })

  it('gives a plain member no actions', async () => {
    const w = await panel('member')
    expect(w.findAll('[data-testid="member-actions"]')).toHaveLength(0)
  })

  it('lets an admin remove plain members only', async () => {
    const w = await panel('admin')
    expect(await menuOf(w, 'mia')).toEqual(['remove'])
    expect(await menuOf(w, 'adam')).toEqual([])
    expect(await menuOf(w, 'olga')).toEqual([])
    expect(await menuOf(w, 'me')).toEqual([])
  })

  it('lets the owner promote, demote, transfer and remove anyone else', async () => {
    const w = await panel('owner')
    expect(await menuOf(w, 'mia')).toEqual(['make-admin', 'make-owner', 'remove'])
    expect(await menuOf(w, 'adam')).toEqual(['make-member', 'make-owner', 'remove'])
    expect(await menuOf(w, 'me')).toEqual([])
  })

  it('promotes and shows the role the server announces', async () => {
    const w = await panel('owner')
    t.when('setRole').emit({ type: 'member', channel: 'team', user: 'mia', joined: true, removed: false, role: 'admin' })
    await row(w, 'mia').find('[data-testid="member-actions"]').trigger('click')
    await w.find('[data-action="make-admin"]').trigger('click')
    await flushPromises()
    expect(t.callsOf('setRole')).toEqual([['team', 'mia', 'admin']])
    expect(row(w, 'mia').find('[data-testid="role-badge"]').text()).toBe('Admin')
  })

  it('removes only after confirmation', async () => {
    const w = await panel('owner')
    const dialog = mountWith(ConfirmDialog)
    await row(w, 'mia').find('[data-testid="member-actions"]').trigger('click')
    await w.find('[data-action="remove"]').trigger('click')
    await flushPromises()
    expect(dialog.find('[data-testid="confirm-message"]').text()).toContain('#team')
    expect(t.callsOf('removeMember')).toEqual([])
    await dialog.find('[data-testid="confirm-ok"]').trigger('click')
    await flushPromises()
    expect(t.callsOf('removeMember')).toEqual([['team', 'mia']])
    expect(row(w, 'mia').exists()).toBe(false)
  })

  it('hides role actions on a server without v1.1', async () => {
    useServerStore().info = { features: [], edit_window_s: null, recall_window_s: null }
    const w = await panel('owner')
    expect(w.findAll('[data-testid="member-actions"]')).toHaveLength(0)
  })

  it('says so when the user was removed from the channel', async () => {
    const w = await panel('member')
    routeEvent({ type: 'member', channel: 'team', user: 'me', joined: false, removed: true })
    await flushPromises()
    expect(w.find('[data-testid="members-removed"]').text()).toContain('You were removed from #team')
  })
})
