// `:shortcode:` in the composer: typing `:smi` (or `:笑`) lists matching
// emoji through the shared completion (useCompletion); a known `:smile:`
// typed in full becomes its emoji on the closing colon, or on send. Emoji
// come in the user's skin tone; the data loads when the first `:` query
// starts.
import type { Ref } from 'vue'
import { nextTick } from 'vue'
import { useEmojiStore } from '../stores/emoji'
import type { EmojiEntry } from '../utils/emojiData'
import { closedShortcodeAt, emojiQueryAt, replaceShortcodes, searchEmoji, shortcodeFor } from '../utils/emoji'
import { useCompletion } from './useCompletion'

/** How many suggestions the list shows. */
const SUGGESTIONS = 8

export function useEmojiCompletion(text: Ref<string>, input: Ref<HTMLTextAreaElement | null>) {
  const emoji = useEmojiStore()
  const completion = useCompletion<EmojiEntry>(text, input, {
    queryAt(t, caret) {
      const q = emojiQueryAt(t, caret)
      if (q && !emoji.data) void emoji.load()
      return q
    },
    suggest: (q) => (emoji.data ? searchEmoji(emoji.data, q, SUGGESTIONS) : []),
    insertText: (e) => emoji.displayEntry(e),
    picked: (e) => void emoji.noteUsed(e.char),
  })

  /** Turns a known `:shortcode:` just closed before the caret into its emoji; true when it did. */
  function convertClosed(): boolean {
    const el = input.value
    const data = emoji.data
    if (!el || !data) return false
    const caret = el.selectionStart ?? text.value.length
    const hit = closedShortcodeAt(text.value, caret, data)
    if (!hit) return false
    const char = emoji.displayEntry(hit.entry)
    text.value = text.value.slice(0, hit.start) + char + text.value.slice(caret)
    void emoji.noteUsed(hit.entry.char)
    const pos = hit.start + char.length
    void nextTick(() => el.setSelectionRange(pos, pos))
    return true
  }

  /** `body` with every known `:shortcode:` outside code as its emoji (loads the data only when one may be there). */
  async function expand(body: string): Promise<string> {
    if (!/:[a-z0-9_+-]+:/i.test(body)) return body
    const data = await emoji.load()
    return data ? replaceShortcodes(body, data, emoji.tone) : body
  }

  /** A suggestion as it will be inserted (in the user's tone). */
  const display = (e: EmojiEntry) => emoji.displayEntry(e)
  /** A suggestion's name in the list: the shortcode being typed (`:thumbsup:` for `:thu`), else its English name. */
  const label = (e: EmojiEntry) => {
    const code = shortcodeFor(e, completion.query.value?.query)
    return code ? `:${code}:` : e.name
  }

  return { ...completion, convertClosed, expand, display, label }
}
