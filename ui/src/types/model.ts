// Mirrors of crates/client/src/model.rs (the client core's view model).
import type { Conv, Invite, JsonObject, Target } from './protocol'

/** model::DeliveryStatus */
export type DeliveryStatus = 'pending' | 'sent' | 'delivered' | 'read' | 'failed' | 'received'

/** model::MessageView — the protocol `msg` plus the delivery status. */
export interface MessageView {
  conv: Conv
  /** null while pending or failed. */
  seq: number | null
  /** null while pending or failed. */
  mid: string | null
  /** Client message id, stable across retries. */
  cid: string
  from: string
  to: Target
  /** `text`, `image`, `file`, `custom`. */
  kind: string
  body: JsonObject
  /** Server timestamp (ms); null while pending. */
  ts: number | null
  reply_to?: string
  status: DeliveryStatus
  error?: string
  /** v1.1: `ts` of the newest edit; `body.text` already holds its text. */
  edited?: number
  /** v1.1: reaction key → user ids with it on (absent when none). */
  reactions?: Record<string, string[]>
  /** v1.1: recalled by its sender or a channel owner/admin; `body` is then `{}`. */
  recalled?: boolean
  /** v1.1: when it was pinned, while pinned. */
  pinned?: number
}

/** model::ConversationView */
export interface ConversationView {
  conv: Conv
  kind: 'dm' | 'channel'
  peer?: string
  channel?: string
  last_seq: number
  last_ts: number
  synced_seq: number
  read_seq: number
  unread: number
  peer_read_seq: number
  peer_recv_seq: number
  draft?: string
  /** The newest message (an own pending one if any), for the list preview. */
  last_message?: MessageView
  /** v1.1: unread messages that mention this user (0 when none). */
  mentions_unread: number
  /** v1.1: pinned message ids, oldest first. */
  pins: string[]
}

/** v1.1 relation kinds: they never reach the UI as messages, only their effect on the target. */
export const RELATION_KINDS = ['edit', 'recall', 'reaction', 'pin'] as const

/** `body.forwarded_from` of a forwarded message (a client feature of v1.1). */
export interface ForwardedFrom {
  conv: Conv
  mid: string
  /** The original author. */
  from: string
}

/** Body of a `text` message. */
export interface TextBody {
  text: string
  /** v1.1: user ids this message mentions (members of the conversation). */
  mentions?: string[]
  forwarded_from?: ForwardedFrom
}

/** model::InviteView — `Invite` flattened plus two flags. */
export interface InviteView extends Invite {
  /** This user is the callee. */
  incoming: boolean
  /** Incoming, pending and not expired. */
  ringing: boolean
}

/** model::UploadedMedia */
export interface UploadedMedia {
  media: string
  mime: string
  size: number
  sha256: string
}

/** Body of an `image` message (client.rs `send_image`). */
export interface ImageBody {
  media: string
  mime: string
  size: number
  name: string
  width: number
  height: number
}

/** Body of a `file` message (client.rs `send_file`). */
export interface FileBody {
  media: string
  mime: string
  size: number
  name: string
}
