// The client core's event stream (crates/client/src/events.rs), generated
// from the Rust types into ../generated/bindings.ts. Serialized as
// `{"type": "<snake_case variant>", ...fields}`.
import type { ClientEvent_Serialize } from '../generated/bindings'

export type { ConnState } from '../generated/bindings'

/** One event of the core, as the shell emits it on `courier://event`. */
export type ClientEvent = ClientEvent_Serialize
export type ClientEventType = ClientEvent['type']
export type EventOf<T extends ClientEventType> = Extract<ClientEvent, { type: T }>
/** A change of the connection state (also the answer of `connection_state`). */
export type ConnectionEvent = EventOf<'connection'>
