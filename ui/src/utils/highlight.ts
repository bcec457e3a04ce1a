// Loads the code highlighter on first use (its own chunk) and remembers it;
// until then code blocks show as plain monospaced text.
import { shallowRef } from 'vue'
import type { CodePart } from './highlighter'

export type { CodePart }
type Highlight = (code: string, lang: string) => CodePart[] | null

/** The highlighter once loaded (reactive, so code blocks re-render with colours). */
export const highlighter = shallowRef<Highlight | null>(null)
let loading: Promise<Highlight> | null = null

/** Starts loading the highlighter (once) and resolves when it is ready. */
export function loadHighlighter(): Promise<Highlight> {
  loading ??= import('./highlighter').then((m) => {
    highlighter.value = m.highlightCode
    return m.highlightCode
  })
  return loading
}
