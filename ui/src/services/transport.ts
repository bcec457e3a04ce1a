// The one door to the backend. Components call stores, stores call this
// interface; only this file (and the generated bindings it loads) knows about
// @tauri-apps/api. Each method maps to one Tauri command of the shell, which
// calls one client-core method (crates/client/src/client.rs). The commands,
// their arguments and the events are generated from the Rust side into
// ../generated/bindings.ts (`npm run bindings`), so they cannot drift.
import type { ClientEvent, ConnectionEvent } from '../types/events'
import type { ConversationView, InviteView, MessageView, UploadedMedia } from '../types/model'
import type { ChannelInfo, Conv, JsonObject, MemberInfo, Presence, Profile, Role, Target } from '../types/protocol'
import type { Account, ConnectConfig, ServerInfo, Settings, TransportError } from '../types/app'
import type { CallUpdate_Serialize as CallUpdate, DeepLink, DeviceChoice_Serialize as DeviceChoice, DeviceInfo, Notice } from '../generated/bindings'

export type { CallUpdate_Serialize as CallUpdate, DeepLink, DeviceChoice_Serialize as DeviceChoice, DeviceInfo, Notice } from '../generated/bindings'

export type DeepLinkHandler = (link: DeepLink) => void
export type NoticeHandler = (notice: Notice) => void
export type SettingsHandler = (settings: Settings) => void
export type CallHandler = (update: CallUpdate) => void
/** A mic-test level in dBFS. */
export type LevelHandler = (dbfs: number) => void

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
  /**
   * A URL the webview can show for an image's media id (downloaded once,
   * cached). Fails with `not_an_image` or `image_too_large` for bytes the
   * webview must not decode (command `image_file`).
   */
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
  /** A content message this device stores, or null. Command `message_by_mid`. */
  messageByMid(conv: Conv, mid: string): Promise<MessageView | null>
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

  // ---- the running call (placed and answered with the invitation commands;
  // `content.video` asks for video). Each acts on this profile's one call.
  /** Command `call_hangup`. */
  callHangup(): Promise<void>
  /** Command `call_set_muted`. */
  callSetMuted(muted: boolean): Promise<void>
  /** Command `call_set_camera`. */
  callSetCamera(on: boolean): Promise<void>
  /** Microphones, cameras and speakers. Command `call_devices`. */
  callDevices(): Promise<DeviceInfo[]>
  /** Chooses devices (persisted in the settings). Command `call_set_devices`. */
  callSetDevices(choice: DeviceChoice): Promise<void>
  /**
   * The next picture newer than `after` (remote or self-view), fitted to
   * `maxWidth`×`maxHeight`: packed I420 planes then a 20-byte trailer (see
   * src-tauri/src/calls_frames.rs, utils/callFrames.ts); empty when none came
   * in time. Command `call_frame`.
   */
  callFrame(remote: boolean, after: number, maxWidth: number, maxHeight: number): Promise<ArrayBuffer>
  /** Starts the mic test on `mic` (null: default). Command `mic_test_start`. */
  micTestStart(mic: string | null, onLevel: LevelHandler): Promise<void>
  /** Command `mic_test_stop`. */
  micTestStop(): Promise<void>

  // ---- app
  getSettings(): Promise<Settings>
  setSettings(settings: Settings): Promise<void>
  /** Opens a URL in the OS browser. */
  openExternal(url: string): Promise<void>
  /** Whether the app starts at login (the OS entry is the setting). Command `start_at_login`. */
  startAtLogin(): Promise<boolean>
  /** Turns start at login on or off; resolves to the state the OS now has. Command `set_start_at_login`. */
  setStartAtLogin(on: boolean): Promise<boolean>
  /** Opens the profile's log folder in the OS file manager. Command `open_logs_folder`. */
  openLogsFolder(): Promise<void>
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
  /** Subscribes to the running call's updates (`courier://call`). */
  onCall(handler: CallHandler): Promise<Unsubscribe>
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

type Bindings = typeof import('../generated/bindings')
type Commands = Bindings['commands']

let bindings: Promise<Bindings> | null = null
/** The generated bindings, loaded on first use (tests and the browser demo never load them). */
function loadBindings(): Promise<Bindings> {
  return (bindings ??= import('../generated/bindings'))
}

/** The real backend: the generated Tauri commands and events. */
export class TauriTransport implements Transport {
  private async call<T>(run: (commands: Commands) => Promise<T>): Promise<T> {
    const { commands } = await loadBindings()
    try {
      return await run(commands)
    } catch (e) {
      throw toTransportError(e)
    }
  }

  /** A command whose result is `()` in Rust. */
  private async run(run: (commands: Commands) => Promise<null>): Promise<void> {
    await this.call(run)
  }

  account() { return this.call((c) => c.account()) }
  connect(config: ConnectConfig) { return this.call((c) => c.connect(config)) }
  connectionState() { return this.call((c) => c.connectionState() as Promise<ConnectionEvent>) }
  serverInfo() { return this.call((c) => c.serverInfo()) }

  sendText(to: Target, text: string, replyTo?: string, mentions?: string[]) {
    return this.call((c) => c.sendText(to, text, replyTo ?? null, mentions?.length ? mentions : null))
  }
  sendImage(to: Target, media: UploadedMedia, name: string, width: number, height: number, replyTo?: string) {
    return this.call((c) => c.sendImage(to, media, name, width, height, replyTo ?? null))
  }
  sendFile(to: Target, media: UploadedMedia, name: string, replyTo?: string) {
    return this.call((c) => c.sendFile(to, media, name, replyTo ?? null))
  }
  async upload(bytes: Uint8Array, mime: string, onProgress?: ProgressHandler) {
    const { Channel } = await import('@tauri-apps/api/core')
    const progress = new Channel<{ sent: number; total: number }>()
    progress.onmessage = (p) => onProgress?.(p.sent, p.total)
    return this.call((c) => c.upload(Array.from(bytes), mime, progress))
  }
  async mediaUrl(media: string) {
    const { convertFileSrc } = await import('@tauri-apps/api/core')
    const path = await this.call((c) => c.imageFile(media))
    return convertFileSrc(path)
  }
  openMedia(media: string, name?: string, confirmed?: boolean) {
    return this.run((c) => c.openMedia(media, name ?? null, confirmed ?? false))
  }
  retry(cid: string) { return this.call((c) => c.retryMessage(cid)) }
  deleteUnsent(cid: string) { return this.call((c) => c.deleteUnsent(cid)) }
  history(conv: Conv, before: number | null, limit: number) {
    return this.call((c) => c.historyPage(conv, before, limit))
  }
  search(query: string, limit: number) { return this.call((c) => c.search(query, limit)) }
  conversations() { return this.call((c) => c.conversations()) }
  markRead(conv: Conv, seq: number | null) { return this.run((c) => c.markRead(conv, seq)) }
  setDraft(conv: Conv, text: string) { return this.run((c) => c.setDraft(conv, text)) }
  typing(conv: Conv) { return this.run((c) => c.typing(conv)) }
  signal(to: Target, body: JsonObject) { return this.run((c) => c.signal(to, body)) }

  editMessage(conv: Conv, mid: string, text: string) { return this.call((c) => c.editMessage(conv, mid, text)) }
  recallMessage(conv: Conv, mid: string) { return this.run((c) => c.recallMessage(conv, mid)) }
  react(conv: Conv, mid: string, key: string, on: boolean) { return this.run((c) => c.react(conv, mid, key, on)) }
  pinMessage(conv: Conv, mid: string, on: boolean) { return this.run((c) => c.pinMessage(conv, mid, on)) }
  forwardMessage(conv: Conv, mid: string, to: Target) { return this.call((c) => c.forwardMessage(conv, mid, to)) }
  messageByMid(conv: Conv, mid: string) { return this.call((c) => c.messageByMid(conv, mid)) }
  pinnedMessages(conv: Conv) { return this.call((c) => c.pinnedMessages(conv)) }

  channels() { return this.call((c) => c.channels()) }
  join(channel: string) { return this.call((c) => c.joinChannel(channel)) }
  leave(channel: string) { return this.run((c) => c.leaveChannel(channel)) }
  createChannel(channel: string, title: string, topic: string, isPrivate: boolean) {
    return this.call((c) => c.createChannel(channel, title, topic, isPrivate))
  }
  addMember(channel: string, user: string) { return this.run((c) => c.addMember(channel, user)) }
  members(channel: string) { return this.call((c) => c.members(channel)) }
  setRole(channel: string, user: string, role: Role) { return this.run((c) => c.setRole(channel, user, role)) }
  removeMember(channel: string, user: string) { return this.run((c) => c.removeMember(channel, user)) }

  watch(users: string[]) { return this.call((c) => c.watchPresence(users)) }
  unwatch(users: string[]) { return this.run((c) => c.unwatchPresence(users)) }
  profiles(users: string[]) { return this.call((c) => c.profiles(users)) }
  setProfile(name: string, avatar: string, status: string) {
    return this.run((c) => c.setProfile(name, avatar, status))
  }

  invite(to: string, content: JsonObject, ttlS: number) {
    return this.call((c) => c.invite(to, content, ttlS))
  }
  answer(iid: string, accept: boolean, response: JsonObject) {
    return this.call((c) => c.answerInvite(iid, accept, response))
  }
  cancelInvite(iid: string) { return this.call((c) => c.cancelInvite(iid)) }
  invites() { return this.call((c) => c.invites()) }

  callHangup() { return this.run((c) => c.callHangup()) }
  callSetMuted(muted: boolean) { return this.run((c) => c.callSetMuted(muted)) }
  callSetCamera(on: boolean) { return this.run((c) => c.callSetCamera(on)) }
  callDevices() { return this.call((c) => c.callDevices()) }
  callSetDevices(choice: DeviceChoice) { return this.run((c) => c.callSetDevices(choice)) }
  callFrame(remote: boolean, after: number, maxWidth: number, maxHeight: number) {
    // A raw IPC answer arrives as an ArrayBuffer (specta types it as bytes).
    return this.call((c) => c.callFrame(remote, after, maxWidth, maxHeight) as unknown as Promise<ArrayBuffer>)
  }
  async micTestStart(mic: string | null, onLevel: LevelHandler) {
    const { Channel } = await import('@tauri-apps/api/core')
    // JSON has no -Infinity: silence may come as null.
    const levels = new Channel<number | null>()
    levels.onmessage = (db) => onLevel(db ?? -100)
    return this.run((c) => c.micTestStart(mic, levels))
  }
  micTestStop() { return this.run((c) => c.micTestStop()) }

  getSettings() { return this.call((c) => c.settingsGet()) }
  setSettings(settings: Settings) { return this.run((c) => c.settingsSet(settings)) }
  openExternal(url: string) { return this.run((c) => c.openExternal(url)) }
  startAtLogin() { return this.call((c) => c.startAtLogin()) }
  setStartAtLogin(on: boolean) { return this.call((c) => c.setStartAtLogin(on)) }
  openLogsFolder() { return this.run((c) => c.openLogsFolder()) }
  lastDeepLink() { return this.call((c) => c.lastDeepLink()) }
  setActiveConversation(conv: Conv | null) { return this.run((c) => c.setActiveConversation(conv)) }

  async onEvent(handler: EventHandler) {
    const { events } = await loadBindings()
    return events.courierEvent.listen((e) => handler(e.payload))
  }
  async onDeepLink(handler: DeepLinkHandler) {
    const { events } = await loadBindings()
    return events.courierDeepLink.listen((e) => handler(e.payload))
  }
  async onNotice(handler: NoticeHandler) {
    const { events } = await loadBindings()
    return events.courierNotice.listen((e) => handler(e.payload))
  }
  async onSettings(handler: SettingsHandler) {
    const { events } = await loadBindings()
    return events.courierSettings.listen((e) => handler(e.payload))
  }
  async onCall(handler: CallHandler) {
    const { events } = await loadBindings()
    return events.courierCall.listen((e) => handler(e.payload))
  }
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
