// The v1.1 actions on a message — recall, react, pin, forward — and the
// pinned lists. Each action is one command to the client core and nothing
// more: the core decides what it changes, shows a pending reaction or pin
// at once, applies a recall once the server stored it and undoes whatever
// the server refuses, reporting each step as `message_updated` (and
// `conversation_updated` for the pinned ids), which applying.ts renders.
// A refusal is a toast saying why.
import { ref } from 'vue'
import type { MessageView } from '../../types/model'
import type { Conv } from '../../types/protocol'
import { targetOf } from '../../types/ids'
import { toTransportError, useTransport } from '../../services/transport'
import { limitToast } from '../../utils/errors'
import { useSessionStore } from '../session'
import { useToastsStore } from '../toasts'
import type { MessagesState } from './window'

/** The toast (i18n key and parameters) for a refused action, by error code. */
export function actionErrorToast(e: unknown): { key: string; params: Record<string, string> } {
  const err = toTransportError(e)
  switch (err.code) {
    case 'forbidden':
      return { key: 'actions.errForbidden', params: {} }
    case 'conflict':
      return { key: 'actions.errConflict', params: {} }
    case 'not_found':
      return { key: 'actions.errNotFound', params: {} }
    case 'limit_reached':
    case 'rate_limited':
      return limitToast(err)
    default:
      return { key: 'actions.errOther', params: { message: err.message } }
  }
}

function reportActionError(e: unknown): void {
  useToastsStore().push({ level: 'error', ...actionErrorToast(e) })
}

/** Runs one action command on a stored message; false (and a toast) when refused. */
export async function act(m: MessageView, command: (mid: string) => Promise<unknown>): Promise<boolean> {
  if (!m.mid) return false
  try {
    await command(m.mid)
    return true
  } catch (e) {
    reportActionError(e)
    return false
  }
}

export function relations(st: MessagesState, current: (m: MessageView) => MessageView, shown: (m: MessageView) => MessageView) {
  /** A message the open list should show (a pin chosen in the bar or the panel). */
  const jumpRequest = ref<MessageView | null>(null)
  const me = () => useSessionStore().me

  function requestJump(m: MessageView): void {
    jumpRequest.value = { ...m }
  }

  /** Recalls a message for everyone (after the UI confirmed it); its editor closes. */
  function recall(m: MessageView): Promise<boolean> {
    if (st.editing.value?.cid === m.cid && st.editing.value.conv === m.conv) st.editing.value = null
    return act(m, (mid) => useTransport().recallMessage(m.conv, mid))
  }

  /** Turns the user's reaction `key` on or off. */
  function react(m: MessageView, key: string, on: boolean): Promise<boolean> {
    return act(m, (mid) => useTransport().react(m.conv, mid, key, on))
  }

  /** Clicking a reaction: on if the user has not reacted with it (as the message shows now), else off. */
  function toggleReaction(m: MessageView, key: string): Promise<boolean> {
    const on = !(current(m).reactions?.[key] ?? []).includes(me())
    return react(m, key, on)
  }

  /** Pins or unpins a message in its conversation. */
  function pin(m: MessageView, on: boolean): Promise<boolean> {
    return act(m, (mid) => useTransport().pinMessage(m.conv, mid, on))
  }

  /** Sends a copy of `m` to conversation `to`, marked "forwarded from". */
  async function forward(m: MessageView, to: Conv): Promise<MessageView | null> {
    if (!m.mid) return null
    try {
      return shown(await useTransport().forwardMessage(m.conv, m.mid, targetOf(to, me())))
    } catch (e) {
      reportActionError(e)
      return null
    }
  }

  /**
   * A content message this device holds, loaded or only in the core's store
   * (a forward's original); null when it has none or the lookup fails.
   */
  async function stored(conv: Conv, mid: string): Promise<MessageView | null> {
    try {
      return await useTransport().messageByMid(conv, mid)
    } catch {
      return null
    }
  }

  /** Loads the pinned messages of `conv`. */
  async function loadPinned(conv: Conv): Promise<void> {
    try {
      st.pinned.set(conv, await useTransport().pinnedMessages(conv))
    } catch {
      // Offline or an older core: the bar shows what the loaded window has.
    }
  }

  return { jumpRequest, requestJump, recall, react, toggleReaction, pin, forward, stored, loadPinned }
}
