import { beforeEach, describe, expect, it } from 'vitest'
import { setup } from '../testing'
import type { MockTransport } from '../services/mockTransport'
import { handleShortcut } from './useShortcuts'
import { useUiStore } from '../stores/ui'
import { useConversationsStore } from '../stores/conversations'
import { useMessagesStore } from '../stores/messages'

let t: MockTransport
const key = (k: string, mods: Partial<KeyboardEventInit> = {}) => new KeyboardEvent('keydown', { key: k, ...mods })

describe('keyboard shortcuts', () => {
  beforeEach(() => {
    t = setup()
  })

  it('Ctrl/⌘+K toggles the quick switcher', () => {
    const ui = useUiStore()
    expect(handleShortcut(key('k', { ctrlKey: true }))).toBe(true)
    expect(ui.dialog).toBe('switcher')
    handleShortcut(key('k', { metaKey: true }))
    expect(ui.dialog).toBeNull()
  })

  it('Ctrl/⌘+F opens search', () => {
    const ui = useUiStore()
    handleShortcut(key('f', { ctrlKey: true }))
    expect(ui.rightPanel).toBe('search')
    expect(ui.searchFocusTick).toBe(1)
  })

  it('Esc closes the lightbox, then dialogs, then panels', () => {
    const ui = useUiStore()
    ui.rightPanel = 'members'
    ui.dialog = 'settings'
    ui.lightbox = { url: 'x', name: 'x' }
    handleShortcut(key('Escape'))
    expect(ui.lightbox).toBeNull()
    expect(ui.dialog).toBe('settings')
    handleShortcut(key('Escape'))
    expect(ui.dialog).toBeNull()
    handleShortcut(key('Escape'))
    expect(ui.rightPanel).toBeNull()
    expect(handleShortcut(key('Escape'))).toBe(false)
  })

  it('Alt+↑/↓ moves between conversations', async () => {
    t.addConversation({ conv: 'dm:a:me', last_ts: 2 })
    t.addConversation({ conv: 'dm:b:me', last_ts: 1 })
    const c = useConversationsStore()
    await c.load()
    handleShortcut(key('ArrowDown', { altKey: true }))
    expect(c.activeConv).toBe('dm:a:me')
    handleShortcut(key('ArrowDown', { altKey: true }))
    expect(c.activeConv).toBe('dm:b:me')
    handleShortcut(key('ArrowUp', { altKey: true }))
    expect(c.activeConv).toBe('dm:a:me')
  })

  it('Esc cancels an inline edit before closing panels, and answers an open confirmation first', async () => {
    const ui = useUiStore()
    const messages = useMessagesStore()
    ui.rightPanel = 'members'
    messages.editing = { conv: 'dm:a:me', cid: 'c1' }
    const answer = ui.confirm({ title: 'actions.recallTitle', message: 'actions.recallBody', confirm: 'actions.recall' })
    handleShortcut(key('Escape'))
    expect(await answer).toBe(false)
    expect(messages.editing).not.toBeNull()
    handleShortcut(key('Escape'))
    expect(messages.editing).toBeNull()
    expect(ui.rightPanel).toBe('members')
    handleShortcut(key('Escape'))
    expect(ui.rightPanel).toBeNull()
  })
})
