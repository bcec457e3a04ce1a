// Emoji rules the picker, the composer and the reactions share: the quick
// reactions, skin tones, search in English and Chinese, the recently used
// list, and `:shortcode:` text. Pure functions over the data of
// ./emojiData (which loads lazily).
import type { SkinTone } from '../types/app'
import { TONES } from './emojiData'
import type { EmojiData, EmojiEntry } from './emojiData'

/** The quick reactions of the context menu (shown in the user's skin tone). */
export const QUICK_REACTIONS = ['👍', '❤️', '😂', '🎉', '😮', '🙏'] as const

/** How many recently used emoji are kept. */
export const RECENT_MAX = 24

/** Reaction keys are 1–32 bytes of UTF-8 (protocol). */
const MAX_REACTION_BYTES = 32
const encoder = new TextEncoder()

/** Whether `char` is short enough to be a reaction key. */
export function fitsReaction(char: string): boolean {
  return encoder.encode(char).length <= MAX_REACTION_BYTES
}

/** The emoji in `tone` (itself when it has no tones or the tone is the default). */
export function withTone(entry: EmojiEntry, tone: SkinTone): string {
  const i = (TONES as readonly SkinTone[]).indexOf(tone)
  return (i >= 0 && entry.tones?.[i]) || entry.char
}

/** Any emoji in `tone`, when the data knows it; as given in the default tone or when unknown. */
export function toned(data: EmojiData | null, char: string, tone: SkinTone): string {
  const entry = tone === 'default' ? undefined : data?.byChar.get(char)
  return entry ? withTone(entry, tone) : char
}

/**
 * How well `e` matches, best 0: the exact name or shortcode; 1 every query
 * word is a whole word of it (`hand` in "waving hand"); 2 a name starts
 * with the query (`handbag`); 3 every query word starts a word; 4 every
 * query word is inside one; -1 no match.
 */
function rank(e: EmojiEntry, whole: string, words: string[]): number {
  if (e.names.includes(whole)) return 0
  if (words.every((w) => e.words.includes(w))) return 1
  if (e.names.some((n) => n.startsWith(whole))) return 2
  let worst = 3
  for (const w of words) {
    if (e.words.some((x) => x.startsWith(w))) continue
    if (!e.words.some((x) => x.includes(w))) return -1
    worst = 4
  }
  return worst
}

/** The shortest name `whole` begins (`smi`: `smile` before `smiley`); 0 when none. */
function closeness(e: EmojiEntry, whole: string): number {
  let best = 0
  for (const n of e.names) if (n.startsWith(whole) && (best === 0 || n.length < best)) best = n.length
  return best
}

/**
 * Emoji matching `query` by English or Chinese name, tag or shortcode
 * (whatever the UI language), best first: exact, whole words, a name's
 * prefix (the closest name first), word prefixes, then substrings; the
 * standard order within each.
 */
export function searchEmoji(data: EmojiData, query: string, limit = 120): EmojiEntry[] {
  const whole = query.trim().toLowerCase().replace(/^[:：]|[:：]$/g, '').replace(/\s+/g, ' ')
  if (!whole) return []
  const words = whole.split(/[\s_]+/).filter(Boolean)
  const hits: Array<{ e: EmojiEntry; r: number; len: number; i: number }> = []
  data.all.forEach((e, i) => {
    const r = rank(e, whole, words)
    if (r >= 0) hits.push({ e, r, len: r === 2 ? closeness(e, whole) : 0, i })
  })
  return hits
    .sort((a, b) => a.r - b.r || a.len - b.len || a.i - b.i)
    .slice(0, limit)
    .map((h) => h.e)
}

/** The shortcode to show for `entry` while `query` is typed: the first that starts with it, else its best known. */
export function shortcodeFor(entry: EmojiEntry, query = ''): string | undefined {
  const q = query.toLowerCase()
  return (q && entry.shortcodes.find((c) => c.startsWith(q))) || entry.shortcodes[0]
}

/** The recently used list after using `char` (base form): first, once, at most `RECENT_MAX`. */
export function withRecent(list: readonly string[], char: string): string[] {
  return [char, ...list.filter((c) => c !== char)].slice(0, RECENT_MAX)
}

// ---- `:shortcode:` in text -------------------------------------------------------

export interface EmojiQuery {
  /** Index of the colon. */
  start: number
  /** What was typed after it. */
  query: string
}

/**
 * The `:query` being typed before the caret (an ASCII or a full-width
 * colon at the start or after a space or an opening bracket), once it has
 * two characters, or one that is not ASCII (`:笑`). `:)`, `10:30` and
 * code are not queries.
 */
export function emojiQueryAt(text: string, caret: number): EmojiQuery | null {
  const m = text.slice(0, caret).match(/(?:^|[\s([{"'“‘，。、])[:：]([\p{L}\p{N}_+-]{1,32})$/u)
  if (!m) return null
  const query = m[1]
  if (query.length < 2 && /^[\x00-\x7f]*$/.test(query)) return null
  const start = caret - query.length - 1
  return inCode(text, start) ? null : { start, query }
}

/** `:code:` not preceded by a word character, a colon or a slash (so not `10:30:` or a URL). */
const SHORTCODE = /(?<![\p{L}\p{N}_:/]):([a-z0-9_+-]{1,48}):/giu
/** Fenced code blocks and inline code spans, where text stays as typed. */
const CODE = /```[\s\S]*?(?:```|$)|`[^`\n]*`/g

/** `text` with every known `:shortcode:` outside code turned into its emoji, in `tone`. */
export function replaceShortcodes(text: string, data: EmojiData, tone: SkinTone): string {
  const swap = (part: string) =>
    part.replace(SHORTCODE, (whole, code: string) => {
      const entry = data.byShortcode.get(code.toLowerCase())
      return entry ? withTone(entry, tone) : whole
    })
  let out = ''
  let last = 0
  for (const m of text.matchAll(CODE)) {
    out += swap(text.slice(last, m.index)) + m[0]
    last = (m.index ?? 0) + m[0].length
  }
  return out + swap(text.slice(last))
}

/** Whether `index` of `text` is inside code (a fenced block or an inline span, maybe unclosed). */
function inCode(text: string, index: number): boolean {
  const before = text.slice(0, index)
  const fences = before.split('```').length - 1
  if (fences % 2 === 1) return true
  const fence = before.lastIndexOf('```')
  const line = (fence < 0 ? before : before.slice(fence + 3)).split('\n').pop() ?? ''
  return (line.split('`').length - 1) % 2 === 1
}

/** A known `:shortcode:` just closed before the caret (outside code): where it starts and its emoji. */
export function closedShortcodeAt(text: string, caret: number, data: EmojiData): { start: number; entry: EmojiEntry } | null {
  const m = text.slice(0, caret).match(/(?<![\p{L}\p{N}_:/]):([a-z0-9_+-]{1,48}):$/iu)
  if (!m) return null
  const entry = data.byShortcode.get(m[1].toLowerCase())
  const start = caret - m[0].length
  return entry && !inCode(text, start) ? { start, entry } : null
}

/**
 * An emoji as a colour glyph: one with emoji presentation by default, or any
 * pictograph asked for as emoji (U+FE0F) or given a skin tone, then its tone and ZWJ parts; or a
 * flag (two regional indicators). Keycaps and bare ©/™ stay text.
 */
const EMOJI_RUN =
  /(?:\p{Emoji_Presentation}|\p{Extended_Pictographic}(?:\uFE0F|\p{Emoji_Modifier}))(?:\p{Emoji_Modifier}|\uFE0F|\u20E3|\u200D(?:\p{Extended_Pictographic}\uFE0F?\p{Emoji_Modifier}?))*|\p{Regional_Indicator}{2}/gu

/**
 * Splits text into text and emoji runs, so the emoji can be drawn with the
 * colour emoji fonts: in the text font stack a font such as DejaVu Sans has
 * black-and-white glyphs for some of them (☺️, ✌️) and would win.
 */
export function emojiRuns(text: string): { text: string; emoji: boolean }[] {
  const out: { text: string; emoji: boolean }[] = []
  let at = 0
  for (const m of text.matchAll(EMOJI_RUN)) {
    const i = m.index ?? 0
    if (i > at) out.push({ text: text.slice(at, i), emoji: false })
    const last = out[out.length - 1]
    if (last?.emoji && i === at) last.text += m[0]
    else out.push({ text: m[0], emoji: true })
    at = i + m[0].length
  }
  if (at < text.length) out.push({ text: text.slice(at), emoji: false })
  return out
}
