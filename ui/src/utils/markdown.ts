// Message formatting: markdown-it parses the text into tokens, which become a
// small tree of typed nodes (MdNode) that templates render as elements and
// text nodes. No HTML is ever produced or parsed: raw HTML in a message stays
// text, only http(s) and mailto links become links, and `||spoilers||` are a
// node of their own. The same tree gives the plain text of previews.
import MarkdownIt from 'markdown-it'
import type { StateInline, Token } from 'markdown-it'
import { splitMentions } from './mentions'
import { emojiRuns } from './emoji'

export type MdNode =
  | { type: 'text'; text: string }
  /** Text drawn as it is, without emoji runs (an over-long message's plain text). */
  | { type: 'plain'; text: string }
  | { type: 'mention'; text: string; user: string }
  | { type: 'code'; text: string }
  | { type: 'pre'; lang: string; text: string }
  | { type: 'br' }
  | { type: 'link'; href: string; children: MdNode[] }
  | { type: 'ol'; start: number; children: MdNode[] }
  | { type: Wrapper; children: MdNode[] }

/** Nodes that only wrap their children. */
type Wrapper = 'p' | 'blockquote' | 'ul' | 'li' | 'strong' | 'em' | 's' | 'spoiler'
type Parent = Extract<MdNode, { children: MdNode[] }>

/** What replaces a spoiler's text in plain-text previews and notifications. */
export const SPOILER_MASK = '▒▒▒'

/**
 * Header fields a `mailto:` link may carry (RFC 6068). Others are refused:
 * several mail clients (Evolution, KMail, older Thunderbird) attach the
 * local file an `attach=` field names to the draft the link opens.
 */
const MAIL_FIELDS = new Set(['to', 'cc', 'bcc', 'subject', 'body'])

/** The `text` rule of markdown-it, also stopping at `|` so spoilers can start mid-text. */
const TERMINATORS = new Set('\n!#$%&*+-:<=>@[\\]^_`{}~|'.split('').map((c) => c.charCodeAt(0)))
function text(state: StateInline, silent: boolean): boolean {
  let pos = state.pos
  while (pos < state.posMax && !TERMINATORS.has(state.src.charCodeAt(pos))) pos++
  if (pos === state.pos) return false
  if (!silent) state.pending += state.src.slice(state.pos, pos)
  state.pos = pos
  return true
}

/** `||hidden||` (Discord's spoiler): its content is parsed as inline markup. */
function spoiler(state: StateInline, silent: boolean): boolean {
  const start = state.pos
  const src = state.src
  if (src.charCodeAt(start) !== 0x7c || src.charCodeAt(start + 1) !== 0x7c) return false
  const end = src.indexOf('||', start + 2)
  if (end < 0 || end + 2 > state.posMax || end === start + 2) return false
  if (!silent) {
    // Parsed on its own, so no rule (e.g. linkify) can run past the closing `||`.
    state.push('spoiler_open', 'span', 1)
    const inner: Token[] = []
    state.md.inline.parse(src.slice(start + 2, end), state.md, state.env, inner)
    state.tokens.push(...inner)
    state.push('spoiler_close', 'span', -1)
  }
  state.pos = end + 2
  return true
}

/**
 * Chat-style Markdown: emphasis, strikethrough, code, fenced code blocks,
 * quotes, lists, spoilers and auto-links. Headings, tables, images, rules,
 * indented code, `[text](url)` links, entities and HTML stay literal text.
 */
const md = new MarkdownIt('zero', { linkify: true, breaks: true })
md.enable(['fence', 'blockquote', 'list', 'newline', 'escape', 'backticks', 'emphasis', 'strikethrough', 'autolink', 'linkify'])
md.inline.ruler.at('text', text)
md.inline.ruler.after('text', 'spoiler', spoiler)
md.validateLink = (url) => isOpenableLink(url)
md.linkify.set({ fuzzyLink: false, fuzzyIP: false })
/**
 * A link reads as its address, %-escapes decoded, but a host that is not
 * plain ASCII reads as the browser will get it (punycode): "аpple.com" with
 * a Cyrillic "а" must not pass for apple.com, and markdown-it's own text
 * even turned a written "xn--pple-43d.com" into that look-alike.
 */
const readableLinkText = md.normalizeLinkText.bind(md)
md.normalizeLinkText = (url) => {
  const ascii = md.normalizeLink(url)
  return /(?:^|[./@])xn--/i.test(ascii.split(/[/?#]/, 3).join('/')) ? ascii : readableLinkText(url)
}

const OPEN = new Map<string, Wrapper>([
  ['paragraph_open', 'p'],
  ['blockquote_open', 'blockquote'],
  ['bullet_list_open', 'ul'],
  ['list_item_open', 'li'],
  ['strong_open', 'strong'],
  ['em_open', 'em'],
  ['s_open', 's'],
  ['spoiler_open', 'spoiler'],
])

function leaf(t: Token, mentions: readonly string[], out: MdNode[], inLink: boolean): void {
  switch (t.type) {
    case 'text':
      if (inLink || !t.content) {
        if (t.content) out.push({ type: 'text', text: t.content })
        return
      }
      for (const p of splitMentions(t.content, mentions)) {
        out.push(p.kind === 'mention' ? { type: 'mention', text: p.text, user: p.user } : { type: 'text', text: p.text })
      }
      return
    case 'code_inline':
      out.push({ type: 'code', text: t.content })
      return
    case 'fence':
      out.push({ type: 'pre', lang: t.info.trim().split(/\s+/)[0] ?? '', text: t.content.replace(/\n$/, '') })
      return
    case 'softbreak':
    case 'hardbreak':
      out.push({ type: 'br' })
      return
    default:
      // Anything else a rule may emit is shown as its source text.
      if (t.content) out.push({ type: 'text', text: t.content })
  }
}

function build(tokens: Token[], mentions: readonly string[]): MdNode[] {
  const root: MdNode[] = []
  const stack: { node: Parent | null; children: MdNode[] }[] = [{ node: null, children: root }]
  const top = () => stack[stack.length - 1]
  const walk = (list: Token[]) => {
    for (const t of list) {
      if (t.type === 'inline') {
        walk(t.children ?? [])
      } else if (t.nesting === 1) {
        let node: Parent | null
        if (t.type === 'paragraph_open' && t.hidden) node = null
        else if (t.type === 'ordered_list_open') node = { type: 'ol', start: Number(t.attrGet('start') ?? 1), children: [] }
        else if (t.type === 'link_open') node = { type: 'link', href: String(t.attrGet('href') ?? ''), children: [] }
        else {
          const type = OPEN.get(t.type)
          node = type ? { type, children: [] } : null
        }
        if (node) top().children.push(node)
        stack.push({ node, children: node ? node.children : top().children })
      } else if (t.nesting === -1) {
        stack.pop()
      } else {
        leaf(t, mentions, top().children, stack.some((s) => s.node?.type === 'link'))
      }
    }
  }
  walk(tokens)
  return root
}

/** The formatting tree of a message's text; `mentions` are the ids shown as mentions. */
export function parseMessage(text: string, mentions: readonly string[] = []): MdNode[] {
  return build(md.parse(text, {}), mentions)
}

/**
 * Whether a link may be opened: http(s) with a host, or mailto with an
 * address and only the fields of {@link MAIL_FIELDS}. The shell checks the
 * same before it hands a URL to the OS (`os::check_external_url`).
 */
export function isOpenableLink(href: string): boolean {
  let u: URL
  try {
    u = new URL(href)
  } catch {
    return false
  }
  if (u.protocol === 'http:' || u.protocol === 'https:') return u.hostname !== ''
  if (u.protocol !== 'mailto:' || u.pathname === '') return false
  return [...u.searchParams.keys()].every((k) => MAIL_FIELDS.has(k.toLowerCase()))
}

/**
 * The most elements one message is drawn with. Formatting is cheap to
 * write and each piece is an element (a spoiler two, and a component):
 * 10,000 `||a||` took 7 s to draw in tests, 10,000 links 1.7 s, and a
 * message list draws a screenful of such messages. Ordinary messages use
 * a few dozen.
 */
export const MAX_ELEMENTS = 2000

/** How many elements `nodes` draw (emoji runs are spans), counting up to `budget` + 1. */
function elementsOf(nodes: MdNode[], budget: number): number {
  let used = 0
  for (const n of nodes) {
    if (used > budget) break
    switch (n.type) {
      case 'text':
        if (/[^\x00-\x7f]/.test(n.text)) used += emojiRuns(n.text).filter((r) => r.emoji).length
        break
      case 'br':
      case 'plain':
        break
      case 'mention':
      case 'code':
      case 'pre':
        used += 1
        break
      default:
        used += (n.type === 'spoiler' ? 2 : 1) + elementsOf(n.children, budget - used)
    }
  }
  return used
}

/**
 * The formatting tree of a message for drawing: {@link parseMessage}, or,
 * when that would take more than {@link MAX_ELEMENTS} elements, the
 * message's plain text (formatting removed, spoilers masked) as one text
 * node.
 */
export function formatMessage(text: string, mentions: readonly string[] = []): MdNode[] {
  const nodes = parseMessage(text, mentions)
  if (elementsOf(nodes, MAX_ELEMENTS) <= MAX_ELEMENTS) return nodes
  const out: string[] = []
  plainOf(nodes, out)
  return [{ type: 'plain', text: out.join('').replace(/\n+$/, '') }]
}

function plainOf(nodes: MdNode[], out: string[]): void {
  for (const n of nodes) {
    switch (n.type) {
      case 'text':
      case 'plain':
      case 'mention':
      case 'code':
        out.push(n.text)
        break
      case 'pre':
        out.push(n.text, '\n')
        break
      case 'br':
        out.push('\n')
        break
      case 'spoiler':
        out.push(SPOILER_MASK)
        break
      case 'p':
      case 'blockquote':
      case 'ul':
      case 'ol':
      case 'li':
        plainOf(n.children, out)
        if (out.length && !out[out.length - 1].endsWith('\n')) out.push('\n')
        break
      default:
        plainOf(n.children, out)
    }
  }
}

/**
 * The words of a message without its markup, one line per block; a
 * spoiler's text is replaced by {@link SPOILER_MASK}. (The client core's
 * `courier_client::markup::plain_text` follows the same rule.)
 */
export function plainText(text: string): string {
  const out: string[] = []
  plainOf(parseMessage(text), out)
  return out.join('').replace(/\n+$/, '')
}
