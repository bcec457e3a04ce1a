// Paging through a conversation's local history: the latest page with the
// unread divider, a window around a search hit, older and newer pages, and
// merging the latest page after the core filled a gap.
import type { Conv } from '../../types/protocol'
import { toTransportError, useTransport } from '../../services/transport'
import { useConversationsStore } from '../conversations'
import { PAGE, insertSorted, reuseLoaded, setItems, stateOf, type MessagesState } from './window'

export function paging(st: MessagesState) {
  /** Loads the latest page; remembers the first unread for the divider. */
  async function openLatest(conv: Conv): Promise<void> {
    const s = stateOf(st, conv)
    const c = useConversationsStore().byConv.get(conv)
    s.firstUnreadSeq = c && c.unread > 0 ? c.read_seq + 1 : null
    s.focusSeq = null
    s.loading = true
    s.error = null
    try {
      const page = await useTransport().history(conv, null, PAGE)
      // Re-opened: the messages already shown stay the same objects.
      setItems(s, reuseLoaded(s.items, page))
      s.hasOlder = page.filter((m) => m.seq !== null).length >= PAGE
      s.hasNewer = false
      s.generation++
    } catch (e) {
      s.error = toTransportError(e).message
    } finally {
      s.loading = false
    }
  }

  /** Loads a window around `seq` (a search hit) and asks the list to show it. */
  async function openAt(conv: Conv, seq: number): Promise<void> {
    const s = stateOf(st, conv)
    s.loading = true
    s.error = null
    s.firstUnreadSeq = null
    try {
      const t = useTransport()
      const page = await t.history(conv, seq + PAGE / 2, PAGE)
      // The newest stored seq: from the conversation, or a one-message probe.
      const probe = (await t.history(conv, null, 1)).filter((m) => m.seq !== null)
      const lastSeq = Math.max(useConversationsStore().byConv.get(conv)?.last_seq ?? 0, probe[0]?.seq ?? 0)
      const top = page.length ? (page[page.length - 1].seq ?? 0) : 0
      if (top >= lastSeq) {
        // The hit is within reach of the latest page: show the latest.
        const latest = await t.history(conv, null, Math.max(PAGE, lastSeq - (page[0]?.seq ?? lastSeq) + 1))
        setItems(s, latest)
        s.hasNewer = false
        s.hasOlder = (latest.find((m) => m.seq !== null)?.seq ?? 1) > 1
      } else {
        setItems(s, page)
        s.hasNewer = true
        s.hasOlder = page.length >= PAGE
      }
      s.focusSeq = seq
      s.generation++
    } catch (e) {
      s.error = toTransportError(e).message
    } finally {
      s.loading = false
    }
  }

  /** Prepends the page before the first loaded message. Returns how many were added. */
  async function loadOlder(conv: Conv): Promise<number> {
    const s = stateOf(st, conv)
    if (s.loadingOlder || !s.hasOlder) return 0
    const first = s.items.find((m) => m.seq !== null)
    if (!first) return 0
    s.loadingOlder = true
    try {
      const page = await useTransport().history(conv, first.seq, PAGE)
      // Strictly older than what is loaded, so nothing can be a duplicate.
      const fresh = page.filter((m) => m.seq !== null && m.seq < (first.seq as number))
      setItems(s, [...fresh, ...s.items])
      s.hasOlder = page.length >= PAGE
      return fresh.length
    } catch (e) {
      s.error = toTransportError(e).message
      return 0
    } finally {
      s.loadingOlder = false
    }
  }

  /** Appends the page after the last loaded message (window opened at a search hit). */
  async function loadNewer(conv: Conv): Promise<number> {
    const s = stateOf(st, conv)
    if (s.loadingNewer || !s.hasNewer) return 0
    const stored = s.items.filter((m) => m.seq !== null)
    const top = stored.length ? (stored[stored.length - 1].seq as number) : 0
    s.loadingNewer = true
    try {
      const lastSeq = useConversationsStore().byConv.get(conv)?.last_seq ?? 0
      // The core pages backwards only: ask for the page that ends PAGE after `top`.
      const page = await useTransport().history(conv, top + PAGE + 1, PAGE)
      let fresh = page.filter((m) => m.seq !== null && m.seq > top)
      let items = [...s.items, ...fresh]
      if (fresh.length === 0 || (fresh[fresh.length - 1].seq as number) >= lastSeq) {
        const latest = await useTransport().history(conv, null, PAGE)
        const known = new Set(items.map((m) => m.cid))
        fresh = latest.filter((m) => !known.has(m.cid) && (m.seq === null || m.seq > top))
        for (const m of fresh) items = insertSorted(items, m)
        s.hasNewer = false
      }
      setItems(s, items)
      return fresh.length
    } finally {
      s.loadingNewer = false
    }
  }

  /** Many messages arrived at once (gap filling): merge the latest page. */
  async function refill(conv: Conv): Promise<void> {
    const s = st.byConv.get(conv)
    if (!s || s.hasNewer) return
    const page = await useTransport().history(conv, null, PAGE)
    const known = new Set(s.items.map((m) => m.cid))
    let items = s.items
    for (const m of page) if (!known.has(m.cid)) items = insertSorted(items, m)
    setItems(s, items)
  }

  function clearFocus(conv: Conv): void {
    const s = st.byConv.get(conv)
    if (s) s.focusSeq = null
  }

  function clearDivider(conv: Conv): void {
    const s = st.byConv.get(conv)
    if (s) s.firstUnreadSeq = null
  }

  return { openLatest, openAt, loadOlder, loadNewer, refill, clearFocus, clearDivider }
}
