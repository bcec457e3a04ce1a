// An in-memory Transport for tests and the browser demo: a scriptable
// double of the client core's command and event contract.
//
// It decides nothing. Queries answer from fixtures (conversations,
// messages, channels, members, profiles, invitations, settings); commands
// are recorded and answered as scripted:
//
//   t.when('react').emit(updated(m, { reactions: { '👍': ['me'] } }))
//   t.when('pinMessage').once().fail('forbidden', 'only owners and admins may pin')
//   t.when('invite').answer((to) => failedInvite(to))
//   t.when('sendText').after((m) => later(300, () => t.ack(m.cid)))
//
// A script's events go out when the command is called, before it answers
// (the core emits a pending relation's `message_updated` before the
// server's verdict). Unscripted, a command does what the core does at
// once and nothing the server would decide: a send is queued (`pending`,
// `message_added`), a retry queues again, a join or a new channel shows
// the conversation; edits, recalls, reactions, pins and role changes
// change nothing until a script says what the core reports. Who may do
// what is the server's rule and lives there only.
import type { ClientEvent, ConnectionEvent } from '../types/events'
import type { ConversationView, InviteView, MessageView, UploadedMedia } from '../types/model'
import type { ChannelInfo, Conv, JsonObject, MemberInfo, Presence, Profile, Role, Target } from '../types/protocol'
import type { Account, ConnectConfig, ServerInfo, Settings, TransportError } from '../types/app'
import { DEFAULT_SETTINGS } from '../types/app'
import { channelConv, channelOf, dmConv, peerOf } from '../types/ids'
import type {
  CallHandler, CallUpdate, DeepLink, DeepLinkHandler, DeviceChoice, DeviceInfo, EventHandler, LevelHandler, Notice, NoticeHandler,
  ProgressHandler, SettingsHandler, Transport, Unsubscribe,
} from './transport'

/** The Transport's commands (everything but the subscriptions). */
export type Command = Exclude<keyof Transport, 'onEvent' | 'onDeepLink' | 'onNotice' | 'onSettings' | 'onCall'>
type Args<K extends Command> = Parameters<Transport[K]>
type Result<K extends Command> = Awaited<ReturnType<Transport[K]>>
type Answer<K extends Command> = (...args: Args<K>) => Result<K> | Promise<Result<K>>
/** Events a script emits: fixed, or made from the command's arguments. */
type Events<K extends Command> = ClientEvent | ClientEvent[] | ((...args: Args<K>) => ClientEvent | ClientEvent[])

/** What one command does when called: events to emit, then an answer or a failure. */
export class Script<K extends Command> {
  private events: Events<K>[] = []
  private answerWith?: Answer<K>
  private failure?: TransportError
  private afterwards: Array<(result: Result<K>, ...args: Args<K>) => void> = []
  /** How many more calls this script handles (one-shot scripts go first). */
  left = Infinity

  /** Emits these events when the command is called, before it answers. */
  emit(...events: Events<K>[]): this {
    this.events.push(...events)
    return this
  }

  /** Answers with this value (or what the function makes of the arguments). */
  answer(value: Result<K> | Answer<K>): this {
    this.answerWith = typeof value === 'function' ? (value as Answer<K>) : () => value
    return this
  }

  /** Rejects with `{code, message}` (after emitting the events). */
  fail(code: string, message = `${code}`, limit?: string): this {
    this.failure = limit ? { code, message, limit } : { code, message }
    return this
  }

  /** Then does this with the answer (the scripted one or the unscripted default), e.g. schedule what follows. */
  after(fn: (result: Result<K>, ...args: Args<K>) => void): this {
    this.afterwards.push(fn)
    return this
  }

  /** Handles the next call only. */
  once(): this {
    this.left = 1
    return this
  }

  /** @internal Plays the script for one call; `fallback` is the unscripted answer. */
  async play(args: Args<K>, emit: (e: ClientEvent) => void, fallback: () => Result<K> | Promise<Result<K>>): Promise<Result<K>> {
    this.left -= 1
    for (const e of this.events) {
      const out = typeof e === 'function' ? e(...args) : e
      for (const one of Array.isArray(out) ? out : [out]) emit(one)
    }
    if (this.failure) throw { ...this.failure }
    const result = await (this.answerWith ? this.answerWith(...args) : fallback())
    for (const fn of this.afterwards) fn(result, ...args)
    return result
  }
}

/** A conversation whose messages are generated on demand (for 100k-message demos). */
export interface GeneratedConv {
  count: number
  make: (seq: number) => MessageView
}

export interface MockOptions {
  me?: string
  account?: Account | null
}

export interface MockCall {
  method: string
  args: unknown[]
}

let cidCounter = 0
function newCid(): string {
  cidCounter += 1
  return `c${Date.now().toString(36)}${cidCounter.toString(36)}`
}

export class MockTransport implements Transport {
  me: string
  accountValue: Account | null
  /** Every call made, in order (tests assert on it). */
  calls: MockCall[] = []
  // ---- fixtures: what the queries answer
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
  /** URLs given to `openExternal`. */
  opened: string[] = []
  /** The OS's start-at-login entry. */
  startsAtLogin = false
  /** How often `openLogsFolder` was called. */
  logsOpened = 0
  /** What `lastDeepLink()` returns (a cold start by a link); null by default. */
  pendingDeepLink: DeepLink | null = null
  /** What `serverInfo()` answers: a v1.1 server with the reference windows by default. */
  serverInfoValue: ServerInfo = { features: ['v1.1'], edit_window_s: 172_800, recall_window_s: 86_400 }
  private scripts = new Map<Command, Script<Command>[]>()
  private handlers = new Set<EventHandler>()
  private deepLinkHandlers = new Set<DeepLinkHandler>()
  private noticeHandlers = new Set<NoticeHandler>()
  private settingsHandlers = new Set<SettingsHandler>()
  private callHandlers = new Set<CallHandler>()
  /** The devices `callDevices()` lists. */
  deviceList: DeviceInfo[] = []
  /** Where the mic test's levels go while it runs (tests push levels through it). */
  micLevels: LevelHandler | null = null

  constructor(opts: MockOptions = {}) {
    this.me = opts.me ?? 'me'
    this.accountValue = opts.account === undefined ? { user: this.me, server: { mode: 'embedded' } } : opts.account
  }

  // ---- scripting -----------------------------------------------------------

  /** Scripts what `method` does when called (see the file comment). The newest lasting script wins. */
  when<K extends Command>(method: K): Script<K> {
    const s = new Script<K>()
    const list = this.scripts.get(method) ?? []
    list.push(s as unknown as Script<Command>)
    this.scripts.set(method, list)
    return s
  }

  /** Makes the next call of `method` reject with `{code, message}`. */
  failNext(method: Command, code = 'internal', message = `${method} failed`, limit?: string): void {
    this.when(method).once().fail(code, message, limit)
  }

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

  /** Delivers an update of the running call (`courier://call`). */
  emitCall(update: CallUpdate): void {
    for (const h of [...this.callHandlers]) h(structuredClone(update))
  }

  callsOf(method: Command): unknown[][] {
    return this.calls.filter((c) => c.method === method).map((c) => c.args)
  }

  /** Records a call and plays its script, else `fallback`. `recorded` is what `calls` keeps. */
  private async run<K extends Command>(
    method: K, args: Args<K>, fallback: () => Result<K> | Promise<Result<K>>, recorded: unknown[] = args,
  ): Promise<Result<K>> {
    this.calls.push({ method, args: recorded })
    const list = (this.scripts.get(method) ?? []) as unknown as Script<K>[]
    const lasting = list.filter((s) => s.left === Infinity)
    const script = list.find((s) => s.left !== Infinity && s.left > 0) ?? lasting[lasting.length - 1]
    return script ? script.play(args, (e) => this.emit(e), fallback) : fallback()
  }

  // ---- fixtures ------------------------------------------------------------

  addConversation(c: Partial<ConversationView> & { conv: Conv }): ConversationView {
    const ch = channelOf(c.conv)
    const view: ConversationView = {
      kind: ch ? 'channel' : 'dm',
      ...(ch ? { channel: ch } : { peer: peerOf(c.conv, this.me) ?? undefined }),
      last_seq: 0, last_ts: 0, synced_seq: 0, read_seq: 0, unread: 0, peer_read_seq: 0, peer_recv_seq: 0,
      mentions_unread: 0, pins: [],
      ...c,
    }
    this.convs.set(c.conv, view)
    return view
  }

  /**
   * Stores a fixture message (no event). It takes the conversation's next
   * seq unless given one, and the conversation's view follows it as if it
   * had arrived: last seq and time, unread (others' messages after the read
   * cursor), read (own messages), pins (a message with `pinned`).
   */
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
      if (msg.from !== this.me && msg.seq > conv.read_seq && !msg.recalled) conv.unread += 1
      if (msg.from === this.me) conv.read_seq = Math.max(conv.read_seq, msg.seq)
      if (msg.pinned && msg.mid && !conv.pins.includes(msg.mid)) conv.pins = [...conv.pins, msg.mid]
    }
    return msg
  }

  /** A fixture message by id; a generated one is stored on first use. */
  message(conv: Conv, mid: string): MessageView | null {
    const list = this.messages.get(conv) ?? []
    const found = list.find((m) => m.mid === mid)
    if (found) return found
    const gen = this.generated.get(conv)
    const seq = Number(mid.split(':').pop())
    if (!gen || !Number.isInteger(seq) || seq < 1 || seq > gen.count) return null
    const m = gen.make(seq)
    if (m.mid !== mid) return null
    const i = list.findIndex((x) => x.seq !== null && x.seq > seq)
    list.splice(i < 0 ? list.length : i, 0, m)
    this.messages.set(conv, list)
    return m
  }

  /** Replaces fields of a fixture message and emits `message_updated`, as the core reports a change. */
  update(m: MessageView, patch: Partial<MessageView>): MessageView {
    const stored = this.findByCid(m.cid) ?? m
    Object.assign(stored, patch)
    for (const k of Object.keys(patch) as (keyof MessageView)[]) if (patch[k] === undefined) delete stored[k]
    this.emit({ type: 'message_updated', message: { ...stored } })
    return { ...stored }
  }

  /** Replaces fields of a fixture conversation and emits `conversation_updated`. */
  changeConversation(conv: Conv, patch: Partial<ConversationView>): ConversationView {
    const c = Object.assign(this.convs.get(conv) ?? this.addConversation({ conv }), patch)
    this.emit({ type: 'conversation_updated', conversation: { ...c } })
    return { ...c }
  }

  /** A message arriving live from the server: stored and announced. */
  receive(m: Partial<MessageView> & { conv: Conv; from: string }): MessageView {
    const msg = this.addMessage(m)
    this.emit({ type: 'message_added', message: { ...msg } })
    this.emit({ type: 'conversation_updated', conversation: { ...this.convs.get(m.conv)! } })
    return msg
  }

  /** The server acknowledged a queued message: it takes the next seq and shows `sent`. */
  ack(cid: string, ts: number = Date.now()): MessageView {
    const m = this.findByCid(cid)
    if (!m) throw new Error(`no queued message ${cid}`)
    const conv = this.convs.get(m.conv)!
    conv.last_seq += 1
    conv.synced_seq = conv.last_seq
    conv.read_seq = conv.last_seq
    conv.last_ts = ts
    const acked = this.update(m, { seq: conv.last_seq, mid: `m${m.conv}:${conv.last_seq}`, ts, status: 'sent' })
    this.emit({ type: 'conversation_updated', conversation: { ...conv } })
    return acked
  }

  /** Queues an own message as the core does for every send: `pending`, stored, announced. */
  enqueue(to: Target, kind: string, body: JsonObject, replyTo?: string): MessageView {
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
    return { ...msg }
  }

  private findByCid(cid: string): MessageView | null {
    for (const list of this.messages.values()) {
      const m = list.find((x) => x.cid === cid)
      if (m) return m
    }
    return null
  }

  private convOfTarget(to: Target): Conv {
    if ('channel' in to) return channelConv(to.channel)
    if ('user' in to) return dmConv(this.me, to.user)
    throw { code: 'bad_request', message: 'messages cannot go to a call' }
  }

  /** A fixture message a command names, or a rejection saying the test forgot to provide it. */
  private fixture(conv: Conv, mid: string, method: Command): MessageView {
    const m = this.message(conv, mid)
    if (!m) throw { code: 'internal', message: `${method}: no fixture message ${mid} in ${conv}; add it or script the answer` }
    return { ...m }
  }

  // ---- account ---------------------------------------------------------------

  account() {
    return this.run('account', [], () => this.accountValue)
  }

  connect(config: ConnectConfig) {
    return this.run('connect', [config], () => {
      const user = config.mode === 'dev' ? config.user : config.mode === 'remote' ? 'you' : this.me
      this.me = user
      this.accountValue = { user, server: config }
      this.emit({ type: 'connection', state: 'connecting', url: 'ws://127.0.0.1:7878/v1' })
      this.emit({ type: 'connection', state: 'connected', url: 'ws://127.0.0.1:7878/v1' })
      return this.accountValue
    })
  }

  connectionState() {
    return this.run('connectionState', [], () => this.connection)
  }

  serverInfo() {
    return this.run('serverInfo', [], () => structuredClone(this.serverInfoValue))
  }

  // ---- messages --------------------------------------------------------------

  sendText(to: Target, text: string, replyTo?: string, mentions?: string[]) {
    const recorded = mentions === undefined ? [to, text, replyTo] : [to, text, replyTo, mentions]
    return this.run('sendText', [to, text, replyTo, mentions], () =>
      this.enqueue(to, 'text', mentions?.length ? { text, mentions } : { text }, replyTo), recorded)
  }

  sendImage(to: Target, media: UploadedMedia, name: string, width: number, height: number, replyTo?: string) {
    return this.run('sendImage', [to, media, name, width, height, replyTo], () =>
      this.enqueue(to, 'image', { media: media.media, mime: media.mime, size: media.size, name, width, height }, replyTo))
  }

  sendFile(to: Target, media: UploadedMedia, name: string, replyTo?: string) {
    return this.run('sendFile', [to, media, name, replyTo], () =>
      this.enqueue(to, 'file', { media: media.media, mime: media.mime, size: media.size, name }, replyTo))
  }

  upload(bytes: Uint8Array, mime: string, onProgress?: ProgressHandler) {
    return this.run('upload', [bytes, mime, onProgress], () => {
      onProgress?.(bytes.length, bytes.length)
      const media = `m_${newCid()}`
      if (typeof URL !== 'undefined' && typeof Blob !== 'undefined' && URL.createObjectURL) {
        this.mediaUrls.set(media, URL.createObjectURL(new Blob([bytes as BlobPart], { type: mime })))
      }
      return { media, mime, size: bytes.length, sha256: '' }
    }, [bytes.length, mime])
  }

  mediaUrl(media: string) {
    return this.run('mediaUrl', [media], () => this.mediaUrls.get(media) ?? '')
  }

  openMedia(media: string, name?: string, confirmed?: boolean) {
    return this.run('openMedia', [media, name, confirmed], () => {})
  }

  /** Unscripted: the failed message is queued again (`pending`), as the core's retry does. */
  retry(cid: string) {
    return this.run('retry', [cid], () => {
      const m = this.findByCid(cid)
      if (!m) throw { code: 'invalid', message: `no failed message ${cid}` }
      return this.update(m, { status: 'pending', error: undefined })
    })
  }

  deleteUnsent(cid: string) {
    return this.run('deleteUnsent', [cid], () => {
      for (const list of this.messages.values()) {
        const i = list.findIndex((x) => x.cid === cid && x.seq === null)
        if (i >= 0) {
          list.splice(i, 1)
          return true
        }
      }
      return false
    })
  }

  /** The core's paging contract: ascending, seq < before, pending ones after the latest page. */
  history(conv: Conv, before: number | null, limit: number) {
    return this.run('history', [conv, before, limit], () => {
      const gen = this.generated.get(conv)
      const all = this.messages.get(conv) ?? []
      const upper = before ?? Number.MAX_SAFE_INTEGER
      const stored = all.filter((m) => m.seq !== null && m.seq < upper)
      const bySeq = new Map<number, MessageView>()
      if (gen) {
        const top = Math.min(upper - 1, gen.count)
        for (let s = Math.max(1, top - limit + 1); s <= top; s++) bySeq.set(s, gen.make(s))
      }
      // Stored copies (a generated message that changed) win.
      for (const m of stored) bySeq.set(m.seq!, m)
      const page = [...bySeq.values()].sort((a, b) => a.seq! - b.seq!).slice(-limit).map((m) => ({ ...m }))
      if (before === null) page.push(...all.filter((m) => m.seq === null).map((m) => ({ ...m })))
      return page
    })
  }

  /** Fixture messages holding every word of the query, newest first. */
  search(query: string, limit: number) {
    return this.run('search', [query, limit], () => {
      const words = query.trim().toLowerCase().split(/\s+/).filter(Boolean)
      if (!words.length) return []
      const hits = [...this.messages.values()].flat().filter((m) => {
        const text = String(m.body.text ?? m.body.name ?? '').toLowerCase()
        return m.seq !== null && words.every((w) => text.includes(w))
      })
      return hits.sort((a, b) => (b.ts ?? 0) - (a.ts ?? 0)).slice(0, limit).map((m) => ({ ...m }))
    })
  }

  conversations() {
    return this.run('conversations', [], () => [...this.convs.values()].map((c) => ({ ...c })).sort((a, b) => b.last_ts - a.last_ts))
  }

  markRead(conv: Conv, seq: number | null) {
    return this.run('markRead', [conv, seq], () => {})
  }

  setDraft(conv: Conv, text: string) {
    return this.run('setDraft', [conv, text], () => {
      const c = this.convs.get(conv)
      if (c) c.draft = text || undefined
    })
  }

  typing(conv: Conv) {
    return this.run('typing', [conv], () => {})
  }

  signal(to: Target, body: JsonObject) {
    return this.run('signal', [to, body], () => {})
  }

  // ---- v1.1 message actions: unscripted, they change nothing ----------------

  editMessage(conv: Conv, mid: string, text: string) {
    return this.run('editMessage', [conv, mid, text], () => this.fixture(conv, mid, 'editMessage'))
  }

  recallMessage(conv: Conv, mid: string) {
    return this.run('recallMessage', [conv, mid], () => {})
  }

  react(conv: Conv, mid: string, key: string, on: boolean) {
    return this.run('react', [conv, mid, key, on], () => {})
  }

  pinMessage(conv: Conv, mid: string, on: boolean) {
    return this.run('pinMessage', [conv, mid, on], () => {})
  }

  forwardMessage(conv: Conv, mid: string, to: Target) {
    return this.run('forwardMessage', [conv, mid, to], (): MessageView => {
      throw { code: 'internal', message: `forwardMessage ${mid}: script the forwarded message` }
    })
  }

  /** A fixture message by id (the fixtures hold no relations). */
  messageByMid(conv: Conv, mid: string) {
    return this.run('messageByMid', [conv, mid], () => {
      const m = this.message(conv, mid)
      return m ? { ...m } : null
    })
  }

  /** The fixture conversation's pins, in its order. */
  pinnedMessages(conv: Conv) {
    return this.run('pinnedMessages', [conv], () =>
      (this.convs.get(conv)?.pins ?? []).map((mid) => this.message(conv, mid)).filter((m): m is MessageView => !!m).map((m) => ({ ...m })))
  }

  // ---- channels --------------------------------------------------------------

  channels() {
    return this.run('channels', [], () => this.channelList.map((c) => ({ ...c })))
  }

  /** Unscripted: the channel's conversation appears (the server's refusals are scripted). */
  join(channel: string) {
    return this.run('join', [channel], () => this.showChannel(channel))
  }

  leave(channel: string) {
    return this.run('leave', [channel], () => {
      this.convs.delete(channelConv(channel))
    })
  }

  createChannel(channel: string, title: string, topic: string, isPrivate: boolean) {
    return this.run('createChannel', [channel, title, topic, isPrivate], () => {
      this.channelList.push({ channel, title, topic, private: isPrivate, members: 1 })
      this.memberLists.set(channel, [{ user: this.me, online: true, role: 'owner' }])
      return this.showChannel(channel)
    })
  }

  private showChannel(channel: string): Conv {
    const conv = channelConv(channel)
    const view = this.convs.get(conv) ?? this.addConversation({ conv, last_ts: Date.now() })
    this.emit({ type: 'conversation_updated', conversation: { ...view } })
    return conv
  }

  addMember(channel: string, user: string) {
    return this.run('addMember', [channel, user], () => {})
  }

  members(channel: string) {
    return this.run('members', [channel], () =>
      (this.memberLists.get(channel) ?? []).map((m) => ({ ...m, online: this.presence.get(m.user)?.online ?? m.online })))
  }

  setRole(channel: string, user: string, role: Role) {
    return this.run('setRole', [channel, user, role], () => {})
  }

  removeMember(channel: string, user: string) {
    return this.run('removeMember', [channel, user], () => {})
  }

  // ---- presence and profiles ---------------------------------------------------

  watch(users: string[]) {
    return this.run('watch', [users], () => users.map((u) => this.presence.get(u) ?? { user: u, online: false }))
  }

  unwatch(users: string[]) {
    return this.run('unwatch', [users], () => {})
  }

  profiles(users: string[]) {
    return this.run('profiles', [users], () => users.map((u) => this.profilesByUser.get(u) ?? { user: u, name: '', avatar: '', status: '' }))
  }

  setProfile(name: string, avatar: string, status: string) {
    return this.run('setProfile', [name, avatar, status], () => {
      const p = { user: this.me, name, avatar, status }
      this.profilesByUser.set(this.me, p)
      this.emit({ type: 'profile', profile: { ...p } })
    })
  }

  // ---- invitations -------------------------------------------------------------

  /** Stores an invitation's new state and emits it, as the core mirrors one. */
  putInvite(v: InviteView): InviteView {
    this.inviteMap.set(v.iid, v)
    this.emit({ type: 'invite', invite: { ...v } })
    return { ...v }
  }

  /** Unscripted: a pending outgoing invitation. */
  invite(to: string, content: JsonObject, ttlS: number) {
    return this.run('invite', [to, content, ttlS], () => {
      const now = Date.now()
      const iid = `i${newCid()}`
      return this.putInvite({
        iid, from: this.me, to, room: `call-${iid}`, content, state: 'pending',
        created: now, expires: now + ttlS * 1000, received: false, incoming: false, ringing: false,
      })
    })
  }

  answer(iid: string, accept: boolean, response: JsonObject) {
    return this.run('answer', [iid, accept, response], () => {
      const cur = this.inviteMap.get(iid)
      return cur ? this.putInvite({ ...cur, state: accept ? 'accepted' : 'refused', ringing: false, response }) : null
    })
  }

  cancelInvite(iid: string) {
    return this.run('cancelInvite', [iid], () => {
      const cur = this.inviteMap.get(iid)
      return cur ? this.putInvite({ ...cur, state: 'canceled' }) : null
    })
  }

  invites() {
    return this.run('invites', [], () => [...this.inviteMap.values()].map((v) => ({ ...v })))
  }

  // ---- the running call: recorded; what the media engine reports comes from
  // a test through emitCall (the mock runs no call).

  callHangup() { return this.run('callHangup', [], () => {}) }
  callSetMuted(muted: boolean) { return this.run('callSetMuted', [muted], () => {}) }
  callSetCamera(on: boolean) { return this.run('callSetCamera', [on], () => {}) }
  callDevices() { return this.run('callDevices', [], () => this.deviceList.map((d) => ({ ...d }))) }
  callSetDevices(choice: DeviceChoice) {
    return this.run('callSetDevices', [choice], () => {
      this.settings = { ...this.settings, call_devices: { ...choice } }
    })
  }
  /** Unscripted: no picture (an empty answer, as when none comes in time). */
  callFrame(remote: boolean, after: number, maxWidth: number, maxHeight: number) {
    return this.run('callFrame', [remote, after, maxWidth, maxHeight], () => new ArrayBuffer(0))
  }
  micTestStart(mic: string | null, onLevel: LevelHandler) {
    return this.run('micTestStart', [mic, onLevel], () => {
      this.micLevels = onLevel
    }, [mic])
  }
  micTestStop() {
    return this.run('micTestStop', [], () => {
      this.micLevels = null
    })
  }

  // ---- app ---------------------------------------------------------------------

  getSettings() {
    return this.run('getSettings', [], () => structuredClone(this.settings))
  }

  setSettings(settings: Settings) {
    return this.run('setSettings', [settings], () => {
      this.settings = structuredClone(settings)
    })
  }

  openExternal(url: string) {
    return this.run('openExternal', [url], () => {
      this.opened.push(url)
    })
  }

  lastDeepLink() {
    return this.run('lastDeepLink', [], () => this.pendingDeepLink)
  }

  startAtLogin() {
    return this.run('startAtLogin', [], () => this.startsAtLogin)
  }

  setStartAtLogin(on: boolean) {
    return this.run('setStartAtLogin', [on], () => (this.startsAtLogin = on))
  }

  openLogsFolder() {
    return this.run('openLogsFolder', [], () => {
      this.logsOpened += 1
    })
  }

  setActiveConversation(conv: Conv | null) {
    return this.run('setActiveConversation', [conv], () => {})
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

  async onCall(handler: CallHandler): Promise<Unsubscribe> {
    this.callHandlers.add(handler)
    return () => this.callHandlers.delete(handler)
  }
}
