// The conversation list: views from the client core, last-message previews,
// ordering (pinned first, then by activity), unread totals, the open
// conversation and who is typing where.
import { defineStore } from 'pinia'
import { computed, reactive, ref, watch } from 'vue'
import type { ConversationView, MessageView } from '../types/model'
import type { Conv } from '../types/protocol'
import { dmConv } from '../types/ids'
import { useTransport } from '../services/transport'
import { useSettingsStore } from './settings'

/** How long a typing notice stays up without a repeat (the protocol forwards at most one per 2 s). */
export const TYPING_TTL_MS = 5000

export const useConversationsStore = defineStore('conversations', () => {
  const byConv = reactive(new Map<Conv, ConversationView>())
  const previews = reactive(new Map<Conv, MessageView>())
  /** conv → user → local time the last typing notice arrived. */
  const typing = reactive(new Map<Conv, Map<string, number>>())
  const activeConv = ref<Conv | null>(null)
  /**
   * A conversation opened by an outside link (`courier://chat/…`): not
   * marked read, so no read receipt tells whoever sent the link that this
   * user is here, until the user does something in it (releaseRead).
   */
  const readHeld = ref<Conv | null>(null)
  const loading = ref(false)
  const loaded = ref(false)
  const error = ref<string | null>(null)

  const settings = useSettingsStore()

  // The shell suppresses notifications for the open conversation.
  watch(activeConv, (conv) => {
    useTransport().setActiveConversation(conv).catch(() => {})
  }, { flush: 'sync' })

  function activity(c: ConversationView): number {
    const p = previews.get(c.conv)
    return Math.max(c.last_ts, p?.ts ?? (p ? Number.MAX_SAFE_INTEGER : 0))
  }

  /** Pinned first (in pin order), then most recent activity first. */
  const sorted = computed<ConversationView[]>(() => {
    const pinned = settings.settings.pinned
    return [...byConv.values()].sort((a, b) => {
      const pa = pinned.indexOf(a.conv)
      const pb = pinned.indexOf(b.conv)
      if (pa !== pb) {
        if (pa === -1) return 1
        if (pb === -1) return -1
        return pa - pb
      }
      return activity(b) - activity(a) || a.conv.localeCompare(b.conv)
    })
  })

  /** Unread messages in conversations that are not muted (tray/badge number). */
  const totalUnread = computed(() =>
    [...byConv.values()].reduce((n, c) => n + (settings.isMuted(c.conv) ? 0 : c.unread), 0),
  )

  const active = computed(() => (activeConv.value ? byConv.get(activeConv.value) ?? null : null))

  async function load(): Promise<void> {
    const t = useTransport()
    loading.value = true
    error.value = null
    try {
      const list = await t.conversations()
      byConv.clear()
      for (const c of list) byConv.set(c.conv, c)
      loaded.value = true
      // The core's ConversationView has no last message: fetch one per conversation.
      await Promise.all(
        list.map(async (c) => {
          const page = await t.history(c.conv, null, 1)
          const last = page[page.length - 1]
          if (last) previews.set(c.conv, last)
        }),
      )
    } catch (e) {
      error.value = (e as { message?: string }).message ?? String(e)
    } finally {
      loading.value = false
    }
  }

  function upsert(c: ConversationView): void {
    byConv.set(c.conv, c)
  }

  /** Keeps the preview on the newest message of the conversation. */
  /** Seqs of recent own sends, by cid: a send's result (still pending) can arrive after its ack. */
  const ackedSeq = new Map<string, number>()

  function noteMessage(m: MessageView): void {
    if (m.seq !== null) {
      ackedSeq.set(m.cid, m.seq)
      if (ackedSeq.size > 512) ackedSeq.delete(ackedSeq.keys().next().value as string)
    } else {
      const seq = ackedSeq.get(m.cid)
      if (seq !== undefined) return // stale: the acknowledged version was noted already
    }
    const cur = previews.get(m.conv)
    const newer =
      !cur || cur.cid === m.cid || m.seq === null || (cur.seq !== null && m.seq >= cur.seq)
    if (newer) previews.set(m.conv, m)
    const t = typing.get(m.conv)
    if (t) t.delete(m.from)
  }

  function noteTyping(conv: Conv, user: string, now: number = Date.now()): void {
    let t = typing.get(conv)
    if (!t) {
      t = new Map()
      typing.set(conv, t)
    }
    t.set(user, now)
  }

  /** Users typing in `conv` as of `now`. */
  function typingIn(conv: Conv, now: number): string[] {
    const t = typing.get(conv)
    if (!t) return []
    return [...t.entries()].filter(([, at]) => now - at < TYPING_TTL_MS).map(([u]) => u)
  }

  const lastOwnTyping = new Map<Conv, number>()
  /** Tells the others we type, at most once per 2 s per conversation (the server's rate). */
  function noteOwnTyping(conv: Conv, now: number = Date.now()): void {
    const last = lastOwnTyping.get(conv) ?? -Infinity
    if (now - last < 2000) return
    lastOwnTyping.set(conv, now)
    useTransport().typing(conv).catch(() => {})
  }

  function open(conv: Conv | null): void {
    // Going elsewhere ends a hold: coming back is ordinary navigation.
    if (readHeld.value !== conv) readHeld.value = null
    activeConv.value = conv
  }

  /** Keeps `conv` unread until releaseRead (call before opening it from a link). */
  function holdRead(conv: Conv): void {
    readHeld.value = conv
  }

  /** The user interacted with `conv`: it is read by the usual rules again. */
  function releaseRead(conv: Conv): void {
    if (readHeld.value === conv) readHeld.value = null
  }

  /** Opens (creating locally if needed) the DM with `user`. */
  function openDm(me: string, user: string): Conv {
    const conv = dmConv(me, user)
    if (!byConv.has(conv)) {
      byConv.set(conv, {
        conv, kind: 'dm', peer: user, last_seq: 0, last_ts: Date.now(), synced_seq: 0, read_seq: 0, unread: 0,
        peer_read_seq: 0, peer_recv_seq: 0, mentions_unread: 0, pins: [],
      })
    }
    open(conv)
    return conv
  }

  /** Alt+↑/↓: the conversation `delta` places away from the open one in list order. */
  function step(delta: number): Conv | null {
    const list = sorted.value
    if (list.length === 0) return null
    const i = list.findIndex((c) => c.conv === activeConv.value)
    const next = i === -1 ? (delta > 0 ? 0 : list.length - 1) : Math.min(list.length - 1, Math.max(0, i + delta))
    open(list[next].conv)
    return list[next].conv
  }

  /** Marks everything stored in `conv` as read (the open conversation, scrolled to the bottom). */
  async function markRead(conv: Conv): Promise<void> {
    const c = byConv.get(conv)
    if (!c || (c.unread === 0 && !c.mentions_unread) || readHeld.value === conv) return
    byConv.set(conv, { ...c, unread: 0, mentions_unread: 0, read_seq: Math.max(c.read_seq, c.last_seq) })
    try {
      await useTransport().markRead(conv, null)
    } catch {
      // Offline: the core sends the read cursor after the next connect.
    }
  }

  /** Unread mentions in conversations (muted ones too: a mention always counts). */
  const totalMentions = computed(() => [...byConv.values()].reduce((n, c) => n + (c.mentions_unread ?? 0), 0))

  function remove(conv: Conv): void {
    byConv.delete(conv)
    previews.delete(conv)
    if (activeConv.value === conv) activeConv.value = null
  }

  return {
    byConv, previews, typing, activeConv, readHeld, active, loading, loaded, error, sorted, totalUnread, totalMentions,
    load, upsert, markRead, holdRead, releaseRead, noteMessage, noteOwnTyping, noteTyping, typingIn, open, openDm, step, remove,
  }
})
