// The skin tone and the recently used emoji are the user's settings, kept
// by the shell through the transport (never localStorage).
import { beforeEach, describe, expect, it } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { setup } from '../testing'
import type { MockTransport } from '../services/mockTransport'
import { DEFAULT_SETTINGS } from '../types/app'
import type { Settings } from '../types/app'
import { RECENT_MAX } from '../utils/emoji'
import { useEmojiStore } from './emoji'
import { useSettingsStore } from './settings'

let t: MockTransport
const saved = () => t.callsOf('setSettings').map(([s]) => s as Settings)

describe('emoji preferences', () => {
  beforeEach(() => {
    t = setup()
    localStorage.clear()
  })

  it('reads the tone and recents from the settings, defaulting for an older shell', async () => {
    // A shell whose settings predate the emoji fields.
    const { emoji_skin_tone: _tone, recent_emoji: _recent, ...old } = DEFAULT_SETTINGS
    t.when('getSettings').once().answer(old as typeof DEFAULT_SETTINGS)
    await useSettingsStore().load()
    const emoji = useEmojiStore()
    expect(emoji.tone).toBe('default')
    expect(emoji.recent).toEqual([])

    t.settings = { ...DEFAULT_SETTINGS, emoji_skin_tone: 'medium_dark', recent_emoji: ['🎉', '👋'] }
    await useSettingsStore().load()
    expect(emoji.tone).toBe('medium_dark')
    expect(emoji.recent).toEqual(['🎉', '👋'])
  })

  it('saves the tone in the settings and shows emoji in it', async () => {
    await useSettingsStore().load()
    const emoji = useEmojiStore()
    await emoji.load()
    expect(emoji.display('👍')).toBe('👍')
    await emoji.setTone('dark')
    expect(saved().at(-1)).toMatchObject({ emoji_skin_tone: 'dark', notifications: true })
    expect(emoji.display('👍')).toBe('👍🏿')
    expect(emoji.display('🎉')).toBe('🎉')
    expect(localStorage.length).toBe(0)
  })

  it('keeps recents newest first, once, in their base form, and at most the cap', async () => {
    await useSettingsStore().load()
    const emoji = useEmojiStore()
    await emoji.load()
    await emoji.noteUsed('😀')
    await emoji.noteUsed('👋🏾') // picked in a tone: kept toneless, shown in the current tone
    await emoji.noteUsed('😀')
    expect(saved().at(-1)?.recent_emoji).toEqual(['😀', '👋'])
    const many = ['🍎', '🍐', '🍊', '🍋', '🍌', '🍉', '🍇', '🍓', '🫐', '🍈', '🍒', '🍑', '🥭', '🍍', '🥥', '🥝', '🍅', '🍆', '🥑', '🫛', '🥦', '🥬', '🥒', '🌶️', '🫑']
    for (const c of many) await emoji.noteUsed(c)
    const last = saved().at(-1)!.recent_emoji
    expect(last).toHaveLength(RECENT_MAX)
    expect(last[0]).toBe('🫑')
    expect(last).not.toContain('😀')
  })

  it('comes back the same after a restart (a new app reading the same shell)', async () => {
    await useSettingsStore().load()
    const first = useEmojiStore()
    await first.load()
    await first.setTone('light')
    await first.noteUsed('🙏')

    setActivePinia(createPinia()) // the app restarts; the shell kept settings.json
    await useSettingsStore().load()
    const again = useEmojiStore()
    expect(again.tone).toBe('light')
    expect(again.recent).toEqual(['🙏'])
  })

  it('moves the recents an older version kept in localStorage into the settings, once', async () => {
    localStorage.setItem('courier.recentEmoji', JSON.stringify(['🎉', '👍🏽', 7, '🎉']))
    await useSettingsStore().load()
    const emoji = useEmojiStore()
    await emoji.load()
    expect(emoji.recent).toEqual(['🎉', '👍'])
    expect(saved().at(-1)?.recent_emoji).toEqual(['🎉', '👍'])
    expect(localStorage.getItem('courier.recentEmoji')).toBeNull()
  })

  it('keeps the settings\' recents over old localStorage ones', async () => {
    localStorage.setItem('courier.recentEmoji', JSON.stringify(['🎉']))
    t.settings = { ...DEFAULT_SETTINGS, recent_emoji: ['🙏'] }
    await useSettingsStore().load()
    const emoji = useEmojiStore()
    await emoji.load()
    expect(emoji.recent).toEqual(['🙏'])
    expect(t.callsOf('setSettings')).toEqual([])
    expect(localStorage.getItem('courier.recentEmoji')).toBeNull()
  })

  it('keeps the choice for the session when the shell cannot save it', async () => {
    await useSettingsStore().load()
    const emoji = useEmojiStore()
    t.when('setSettings').once().fail('io', 'disk full')
    await expect(emoji.setTone('medium')).resolves.toBeUndefined()
    expect(emoji.tone).toBe('medium')
  })
})
