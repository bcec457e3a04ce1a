// Mirror of crates/client/src/events.rs: `#[serde(tag = "type", rename_all = "snake_case")]`.
import type { ConversationView, InviteView, MessageView } from './model'
import type { Conv, JsonObject, Profile, Role, Target } from './protocol'

/** events::ConnState */
export type ConnState = 'disconnected' | 'connecting' | 'connected' | 'reconnecting' | 'stopped'

export interface ConnectionEvent {
  type: 'connection'
  state: ConnState
  url?: string
  /** When reconnecting: the back-off before the next attempt. */
  retry_in_ms?: number
  reason?: string
  close_code?: number
}

export type ClientEvent =
  | ConnectionEvent
  | { type: 'message_added'; message: MessageView }
  | { type: 'message_updated'; message: MessageView }
  | { type: 'history_filled'; conv: Conv; added: number }
  | { type: 'conversation_updated'; conversation: ConversationView }
  | { type: 'sync_completed'; conversations: number; fetched: number }
  | { type: 'receipt'; conv: Conv; user: string; recv_seq: number; read_seq: number }
  | { type: 'typing'; conv: Conv; user: string }
  | { type: 'presence'; user: string; online: boolean; last_seen?: number }
  | { type: 'profile'; profile: Profile }
  /** `role` comes with role changes (then `joined` is true); `removed` when an owner/admin removed the user. */
  | { type: 'member'; channel: string; user: string; joined: boolean; removed: boolean; role?: Role }
  | { type: 'invite'; invite: InviteView }
  | { type: 'signal'; from: string; to: Target; body: JsonObject; ts: number }
  | { type: 'token_expiring'; exp: number }
  | { type: 'token_required' }

export type ClientEventType = ClientEvent['type']
export type EventOf<T extends ClientEventType> = Extract<ClientEvent, { type: T }>
