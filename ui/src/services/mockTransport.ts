// An in-memory Transport: scriptable for tests (emit events, inspect calls,
// make the next call fail) and, with `demo: true`, a small living backend so
// the UI can be looked at in a plain browser (`npm run ui:dev`).
//
// The v1.1 actions follow protocol §11 as the server applies them: edit and
// recall windows from the target's ts, own-message checks, channel roles
// (owner/admin pin, recall anything, remove members), no relation to a
// recalled message (`conflict`). Each relation takes a seq in its
// conversation like on the server, so the UI sees the same seq gaps.
import type { ClientEvent, ConnectionEvent } from '../types/events'
import type { ConversationView, InviteView, MessageView, UploadedMedia } from '../types/model'
import type { ChannelInfo, Conv, JsonObject, MemberInfo, Presence, Profile, Role, Target } from '../types/protocol'
import type { Account, ConnectConfig, ServerInfo, Settings, TransportError } from '../types/app'
import { DEFAULT_SETTINGS } from '../types/app'
import { channelConv, channelOf, dmConv, peerOf } from '../types/ids'
import type { DeepLink, DeepLinkHandler, EventHandler, Notice, NoticeHandler, ProgressHandler, SettingsHandler, Transport, Unsubscribe } from './transport'

/** A conversation whose messages are generated on demand (for 100k-message demos). */
export interface GeneratedConv {
  count: number
  make: (seq: number) => MessageView
}

export interface MockOptions {
  me?: string
  /** Simulate the server: statuses advance, peers answer, invites ring. */
  demo?: boolean
  account?: Account | null
}

export interface MockCall {
  method: string
  args: unknown[]
}

/** Kinds a relation (edit, recall, reaction, pin) may target. */
const CONTENT_KINDS = ['text', 'image', 'file', 'custom']
const MAX_REACTION_KEY_BYTES = 32

function fail(code: string, message: string): never {
  throw { code, message } satisfies TransportError
}

let cidCounter = 0
function newCid(): string {
  cidCounter += 1
  return `c${Date.now().toString(36)}${cidCounter.toString(36)}`
}

export class MockTransport implements Transport {
  me: string
  demo: boolean
  accountValue: Account | null
  /** Every call made, in order (tests assert on it). */
  calls: MockCall[] = []
  messages = new Map<Conv, MessageView[]>()
  generated = new Map<Conv, GeneratedConv>()
  convs = new Map<Conv, ConversationView>()
  profilesByUser = new Map<string, Profile>()
  presence = new Map<string, Presence>()
  channelList: ChannelInfo[] = []
  memberLists = new Map<string, MemberInfo[]>()
  inviteMap = new Map<string, InviteView>()
  mediaUrls = new Map<string, string>()
  settings: Settings = structuredClone(DEFAULT_SETTINGS)
  connection: ConnectionEvent = { type: 'connection', state: 'connected', url: 'ws://127.0.0.1:7878/v1' }
  opened: string[] = []
  /** What `lastDeepLink()` returns (a cold start by a link); null by default. */
  pendingDeepLink: DeepLink | null = null
  /** What `serverInfo()` answers: a v1.1 server with the reference windows by default. */
  serverInfoValue: ServerInfo = { features: ['v1.1'], edit_window_s: 172_800, recall_window_s: 86_400 }
  /** Server admins act as owner of every channel (§11). */
  serverAdmins = new Set<string>()
  /** channel → users removed by an owner/admin: they cannot `join` until added again. */
  removedFrom = new Map<string, Set<string>>()
  private handlers = new Set<EventHandler>()
  private deepLinkHandlers = new Set<DeepLinkHandler>()
  private noticeHandlers = new Set<NoticeHandler>()
  private settingsHandlers = new Set<SettingsHandler>()
  private failures = new Map<string, TransportError>()
  private timers = new Set<ReturnType<typeof setTimeout>>()

  constructor(opts: MockOptions = {}) {
    this.me = opts.me ?? 'me'
    this.demo = opts.demo ?? false
    this.accountValue = opts.account === undefined ? { user: this.me, server: { mode: 'embedded' } } : opts.account
  }

  // ---- scripting -----------------------------------------------------------

  /** Delivers an event to every subscriber (as the shell would). */
  emit(event: ClientEvent): void {
    if (event.type === 'connection') this.connection = event
    for (const h of [...this.handlers]) h(event)
  }

  /** Delivers a deep link (`courier://deep-link`). */
  emitDeepLink(link: DeepLink): void {
    for (const h of [...this.deepLinkHandlers]) h(link)
  }

  /** Delivers a shell notice (`courier://notice`). */
  emitNotice(notice: Notice): void {
    for (const h of [...this.noticeHandlers]) h(notice)
  }

  /** Delivers settings changed by the shell (`courier://settings`). */
  emitSettings(settings: Settings): void {
    this.settings = structuredClone(settings)
    for (const h of [...this.settingsHandlers]) h(structuredClone(settings))
  }

  /** Makes the next call of `method` reject with `{code, message}`. */
  failNext(method: string, code = 'internal', message = `${method} failed`, limit?: string): void {
    this.failures.set(method, limit ? { code, message, limit } : { code, message })
  }

  callsOf(method: string): unknown[][] {
    return this.calls.filter((c) => c.method === method).map((c) => c.args)
  }

  /** Stops demo timers (tests, or unmount). */
  dispose(): void {
    for (const t of this.timers) clearTimeout(t)
    this.timers.clear()
  }

  addConversation(c: Partial<ConversationView> & { conv: Conv }): ConversationView {
    const ch = channelOf(c.conv)
    const view: ConversationView = {
      kind: ch ? 'channel' : 'dm',
      ...(ch ? { channel: ch } : { peer: peerOf(c.conv, this.me) ?? undefined }),
      last_seq: 0,
      last_ts: 0,
      synced_seq: 0,
      read_seq: 0,
      unread: 0,
      peer_read_seq: 0,
      peer_recv_seq: 0,
      mentions_unread: 0,
      pins: [],
      ...c,
    }
    this.convs.set(c.conv, view)
    return view
  }

  /** Stores a message as if it arrived (no event). Updates the conversation's cursors. */
  addMessage(m: Partial<MessageView> & { conv: Conv; from: string }): MessageView {
    const list = this.messages.get(m.conv) ?? []
    const conv = this.convs.get(m.conv) ?? this.addConversation({ conv: m.conv })
    const seq = m.seq === undefined ? conv.last_seq + 1 : m.seq
    const msg: MessageView = {
      seq,
      mid: seq === null ? null : `m${m.conv}:${seq}`,
      cid: newCid(),
      to: channelOf(m.conv) ? { channel: channelOf(m.conv)! } : { user: peerOf(m.conv, m.from) ?? m.from },
      kind: 'text',
      body: { text: '' },
      ts: Date.now(),
      status: m.from === this.me ? 'sent' : 'received',
      ...m,
    }
    list.push(msg)
    this.messages.set(m.conv, list)
    if (msg.seq !== null) {
      conv.last_seq = Math.max(conv.last_seq, msg.seq)
      conv.synced_seq = conv.last_seq
      conv.last_ts = msg.ts ?? conv.last_ts
      if (msg.from !== this.me && msg.seq > conv.read_seq && !msg.recalled) {
        conv.unread += 1
        if (mentionsOf(msg).includes(this.me)) conv.mentions_unread += 1
      }
      if (msg.from === this.me) conv.read_seq = Math.max(conv.read_seq, msg.seq)
      if (msg.pinned && msg.mid && !conv.pins.includes(msg.mid)) conv.pins = [...conv.pins, msg.mid]
    }
    return msg
  }

  /** A message arriving live from the server: stored and announced. */
  receive(m: Partial<MessageView> & { conv: Conv; from: string }): MessageView {
    const msg = this.addMessage(m)
    this.emit({ type: 'message_added', message: msg })
    this.emit({ type: 'conversation_updated', conversation: { ...this.convs.get(m.conv)! } })
    return msg
  }

  private record(method: string, args: unknown[]): void {
    this.calls.push({ method, args })
    const f = this.failures.get(method)
    if (f) {
      this.failures.delete(method)
      throw f
    }
  }

  private later(ms: number, fn: () => void): void {
    if (!this.demo) return
    const t = setTimeout(() => {
      this.timers.delete(t)
      fn()
    }, ms)
    this.timers.add(t)
  }

  // ---- account ---------------------------------------------------------------

  async account() {
    this.record('account', [])
    return this.accountValue
  }

  async connect(config: ConnectConfig) {
    this.record('connect', [config])
    const user = config.mode === 'dev' ? config.user : config.mode === 'remote' ? 'you' : this.me
    this.me = user
    this.accountValue = { user, server: config }
    this.emit({ type: 'connection', state: 'connecting', url: 'ws://127.0.0.1:7878/v1' })
    this.later(400, () => this.emit({ type: 'connection', state: 'connected', url: 'ws://127.0.0.1:7878/v1' }))
    if (!this.demo) this.emit({ type: 'connection', state: 'connected', url: 'ws://127.0.0.1:7878/v1' })
    return this.accountValue
  }

  async connectionState() {
    this.record('connectionState', [])
    return this.connection
  }

  // ---- messages --------------------------------------------------------------

  private convOfTarget(to: Target): Conv {
    if ('channel' in to) return channelConv(to.channel)
    if ('user' in to) return dmConv(this.me, to.user)
    throw { code: 'bad_request', message: 'messages cannot go to a call' }
  }

  private queue(to: Target, kind: string, body: JsonObject, replyTo?: string): MessageView {
    const conv = this.convOfTarget(to)
    if (!this.convs.has(conv)) this.addConversation({ conv })
    const msg: MessageView = {
      conv, seq: null, mid: null, cid: newCid(), from: this.me, to, kind, body, ts: null,
      status: 'pending', ...(replyTo ? { reply_to: replyTo } : {}),
    }
    const list = this.messages.get(conv) ?? []
    list.push(msg)
    this.messages.set(conv, list)
    this.emit({ type: 'message_added', message: { ...msg } })
    this.emit({ type: 'conversation_updated', conversation: { ...this.convs.get(conv)!, draft: undefined } })
    this.later(250 + Math.random() * 300, () => this.settle(msg))
    return { ...msg }
  }

  /** Demo: the server acknowledges (or refuses) a pending message. */
  settle(msg: MessageView): void {
    const conv = this.convs.get(msg.conv)!
    const text = typeof msg.body.text === 'string' ? msg.body.text : ''
    if (/\bfail\b/i.test(text)) {
      msg.status = 'failed'
      msg.error = 'too_large'
      this.emit({ type: 'message_updated', message: { ...msg } })
      return
    }
    conv.last_seq += 1
    conv.synced_seq = conv.last_seq
    conv.read_seq = conv.last_seq
    msg.seq = conv.last_seq
    msg.mid = `m${msg.conv}:${msg.seq}`
    msg.ts = Date.now()
    conv.last_ts = msg.ts
    msg.status = 'sent'
    this.emit({ type: 'message_updated', message: { ...msg } })
    this.emit({ type: 'conversation_updated', conversation: { ...conv } })
    const peer = conv.kind === 'dm' ? conv.peer : undefined
    if (!peer) return
    const seq = msg.seq
    this.later(700, () => {
      conv.peer_recv_seq = Math.max(conv.peer_recv_seq, seq)
      msg.status = 'delivered'
      this.emit({ type: 'receipt', conv: msg.conv, user: peer, recv_seq: conv.peer_recv_seq, read_seq: conv.peer_read_seq })
    })
    this.later(1600, () => {
      conv.peer_read_seq = Math.max(conv.peer_read_seq, seq)
      msg.status = 'read'
      this.emit({ type: 'receipt', conv: msg.conv, user: peer, recv_seq: conv.peer_recv_seq, read_seq: conv.peer_read_seq })
      this.emit({ type: 'typing', conv: msg.conv, user: peer })
    })
    if (/\bthanks?\b|thank you|谢谢/i.test(text)) this.later(2200, () => this.applyReaction(msg, peer, '❤️', true))
    if (text && this.presence.get(peer)?.online) {
      this.later(3800, () => {
        this.receive({ conv: msg.conv, from: peer, body: { text: replyFor(text) } })
      })
    }
  }

  async sendText(to: Target, text: string, replyTo?: string, mentions?: string[]) {
    this.record('sendText', mentions === undefined ? [to, text, replyTo] : [to, text, replyTo, mentions])
    if (!text) throw { code: 'bad_request', message: 'a text message needs non-empty text' }
    const conv = this.convOfTarget(to)
    // The server keeps only mentions of members of the conversation.
    const kept = [...new Set(mentions ?? [])].filter((u) => this.isMember(conv, u))
    return this.queue(to, 'text', kept.length ? { text, mentions: kept } : { text }, replyTo)
  }

  async sendImage(to: Target, media: UploadedMedia, name: string, width: number, height: number, replyTo?: string) {
    this.record('sendImage', [to, media, name, width, height, replyTo])
    return this.queue(to, 'image', { media: media.media, mime: media.mime, size: media.size, name, width, height }, replyTo)
  }

  async sendFile(to: Target, media: UploadedMedia, name: string, replyTo?: string) {
    this.record('sendFile', [to, media, name, replyTo])
    return this.queue(to, 'file', { media: media.media, mime: media.mime, size: media.size, name }, replyTo)
  }

  async upload(bytes: Uint8Array, mime: string, onProgress?: ProgressHandler) {
    this.record('upload', [bytes.length, mime])
    const total = bytes.length
    const steps = this.demo ? 8 : 1
    for (let i = 1; i <= steps; i++) {
      if (this.demo) await new Promise((r) => setTimeout(r, 120))
      onProgress?.(Math.round((total * i) / steps), total)
    }
    const media = `m_${newCid()}`
    if (typeof URL !== 'undefined' && typeof Blob !== 'undefined' && URL.createObjectURL) {
      this.mediaUrls.set(media, URL.createObjectURL(new Blob([bytes as BlobPart], { type: mime })))
    }
    return { media, mime, size: total, sha256: '' }
  }

  async mediaUrl(media: string) {
    this.record('mediaUrl', [media])
    return this.mediaUrls.get(media) ?? ''
  }

  /** Names that the mock treats as programs (the shell decides for real). */
  executables = /\.(exe|bat|cmd|scr|msi|sh|jar|js|vbs|ps1|desktop|appimage)$/i

  async openMedia(media: string, name?: string, confirmed?: boolean) {
    this.record('openMedia', [media, name, confirmed])
    if (name && this.executables.test(name) && !confirmed) {
      throw { code: 'confirm_required', message: 'this file can run programs' }
    }
    const url = this.mediaUrls.get(media)
    if (url && this.demo && typeof window !== 'undefined') window.open(url, '_blank', 'noopener')
  }

  async retry(cid: string) {
    this.record('retry', [cid])
    for (const list of this.messages.values()) {
      const m = list.find((x) => x.cid === cid && x.status === 'failed')
      if (m) {
        m.status = 'pending'
        delete m.error
        this.emit({ type: 'message_updated', message: { ...m } })
        // In the demo a retried message goes through (the "fail" word is dropped).
        this.later(500, () => {
          if (typeof m.body.text === 'string') m.body = { ...m.body, text: m.body.text.replace(/\bfail\b/gi, '…') }
          this.settle(m)
        })
        return { ...m }
      }
    }
    throw { code: 'invalid', message: `no failed message ${cid}` }
  }

  async deleteUnsent(cid: string) {
    this.record('deleteUnsent', [cid])
    for (const [conv, list] of this.messages) {
      const i = list.findIndex((x) => x.cid === cid && x.seq === null)
      if (i >= 0) {
        list.splice(i, 1)
        this.messages.set(conv, list)
        return true
      }
    }
    return false
  }

  async history(conv: Conv, before: number | null, limit: number) {
    this.record('history', [conv, before, limit])
    const gen = this.generated.get(conv)
    const stored = (this.messages.get(conv) ?? []).filter((m) => m.seq !== null)
    const pending = (this.messages.get(conv) ?? []).filter((m) => m.seq === null)
    const upper = before ?? Number.MAX_SAFE_INTEGER
    let page: MessageView[]
    if (gen) {
      const storedBelow = stored.filter((m) => m.seq! < upper)
      const top = Math.min(upper - 1, gen.count)
      const bySeq = new Map<number, MessageView>()
      for (let s = Math.max(1, top - limit + 1); s <= top; s++) bySeq.set(s, gen.make(s))
      // Stored copies (a generated message that was reacted to, edited…) win.
      for (const m of storedBelow) bySeq.set(m.seq!, m)
      page = [...bySeq.values()].sort((a, b) => a.seq! - b.seq!).slice(-limit)
    } else {
      page = stored.filter((m) => m.seq! < upper).slice(-limit)
    }
    const out = page.map((m) => ({ ...m }))
    if (before === null) out.push(...pending.map((m) => ({ ...m })))
    return out
  }

  async search(query: string, limit: number) {
    this.record('search', [query, limit])
    const q = query.trim().toLowerCase()
    if (!q) return []
    const hits: MessageView[] = []
    for (const list of this.messages.values()) {
      for (const m of list) {
        const t = String(m.body.text ?? m.body.name ?? '').toLowerCase()
        if (m.seq !== null && q.split(/\s+/).every((w) => t.includes(w))) hits.push({ ...m })
      }
    }
    return hits.sort((a, b) => (b.ts ?? 0) - (a.ts ?? 0)).slice(0, limit)
  }

  async conversations() {
    this.record('conversations', [])
    return [...this.convs.values()].map((c) => ({ ...c })).sort((a, b) => b.last_ts - a.last_ts)
  }

  async markRead(conv: Conv, seq: number | null) {
    this.record('markRead', [conv, seq])
    const c = this.convs.get(conv)
    if (!c) return
    const to = seq ?? c.last_seq
    if (to > c.read_seq || c.unread > 0) {
      c.read_seq = Math.max(c.read_seq, to)
      const unread = (this.messages.get(conv) ?? []).filter((m) => m.from !== this.me && m.seq !== null && m.seq > c.read_seq && !m.recalled)
      c.unread = unread.length
      c.mentions_unread = unread.filter((m) => mentionsOf(m).includes(this.me)).length
      this.emit({ type: 'conversation_updated', conversation: { ...c } })
    }
  }

  async setDraft(conv: Conv, text: string) {
    this.record('setDraft', [conv, text])
    const c = this.convs.get(conv)
    if (c) c.draft = text || undefined
  }

  async typing(conv: Conv) {
    this.record('typing', [conv])
  }

  async signal(to: Target, body: JsonObject) {
    this.record('signal', [to, body])
  }

  // ---- channels --------------------------------------------------------------

  async channels() {
    this.record('channels', [])
    return this.channelList.filter((c) => !c.private).map((c) => ({ ...c }))
  }

  async join(channel: string) {
    this.record('join', [channel])
    const info = this.channelList.find((c) => c.channel === channel)
    if (!info || info.private) throw { code: 'forbidden', message: 'forbidden' }
    if (this.removedFrom.get(channel)?.has(this.me)) fail('forbidden', 'you were removed from this channel')
    const conv = channelConv(channel)
    if (!this.convs.has(conv)) this.addConversation({ conv, last_ts: Date.now() })
    const list = this.memberLists.get(channel) ?? []
    if (!list.some((m) => m.user === this.me)) {
      info.members += 1
      this.memberLists.set(channel, [...list, { user: this.me, online: true, role: 'member' }])
    }
    this.emit({ type: 'conversation_updated', conversation: { ...this.convs.get(conv)! } })
    return conv
  }

  async leave(channel: string) {
    this.record('leave', [channel])
    this.convs.delete(channelConv(channel))
    const list = (this.memberLists.get(channel) ?? []).filter((m) => m.user !== this.me)
    // An owner who leaves hands over to the longest-standing admin, else member (list order = join order).
    const wasOwner = (this.memberLists.get(channel) ?? []).some((m) => m.user === this.me && m.role === 'owner')
    if (wasOwner && list.length) {
      const heir = list.find((m) => m.role === 'admin') ?? list[0]
      heir.role = 'owner'
    }
    this.memberLists.set(channel, list)
    const info = this.channelList.find((c) => c.channel === channel)
    if (info) info.members = list.length
  }

  async createChannel(channel: string, title: string, topic: string, isPrivate: boolean) {
    this.record('createChannel', [channel, title, topic, isPrivate])
    if (this.channelList.some((c) => c.channel === channel)) throw { code: 'conflict', message: 'the name exists' }
    this.channelList.push({ channel, title, topic, private: isPrivate, members: 1 })
    this.memberLists.set(channel, [{ user: this.me, online: true, role: 'owner' }])
    const conv = channelConv(channel)
    const view = this.addConversation({ conv, last_ts: Date.now() })
    this.emit({ type: 'conversation_updated', conversation: { ...view } })
    return conv
  }

  async addMember(channel: string, user: string) {
    this.record('addMember', [channel, user])
    const list = this.memberLists.get(channel) ?? []
    if (!list.some((m) => m.user === this.me) && !this.serverAdmins.has(this.me)) fail('forbidden', 'forbidden')
    if (!list.some((m) => m.user === user)) list.push({ user, online: this.presence.get(user)?.online ?? false, role: 'member' })
    this.memberLists.set(channel, list)
    this.removedFrom.get(channel)?.delete(user)
    const info = this.channelList.find((c) => c.channel === channel)
    if (info) info.members = list.length
    this.emit({ type: 'member', channel, user, joined: true, removed: false })
  }

  async members(channel: string) {
    this.record('members', [channel])
    return (this.memberLists.get(channel) ?? []).map((m) => ({ ...m, online: this.presence.get(m.user)?.online ?? m.online }))
  }

  async setRole(channel: string, user: string, role: Role) {
    this.record('setRole', [channel, user, role])
    if (this.roleIn(channel, this.me) !== 'owner') fail('forbidden', 'only the channel owner may change roles')
    const list = this.memberLists.get(channel) ?? []
    const target = list.find((m) => m.user === user)
    if (!target) fail('not_found', `${user} is not a member of #${channel}`)
    if (user === this.me) fail('bad_request', 'the owner keeps their role; transfer ownership to someone else')
    if (role === 'owner') {
      // Transfer: the old owner becomes an admin.
      const old = list.find((m) => m.role === 'owner')
      if (old) {
        old.role = 'admin'
        this.emit({ type: 'member', channel, user: old.user, joined: true, removed: false, role: 'admin' })
      }
    }
    target.role = role
    this.emit({ type: 'member', channel, user, joined: true, removed: false, role })
  }

  async removeMember(channel: string, user: string) {
    this.record('removeMember', [channel, user])
    const mine = this.roleIn(channel, this.me)
    if (mine === null) fail('forbidden', 'forbidden')
    if (user === this.me) fail('bad_request', 'leave the channel instead')
    const list = this.memberLists.get(channel) ?? []
    const target = list.find((m) => m.user === user)
    if (!target) fail('not_found', `${user} is not a member of #${channel}`)
    const allowed = mine === 'owner' || (mine === 'admin' && target.role === 'member')
    if (!allowed) fail('forbidden', mine === 'admin' ? 'admins may remove plain members only' : 'only an owner or admin may remove members')
    this.memberLists.set(channel, list.filter((m) => m.user !== user))
    const banned = this.removedFrom.get(channel) ?? new Set<string>()
    banned.add(user)
    this.removedFrom.set(channel, banned)
    const info = this.channelList.find((c) => c.channel === channel)
    if (info) info.members = Math.max(0, info.members - 1)
    this.emit({ type: 'member', channel, user, joined: false, removed: true })
  }

  /** The role of `user` in `channel` (server admins act as owner), or null for a non-member. */
  roleIn(channel: string, user: string): Role | null {
    if (this.serverAdmins.has(user)) return 'owner'
    return this.memberLists.get(channel)?.find((m) => m.user === user)?.role ?? null
  }

  private isMember(conv: Conv, user: string): boolean {
    const ch = channelOf(conv)
    if (ch !== null) return (this.memberLists.get(ch) ?? []).some((m) => m.user === user)
    return conv.slice(3).split(':').includes(user)
  }

  // ---- v1.1 message actions (§11) ---------------------------------------------

  async serverInfo() {
    this.record('serverInfo', [])
    return structuredClone(this.serverInfoValue)
  }

  /** The content message `mid` of `conv` (a generated one is stored on first use), or not_found. */
  private target(conv: Conv, mid: string): MessageView {
    const list = this.messages.get(conv) ?? []
    const found = list.find((m) => m.mid === mid)
    if (found) {
      if (!CONTENT_KINDS.includes(found.kind)) fail('forbidden', 'a relation cannot target a relation')
      return found
    }
    const gen = this.generated.get(conv)
    const seq = Number(mid.split(':').pop())
    if (gen && Number.isInteger(seq) && seq >= 1 && seq <= gen.count) {
      const m = gen.make(seq)
      if (m.mid === mid) {
        const i = list.findIndex((x) => x.seq !== null && x.seq > seq)
        list.splice(i < 0 ? list.length : i, 0, m)
        this.messages.set(conv, list)
        return m
      }
    }
    fail('not_found', 'no such message in this conversation')
  }

  /** Checks shared by every relation: the server is v1.1, the caller a member, the target not recalled. */
  private relationTarget(conv: Conv, mid: string): MessageView {
    if (!this.serverInfoValue.features.includes('v1.1')) fail('unsupported', 'this server does not support v1.1')
    if (!this.isMember(conv, this.me) && !this.serverAdmins.has(this.me)) fail('forbidden', 'forbidden')
    const m = this.target(conv, mid)
    if (m.recalled) fail('conflict', 'the message was recalled')
    return m
  }

  /** A relation is a message of its own on the server: it takes the next seq (never shown, never unread). */
  private takeSeq(conv: Conv): void {
    const c = this.convs.get(conv)
    if (!c) return
    c.last_seq += 1
    c.synced_seq = c.last_seq
  }

  private withinWindow(m: MessageView, windowS: number | null): boolean {
    return windowS === null || Date.now() - (m.ts ?? Date.now()) <= windowS * 1000
  }

  private updated(m: MessageView): void {
    this.emit({ type: 'message_updated', message: { ...m } })
  }

  async editMessage(conv: Conv, mid: string, text: string) {
    this.record('editMessage', [conv, mid, text])
    if (!text) fail('bad_request', 'an edit needs non-empty text')
    const m = this.relationTarget(conv, mid)
    if (m.from !== this.me) fail('forbidden', 'only the sender may edit a message')
    if (m.kind !== 'text') fail('forbidden', 'only text messages can be edited')
    if (!this.withinWindow(m, this.serverInfoValue.edit_window_s)) fail('conflict', 'the edit window has passed')
    this.takeSeq(conv)
    m.body = { ...m.body, text }
    m.edited = Date.now()
    this.updated(m)
    return { ...m }
  }

  async recallMessage(conv: Conv, mid: string) {
    this.record('recallMessage', [conv, mid])
    const m = this.relationTarget(conv, mid)
    const ch = channelOf(conv)
    const moderator = ch !== null && (this.roleIn(ch, this.me) === 'owner' || this.roleIn(ch, this.me) === 'admin')
    if (!moderator) {
      if (m.from !== this.me) fail('forbidden', 'only the sender or a channel owner/admin may recall a message')
      if (!this.withinWindow(m, this.serverInfoValue.recall_window_s)) fail('conflict', 'the recall window has passed')
    }
    this.takeSeq(conv)
    this.applyRecall(conv, m)
  }

  /** Drops text, media, edits and reactions; the pin goes too. */
  applyRecall(conv: Conv, m: MessageView): void {
    m.recalled = true
    m.body = {}
    delete m.edited
    delete m.reactions
    delete m.pinned
    const c = this.convs.get(conv)
    this.updated(m)
    if (c && m.mid && c.pins.includes(m.mid)) {
      c.pins = c.pins.filter((p) => p !== m.mid)
      this.emit({ type: 'conversation_updated', conversation: { ...c } })
    }
  }

  async react(conv: Conv, mid: string, key: string, on: boolean) {
    this.record('react', [conv, mid, key, on])
    const bytes = new TextEncoder().encode(key).length
    if (bytes < 1 || bytes > MAX_REACTION_KEY_BYTES) fail('bad_request', 'a reaction key has 1-32 bytes')
    const m = this.relationTarget(conv, mid)
    this.takeSeq(conv)
    this.applyReaction(m, this.me, key, on)
  }

  /** Sets `user`'s reaction `key` on `m` and announces it (also used by demo peers). */
  applyReaction(m: MessageView, user: string, key: string, on: boolean): void {
    const reactions = { ...(m.reactions ?? {}) }
    const users = (reactions[key] ?? []).filter((u) => u !== user)
    if (on) users.push(user)
    if (users.length) reactions[key] = users
    else delete reactions[key]
    if (Object.keys(reactions).length) m.reactions = reactions
    else delete m.reactions
    this.updated(m)
  }

  async pinMessage(conv: Conv, mid: string, on: boolean) {
    this.record('pinMessage', [conv, mid, on])
    const m = this.relationTarget(conv, mid)
    const ch = channelOf(conv)
    if (ch !== null) {
      const role = this.roleIn(ch, this.me)
      if (role !== 'owner' && role !== 'admin') fail('forbidden', 'only a channel owner or admin may pin')
    }
    this.takeSeq(conv)
    const c = this.convs.get(conv)
    if (on) m.pinned = Date.now()
    else delete m.pinned
    this.updated(m)
    if (c) {
      const rest = c.pins.filter((p) => p !== mid)
      c.pins = on ? [...rest, mid] : rest
      this.emit({ type: 'conversation_updated', conversation: { ...c } })
    }
  }

  async forwardMessage(conv: Conv, mid: string, to: Target) {
    this.record('forwardMessage', [conv, mid, to])
    if (!this.isMember(conv, this.me)) fail('forbidden', 'forbidden')
    const m = this.target(conv, mid)
    if (m.recalled) fail('conflict', 'the message was recalled')
    const original = (m.body.forwarded_from as { conv: Conv; mid: string; from: string } | undefined) ?? { conv, mid, from: m.from }
    const { mentions: _mentions, forwarded_from: _ff, ...content } = m.body
    void _mentions
    void _ff
    return this.queue(to, m.kind, { ...content, forwarded_from: original })
  }

  async pinnedMessages(conv: Conv) {
    this.record('pinnedMessages', [conv])
    const c = this.convs.get(conv)
    const list = this.messages.get(conv) ?? []
    return (c?.pins ?? []).map((mid) => list.find((m) => m.mid === mid)).filter((m): m is MessageView => !!m).map((m) => ({ ...m }))
  }

  // ---- presence and profiles ---------------------------------------------------

  async watch(users: string[]) {
    this.record('watch', [users])
    return users.map((u) => this.presence.get(u) ?? { user: u, online: false })
  }

  async unwatch(users: string[]) {
    this.record('unwatch', [users])
  }

  async profiles(users: string[]) {
    this.record('profiles', [users])
    return users.map((u) => this.profilesByUser.get(u) ?? { user: u, name: '', avatar: '', status: '' })
  }

  async setProfile(name: string, avatar: string, status: string) {
    this.record('setProfile', [name, avatar, status])
    const p = { user: this.me, name, avatar, status }
    this.profilesByUser.set(this.me, p)
    this.emit({ type: 'profile', profile: { ...p } })
  }

  // ---- invitations -------------------------------------------------------------

  private putInvite(v: InviteView): InviteView {
    this.inviteMap.set(v.iid, v)
    const out = { ...v }
    this.emit({ type: 'invite', invite: out })
    return { ...v }
  }

  async invite(to: string, content: JsonObject, ttlS: number) {
    this.record('invite', [to, content, ttlS])
    const now = Date.now()
    const iid = `i${newCid()}`
    const known = this.profilesByUser.has(to)
    const v: InviteView = {
      iid, from: this.me, to, room: `call-${iid}`, content, state: known ? 'pending' : 'failed',
      created: now, expires: now + ttlS * 1000, received: false, incoming: false, ringing: false,
      ...(known ? {} : { reason: 'unknown_user' }),
    }
    const out = this.putInvite(v)
    if (known) {
      this.later(900, () => this.putInvite({ ...this.inviteMap.get(iid)!, received: true }))
      this.later(4500, () => {
        const cur = this.inviteMap.get(iid)!
        if (cur.state === 'pending') this.putInvite({ ...cur, state: 'accepted', response: {} })
      })
    }
    return out
  }

  async answer(iid: string, accept: boolean, response: JsonObject) {
    this.record('answer', [iid, accept, response])
    const cur = this.inviteMap.get(iid)
    if (!cur) throw { code: 'not_found', message: 'no such invitation' }
    if (cur.state !== 'pending') throw { code: 'invite_final', message: 'already answered' }
    return this.putInvite({ ...cur, state: accept ? 'accepted' : 'refused', ringing: false, response })
  }

  async cancelInvite(iid: string) {
    this.record('cancelInvite', [iid])
    const cur = this.inviteMap.get(iid)
    if (!cur) throw { code: 'not_found', message: 'no such invitation' }
    if (cur.state !== 'pending') throw { code: 'invite_final', message: 'already answered' }
    return this.putInvite({ ...cur, state: 'canceled' })
  }

  async invites() {
    this.record('invites', [])
    return [...this.inviteMap.values()].map((v) => ({ ...v }))
  }

  // ---- app ---------------------------------------------------------------------

  async getSettings() {
    this.record('getSettings', [])
    return structuredClone(this.settings)
  }

  async setSettings(settings: Settings) {
    this.record('setSettings', [settings])
    this.settings = structuredClone(settings)
  }

  async openExternal(url: string) {
    this.record('openExternal', [url])
    this.opened.push(url)
    if (this.demo && typeof window !== 'undefined') window.open(url, '_blank', 'noopener')
  }

  async lastDeepLink() {
    this.record('lastDeepLink', [])
    return this.pendingDeepLink
  }

  async setActiveConversation(conv: Conv | null) {
    this.record('setActiveConversation', [conv])
  }

  async onEvent(handler: EventHandler): Promise<Unsubscribe> {
    this.handlers.add(handler)
    return () => this.handlers.delete(handler)
  }

  async onDeepLink(handler: DeepLinkHandler): Promise<Unsubscribe> {
    this.deepLinkHandlers.add(handler)
    return () => this.deepLinkHandlers.delete(handler)
  }

  async onNotice(handler: NoticeHandler): Promise<Unsubscribe> {
    this.noticeHandlers.add(handler)
    return () => this.noticeHandlers.delete(handler)
  }

  async onSettings(handler: SettingsHandler): Promise<Unsubscribe> {
    this.settingsHandlers.add(handler)
    return () => this.settingsHandlers.delete(handler)
  }
}

function replyFor(text: string): string {
  if (/[\u4e00-\u9fff]/.test(text)) return '收到 👍'
  if (/\?\s*$/.test(text)) return 'Good question — let me check and get back to you.'
  return 'Got it 👍'
}

/** The user ids a text message mentions. */
function mentionsOf(m: MessageView): string[] {
  const list = m.body.mentions
  return Array.isArray(list) ? list.filter((u): u is string => typeof u === 'string') : []
}
