// The emoji set, from emojibase-data (the current Unicode set with English
// and Chinese CLDR annotations, and shortcodes), indexed for the picker, the
// `:shortcode:` completion and the quick reactions. The data is about 1.3 MB
// of JSON, so it loads on first use (dynamic import: its own chunks, never
// the main bundle) and once per session.
import type { SkinTone } from '../types/app'

/** The picker's sections, in emojibase's order (its "component" group and the bare regional indicators are left out). */
export const EMOJI_GROUPS = ['smileys', 'people', 'nature', 'food', 'travel', 'activity', 'objects', 'symbols', 'flags'] as const
export type EmojiGroupId = (typeof EMOJI_GROUPS)[number]

/** emojibase's group numbers → our sections (2 is skin tones and hair components). */
const GROUP_OF: Record<number, EmojiGroupId> = {
  0: 'smileys', 1: 'people', 3: 'nature', 4: 'food', 5: 'travel', 6: 'activity', 7: 'objects', 8: 'symbols', 9: 'flags',
}

/** The tones that have a modifier, in Unicode order (U+1F3FB … U+1F3FF). */
export const TONES = ['light', 'medium_light', 'medium', 'medium_dark', 'dark'] as const satisfies readonly SkinTone[]
const MODIFIERS = ['1F3FB', '1F3FC', '1F3FD', '1F3FE', '1F3FF']

export interface EmojiEntry {
  /** The emoji without a skin tone (what recents store). */
  char: string
  group: EmojiGroupId
  /** English annotation ("grinning face"). */
  name: string
  /** Chinese annotation ("嘿嘿"). */
  nameZh: string
  /** Shortcodes without colons, the best known first (GitHub's, then emojibase's). */
  shortcodes: string[]
  /** The emoji in each tone of `TONES` (same index); absent when it has no tones. */
  tones?: string[]
  /** Lower-case whole names: both annotations and the shortcodes (prefix matches rank first). */
  names: string[]
  /** Lower-case words of the names and the tags of both languages. */
  words: string[]
}

export interface EmojiData {
  /** Every emoji by section, in the standard order. */
  groups: Array<{ id: EmojiGroupId; emoji: EmojiEntry[] }>
  all: EmojiEntry[]
  /** Any form of an emoji (with or without a tone or U+FE0F) → its entry. */
  byChar: Map<string, EmojiEntry>
  /** A shortcode (no colons) → its entry. */
  byShortcode: Map<string, EmojiEntry>
}

/** The fields of emojibase's compact format that are used here. */
export interface CompactEmoji {
  hexcode: string
  unicode: string
  label: string
  group?: number
  tags?: string[]
  skins?: Array<{ hexcode: string; unicode: string }>
}
/** emojibase's shortcode files: hexcode → one code or several. */
export type Shortcodes = Record<string, string | string[]>

const VS16 = /\uFE0F/g

/**
 * The fully-qualified form Unicode recommends: emojibase writes U+FE0F
 * after some emoji that are pictures by default (`👍️`); a reaction `👍`
 * must stay one key with everyone else's, so that selector goes.
 */
function qualified(unicode: string): string {
  return unicode.replace(/(\p{Emoji_Presentation})\uFE0F/gu, '$1')
}

/** The variant of `skins` for each tone: the one whose every modifier is that tone (else the first with it). */
function tonesOf(skins: CompactEmoji['skins']): string[] | undefined {
  if (!skins?.length) return undefined
  return MODIFIERS.map((mod) => {
    const parts = (s: { hexcode: string }) => s.hexcode.split('-').filter((p) => MODIFIERS.includes(p))
    const same = skins.find((s) => parts(s).every((p) => p === mod))
    return qualified((same ?? skins.find((s) => parts(s).includes(mod)) ?? skins[0]).unicode)
  })
}

function wordsOf(texts: string[]): string[] {
  const out = new Set<string>()
  for (const t of texts) {
    const lower = t.toLowerCase()
    out.add(lower)
    for (const w of lower.split(/[\s_:,.’'()“”-]+/)) if (w) out.add(w)
  }
  return [...out]
}

/**
 * Indexes emojibase's English and Chinese compact data and shortcode sets
 * (earlier sets win a code both claim).
 */
export function buildEmojiData(en: CompactEmoji[], zh: CompactEmoji[], shortcodeSets: Shortcodes[]): EmojiData {
  const zhByHex = new Map(zh.map((e) => [e.hexcode, e]))
  const codesByHex = new Map<string, string[]>()
  const claimed = new Set<string>()
  for (const set of shortcodeSets) {
    for (const [hex, codes] of Object.entries(set)) {
      for (const code of typeof codes === 'string' ? [codes] : codes) {
        if (claimed.has(code)) continue
        claimed.add(code)
        codesByHex.set(hex, [...(codesByHex.get(hex) ?? []), code])
      }
    }
  }
  const groups = EMOJI_GROUPS.map((id) => ({ id, emoji: [] as EmojiEntry[] }))
  const all: EmojiEntry[] = []
  const byChar = new Map<string, EmojiEntry>()
  const byShortcode = new Map<string, EmojiEntry>()
  for (const e of en) {
    const group = e.group === undefined ? undefined : GROUP_OF[e.group]
    if (!group) continue
    const z = zhByHex.get(e.hexcode)
    const shortcodes = codesByHex.get(e.hexcode) ?? []
    const entry: EmojiEntry = {
      char: qualified(e.unicode),
      group,
      name: e.label,
      nameZh: z?.label ?? '',
      shortcodes,
      tones: tonesOf(e.skins),
      names: [e.label, z?.label ?? '', ...shortcodes].filter(Boolean).map((n) => n.toLowerCase()),
      words: wordsOf([e.label, z?.label ?? '', ...shortcodes, ...(e.tags ?? []), ...(z?.tags ?? [])]),
    }
    all.push(entry)
    groups[EMOJI_GROUPS.indexOf(group)].emoji.push(entry)
    for (const form of [e.unicode, ...(e.skins ?? []).map((s) => s.unicode)]) {
      byChar.set(form, entry)
      byChar.set(qualified(form), entry)
      byChar.set(form.replace(VS16, ''), entry)
    }
    for (const code of shortcodes) byShortcode.set(code, entry)
  }
  return { groups, all, byChar, byShortcode }
}

let loading: Promise<EmojiData> | null = null

/** The emoji data, loaded on the first call (the same promise after). */
export function loadEmojiData(): Promise<EmojiData> {
  loading ??= Promise.all([
    import('emojibase-data/en/compact.json'),
    import('emojibase-data/zh/compact.json'),
    import('emojibase-data/en/shortcodes/github.json'),
    import('emojibase-data/en/shortcodes/emojibase.json'),
  ]).then(([en, zh, github, emojibase]) =>
    buildEmojiData(en.default as CompactEmoji[], zh.default as CompactEmoji[], [github.default as Shortcodes, emojibase.default as Shortcodes]),
  )
  loading.catch(() => (loading = null)) // a failed load may be retried
  return loading
}
