// Desktop conventions the OS keeps rather than settings.json: start at
// login (the OS entry is the setting) and the log folder.
import { defineStore } from 'pinia'
import { ref } from 'vue'
import { toTransportError, useTransport } from '../services/transport'

export const useDesktopStore = defineStore('desktop', () => {
  /** Whether the app starts at login; null until read from the OS. */
  const startAtLogin = ref<boolean | null>(null)
  /** Why the last change or read failed (the shell's message), else null. */
  const startAtLoginError = ref<string | null>(null)
  const busy = ref(false)

  async function load(): Promise<void> {
    try {
      startAtLogin.value = await useTransport().startAtLogin()
      startAtLoginError.value = null
    } catch (e) {
      startAtLoginError.value = toTransportError(e).message
    }
  }

  /** Asks the OS to (not) start the app at login; shows what the OS then has. */
  async function setStartAtLogin(on: boolean): Promise<void> {
    busy.value = true
    try {
      startAtLogin.value = await useTransport().setStartAtLogin(on)
      startAtLoginError.value = null
    } catch (e) {
      // What the OS has now, then the reason, together: the error never
      // shows beside a toggle that still reads the state asked for.
      const now = await useTransport().startAtLogin().catch(() => startAtLogin.value)
      startAtLogin.value = now
      startAtLoginError.value = toTransportError(e).message
    } finally {
      busy.value = false
    }
  }

  const openLogsFolder = () => useTransport().openLogsFolder()

  return { startAtLogin, startAtLoginError, busy, load, setStartAtLogin, openLogsFolder }
})
