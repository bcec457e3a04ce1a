// The one door to the backend. Components call stores, stores call this
// interface; only this file knows about @tauri-apps/api. Each method maps to
// one Tauri command of the shell, which calls one client-core method
// (crates/client/src/client.rs). Command arguments are camelCase, as Tauri v2
// expects by default for snake_case Rust parameters.
import type { ClientEvent, ConnectionEvent } from '../types/events'
import type { ConversationView, InviteView, MessageView, UploadedMedia } from '../types/model'
import type { ChannelInfo, Conv, JsonObject, MemberInfo, Presence, Profile, Role, Target } from '../types/protocol'
import type { Account, ConnectConfig, ServerInfo, Settings, TransportError } from '../types/app'

/** The name of the one Tauri event the shell emits every ClientEvent on. */
export const EVENT_NAME = 'courier://event'
/** Deep links (`courier://chat/<user>` …), parsed by the shell. */
export const DEEP_LINK_EVENT = 'courier://deep-link'
/** Shell notices (malformed link, refusals): shown as toasts. */
export const NOTICE_EVENT = 'courier://notice'
/** The full settings, when the shell changed them (tray: do not disturb). */
export const SETTINGS_EVENT = 'courier://settings'

/** A deep link the shell received. */
export type DeepLink = { kind: 'chat'; user: string } | { kind: 'channel'; channel: string } | { kind: 'call'; iid: string }
/** A notice from the shell. */
export interface Notice {
  level: 'error' | 'info'
  message: string
}
export type DeepLinkHandler = (link: DeepLink) => void
export type NoticeHandler = (notice: Notice) => void
export type SettingsHandler = (settings: Settings) => void

export type EventHandler = (event: ClientEvent) => void
export type Unsubscribe = () => void
/** Upload progress: bytes sent so far and the total. */
export type ProgressHandler = (sent: number, total: number) => void

export interface Transport {
  // ---- account and connection
  /** The configured account, or null on first run. Command `account`. */
  account(): Promise<Account | null>
  /** Signs in (starting the embedded server if asked). Command `connect`. */
  connect(config: ConnectConfig): Promise<Account>
  /** The current connection state as a `connection` event. Command `connection_state`. */
  connectionState(): Promise<ConnectionEvent>
  /** Features and windows of the connected server (v1.1). Command `server_info`. */
  serverInfo(): Promise<ServerInfo>

  // ---- messages
  /** `mentions`: user ids the text mentions (v1.1). */
  sendText(to: Target, text: string, replyTo?: string, mentions?: string[]): Promise<MessageView>
  sendImage(to: Target, media: UploadedMedia, name: string, width: number, height: number, replyTo?: string): Promise<MessageView>
  sendFile(to: Target, media: UploadedMedia, name: string, replyTo?: string): Promise<MessageView>
  upload(bytes: Uint8Array, mime: string, onProgress?: ProgressHandler): Promise<UploadedMedia>
  /** A URL the webview can show for a media id (downloaded once, cached). */
  mediaUrl(media: string): Promise<string>
  /** Opens a downloaded media file with the OS's default app. */
  /**
   * Opens a downloaded media file with the OS's default app. A file that could
   * run code fails with `confirm_required` unless `confirmed` (the user agreed).
   */
  openMedia(media: string, name?: string, confirmed?: boolean): Promise<void>
  retry(cid: string): Promise<MessageView>
  deleteUnsent(cid: string): Promise<boolean>
  /** Ascending page of messages with seq < before (latest page when null; pending at its end). */
  history(conv: Conv, before: number | null, limit: number): Promise<MessageView[]>
  search(query: string, limit: number): Promise<MessageView[]>
  conversations(): Promise<ConversationView[]>
  markRead(conv: Conv, seq: number | null): Promise<void>
  setDraft(conv: Conv, text: string): Promise<void>
  typing(conv: Conv): Promise<void>
  signal(to: Target, body: JsonObject): Promise<void>

  // ---- v1.1 message actions (their effect comes back as `message_updated` of the target)
  /** Replaces the text of an own text message. Command `edit_message`; returns the updated target. */
  editMessage(conv: Conv, mid: string, text: string): Promise<MessageView>
  /** Recalls a message for everyone. Command `recall_message`. */
  recallMessage(conv: Conv, mid: string): Promise<void>
  /** Turns this user's reaction `key` on or off. Command `react`. */
  react(conv: Conv, mid: string, key: string, on: boolean): Promise<void>
  /** Pins or unpins a message in its conversation. Command `pin_message`. */
  pinMessage(conv: Conv, mid: string, on: boolean): Promise<void>
  /** Sends a copy of a message to `to`, marked forwarded. Command `forward_message`; returns the new message. */
  forwardMessage(conv: Conv, mid: string, to: Target): Promise<MessageView>
  /** The pinned messages of a conversation, oldest pin first. Command `pinned_messages`. */
  pinnedMessages(conv: Conv): Promise<MessageView[]>

  // ---- channels
  channels(): Promise<ChannelInfo[]>
  join(channel: string): Promise<Conv>
  leave(channel: string): Promise<void>
  createChannel(channel: string, title: string, topic: string, isPrivate: boolean): Promise<Conv>
  addMember(channel: string, user: string): Promise<void>
  members(channel: string): Promise<MemberInfo[]>
  /** Owner only: makes `user` an admin, a member, or the owner (transfer). Command `set_role`. */
  setRole(channel: string, user: string, role: Role): Promise<void>
  /** Owner (anyone else) or admin (plain members): removes `user`. Command `remove_member`. */
  removeMember(channel: string, user: string): Promise<void>

  // ---- presence and profiles
  watch(users: string[]): Promise<Presence[]>
  unwatch(users: string[]): Promise<void>
  profiles(users: string[]): Promise<Profile[]>
  setProfile(name: string, avatar: string, status: string): Promise<void>

  // ---- call invitations
  invite(to: string, content: JsonObject, ttlS: number): Promise<InviteView>
  answer(iid: string, accept: boolean, response: JsonObject): Promise<InviteView | null>
  cancelInvite(iid: string): Promise<InviteView | null>
  invites(): Promise<InviteView[]>

  // ---- app
  getSettings(): Promise<Settings>
  setSettings(settings: Settings): Promise<void>
  /** Opens a URL in the OS browser. */
  openExternal(url: string): Promise<void>
  /** The deep link the app was started with (cold start), else null. Command `last_deep_link`. */
  lastDeepLink(): Promise<DeepLink | null>
  /** Tells the shell which conversation is open (no notifications for it). Command `set_active_conversation`. */
  setActiveConversation(conv: Conv | null): Promise<void>

  /** Subscribes to the client core's event stream. */
  onEvent(handler: EventHandler): Promise<Unsubscribe>
  /** Subscribes to deep links (`courier://deep-link`). */
  onDeepLink(handler: DeepLinkHandler): Promise<Unsubscribe>
  /** Subscribes to shell notices (`courier://notice`). */
  onNotice(handler: NoticeHandler): Promise<Unsubscribe>
  /** Subscribes to settings changed by the shell (`courier://settings`). */
  onSettings(handler: SettingsHandler): Promise<Unsubscribe>
}

/** Normalizes whatever a backend threw into `{code, message}`. */
export function toTransportError(e: unknown): TransportError {
  if (e && typeof e === 'object' && 'code' in e && 'message' in e) {
    const t = e as TransportError
    const out: TransportError = { code: String(t.code), message: String(t.message) }
    if (typeof t.limit === 'string') out.limit = t.limit
    return out
  }
  if (e instanceof Error) return { code: 'internal', message: e.message }
  return { code: 'internal', message: String(e) }
}

/** The real backend: Tauri commands and the `courier://event` event. */
export class TauriTransport implements Transport {
  private async call<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
    const { invoke } = await import('@tauri-apps/api/core')
    try {
      return await invoke<T>(cmd, args)
    } catch (e) {
      throw toTransportError(e)
    }
  }

  account() { return this.call<Account | null>('account') }
  connect(config: ConnectConfig) { return this.call<Account>('connect', { config }) }
  connectionState() { return this.call<ConnectionEvent>('connection_state') }
  serverInfo() { return this.call<ServerInfo>('server_info') }

  sendText(to: Target, text: string, replyTo?: string, mentions?: string[]) {
    return this.call<MessageView>('send_text', { to, text, replyTo: replyTo ?? null, mentions: mentions?.length ? mentions : null })
  }
  sendImage(to: Target, media: UploadedMedia, name: string, width: number, height: number, replyTo?: string) {
    return this.call<MessageView>('send_image', { to, media, name, width, height, replyTo: replyTo ?? null })
  }
  sendFile(to: Target, media: UploadedMedia, name: string, replyTo?: string) {
    return this.call<MessageView>('send_file', { to, media, name, replyTo: replyTo ?? null })
  }
  async upload(bytes: Uint8Array, mime: string, onProgress?: ProgressHandler) {
    const { Channel } = await import('@tauri-apps/api/core')
    const progress = new Channel<{ sent: number; total: number }>()
    progress.onmessage = (p) => onProgress?.(p.sent, p.total)
    return this.call<UploadedMedia>('upload', { bytes: Array.from(bytes), mime, progress })
  }
  async mediaUrl(media: string) {
    const { convertFileSrc } = await import('@tauri-apps/api/core')
    const path = await this.call<string>('download', { media })
    return convertFileSrc(path)
  }
  openMedia(media: string, name?: string, confirmed?: boolean) {
    return this.call<void>('open_media', { media, name: name ?? null, confirmed: confirmed ?? false })
  }
  retry(cid: string) { return this.call<MessageView>('retry_message', { cid }) }
  deleteUnsent(cid: string) { return this.call<boolean>('delete_unsent', { cid }) }
  history(conv: Conv, before: number | null, limit: number) {
    return this.call<MessageView[]>('history_page', { conv, before, limit })
  }
  search(query: string, limit: number) { return this.call<MessageView[]>('search', { query, limit }) }
  conversations() { return this.call<ConversationView[]>('conversations') }
  markRead(conv: Conv, seq: number | null) { return this.call<void>('mark_read', { conv, seq }) }
  setDraft(conv: Conv, text: string) { return this.call<void>('set_draft', { conv, text }) }
  typing(conv: Conv) { return this.call<void>('typing', { conv }) }
  signal(to: Target, body: JsonObject) { return this.call<void>('signal', { to, body }) }

  editMessage(conv: Conv, mid: string, text: string) { return this.call<MessageView>('edit_message', { conv, mid, text }) }
  recallMessage(conv: Conv, mid: string) { return this.call<void>('recall_message', { conv, mid }) }
  react(conv: Conv, mid: string, key: string, on: boolean) { return this.call<void>('react', { conv, mid, key, on }) }
  pinMessage(conv: Conv, mid: string, on: boolean) { return this.call<void>('pin_message', { conv, mid, on }) }
  forwardMessage(conv: Conv, mid: string, to: Target) { return this.call<MessageView>('forward_message', { conv, mid, to }) }
  pinnedMessages(conv: Conv) { return this.call<MessageView[]>('pinned_messages', { conv }) }

  channels() { return this.call<ChannelInfo[]>('channels') }
  join(channel: string) { return this.call<Conv>('join_channel', { channel }) }
  leave(channel: string) { return this.call<void>('leave_channel', { channel }) }
  createChannel(channel: string, title: string, topic: string, isPrivate: boolean) {
    return this.call<Conv>('create_channel', { channel, title, topic, private: isPrivate })
  }
  addMember(channel: string, user: string) { return this.call<void>('add_member', { channel, user }) }
  members(channel: string) { return this.call<MemberInfo[]>('members', { channel }) }
  setRole(channel: string, user: string, role: Role) { return this.call<void>('set_role', { channel, user, role }) }
  removeMember(channel: string, user: string) { return this.call<void>('remove_member', { channel, user }) }

  watch(users: string[]) { return this.call<Presence[]>('watch_presence', { users }) }
  unwatch(users: string[]) { return this.call<void>('unwatch_presence', { users }) }
  profiles(users: string[]) { return this.call<Profile[]>('profiles', { users }) }
  setProfile(name: string, avatar: string, status: string) {
    return this.call<void>('set_profile', { name, avatar, status })
  }

  invite(to: string, content: JsonObject, ttlS: number) {
    return this.call<InviteView>('invite', { to, content, ttlS })
  }
  answer(iid: string, accept: boolean, response: JsonObject) {
    return this.call<InviteView | null>('answer_invite', { iid, accept, response })
  }
  cancelInvite(iid: string) { return this.call<InviteView | null>('cancel_invite', { iid }) }
  invites() { return this.call<InviteView[]>('invites') }

  getSettings() { return this.call<Settings>('settings_get') }
  setSettings(settings: Settings) { return this.call<void>('settings_set', { settings }) }
  openExternal(url: string) { return this.call<void>('open_external', { url }) }
  lastDeepLink() { return this.call<DeepLink | null>('last_deep_link') }
  setActiveConversation(conv: Conv | null) { return this.call<void>('set_active_conversation', { conv }) }

  async onEvent(handler: EventHandler): Promise<Unsubscribe> {
    const { listen } = await import('@tauri-apps/api/event')
    return listen<ClientEvent>(EVENT_NAME, (e) => handler(e.payload))
  }

  private async listenTo<T>(name: string, handler: (payload: T) => void): Promise<Unsubscribe> {
    const { listen } = await import('@tauri-apps/api/event')
    return listen<T>(name, (e) => handler(e.payload))
  }

  onDeepLink(handler: DeepLinkHandler) { return this.listenTo<DeepLink>(DEEP_LINK_EVENT, handler) }
  onNotice(handler: NoticeHandler) { return this.listenTo<Notice>(NOTICE_EVENT, handler) }
  onSettings(handler: SettingsHandler) { return this.listenTo<Settings>(SETTINGS_EVENT, handler) }
}

/** Whether the page runs inside the Tauri webview. */
export function inTauri(): boolean {
  return typeof window !== 'undefined' && '__TAURI_INTERNALS__' in window
}

let current: Transport | null = null

/** The transport the stores use. Set once at start-up (or by a test). */
export function useTransport(): Transport {
  if (!current) throw new Error('transport not set: call setTransport() first')
  return current
}

export function setTransport(t: Transport | null): void {
  current = t
}
