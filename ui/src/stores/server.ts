// What the connected server supports (protocol §11): feature `v1.1` and the
// edit / recall windows. Loaded at start-up and again on every connect (the
// user may have switched servers). Unknown or failed: v1.1 actions hidden.
import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import type { ServerInfo } from '../types/app'
import { useTransport } from '../services/transport'

export const useServerStore = defineStore('server', () => {
  const info = ref<ServerInfo | null>(null)

  async function load(): Promise<void> {
    try {
      info.value = await useTransport().serverInfo()
    } catch {
      // Not connected yet, or an older shell: keep what we knew.
    }
  }

  /** Edits, recalls, reactions, pins, mentions and forwarding are available. */
  const v11 = computed(() => info.value?.features.includes('v1.1') ?? false)
  /** Calls carry media (call devices and call signals, protocol §12). */
  const v12 = computed(() => info.value?.features.includes('v1.2') ?? false)

  /** Whether a message sent at `ts` is still inside a window of `windowS` seconds (null: no window). */
  function within(ts: number | null, windowS: number | null | undefined, now: number): boolean {
    if (windowS === null || windowS === undefined) return true
    if (ts === null) return false
    return now - ts <= windowS * 1000
  }

  const canEditAt = (ts: number | null, now: number) => within(ts, info.value?.edit_window_s, now)
  const canRecallAt = (ts: number | null, now: number) => within(ts, info.value?.recall_window_s, now)

  return { info, v11, v12, load, canEditAt, canRecallAt }
})
