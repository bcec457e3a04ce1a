// The emoji data loads lazily: nothing of emojibase-data is imported until
// the first use, once, and no source imports it statically (which would put
// its 1.3 MB into the main bundle).
import { describe, expect, it, vi } from 'vitest'

const imported = vi.hoisted(() => ({ en: 0, zh: 0, github: 0, emojibase: 0 }))

vi.mock('emojibase-data/en/compact.json', () => {
  imported.en += 1
  return {
    default: [
      { hexcode: '1F44B', unicode: '👋', label: 'waving hand', group: 1, tags: ['hello'], skins: [1, 2, 3, 4, 5].map((n) => ({ hexcode: `1F44B-1F3F${'BCDEF'[n - 1]}`, unicode: `👋${String.fromCodePoint(0x1f3fa + n)}` })) },
      { hexcode: '1F3FB', unicode: '🏻', label: 'light skin tone', group: 2 },
    ],
  }
})
vi.mock('emojibase-data/zh/compact.json', () => {
  imported.zh += 1
  return { default: [{ hexcode: '1F44B', unicode: '👋', label: '挥手', group: 1, tags: ['你好'] }] }
})
vi.mock('emojibase-data/en/shortcodes/github.json', () => {
  imported.github += 1
  return { default: { '1F44B': 'wave' } }
})
vi.mock('emojibase-data/en/shortcodes/emojibase.json', () => {
  imported.emojibase += 1
  return { default: { '1F44B': ['wave', 'waving_hand'] } }
})

/** Every UI source but tests, as text. */
const SOURCES = import.meta.glob(['../**/*.vue', '../**/*.ts', '!../**/*.test.ts'], { query: '?raw', import: 'default', eager: true }) as Record<string, string>

describe('loadEmojiData', () => {
  it('imports nothing until the first call, then each file once', async () => {
    const { loadEmojiData } = await import('./emojiData')
    expect(imported).toEqual({ en: 0, zh: 0, github: 0, emojibase: 0 })
    const [a, b] = await Promise.all([loadEmojiData(), loadEmojiData()])
    expect(a).toBe(b)
    expect(await loadEmojiData()).toBe(a)
    expect(imported).toEqual({ en: 1, zh: 1, github: 1, emojibase: 1 })
  })

  it('indexes both languages, the shortcodes (first set first) and the tones', async () => {
    const { loadEmojiData } = await import('./emojiData')
    const data = await loadEmojiData()
    expect(data.all).toHaveLength(1) // the tone swatch (group 2) is no emoji of its own
    const wave = data.byChar.get('👋🏽')!
    expect(wave).toMatchObject({ char: '👋', name: 'waving hand', nameZh: '挥手', shortcodes: ['wave', 'waving_hand'], group: 'people' })
    expect(wave.tones).toEqual(['👋🏻', '👋🏼', '👋🏽', '👋🏾', '👋🏿'])
    expect(wave.words).toEqual(expect.arrayContaining(['hello', '你好', 'waving']))
    expect(data.byShortcode.get('waving_hand')).toBe(wave)
  })

  it('is imported dynamically everywhere, never statically', () => {
    const importers = Object.entries(SOURCES).filter(([, text]) => text.includes('emojibase-data'))
    expect(importers.map(([path]) => path)).toEqual(['./emojiData.ts'])
    for (const [, text] of importers) {
      expect(text).not.toMatch(/^\s*import\s[^(]*['"]emojibase-data/m)
      expect(text.match(/import\('emojibase-data\//g)).toHaveLength(4)
    }
  })
})
