// Short-lived messages (shell notices, deep-link failures). Errors show red;
// every toast dismisses itself after TOAST_MS.
import { defineStore } from 'pinia'
import { ref } from 'vue'

/** How long a toast stays up. */
export const TOAST_MS = 5000

export interface Toast {
  id: number
  level: 'error' | 'info'
  /** Plain text (from the shell)… */
  message?: string
  /** …or an i18n key with its parameters (from the UI). */
  key?: string
  params?: Record<string, string>
}

export const useToastsStore = defineStore('toasts', () => {
  const toasts = ref<Toast[]>([])
  let nextId = 1
  const timers = new Map<number, ReturnType<typeof setTimeout>>()

  function push(t: Omit<Toast, 'id'>, ms: number = TOAST_MS): number {
    const id = nextId++
    toasts.value = [...toasts.value, { ...t, id }]
    timers.set(id, setTimeout(() => dismiss(id), ms))
    return id
  }

  function dismiss(id: number): void {
    const timer = timers.get(id)
    if (timer) clearTimeout(timer)
    timers.delete(id)
    toasts.value = toasts.value.filter((t) => t.id !== id)
  }

  return { toasts, push, dismiss }
})
