// Which panels and dialogs are open. Esc closes the topmost one. Also the
// confirmation dialog (a promise the caller awaits) and the message being
// forwarded.
import { defineStore } from 'pinia'
import { ref } from 'vue'
import type { MessageView } from '../types/model'
import { isOpenableLink } from '../utils/markdown'
import { useTransport } from '../services/transport'

export type RightPanel = 'members' | 'search' | 'info' | 'pins'
export type Dialog = 'settings' | 'channels' | 'new-chat' | 'switcher' | 'forward'

/** What a confirmation dialog asks: i18n keys and their parameters. */
export interface ConfirmRequest {
  title: string
  message: string
  confirm: string
  params?: Record<string, string>
  danger?: boolean
  /** A channel to show above the question (a deep link's target). */
  channel?: { channel: string; title: string; topic: string; members: number | null }
}

export const useUiStore = defineStore('ui', () => {
  const rightPanel = ref<RightPanel | null>(null)
  const dialog = ref<Dialog | null>(null)
  const lightbox = ref<{ url: string; name: string } | null>(null)
  /** Narrow windows show either the list or the chat. */
  const narrowView = ref<'list' | 'chat'>('list')
  const sidebarWidth = ref(300)
  /** Focus the sidebar search (Ctrl/⌘+F) when bumped. */
  const searchFocusTick = ref(0)
  /** The open confirmation, with the function that answers it. */
  const confirming = ref<(ConfirmRequest & { resolve: (ok: boolean) => void }) | null>(null)
  /** The message the forward dialog sends. */
  const forwarding = ref<MessageView | null>(null)

  /** Asks the user to confirm; resolves false on Cancel or Esc. */
  function confirm(req: ConfirmRequest): Promise<boolean> {
    confirming.value?.resolve(false)
    return new Promise((resolve) => {
      confirming.value = { ...req, resolve }
    })
  }

  function answerConfirm(ok: boolean): void {
    const c = confirming.value
    confirming.value = null
    c?.resolve(ok)
  }

  function openForward(m: MessageView): void {
    forwarding.value = m
    dialog.value = 'forward'
  }

  function togglePanel(p: RightPanel): void {
    rightPanel.value = rightPanel.value === p ? null : p
  }

  function openDialog(d: Dialog): void {
    dialog.value = d
  }

  /** Esc: closes the lightbox, else a dialog, else the right panel. Returns whether something closed. */
  function closeTop(): boolean {
    if (confirming.value) {
      answerConfirm(false)
      return true
    }
    if (lightbox.value) {
      lightbox.value = null
      return true
    }
    if (dialog.value) {
      dialog.value = null
      forwarding.value = null
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
    if (isOpenableLink(url)) await useTransport().openExternal(url)
  }

  return {
    openExternal, rightPanel, dialog, lightbox, narrowView, sidebarWidth, searchFocusTick, confirming, forwarding,
    togglePanel, openDialog, closeTop, setSidebarWidth, confirm, answerConfirm, openForward,
  }
})
