// Formatting shortcuts of the composer: which key makes which markup, and
// wrapping a selection in it (or inserting the markers with the caret in
// between). Pure functions over the text and selection; the composer applies
// the result.

export type FormatKind = 'bold' | 'italic' | 'code' | 'codeBlock'

const MARKERS: Record<Exclude<FormatKind, 'codeBlock'>, string> = { bold: '**', italic: '_', code: '`' }

/** The format Ctrl/⌘ + key asks for (B, I, E, Shift+C), or null. */
export function formatForKey(e: Pick<KeyboardEvent, 'key' | 'code' | 'ctrlKey' | 'metaKey' | 'altKey' | 'shiftKey'>): FormatKind | null {
  if (!(e.ctrlKey || e.metaKey) || e.altKey) return null
  const key = e.code?.startsWith('Key') ? e.code.slice(3).toLowerCase() : e.key.toLowerCase()
  if (e.shiftKey) return key === 'c' ? 'codeBlock' : null
  if (key === 'b') return 'bold'
  if (key === 'i') return 'italic'
  if (key === 'e') return 'code'
  return null
}

/** A text edit: replace `from..to` with `insert`, then select `selStart..selEnd` of the new text. */
export interface FormatEdit {
  from: number
  to: number
  insert: string
  selStart: number
  selEnd: number
}

/**
 * The edit that applies `kind` to `text[start..end]`: the selection is
 * wrapped and stays selected; with no selection the markers are inserted and
 * the caret goes between them. Applying an inline format to a selection that
 * already has exactly its markers around it removes them.
 */
export function formatEdit(text: string, start: number, end: number, kind: FormatKind): FormatEdit {
  const sel = text.slice(start, end)
  if (kind === 'codeBlock') {
    const lead = start > 0 && text[start - 1] !== '\n' ? '\n' : ''
    const trail = end < text.length && text[end] !== '\n' ? '\n' : ''
    const open = `${lead}\`\`\`\n`
    const insert = `${open}${sel}\n\`\`\`${trail}`
    return { from: start, to: end, insert, selStart: start + open.length, selEnd: start + open.length + sel.length }
  }
  const m = MARKERS[kind]
  if (sel && text.slice(start - m.length, start) === m && text.slice(end, end + m.length) === m) {
    return { from: start - m.length, to: end + m.length, insert: sel, selStart: start - m.length, selEnd: end - m.length }
  }
  return { from: start, to: end, insert: m + sel + m, selStart: start + m.length, selEnd: end + m.length }
}

/** `text` with `edit` applied. */
export function applyEdit(text: string, edit: FormatEdit): string {
  return text.slice(0, edit.from) + edit.insert + text.slice(edit.to)
}

/** The modifier key's name on this system (⌘ on macOS, Ctrl elsewhere). */
export function modKeyLabel(platform = typeof navigator === 'undefined' ? '' : navigator.platform): string {
  return /mac|iphone|ipad/i.test(platform) ? '⌘' : 'Ctrl'
}
