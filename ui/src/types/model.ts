// The client core's view model (crates/client/src/model.rs), generated from
// the Rust types into ../generated/bindings.ts; plus the UI's reading of
// message bodies, which are free-form JSON on the Rust side.
import type { Conv } from './protocol'

export type {
  ConversationView_Serialize as ConversationView,
  DeliveryStatus,
  InviteView_Serialize as InviteView,
  MessageView_Serialize as MessageView,
  UploadedMedia_Serialize as UploadedMedia,
} from '../generated/bindings'

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

/** How a call ended (protocol §14). */
export type CallOutcome = 'completed' | 'failed' | 'missed' | 'declined' | 'canceled'

/** Body of a `call` record (protocol §14): written by the caller's device or the server. */
export interface CallBody {
  iid: string
  video: boolean
  outcome: CallOutcome
  duration_s: number
}
