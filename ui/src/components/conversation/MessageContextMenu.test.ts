// The message actions menu lists exactly what the user may do (protocol §11):
// own vs others' messages, the edit / recall windows, the channel role, and
// nothing of v1.1 on a server without it.
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import { msg, mountWith, setup } from '../../testing'
import type { MessageView } from '../../types/model'
import type { Role } from '../../types/protocol'
import { useServerStore } from '../../stores/server'
import { useChannelsStore } from '../../stores/channels'
import { useSettingsStore } from '../../stores/settings'
import { DEFAULT_SETTINGS } from '../../types/app'
import MessageContextMenu from './MessageContextMenu.vue'

const NOW = 1_700_000_000_000
const MIN = 60_000
const anchor = { x: 10, y: 10 }

function menuFor(m: MessageView) {
  return mountWith(MessageContextMenu, { props: { message: m, anchor, now: NOW } })
}

function actions(m: MessageView): string[] {
  return menuFor(m).findAll('[data-action]').map((b) => b.attributes('data-action')!)
}

function hasReactions(m: MessageView): boolean {
  return menuFor(m).find('[data-testid="quick-reactions"]').exists()
}

function asRole(channel: string, role: Role) {
  useChannelsStore().members.set(channel, [
    { user: 'me', online: true, role },
    { user: 'alice', online: true, role: 'member' },
  ])
}

const dm = (p: Partial<MessageView>) => msg({ seq: 5, ts: NOW - 5 * MIN, ...p })
const ch = (p: Partial<MessageView>) => msg({ seq: 5, ts: NOW - 5 * MIN, conv: 'ch:team', to: { channel: 'team' }, ...p })

describe('MessageContextMenu', () => {
  beforeEach(() => {
    setup()
    document.body.innerHTML = ''
    // Edit for an hour, recall for ten minutes.
    useServerStore().info = { features: ['v1.1'], edit_window_s: 3600, recall_window_s: 600 }
  })

  it('offers everything on an own recent text message in a DM', () => {
    expect(actions(dm({ from: 'me' }))).toEqual(['reply', 'edit', 'copy', 'forward', 'pin', 'recall'])
    expect(hasReactions(dm({ from: 'me' }))).toBe(true)
  })

  it('never offers edit or recall on somebody else\'s message in a DM', () => {
    expect(actions(dm({ from: 'alice' }))).toEqual(['reply', 'copy', 'forward', 'pin'])
  })

  it('drops recall after the recall window and edit after the edit window', () => {
    expect(actions(dm({ from: 'me', ts: NOW - 20 * MIN }))).toEqual(['reply', 'edit', 'copy', 'forward', 'pin'])
    expect(actions(dm({ from: 'me', ts: NOW - 2 * 3600_000 }))).toEqual(['reply', 'copy', 'forward', 'pin'])
  })

  it('edits text only: an own image can be recalled but not edited or copied', () => {
    const img = dm({ from: 'me', kind: 'image', body: { media: 'm_1', mime: 'image/png', size: 1, name: 'a.png', width: 1, height: 1 } })
    expect(actions(img)).toEqual(['reply', 'forward', 'pin', 'recall'])
  })

  it('lets a plain channel member recall their own message but pin nothing', () => {
    asRole('team', 'member')
    expect(actions(ch({ from: 'me' }))).toEqual(['reply', 'edit', 'copy', 'forward', 'recall'])
    expect(actions(ch({ from: 'alice' }))).toEqual(['reply', 'copy', 'forward'])
  })

  it.each(['admin', 'owner'] as const)('lets a channel %s pin and recall anyone\'s message, any time', (role) => {
    asRole('team', role)
    expect(actions(ch({ from: 'alice', ts: NOW - 30 * 24 * 3600_000 }))).toEqual(['reply', 'copy', 'forward', 'pin', 'recall'])
  })

  it('says unpin for a pinned message', () => {
    expect(actions(dm({ from: 'alice', pinned: NOW - MIN }))).toContain('unpin')
  })

  it('hides every v1.1 action on a server without v1.1', () => {
    useServerStore().info = { features: [], edit_window_s: null, recall_window_s: null }
    expect(actions(dm({ from: 'me' }))).toEqual(['reply', 'copy'])
    expect(hasReactions(dm({ from: 'me' }))).toBe(false)
  })

  it('hides every v1.1 action while the server is unknown', () => {
    useServerStore().info = null
    expect(actions(dm({ from: 'me' }))).toEqual(['reply', 'copy'])
  })

  it('offers nothing on a recalled message and only copy on an unsent one', () => {
    expect(actions(dm({ from: 'me', recalled: true, body: {} }))).toEqual([])
    expect(actions(msg({ seq: null, from: 'me', status: 'failed' }))).toEqual(['copy'])
  })

  it('marks the quick reactions the user already gave and reports picks and actions', async () => {
    const w = menuFor(dm({ from: 'alice', reactions: { '👍': ['me'], '🎉': ['alice'] } }))
    expect(w.find('[data-reaction="👍"]').attributes('aria-pressed')).toBe('true')
    expect(w.find('[data-reaction="🎉"]').attributes('aria-pressed')).toBe('false')
    await w.find('[data-reaction="🎉"]').trigger('click')
    expect(w.emitted('react')).toEqual([['🎉']])
    await w.find('[data-action="pin"]').trigger('click')
    expect(w.emitted('action')).toEqual([['pin']])
    expect(w.emitted('close')).toHaveLength(2)
  })

  it('offers the quick reactions in the user\'s skin tone', async () => {
    useSettingsStore().apply({ ...DEFAULT_SETTINGS, emoji_skin_tone: 'medium' })
    const w = menuFor(dm({ from: 'alice', reactions: { '👍🏽': ['me'] } }))
    await vi.waitFor(() => expect(w.find('[data-reaction="👍🏽"]').exists()).toBe(true))
    expect(w.find('[data-testid="quick-reactions"]').findAll('[data-reaction]').map((b) => b.text())).toEqual(['👍🏽', '❤️', '😂', '🎉', '😮', '🙏🏽'])
    expect(w.find('[data-reaction="👍🏽"]').attributes('aria-pressed')).toBe('true')
    await w.find('[data-reaction="🙏🏽"]').trigger('click')
    expect(w.emitted('react')).toEqual([['🙏🏽']])
  })

  it('is a keyboard menu: arrows move between items, Esc closes', async () => {
    const w = menuFor(dm({ from: 'me' }))
    await flushPromises()
    const items = w.findAll('[role="menuitem"]')
    ;(items[0].element as HTMLElement).focus()
    await w.find('[role="menu"]').trigger('keydown', { key: 'ArrowDown' })
    expect(document.activeElement).toBe(items[1].element)
    await w.find('[role="menu"]').trigger('keydown', { key: 'End' })
    expect(document.activeElement).toBe(items[items.length - 1].element)
    await w.find('[role="menu"]').trigger('keydown', { key: 'Escape' })
    expect(w.emitted('close')).toHaveLength(1)
  })
})
