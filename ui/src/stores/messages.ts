// Messages of the conversations that have been opened: a window of the local
// history per conversation (latest page first, older pages on demand),
// delivery status transitions, receipts, sending text and attachments.
//
// Each conversation's `items` is a plain (markRaw) array replaced on every
// change, so 100,000 loaded messages cost no per-object reactivity.
import { defineStore } from 'pinia'
import { markRaw, reactive } from 'vue'
import type { DeliveryStatus, MessageView } from '../types/model'
import type { Conv } from '../types/protocol'
import { targetOf } from '../types/ids'
import { toTransportError, useTransport } from '../services/transport'
import { useSessionStore } from './session'
import { useConversationsStore } from './conversations'

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

export interface Upload {
  id: number
  conv: Conv
  name: string
  size: number
  sent: number
  error: string | null
}

const RANK: Record<DeliveryStatus, number> = { pending: 0, failed: 0, sent: 1, received: 1, delivered: 2, read: 3 }

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

let uploadIds = 0

export const useMessagesStore = defineStore('messages', () => {
  const byConv = reactive(new Map<Conv, ConvMessages>())
  const uploads = reactive<Upload[]>([])

  function me(): string {
    return useSessionStore().me
  }

  function stateOf(conv: Conv): ConvMessages {
    let s = byConv.get(conv)
    if (!s) {
      byConv.set(conv, {
        items: markRaw([]), loading: false, loadingOlder: false, loadingNewer: false, hasOlder: false, hasNewer: false,
        error: null, firstUnreadSeq: null, focusSeq: null, generation: 0,
      })
      s = byConv.get(conv)!
    }
    return s
  }

  function setItems(s: ConvMessages, items: MessageView[]): void {
    s.items = markRaw(items)
  }

  /** Loads the latest page; remembers the first unread for the divider. */
  async function openLatest(conv: Conv): Promise<void> {
    const s = stateOf(conv)
    const c = useConversationsStore().byConv.get(conv)
    s.firstUnreadSeq = c && c.unread > 0 ? c.read_seq + 1 : null
    s.focusSeq = null
    s.loading = true
    s.error = null
    try {
      const page = await useTransport().history(conv, null, PAGE)
      setItems(s, page)
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
    const s = stateOf(conv)
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
    const s = stateOf(conv)
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
    const s = stateOf(conv)
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

  /** Adds or updates one message (events, send results). Unloaded conversations are skipped. */
  function upsert(m: MessageView): void {
    const s = byConv.get(m.conv)
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
    const s = byConv.get(conv)
    if (!s) return
    const mine = me()
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

  /** Many messages arrived at once (gap filling): merge the latest page. */
  async function refill(conv: Conv): Promise<void> {
    const s = byConv.get(conv)
    if (!s || s.hasNewer) return
    const page = await useTransport().history(conv, null, PAGE)
    const known = new Set(s.items.map((m) => m.cid))
    let items = s.items
    for (const m of page) if (!known.has(m.cid)) items = insertSorted(items, m)
    setItems(s, items)
  }

  async function sendText(conv: Conv, text: string, replyTo?: string): Promise<MessageView | null> {
    const trimmed = text.replace(/^\s*\n|\s+$/g, '')
    if (!trimmed.trim()) return null
    const m = await useTransport().sendText(targetOf(conv, me()), trimmed, replyTo)
    upsert(m)
    useConversationsStore().noteMessage(m)
    return m
  }

  /** Uploads each file (with progress) and sends it as an image or a file. */
  async function sendFiles(conv: Conv, files: File[], replyTo?: string): Promise<void> {
    for (const file of files) {
      const up = reactive<Upload>({ id: ++uploadIds, conv, name: file.name || 'file', size: file.size, sent: 0, error: null })
      uploads.push(up)
      try {
        const bytes = new Uint8Array(await file.arrayBuffer())
        const mime = file.type || 'application/octet-stream'
        const media = await useTransport().upload(bytes, mime, (sent) => (up.sent = sent))
        const dims = mime.startsWith('image/') ? await imageSize(file) : null
        const to = targetOf(conv, me())
        const m = dims
          ? await useTransport().sendImage(to, media, up.name, dims.width, dims.height, replyTo)
          : await useTransport().sendFile(to, media, up.name, replyTo)
        upsert(m)
        useConversationsStore().noteMessage(m)
        uploads.splice(uploads.findIndex((u) => u.id === up.id), 1)
      } catch (e) {
        up.error = toTransportError(e).message
      }
    }
  }

  function dismissUpload(id: number): void {
    const i = uploads.findIndex((u) => u.id === id)
    if (i >= 0) uploads.splice(i, 1)
  }

  async function retry(cid: string): Promise<void> {
    upsert(await useTransport().retry(cid))
  }

  async function discard(m: MessageView): Promise<void> {
    await useTransport().deleteUnsent(m.cid)
    const s = byConv.get(m.conv)
    if (s) setItems(s, s.items.filter((x) => x.cid !== m.cid))
  }

  function clearFocus(conv: Conv): void {
    const s = byConv.get(conv)
    if (s) s.focusSeq = null
  }

  function clearDivider(conv: Conv): void {
    const s = byConv.get(conv)
    if (s) s.firstUnreadSeq = null
  }

  /** A loaded message by server id (for reply quotes). */
  function byMid(conv: Conv, mid: string): MessageView | null {
    return byConv.get(conv)?.items.find((m) => m.mid === mid) ?? null
  }

  return {
    byConv, uploads, stateOf, openLatest, openAt, loadOlder, loadNewer, upsert, applyReceipt, refill,
    sendText, sendFiles, dismissUpload, retry, discard, clearFocus, clearDivider, byMid,
  }
})

/** Natural size of an image file (0×0 when it cannot be decoded). */
async function imageSize(file: File): Promise<{ width: number; height: number }> {
  try {
    if (typeof createImageBitmap === 'function') {
      const bmp = await createImageBitmap(file)
      const out = { width: bmp.width, height: bmp.height }
      bmp.close()
      return out
    }
  } catch {
    // Fall through: SVG and some formats are not decodable as bitmaps.
  }
  return new Promise((resolve) => {
    const url = URL.createObjectURL(file)
    const img = new Image()
    img.onload = () => {
      resolve({ width: img.naturalWidth, height: img.naturalHeight })
      URL.revokeObjectURL(url)
    }
    img.onerror = () => {
      resolve({ width: 0, height: 0 })
      URL.revokeObjectURL(url)
    }
    img.src = url
  })
}
