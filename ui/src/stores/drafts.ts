// Per-conversation drafts: kept in memory while typing, written to the
// client core (which persists them) shortly after typing stops.
import { defineStore } from 'pinia'
import { reactive } from 'vue'
import type { Conv } from '../types/protocol'
import { useTransport } from '../services/transport'
import { useConversationsStore } from './conversations'

const SAVE_DELAY_MS = 600

export const useDraftsStore = defineStore('drafts', () => {
  const local = reactive(new Map<Conv, string>())
  const dirty = new Set<Conv>()
  let timer: ReturnType<typeof setTimeout> | null = null

  /** The draft: what was typed here, else what the core stored. */
  function get(conv: Conv): string {
    return local.get(conv) ?? useConversationsStore().byConv.get(conv)?.draft ?? ''
  }

  function set(conv: Conv, text: string, now = false): void {
    if (get(conv) === text && !now) return
    local.set(conv, text)
    dirty.add(conv)
    if (now) {
      void flush()
      return
    }
    if (timer) clearTimeout(timer)
    timer = setTimeout(() => void flush(), SAVE_DELAY_MS)
  }

  async function flush(): Promise<void> {
    if (timer) clearTimeout(timer)
    timer = null
    const t = useTransport()
    for (const conv of [...dirty]) {
      dirty.delete(conv)
      try {
        await t.setDraft(conv, local.get(conv) ?? '')
      } catch {
        // A draft that cannot be saved stays in memory for this session.
      }
    }
  }

  return { local, get, set, flush }
})
