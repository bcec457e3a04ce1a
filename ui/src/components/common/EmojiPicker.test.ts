// The emoji picker: every section, recents first, search in both languages,
// the skin tone (kept in the settings), keyboard, and reaction-sized keys.
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import { mountWith, setup } from '../../testing'
import type { MockTransport } from '../../services/mockTransport'
import type { Settings } from '../../types/app'
import { useSettingsStore } from '../../stores/settings'
import EmojiPicker from './EmojiPicker.vue'

let t: MockTransport

async function open(props: Record<string, unknown> = {}, locale: 'en' | 'zh-CN' = 'en') {
  await useSettingsStore().load()
  const w = mountWith(EmojiPicker, { props: { anchor: { x: 10, y: 10 }, ...props }, locale })
  await vi.waitFor(() => expect(w.find('[data-section="flags"]').exists()).toBe(true))
  // The search takes the focus on the next frame.
  await vi.waitFor(() => expect(document.activeElement?.getAttribute('data-testid')).toBe('emoji-search'))
  return w
}
type Picker = Awaited<ReturnType<typeof open>>
const shown = (w: Picker) => w.findAll('[data-testid="emoji"]').map((b) => b.text())
const sectionIds = (w: Picker) => w.findAll('[data-section]').map((s) => s.attributes('data-section'))
const search = async (w: Picker, q: string) => w.find('[data-testid="emoji-search"]').setValue(q)

describe('EmojiPicker', () => {
  beforeEach(() => {
    t = setup()
    document.body.innerHTML = ''
  })

  it('shows a loading state, then every section with a tab each', async () => {
    await useSettingsStore().load()
    const w = mountWith(EmojiPicker, { props: { anchor: { x: 10, y: 10 } } })
    expect(w.find('[data-testid="emoji-loading"]').exists()).toBe(true)
    await vi.waitFor(() => expect(w.find('[data-testid="emoji"]').exists()).toBe(true))
    // The first sections come at once, the rest a frame later.
    await vi.waitFor(() => expect(sectionIds(w)).toHaveLength(9))
    expect(sectionIds(w)).toEqual(['smileys', 'people', 'nature', 'food', 'travel', 'activity', 'objects', 'symbols', 'flags'])
    expect(w.findAll('[role="tab"]').map((b) => b.attributes('data-tab'))).toEqual(sectionIds(w))
    expect(shown(w).length).toBeGreaterThan(1850)
    expect(w.find('[data-section="flags"]').text()).toContain('🇨🇳')
  })

  it('names the sections in the UI language', async () => {
    const w = await open({}, 'zh-CN')
    expect(w.find('[data-section="food"] h3').text()).toBe('食物与饮料')
    expect(w.find('[data-tab="flags"]').attributes('aria-label')).toBe('旗帜')
  })

  it('shows the recently used emoji first, in the user’s tone', async () => {
    t.settings = { ...t.settings, recent_emoji: ['👋', '🎉'], emoji_skin_tone: 'medium' }
    const w = await open()
    expect(sectionIds(w)[0]).toBe('recent')
    expect(w.find('[data-section="recent"]').findAll('[data-testid="emoji"]').map((b) => b.text())).toEqual(['👋🏽', '🎉'])
  })

  it('searches English and Chinese names whatever the language, best match first', async () => {
    const w = await open()
    await search(w, 'thumbs')
    expect(sectionIds(w)).toEqual(['results'])
    expect(shown(w).slice(0, 2)).toEqual(['👍', '👎'])
    await search(w, '猫')
    expect(shown(w)).toContain('🐱')
    await search(w, 'qqqzzz')
    expect(shown(w)).toEqual([])
    expect(w.text()).toContain('No emoji found')
  })

  it('changes the skin tone, shows emoji in it and saves it in the settings', async () => {
    const w = await open()
    await search(w, 'waving hand')
    expect(shown(w)[0]).toBe('👋')
    await w.find('[data-testid="emoji-tone"]').trigger('click')
    await w.find('[data-tone="dark"]').trigger('click')
    await flushPromises()
    expect(shown(w)[0]).toBe('👋🏿')
    expect(w.find('[data-testid="emoji-tone"]').text()).toBe('✋🏿')
    expect((t.callsOf('setSettings').at(-1)?.[0] as Settings).emoji_skin_tone).toBe('dark')
  })

  it('picks in the tone, notes it as recent (toneless) and closes', async () => {
    t.settings = { ...t.settings, emoji_skin_tone: 'light' }
    const w = await open()
    await search(w, 'thumbs up')
    await w.find('[data-testid="emoji"]').trigger('click')
    await flushPromises()
    expect(w.emitted('pick')).toEqual([['👍🏻']])
    expect(w.emitted('close')).toHaveLength(1)
    expect((t.callsOf('setSettings').at(-1)?.[0] as Settings).recent_emoji).toEqual(['👍'])
  })

  it('goes from the search into the grid with ↓ and moves by row across sections', async () => {
    t.settings = { ...t.settings, recent_emoji: ['🎉', '👋', '😀'] }
    const w = await open()
    await w.find('[data-testid="emoji-search"]').trigger('keydown', { key: 'ArrowDown' })
    await flushPromises()
    expect(document.activeElement?.textContent).toBe('🎉')
    await w.find('[data-index="0"]').trigger('keydown', { key: 'ArrowRight' })
    await w.find('[data-index="1"]').trigger('keydown', { key: 'ArrowDown' })
    await flushPromises()
    // The recent row has three; ↓ from its second goes to the second smiley.
    expect(document.activeElement?.getAttribute('data-index')).toBe('4')
    await w.find('[data-index="4"]').trigger('keydown', { key: 'ArrowUp' })
    await w.find('[data-index="1"]').trigger('keydown', { key: 'ArrowUp' })
    await flushPromises()
    expect(document.activeElement?.getAttribute('data-testid')).toBe('emoji-search')
    await search(w, 'tada')
    await w.find('[data-testid="emoji-search"]').trigger('keydown', { key: 'Enter' })
    expect(w.emitted('pick')).toEqual([['🎉']])
  })

  it('offers only emoji that fit a reaction key (32 bytes) when reacting', async () => {
    t.settings = { ...t.settings, emoji_skin_tone: 'dark' }
    const w = await open({ reaction: true })
    await search(w, 'kiss woman man')
    const bytes = (s: string) => new TextEncoder().encode(s).length
    expect(shown(w).length).toBeGreaterThan(0)
    for (const c of shown(w)) expect(bytes(c), c).toBeLessThanOrEqual(32)
    const w2 = await open()
    await search(w2, 'kiss woman man')
    expect(shown(w2).some((c) => bytes(c) > 32)).toBe(true)
  })

  it('closes on Esc, but first closes an open tone menu', async () => {
    const w = await open()
    await w.find('[data-testid="emoji-tone"]').trigger('click')
    await w.find('[data-testid="emoji-picker"]').trigger('keydown', { key: 'Escape' })
    expect(w.find('[data-testid="emoji-tones"]').exists()).toBe(false)
    expect(w.emitted('close')).toBeUndefined()
    await w.find('[data-testid="emoji-picker"]').trigger('keydown', { key: 'Escape' })
    expect(w.emitted('close')).toHaveLength(1)
  })
})
