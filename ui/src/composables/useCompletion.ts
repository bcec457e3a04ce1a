// Completion of the token typed before the caret in a text field: the
// composer's `@mention` and `:emoji:` lists share it. A source says what a
// token is, what it suggests and what a pick inserts; this keeps the open
// list, the selection, and the keys (↑/↓, Enter or Tab picks, Esc closes
// until another token starts).
import { computed, nextTick, ref, watch } from 'vue'
import type { Ref } from 'vue'

export interface CompletionQuery {
  /** Index of the trigger character (`@`, `:`). */
  start: number
  /** What was typed after it. */
  query: string
}

export interface CompletionSource<T> {
  /** The token being typed right before the caret, if any. */
  queryAt: (text: string, caret: number) => CompletionQuery | null
  /** Suggestions for a query, best first (reactive reads are tracked). */
  suggest: (query: string) => T[]
  /** The text that replaces the token; a trailing space swallows one already after it. */
  insertText: (item: T) => string
  /** After a pick was inserted. */
  picked?: (item: T) => void
}

export function useCompletion<T>(text: Ref<string>, input: Ref<HTMLTextAreaElement | null>, source: CompletionSource<T>) {
  const query = ref<CompletionQuery | null>(null)
  const index = ref(0)
  /** The token the user closed the list for with Esc: not reopened until another one. */
  let dismissedAt = -1
  const items = computed<T[]>(() => (query.value ? source.suggest(query.value.query) : []))
  const open = computed(() => items.value.length > 0)
  watch(() => query.value?.query, () => (index.value = 0))

  /** Re-reads the token at the caret (after input, clicks and caret moves). */
  function update() {
    const caret = input.value?.selectionStart ?? text.value.length
    const q = source.queryAt(text.value, caret)
    if (!q) dismissedAt = -1
    query.value = q && q.start !== dismissedAt ? q : null
  }

  function pick(item: T) {
    const q = query.value
    const el = input.value
    if (!q) return
    const caret = el?.selectionStart ?? text.value.length
    const inserted = source.insertText(item)
    const before = text.value.slice(0, q.start)
    let after = text.value.slice(Math.max(caret, q.start + 1 + q.query.length))
    if (inserted.endsWith(' ')) after = after.replace(/^ /, '')
    text.value = before + inserted + after
    query.value = null
    source.picked?.(item)
    void nextTick(() => {
      el?.focus()
      const pos = before.length + inserted.length
      el?.setSelectionRange(pos, pos)
    })
  }

  function close() {
    query.value = null
  }

  /** Keys while the list is open; true when handled. */
  function onKey(e: KeyboardEvent): boolean {
    if (!open.value || e.isComposing) return false
    const n = items.value.length
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      index.value = (index.value + (e.key === 'ArrowDown' ? 1 : n - 1)) % n
    } else if ((e.key === 'Enter' && !e.shiftKey) || e.key === 'Tab') {
      pick(items.value[index.value])
    } else if (e.key === 'Escape') {
      dismissedAt = query.value?.start ?? -1
      query.value = null
      e.stopPropagation()
    } else {
      return false
    }
    e.preventDefault()
    return true
  }

  return { query, index, items, open, update, pick, close, onKey }
}
