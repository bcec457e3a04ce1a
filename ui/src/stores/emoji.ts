// Emoji for the picker, the composer and the reactions: the data (loaded on
// first use), and the user's skin tone and recently used emoji, which are
// per-profile settings the shell persists (never localStorage; the recents
// older versions kept there move into the settings once).
import { defineStore } from 'pinia'
import { computed, ref, shallowRef } from 'vue'
import type { SkinTone } from '../types/app'
import { loadEmojiData } from '../utils/emojiData'
import type { EmojiData, EmojiEntry } from '../utils/emojiData'
import { toned, withRecent, withTone } from '../utils/emoji'
import { useSettingsStore } from './settings'

/** Where versions before the settings field kept recents. */
const LEGACY_RECENTS_KEY = 'courier.recentEmoji'

export const useEmojiStore = defineStore('emoji', () => {
  const settings = useSettingsStore()
  const data = shallowRef<EmojiData | null>(null)
  /** The last load failed (the picker offers a retry). */
  const failed = ref(false)

  /** Loads the data once; later calls share it. */
  async function load(): Promise<EmojiData | null> {
    if (data.value) return data.value
    try {
      data.value = await loadEmojiData()
      failed.value = false
      adoptLegacyRecents()
    } catch {
      failed.value = true
    }
    return data.value
  }

  const tone = computed<SkinTone>(() => settings.settings.emoji_skin_tone ?? 'default')
  /** Recently used emoji (base forms), newest first. */
  const recent = computed<string[]>(() => settings.settings.recent_emoji ?? [])

  /** `char` (any form) in the user's tone, once the data is loaded. */
  function display(char: string): string {
    return toned(data.value, char, tone.value)
  }

  function displayEntry(entry: EmojiEntry): string {
    return withTone(entry, tone.value)
  }

  /** Persists a preference; a failure only costs the preference, never the pick. */
  async function save(patch: Parameters<typeof settings.update>[0]): Promise<void> {
    try {
      await settings.update(patch)
    } catch {
      // The shell could not write settings.json: the choice holds for this session.
    }
  }

  const setTone = (next: SkinTone) => save({ emoji_skin_tone: next })

  /** Puts `char` (any tone) first in the recently used list. */
  function noteUsed(char: string): Promise<void> {
    const base = data.value?.byChar.get(char)?.char ?? char
    return save({ recent_emoji: withRecent(recent.value, base) })
  }

  /** Moves the recents an older version left in localStorage into the settings (when these have none), then forgets them. */
  function adoptLegacyRecents() {
    let old: unknown
    try {
      old = JSON.parse(localStorage.getItem(LEGACY_RECENTS_KEY) ?? 'null')
      localStorage.removeItem(LEGACY_RECENTS_KEY)
    } catch {
      return // no storage, or unreadable: nothing to keep
    }
    if (!Array.isArray(old) || recent.value.length > 0) return
    const chars = old.filter((c): c is string => typeof c === 'string')
    if (chars.length === 0) return
    const list = chars.reduceRight<string[]>((acc, c) => withRecent(acc, data.value?.byChar.get(c)?.char ?? c), [])
    void save({ recent_emoji: list })
  }

  return { data, failed, load, tone, recent, display, displayEntry, setTone, noteUsed }
})
