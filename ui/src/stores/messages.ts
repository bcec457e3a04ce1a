// Messages of the conversations that have been opened: a window of the local
// history per conversation (latest page first, older pages on demand),
// delivery status transitions, receipts, sending text and attachments, and
// the v1.1 actions (edit, recall, react, pin, forward) with the pinned lists.
// Actions apply at once and roll back if the core refuses; the core's
// `message_updated` for the target then confirms them.
//
// Each conversation's `items` is a plain (markRaw) array replaced on every
// change, so 100,000 loaded messages cost no per-object reactivity.
import { defineStore } from 'pinia'
import { markRaw, reactive, ref } from 'vue'
import type { DeliveryStatus, MessageView } from '../types/model'
import type { Conv } from '../types/protocol'
import { targetOf } from '../types/ids'
import { toTransportError, useTransport } from '../services/transport'
import { isLimit, limitToast } from '../utils/errors'
import { useSessionStore } from './session'
import { useConversationsStore } from './conversations'
import { useServerStore } from './server'
import { useToastsStore } from './toasts'
import { permissionsFor } from './permissions'

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
  /** An i18n key saying why, in the user's language, when the server named a limit. */
  errorKey?: string
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

export { limitToast }

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

export const useMessagesStore = defineStore('messages', () => {
  const byConv = reactive(new Map<Conv, ConvMessages>())
  const uploads = reactive<Upload[]>([])
  /** The message being edited inline (one at a time). */
  const editing = ref<{ conv: Conv; cid: string } | null>(null)
  /** conv → its pinned messages, oldest pin first (loaded while the conversation has pins). */
  const pinned = reactive(new Map<Conv, MessageView[]>())
  /** A message the open list should show (a pin chosen in the bar or the panel). */
  const jumpRequest = ref<MessageView | null>(null)

  function requestJump(m: MessageView): void {
    jumpRequest.value = { ...m }
  }

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

  /** Keeps a loaded pinned list in step with an updated message (edited, recalled, unpinned). */
  function updatePinned(m: MessageView): void {
    const list = pinned.get(m.conv)
    if (!list || !m.mid) return
    const i = list.findIndex((p) => p.mid === m.mid)
    if (i < 0) return
    const next = list.slice()
    if (m.recalled || m.pinned === undefined) next.splice(i, 1)
    else next[i] = m
    pinned.set(m.conv, next)
  }

  /** Adds or updates one message (events, send results). Unloaded conversations are skipped. */
  function upsert(m: MessageView): void {
    updatePinned(m)
    if (m.recalled && editing.value?.cid === m.cid) editing.value = null
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

  /** Sends text; `mentions` (user ids) go with it when the server has v1.1. */
  async function sendText(conv: Conv, text: string, replyTo?: string, mentions?: string[]): Promise<MessageView | null> {
    const trimmed = text.replace(/^\s*\n|\s+$/g, '')
    if (!trimmed.trim()) return null
    const t = useTransport()
    const m = mentions?.length && useServerStore().v11
      ? await t.sendText(targetOf(conv, me()), trimmed, replyTo, mentions)
      : await t.sendText(targetOf(conv, me()), trimmed, replyTo)
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
        const err = toTransportError(e)
        up.error = err.message
        if (isLimit(err)) up.errorKey = limitToast(err).key
        else if (err.code === 'too_large') up.errorKey = 'limits.too_large'
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

  // ---- v1.1 actions ---------------------------------------------------------

  /** The loaded copy of `m` (by cid), else `m` itself. */
  function current(m: MessageView): MessageView {
    return byConv.get(m.conv)?.items.find((x) => x.cid === m.cid) ?? m
  }

  /** Replaces the loaded copy of a message (by cid) with `fn(copy)`; also in the pinned list. */
  function patch(conv: Conv, cid: string, fn: (m: MessageView) => MessageView): void {
    const s = byConv.get(conv)
    const i = s ? s.items.findIndex((x) => x.cid === cid) : -1
    if (s && i >= 0) {
      const next = s.items.slice()
      next[i] = fn(s.items[i])
      setItems(s, next)
    }
    const list = pinned.get(conv)
    const j = list ? list.findIndex((x) => x.cid === cid) : -1
    if (list && j >= 0) updatePinned(fn(list[j]))
    const preview = useConversationsStore().previews.get(conv)
    if (preview?.cid === cid) useConversationsStore().previews.set(conv, fn(preview))
  }

  /** Starts the inline editor on `m` if the user may edit it. */
  function startEdit(m: MessageView): boolean {
    if (!permissionsFor(m).edit) return false
    editing.value = { conv: m.conv, cid: m.cid }
    return true
  }

  function cancelEdit(): void {
    editing.value = null
  }

  function isEditing(m: MessageView): boolean {
    return editing.value?.cid === m.cid && editing.value.conv === m.conv
  }

  /** The newest own text message of `conv` the user may still edit (↑ in an empty composer). */
  function lastEditable(conv: Conv, now: number = Date.now()): MessageView | null {
    const items = byConv.get(conv)?.items ?? []
    const mine = me()
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
    const before = current(m)
    editing.value = null
    if (before.body.text === next) return true
    const at = Date.now()
    patch(m.conv, m.cid, (x) => ({ ...x, body: { ...x.body, text: next }, edited: at }))
    try {
      const updated = await useTransport().editMessage(m.conv, m.mid, next)
      if (updated && updated.mid === m.mid && updated.kind === m.kind) upsert(updated)
      return true
    } catch (e) {
      // Undo, unless something newer replaced our text meanwhile.
      patch(m.conv, m.cid, (x) => (x.body.text === next && x.edited === at ? { ...x, body: before.body, edited: before.edited } : x))
      reportActionError(e)
      return false
    }
  }

  /** Recalls a message for everyone (after the UI confirmed it). */
  async function recall(m: MessageView): Promise<boolean> {
    if (!m.mid) return false
    const before = current(m)
    if (isEditing(m)) editing.value = null
    patch(m.conv, m.cid, (x) => {
      const { edited: _e, reactions: _r, pinned: _p, ...rest } = x
      void _e
      void _r
      void _p
      return { ...rest, body: {}, recalled: true }
    })
    const conversations = useConversationsStore()
    const pinsBefore = conversations.byConv.get(m.conv)?.pins
    const listBefore = pinned.get(m.conv)
    if (pinsBefore?.includes(m.mid)) conversations.setPins(m.conv, pinsBefore.filter((p) => p !== m.mid))
    try {
      await useTransport().recallMessage(m.conv, m.mid)
      return true
    } catch (e) {
      patch(m.conv, m.cid, (x) => (x.recalled && !before.recalled ? before : x))
      if (pinsBefore) conversations.setPins(m.conv, pinsBefore)
      if (listBefore) pinned.set(m.conv, listBefore)
      reportActionError(e)
      return false
    }
  }

  function withReaction(m: MessageView, user: string, key: string, on: boolean): MessageView {
    const reactions = { ...(m.reactions ?? {}) }
    const users = (reactions[key] ?? []).filter((u) => u !== user)
    if (on) users.push(user)
    if (users.length) reactions[key] = users
    else delete reactions[key]
    const { reactions: _old, ...rest } = m
    void _old
    return Object.keys(reactions).length ? { ...rest, reactions } : rest
  }

  /** Turns the user's reaction `key` on or off. */
  async function react(m: MessageView, key: string, on: boolean): Promise<boolean> {
    if (!m.mid) return false
    const mine = me()
    patch(m.conv, m.cid, (x) => withReaction(x, mine, key, on))
    try {
      await useTransport().react(m.conv, m.mid, key, on)
      return true
    } catch (e) {
      patch(m.conv, m.cid, (x) => withReaction(x, mine, key, !on))
      reportActionError(e)
      return false
    }
  }

  /** Clicking a reaction: on if the user has not reacted with it, else off. */
  function toggleReaction(m: MessageView, key: string): Promise<boolean> {
    const on = !(current(m).reactions?.[key] ?? []).includes(me())
    return react(m, key, on)
  }

  /** Pins or unpins a message in its conversation. */
  async function pin(m: MessageView, on: boolean): Promise<boolean> {
    if (!m.mid) return false
    const mid = m.mid
    const before = current(m)
    const at = Date.now()
    const conversations = useConversationsStore()
    const pinsBefore = conversations.byConv.get(m.conv)?.pins ?? []
    const listBefore = pinned.get(m.conv)
    patch(m.conv, m.cid, (x) => {
      const { pinned: _p, ...rest } = x
      void _p
      return on ? { ...rest, pinned: at } : rest
    })
    conversations.setPins(m.conv, on ? [...pinsBefore.filter((p) => p !== mid), mid] : pinsBefore.filter((p) => p !== mid))
    if (listBefore) {
      const rest = listBefore.filter((p) => p.mid !== mid)
      pinned.set(m.conv, on ? [...rest, { ...before, pinned: at }] : rest)
    }
    try {
      await useTransport().pinMessage(m.conv, mid, on)
      return true
    } catch (e) {
      patch(m.conv, m.cid, (x) => (x.pinned === (on ? at : undefined) ? { ...x, pinned: before.pinned } : x))
      conversations.setPins(m.conv, pinsBefore)
      if (listBefore) pinned.set(m.conv, listBefore)
      reportActionError(e)
      return false
    }
  }

  /** Sends a copy of `m` to conversation `to`, marked "forwarded from". */
  async function forward(m: MessageView, to: Conv): Promise<MessageView | null> {
    if (!m.mid) return null
    try {
      const sent = await useTransport().forwardMessage(m.conv, m.mid, targetOf(to, me()))
      upsert(sent)
      useConversationsStore().noteMessage(sent)
      return sent
    } catch (e) {
      reportActionError(e)
      return null
    }
  }

  /** Loads the pinned messages of `conv`. */
  async function loadPinned(conv: Conv): Promise<void> {
    try {
      pinned.set(conv, await useTransport().pinnedMessages(conv))
    } catch {
      // Offline or an older core: the bar shows what the loaded window has.
    }
  }

  return {
    byConv, uploads, editing, pinned, jumpRequest, requestJump, stateOf, openLatest, openAt, loadOlder, loadNewer, upsert, applyReceipt, refill,
    sendText, sendFiles, dismissUpload, retry, discard, clearFocus, clearDivider, byMid,
    startEdit, cancelEdit, isEditing, lastEditable, edit, recall, react, toggleReaction, pin, forward, loadPinned,
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
