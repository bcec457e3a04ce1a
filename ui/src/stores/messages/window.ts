// A conversation's loaded window of messages and the state the store's
// parts share: the window's shape, the order of its items, and the one
// status rule of the list (delivery ticks only move forward).
//
// Each conversation's `items` is a plain (markRaw) array replaced on every
// change, so 100,000 loaded messages cost no per-object reactivity.
import { markRaw, reactive, ref, type Ref } from 'vue'
import type { DeliveryStatus, MessageView } from '../../types/model'
import type { Conv } from '../../types/protocol'

/** Messages per history page. */
export const PAGE = 100

export interface ConvMessages {
  items: MessageView[]
  loading: boolean
  loadingOlder: boolean
  loadingNewer: boolean
  /** Older messages exist before items[0]. */
  hasOlder: boolean
  /** The window does not reach the latest message (opened at a search hit). */
  hasNewer: boolean
  error: string | null
  /** First unread seq when the conversation was opened: where the divider goes. */
  firstUnreadSeq: number | null
  /** A message to bring into view (search hit), by seq. */
  focusSeq: number | null
  /** Bumped when the window is replaced (the list resets its scroll). */
  generation: number
}

/** What the store's parts (paging, applying, sending, editing, relations) share. */
export interface MessagesState {
  byConv: Map<Conv, ConvMessages>
  /** conv → its pinned messages, oldest pin first (loaded while the conversation has pins). */
  pinned: Map<Conv, MessageView[]>
  /** The message being edited inline (one at a time). */
  editing: Ref<{ conv: Conv; cid: string } | null>
}

export function newMessagesState(): MessagesState {
  return {
    byConv: reactive(new Map<Conv, ConvMessages>()),
    pinned: reactive(new Map<Conv, MessageView[]>()),
    editing: ref(null),
  }
}

/** The window of `conv`, created empty on first use. */
export function stateOf(st: MessagesState, conv: Conv): ConvMessages {
  let s = st.byConv.get(conv)
  if (!s) {
    st.byConv.set(conv, {
      items: markRaw([]), loading: false, loadingOlder: false, loadingNewer: false, hasOlder: false, hasNewer: false,
      error: null, firstUnreadSeq: null, focusSeq: null, generation: 0,
    })
    s = st.byConv.get(conv)!
  }
  return s
}

export function setItems(s: ConvMessages, items: MessageView[]): void {
  s.items = markRaw(items)
}

/** Whether two values read from the core are the same data (plain JSON: objects, arrays, scalars). */
function sameData(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  const ka = Object.keys(a)
  if (ka.length !== Object.keys(b).length) return false
  const ra = a as Record<string, unknown>
  const rb = b as Record<string, unknown>
  return ka.every((k) => k in rb && sameData(ra[k], rb[k]))
}

/**
 * `page` with every message that is unchanged from the loaded window taken
 * as the loaded object, and the loaded array itself when nothing changed:
 * re-opening a conversation then re-renders no row whose message is the same.
 */
export function reuseLoaded(loaded: MessageView[], page: MessageView[]): MessageView[] {
  if (loaded.length === 0) return page
  const byCid = new Map(loaded.map((m) => [m.cid, m]))
  let same = loaded.length === page.length
  const out = page.map((m, i) => {
    const old = byCid.get(m.cid)
    if (!old || !sameData(old, m)) {
      same = false
      return m
    }
    if (loaded[i] !== old) same = false
    return old
  })
  return same ? loaded : out
}

/** How far a status has got: a receipt or an event may only raise it. */
export const RANK: Record<DeliveryStatus, number> = { pending: 0, failed: 0, sent: 1, received: 1, delivered: 2, read: 3 }

/**
 * Whether an update may move a message from status `from` to `to`.
 * Statuses only move forward (pending → sent → delivered → read), except
 * that anything unsent may fail and a failed message goes back to pending
 * on retry. Late or reordered events never downgrade a tick.
 */
export function canTransition(from: DeliveryStatus, to: DeliveryStatus): boolean {
  if (from === to) return true
  if (to === 'failed') return from === 'pending'
  if (from === 'failed') return to === 'pending' || RANK[to] >= 1
  return RANK[to] >= RANK[from]
}

/** Inserts `m` keeping seq order, with unsent (seq null) messages last. */
export function insertSorted(items: MessageView[], m: MessageView): MessageView[] {
  const out = items.slice()
  if (m.seq === null) {
    out.push(m)
    return out
  }
  // Binary search in the prefix of stored messages.
  let end = out.length
  while (end > 0 && out[end - 1].seq === null) end--
  let lo = 0
  let hi = end
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if ((out[mid].seq as number) < m.seq) lo = mid + 1
    else hi = mid
  }
  out.splice(lo, 0, m)
  return out
}
