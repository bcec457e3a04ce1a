// Global keyboard shortcuts: Ctrl/⌘+K quick switcher, Ctrl/⌘+F search,
// Esc closes dialogs, then cancels an inline edit, then closes panels;
// Alt+↑/↓ moves between conversations. During a call: Ctrl/⌘+Shift+M mutes
// or unmutes, Ctrl/⌘+Shift+O turns the camera on or off, Ctrl/⌘+Shift+H hangs
// up (the Teams keys; the composer's Ctrl+B/I/E/Shift+C are apart).
import { onBeforeUnmount, onMounted } from 'vue'
import { useUiStore } from '../stores/ui'
import { useConversationsStore } from '../stores/conversations'
import { useMessagesStore } from '../stores/messages'
import { useCallsStore } from '../stores/calls'
import { useInvitationsStore } from '../stores/invitations'

export function handleShortcut(e: KeyboardEvent): boolean {
  const ui = useUiStore()
  const mod = e.ctrlKey || e.metaKey
  const key = e.key.toLowerCase()
  if (mod && e.shiftKey && !e.altKey && (key === 'm' || key === 'o' || key === 'h')) {
    const calls = useCallsStore()
    const invitations = useInvitationsStore()
    if (!invitations.call) return false
    if (key === 'm') void calls.toggleMute()
    else if (key === 'o') void calls.toggleCamera()
    else void invitations.hangUp()
    return true
  }
  if (mod && !e.altKey && key === 'k') {
    ui.dialog = ui.dialog === 'switcher' ? null : 'switcher'
    return true
  }
  if (mod && !e.altKey && key === 'f') {
    ui.dialog = null
    ui.rightPanel = 'search'
    ui.searchFocusTick++
    return true
  }
  if (e.key === 'Escape') {
    const messages = useMessagesStore()
    if (!ui.confirming && !ui.lightbox && !ui.dialog && messages.editing) {
      messages.cancelEdit()
      return true
    }
    return ui.closeTop()
  }
  if (e.altKey && !mod && (e.key === 'ArrowUp' || e.key === 'ArrowDown')) {
    useConversationsStore().step(e.key === 'ArrowUp' ? -1 : 1)
    ui.narrowView = 'chat'
    return true
  }
  return false
}

export function useShortcuts(): void {
  const onKey = (e: KeyboardEvent) => {
    if (e.isComposing) return
    if (handleShortcut(e)) e.preventDefault()
  }
  onMounted(() => window.addEventListener('keydown', onKey))
  onBeforeUnmount(() => window.removeEventListener('keydown', onKey))
}
