// Inline editing of an own text message: which message is being edited,
// which one ↑ in an empty composer picks, and saving. Whether the user may
// edit a message at all is utils/permissions.ts; what the edit changes is
// the core's to say (`message_updated` of the target, see applying.ts).
import type { MessageView } from '../../types/model'
import type { Conv } from '../../types/protocol'
import { useTransport } from '../../services/transport'
import { useSessionStore } from '../session'
import { permissionsFor } from '../permissions'
import { act } from './relations'
import type { MessagesState } from './window'

export function editing(st: MessagesState, current: (m: MessageView) => MessageView) {
  /** Starts the inline editor on `m` if the user may edit it. */
  function startEdit(m: MessageView): boolean {
    if (!permissionsFor(m).edit) return false
    st.editing.value = { conv: m.conv, cid: m.cid }
    return true
  }

  function cancelEdit(): void {
    st.editing.value = null
  }

  function isEditing(m: MessageView): boolean {
    return st.editing.value?.cid === m.cid && st.editing.value.conv === m.conv
  }

  /** The newest own text message of `conv` the user may still edit (↑ in an empty composer). */
  function lastEditable(conv: Conv, now: number = Date.now()): MessageView | null {
    const items = st.byConv.get(conv)?.items ?? []
    const mine = useSessionStore().me
    for (let i = items.length - 1; i >= 0; i--) {
      const m = items[i]
      if (m.from !== mine || m.kind !== 'text' || m.recalled || m.seq === null) continue
      return permissionsFor(m, now).edit ? m : null
    }
    return null
  }

  /** Saves an edit. Blank text is refused, unchanged text just closes the editor. */
  async function edit(m: MessageView, text: string): Promise<boolean> {
    const next = text.replace(/^\s*\n|\s+$/g, '')
    if (!next.trim() || !m.mid) return false
    st.editing.value = null
    if (current(m).body.text === next) return true
    return act(m, (mid) => useTransport().editMessage(m.conv, mid, next))
  }

  return { startEdit, cancelEdit, isEditing, lastEditable, edit }
}
