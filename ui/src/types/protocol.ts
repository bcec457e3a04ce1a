// Mirrors of the protocol crate's types (crates/proto/src/{ids,event}.rs) as
// serde serializes them. Keep field names identical to the Rust side.

/** `dm:<a>:<b>` (a <= b bytewise) or `ch:<channel>`; serialized as a string. */
export type Conv = string

/** `{"user":..}`, `{"channel":..}` or `{"call":<iid>}` (externally tagged enum). */
export type Target = { user: string } | { channel: string } | { call: string }

/** proto::Profile */
export interface Profile {
  user: string
  /** Display name (≤ 64 characters). */
  name: string
  /** Media id or `avatar:<n>` preset; empty for none. */
  avatar: string
  /** Status line (≤ 140 characters). */
  status: string
}

/** proto::Presence (the `watch` ok rows). */
export interface Presence {
  user: string
  online: boolean
  last_seen?: number
}

/** proto::ChannelInfo */
export interface ChannelInfo {
  channel: string
  title: string
  topic: string
  private: boolean
  members: number
}

/** proto::Role (v1.1): a channel's creator is `owner`; owners and admins moderate. */
export type Role = 'owner' | 'admin' | 'member'

/** proto::MemberInfo */
export interface MemberInfo {
  user: string
  online: boolean
  /** v1.1: the member's role in the channel. */
  role: Role
}

/** proto::InviteState — every state but `pending` is final. */
export type InviteState = 'pending' | 'accepted' | 'refused' | 'canceled' | 'expired' | 'failed'

export type JsonObject = Record<string, unknown>

/** proto::Invite */
export interface Invite {
  iid: string
  from: string
  to: string
  /** Where the call continues: `call-<iid>`. */
  room: string
  content: JsonObject
  state: InviteState
  /** Creation time (ms). */
  created: number
  /** Expiry time (ms). */
  expires: number
  /** Whether a callee session has received it. */
  received: boolean
  reason?: string
  response?: JsonObject
}
