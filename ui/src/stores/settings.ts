// App settings (persisted by the shell through the transport) and the
// per-conversation pin/mute lists that live in them.
import { defineStore } from 'pinia'
import { ref } from 'vue'
import type { Settings } from '../types/app'
import { DEFAULT_SETTINGS } from '../types/app'
import type { Conv } from '../types/protocol'
import { useTransport } from '../services/transport'

/** A plain deep copy (settings are JSON; reactive proxies cannot be structured-cloned). */
function plain(s: Settings): Settings {
  return JSON.parse(JSON.stringify(s)) as Settings
}

export const useSettingsStore = defineStore('settings', () => {
  const settings = ref<Settings>(plain(DEFAULT_SETTINGS))
  const loaded = ref(false)

  async function load(): Promise<void> {
    settings.value = { ...plain(DEFAULT_SETTINGS), ...(await useTransport().getSettings()) }
    loaded.value = true
  }

  /** Settings the shell changed (`courier://settings`, e.g. the tray's do-not-disturb). */
  function apply(s: Settings): void {
    settings.value = { ...plain(DEFAULT_SETTINGS), ...plain(s) }
    loaded.value = true
  }

  async function update(patch: Partial<Settings>): Promise<void> {
    settings.value = { ...settings.value, ...patch }
    await useTransport().setSettings(plain(settings.value))
  }

  function isPinned(conv: Conv): boolean {
    return settings.value.pinned.includes(conv)
  }

  function isMuted(conv: Conv): boolean {
    return settings.value.muted.includes(conv)
  }

  function toggle(list: string[], conv: Conv): string[] {
    return list.includes(conv) ? list.filter((c) => c !== conv) : [...list, conv]
  }

  const togglePinned = (conv: Conv) => update({ pinned: toggle(settings.value.pinned, conv) })
  const toggleMuted = (conv: Conv) => update({ muted: toggle(settings.value.muted, conv) })

  return { settings, loaded, load, apply, update, isPinned, isMuted, togglePinned, toggleMuted }
})
