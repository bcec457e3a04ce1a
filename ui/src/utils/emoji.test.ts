// The emoji rules over the real emojibase data: search in both languages,
// skin tones, the recently used list and `:shortcode:` text.
import { beforeAll, describe, expect, it } from 'vitest'
import { loadEmojiData } from './emojiData'
import type { EmojiData } from './emojiData'
import {
  QUICK_REACTIONS,
  RECENT_MAX,
  closedShortcodeAt,
  emojiRuns,
  shortcodeFor,
  emojiQueryAt,
  fitsReaction,
  replaceShortcodes,
  searchEmoji,
  toned,
  withRecent,
  withTone,
} from './emoji'

let data: EmojiData
beforeAll(async () => {
  data = await loadEmojiData()
})

const chars = (query: string, limit?: number) => searchEmoji(data, query, limit).map((e) => e.char)
const entry = (char: string) => data.byChar.get(char)!

describe('the emoji set', () => {
  it('holds the current Unicode set in sections, without the bare tone swatches', () => {
    expect(data.all.length).toBeGreaterThan(1850)
    expect(data.groups.map((g) => g.id)).toEqual(['smileys', 'people', 'nature', 'food', 'travel', 'activity', 'objects', 'symbols', 'flags'])
    expect(data.byChar.get('🫩')?.name).toBe('face with bags under eyes') // Emoji 16
    expect(data.byChar.get('🇨🇳')?.group).toBe('flags')
    expect(data.all.some((e) => e.char === '🏽')).toBe(false)
  })

  it('keeps the forms people react with: 👍 without a variation selector, ❤️ with one', () => {
    expect(entry('👍').char).toBe('👍')
    expect(entry('👍\uFE0F').char).toBe('👍')
    expect(entry('❤️').char).toBe('❤\uFE0F')
    for (const q of QUICK_REACTIONS) expect(entry(q).char).toBe(q)
  })
})

describe('searchEmoji', () => {
  it('finds by English name, tag or shortcode, exact and prefix matches first', () => {
    expect(chars('smile')[0]).toBe('😄') // the shortcode :smile:
    expect(chars('thumbs').slice(0, 2)).toEqual(['👍', '👎'])
    expect(chars('+1')[0]).toBe('👍')
    expect(chars('cat')).toContain('🐈')
    // A prefix match ranks above a word found inside another.
    const tea = chars('tea')
    expect(tea.indexOf('🍵')).toBeLessThan(tea.indexOf('😢'))
  })

  it('finds by Chinese name or tag, whatever the UI language', () => {
    expect(chars('笑哭')[0]).toBe('😂')
    expect(chars('大哭', 3)).toContain('😭')
    expect(chars('猫')).toContain('🐱')
    expect(chars('赞', 5)).toContain('👍')
  })

  it('needs every word and ignores case, colons and extra spaces', () => {
    expect(chars('  Red   HEART ')[0]).toBe('❤️')
    expect(chars(':tada:')[0]).toBe('🎉')
    expect(chars('heart cat')).toContain('😻')
    expect(chars('heart cat')).not.toContain('🐈')
    expect(chars('zzqqxx')).toEqual([])
    expect(chars('   ')).toEqual([])
  })

  it('stops at the limit', () => {
    expect(chars('face', 10)).toHaveLength(10)
  })
})

describe('skin tones', () => {
  it('puts the chosen tone on emoji that have tones and leaves the rest alone', () => {
    expect(withTone(entry('👋'), 'dark')).toBe('👋🏿')
    expect(withTone(entry('👍'), 'medium_light')).toBe('👍🏼')
    expect(withTone(entry('👋'), 'default')).toBe('👋')
    expect(withTone(entry('😀'), 'dark')).toBe('😀')
    expect(withTone(entry('❤️'), 'light')).toBe('❤️')
  })

  it('gives a group of two people one tone for both', () => {
    expect(withTone(entry('🤝'), 'medium')).toBe('🤝🏽')
    expect(withTone(entry('🧑‍🤝‍🧑'), 'dark')).toBe('🧑🏿‍🤝‍🧑🏿')
  })

  it('tones any form of an emoji, and leaves unknown text and the default tone as given', () => {
    expect(toned(data, '👋🏻', 'dark')).toBe('👋🏿')
    expect(toned(data, '🙏', 'light')).toBe('🙏🏻')
    expect(toned(data, '👍\uFE0F', 'default')).toBe('👍\uFE0F')
    expect(toned(data, 'x', 'dark')).toBe('x')
    expect(toned(null, '👋', 'dark')).toBe('👋')
  })

  it('tells which toned emoji are too long for a reaction key (32 bytes)', () => {
    expect(fitsReaction(withTone(entry('👍'), 'dark'))).toBe(true)
    expect(fitsReaction(withTone(entry('👩‍❤️‍💋‍👨'), 'dark'))).toBe(false)
    expect(data.all.every((e) => fitsReaction(e.char))).toBe(true)
  })
})

describe('recently used', () => {
  it('puts the newest first, once', () => {
    expect(withRecent(['😀', '👍', '🎉'], '🎉')).toEqual(['🎉', '😀', '👍'])
    expect(withRecent([], '👋')).toEqual(['👋'])
  })

  it(`keeps at most ${RECENT_MAX}, dropping the oldest`, () => {
    const full = Array.from({ length: RECENT_MAX }, (_, i) => String(i))
    const next = withRecent(full, '👋')
    expect(next).toHaveLength(RECENT_MAX)
    expect(next[0]).toBe('👋')
    expect(next).not.toContain(String(RECENT_MAX - 1))
    expect(next).toContain(String(RECENT_MAX - 2))
  })
})

describe(':shortcode: text', () => {
  it('finds the query being typed after a colon', () => {
    expect(emojiQueryAt('hi :smi', 7)).toEqual({ start: 3, query: 'smi' })
    expect(emojiQueryAt(':+1', 3)).toEqual({ start: 0, query: '+1' })
    expect(emojiQueryAt('好：笑', 3)).toBeNull() // a full-width colon after a letter
    expect(emojiQueryAt('好 ：笑', 4)).toEqual({ start: 2, query: '笑' })
    expect(emojiQueryAt('(:sm', 4)).toEqual({ start: 1, query: 'sm' })
  })

  it('is no query for one ASCII letter, smileys, times, URLs or code', () => {
    expect(emojiQueryAt(':s', 2)).toBeNull()
    expect(emojiQueryAt('ok :D', 5)).toBeNull()
    expect(emojiQueryAt('ok :)', 5)).toBeNull()
    expect(emojiQueryAt('at 10:30', 8)).toBeNull()
    expect(emojiQueryAt('see http://ex', 13)).toBeNull()
    expect(emojiQueryAt('run `a :smi', 11)).toBeNull()
    expect(emojiQueryAt('```\n:smi', 8)).toBeNull()
  })

  it('turns known shortcodes into emoji in the tone, outside code only', () => {
    expect(replaceShortcodes('yes :+1: :tada: :nope: :WAVE:', data, 'dark')).toBe('yes 👍🏿 🎉 :nope: 👋🏿')
    expect(replaceShortcodes('`:tada:` and :tada:', data, 'default')).toBe('`:tada:` and 🎉')
    expect(replaceShortcodes('```\n:tada:\n```\n:tada:', data, 'default')).toBe('```\n:tada:\n```\n🎉')
    expect(replaceShortcodes('at 10:30:45 or a:b:', data, 'default')).toBe('at 10:30:45 or a:b:')
  })

  it('shows the shortcode being typed, else the best known', () => {
    expect(shortcodeFor(entry('👍'), 'thu')).toBe('thumbsup')
    expect(shortcodeFor(entry('👍'), '')).toBe('+1')
    expect(shortcodeFor(entry('👍'), 'zzz')).toBe('+1')
  })

  it('sees a shortcode just closed before the caret', () => {
    expect(closedShortcodeAt('so :smile:', 10, data)).toMatchObject({ start: 3, entry: { char: '😄' } })
    expect(closedShortcodeAt('so :smile: x', 12, data)).toBeNull()
    expect(closedShortcodeAt('so :nosuchcode:', 15, data)).toBeNull()
    expect(closedShortcodeAt('`:smile:', 8, data)).toBeNull()
  })
})

describe('emoji runs in message text', () => {
  it('marks emoji (with tones, ZWJ sequences, flags, VS16) and leaves text, digits and © alone', () => {
    expect(emojiRuns('hi ☺️ and ✌🏽 ok')).toEqual([
      { text: 'hi ', emoji: false },
      { text: '☺️', emoji: true },
      { text: ' and ', emoji: false },
      { text: '✌🏽', emoji: true },
      { text: ' ok', emoji: false },
    ])
    expect(emojiRuns('👩‍👩‍👧🇨🇳!')).toEqual([
      { text: '👩‍👩‍👧🇨🇳', emoji: true },
      { text: '!', emoji: false },
    ])
    expect(emojiRuns('© 2026 #1 ☺')).toEqual([{ text: '© 2026 #1 ☺', emoji: false }])
    expect(emojiRuns('')).toEqual([])
  })
})
