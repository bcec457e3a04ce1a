// Which panels and dialogs are open. Esc closes the topmost one.
import { defineStore } from 'pinia'
import { ref } from 'vue'
import { isSafeUrl } from '../utils/text'
import { useTransport } from '../services/transport'

export type RightPanel = 'members' | 'search' | 'info'
export type Dialog = 'settings' | 'channels' | 'new-chat' | 'switcher'

export const useUiStore = defineStore('ui', () => {
  const rightPanel = ref<RightPanel | null>(null)
  const dialog = ref<Dialog | null>(null)
  const lightbox = ref<{ url: string; name: string } | null>(null)
  /** Narrow windows show either the list or the chat. */
  const narrowView = ref<'list' | 'chat'>('list')
  const sidebarWidth = ref(300)
  /** Focus the sidebar search (Ctrl/⌘+F) when bumped. */
  const searchFocusTick = ref(0)

  function togglePanel(p: RightPanel): void {
    rightPanel.value = rightPanel.value === p ? null : p
  }

  function openDialog(d: Dialog): void {
    dialog.value = d
  }

  /** Esc: closes the lightbox, else a dialog, else the right panel. Returns whether something closed. */
  function closeTop(): boolean {
    if (lightbox.value) {
      lightbox.value = null
      return true
    }
    if (dialog.value) {
      dialog.value = null
      return true
    }
    if (rightPanel.value) {
      rightPanel.value = null
      return true
    }
    return false
  }

  function setSidebarWidth(px: number): void {
    sidebarWidth.value = Math.round(Math.min(440, Math.max(240, px)))
  }

  /** Opens an http(s) link in the OS browser (never inside the app). */
  async function openExternal(url: string): Promise<void> {
    if (isSafeUrl(url)) await useTransport().openExternal(url)
  }

  return { openExternal, rightPanel, dialog, lightbox, narrowView, sidebarWidth, searchFocusTick, togglePanel, openDialog, closeTop, setSidebarWidth }
})
