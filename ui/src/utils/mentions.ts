// @mentions in the composer and in rendered text. A mention is written as
// `@<user id>` (ids are `[A-Za-z0-9_.-]`), and the message's `mentions`
// lists the ids; the text is never parsed as anything but text.

/** Characters of a user id (proto::is_valid_name). */
const ID_CHAR = /[A-Za-z0-9_.-]/
/** `@id` not preceded by an id character (so `bob@example.com` is no mention). */
const MENTION_TOKEN = /(?<![A-Za-z0-9_.-])@([A-Za-z0-9_.-]{1,64})/g

export interface MentionQuery {
  /** Index of the `@` in the text. */
  start: number
  /** What was typed after it (may be empty). */
  query: string
}

/** The `@query` being typed right before the caret, if any. */
export function mentionQueryAt(text: string, caret: number): MentionQuery | null {
  const before = text.slice(0, caret)
  const m = before.match(/(?:^|[\s([{"'“‘，。、])@([^\s@]{0,32})$/u)
  if (!m) return null
  return { start: caret - m[1].length - 1, query: m[1] }
}

export interface MentionCandidate {
  user: string
  name: string
}

/** Candidates matching `query` by id or display name; prefix matches first, at most `limit`. */
export function filterCandidates(list: MentionCandidate[], query: string, limit = 8): MentionCandidate[] {
  const q = query.toLowerCase()
  const rank = (c: MentionCandidate): number => {
    if (!q) return 0
    const id = c.user.toLowerCase()
    const name = c.name.toLowerCase()
    if (id.startsWith(q) || name.startsWith(q)) return 0
    if (name.split(/\s+/).some((w) => w.startsWith(q))) return 1
    if (id.includes(q) || name.includes(q)) return 2
    return -1
  }
  return list
    .map((c) => ({ c, r: rank(c) }))
    .filter((x) => x.r >= 0)
    .sort((a, b) => a.r - b.r || a.c.name.localeCompare(b.c.name))
    .slice(0, limit)
    .map((x) => x.c)
}

/**
 * The ids of `candidates` that `text` mentions (`@id`), each once, in order.
 * A sentence's full stop after an id (`@alice.`) is not part of it.
 */
export function findMentions(text: string, candidates: Iterable<string>): string[] {
  const known = new Set(candidates)
  const out: string[] = []
  for (const m of text.matchAll(MENTION_TOKEN)) {
    let id = m[1]
    while (id && !known.has(id) && /[.-]$/.test(id)) id = id.slice(0, -1)
    if (known.has(id) && !out.includes(id)) out.push(id)
  }
  return out
}

export type MentionPart = { kind: 'text'; text: string } | { kind: 'mention'; text: string; user: string }

/** Splits plain text into text and `@id` parts for the ids in `mentions`. */
export function splitMentions(text: string, mentions: readonly string[]): MentionPart[] {
  if (mentions.length === 0 || !text.includes('@')) return [{ kind: 'text', text }]
  const known = new Set(mentions)
  const out: MentionPart[] = []
  let last = 0
  for (const m of text.matchAll(MENTION_TOKEN)) {
    let id = m[1]
    while (id && !known.has(id) && /[.-]$/.test(id)) id = id.slice(0, -1)
    if (!known.has(id)) continue
    const start = m.index ?? 0
    // The id must end at a non-id character (or the end).
    const end = start + 1 + id.length
    if (end < text.length && ID_CHAR.test(text[end]) && !/[.-]/.test(text[end])) continue
    if (start > last) out.push({ kind: 'text', text: text.slice(last, start) })
    out.push({ kind: 'mention', text: text.slice(start, end), user: id })
    last = end
  }
  if (last < text.length) out.push({ kind: 'text', text: text.slice(last) })
  return out
}

/** The `mentions` of a message body (text messages), else empty. */
export function mentionsOf(body: Record<string, unknown>): string[] {
  const list = body.mentions
  return Array.isArray(list) ? list.filter((u): u is string => typeof u === 'string') : []
}
