// Connection state as the client core reports it, plus the browser's own
// online flag, reduced to what the banner and the status dot show.
import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import type { ConnState, ConnectionEvent } from '../types/events'

export type Banner = 'none' | 'connecting' | 'reconnecting' | 'offline' | 'stopped'

export const useConnectionStore = defineStore('connection', () => {
  const state = ref<ConnState>('disconnected')
  const url = ref<string | null>(null)
  const reason = ref<string | null>(null)
  const closeCode = ref<number | null>(null)
  /** Local clock time (ms) of the next reconnect attempt, when reconnecting. */
  const nextAttemptAt = ref<number | null>(null)
  /** navigator.onLine: false means no network at all. */
  const networkUp = ref(true)
  /** Set once a session has been up: "reconnecting" then reads as offline-ish. */
  const everConnected = ref(false)
  /** No state reported yet: show nothing rather than a guess. */
  const known = ref(false)
  /** Local time the last state arrived (a ticking clock may lag behind it). */
  const appliedAt = ref(0)

  function apply(e: ConnectionEvent, now: number = Date.now()): void {
    known.value = true
    appliedAt.value = now
    state.value = e.state
    if (e.url) url.value = e.url
    reason.value = e.reason ?? null
    closeCode.value = e.close_code ?? null
    nextAttemptAt.value = e.state === 'reconnecting' && e.retry_in_ms !== undefined ? now + e.retry_in_ms : null
    if (e.state === 'connected') everConnected.value = true
  }

  function setNetworkUp(up: boolean): void {
    networkUp.value = up
  }

  /** Whole seconds until the next attempt (never negative), or null. */
  function secondsUntilRetry(now: number): number | null {
    if (nextAttemptAt.value === null) return null
    return Math.max(0, Math.ceil((nextAttemptAt.value - Math.max(now, appliedAt.value)) / 1000))
  }

  const host = computed(() => {
    if (!url.value) return ''
    try {
      return new URL(url.value).host
    } catch {
      return url.value
    }
  })

  const banner = computed<Banner>(() => {
    if (!known.value || state.value === 'connected') return 'none'
    if (state.value === 'stopped') return 'stopped'
    if (!networkUp.value || state.value === 'disconnected') return 'offline'
    if (state.value === 'reconnecting') return 'reconnecting'
    return 'connecting'
  })

  /** The sidebar dot: green connected, amber trying, grey offline. */
  const dot = computed<'online' | 'trying' | 'offline'>(() => {
    if (!known.value || state.value === 'connected') return known.value ? 'online' : 'trying'
    if (banner.value === 'connecting' || banner.value === 'reconnecting') return 'trying'
    return 'offline'
  })

  return { known, state, url, reason, closeCode, nextAttemptAt, networkUp, everConnected, host, banner, dot, apply, setNetworkUp, secondsUntilRetry }
})
