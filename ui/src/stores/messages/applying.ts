// Applies what the client core reports to the loaded windows: messages
// added or updated (sends, acks, failures, and every edit, recall,
// reaction and pin, pending ones included — the core derives what a
// message shows; the UI only renders it), and a DM peer's receipts.
import type { DeliveryStatus, MessageView } from '../../types/model'
import type { Conv } from '../../types/protocol'
import { useSessionStore } from '../session'
import { RANK, canTransition, insertSorted, setItems, type MessagesState } from './window'

export function applying(st: MessagesState) {
  /** Keeps a loaded pinned list in step with an updated message (edited, recalled, unpinned). */
  function updatePinned(m: MessageView): void {
    const list = st.pinned.get(m.conv)
    if (!list || !m.mid) return
    const i = list.findIndex((p) => p.mid === m.mid)
    if (i < 0) return
    const next = list.slice()
    if (m.recalled || m.pinned === undefined) next.splice(i, 1)
    else next[i] = m
    st.pinned.set(m.conv, next)
  }

  /** Adds or updates one message (events, send results). Unloaded conversations are skipped. */
  function upsert(m: MessageView): void {
    updatePinned(m)
    if (m.recalled && st.editing.value?.cid === m.cid) st.editing.value = null
    const s = st.byConv.get(m.conv)
    if (!s || (s.items.length === 0 && !s.generation)) return
    const items = s.items
    let i = items.length - 1
    while (i >= 0 && items[i].cid !== m.cid) i--
    if (i >= 0) {
      const old = items[i]
      if (!canTransition(old.status, m.status)) {
        // Keep the further status but take the other fields (seq, ts, ...).
        m = { ...m, status: old.status, ...(old.error ? { error: old.error } : {}) }
      }
      if (m.seq === null && old.seq !== null) {
        // A stale view (the send command's result can arrive after the
        // core's event with the seq): a stored message never loses its place.
        m = { ...m, seq: old.seq, mid: old.mid, ts: old.ts }
      }
      if (old.seq === m.seq) {
        const next = items.slice()
        next[i] = m
        setItems(s, next)
      } else {
        const without = items.slice(0, i).concat(items.slice(i + 1))
        setItems(s, insertSorted(without, m))
      }
      return
    }
    if (m.seq !== null && (s.hasNewer || items.some((x) => x.seq === m.seq))) return
    setItems(s, insertSorted(items, m))
  }

  /** The DM peer's cursors moved: own messages up to them are delivered / read. */
  function applyReceipt(conv: Conv, recvSeq: number, readSeq: number): void {
    const s = st.byConv.get(conv)
    if (!s) return
    const mine = useSessionStore().me
    let next: MessageView[] | null = null
    for (let i = s.items.length - 1; i >= 0; i--) {
      const m = s.items[i]
      if (m.from !== mine || m.seq === null) continue
      const target: DeliveryStatus | null = m.seq <= readSeq ? 'read' : m.seq <= recvSeq ? 'delivered' : null
      if (m.status === 'read') break
      if (target && RANK[target] > RANK[m.status] && m.status !== 'failed') {
        next ??= s.items.slice()
        next[i] = { ...m, status: target }
      }
    }
    if (next) setItems(s, next)
  }

  /** A loaded message by server id (for reply quotes). */
  function byMid(conv: Conv, mid: string): MessageView | null {
    return st.byConv.get(conv)?.items.find((m) => m.mid === mid) ?? null
  }

  /** The loaded copy of `m` (by cid), else `m` itself. */
  function current(m: MessageView): MessageView {
    return st.byConv.get(m.conv)?.items.find((x) => x.cid === m.cid) ?? m
  }

  return { upsert, applyReceipt, byMid, current }
}
