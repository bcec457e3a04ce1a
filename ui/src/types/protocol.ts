// The protocol crate's types (crates/proto) as the UI receives them. They are
// generated from the Rust types into ../generated/bindings.ts (`npm run
// bindings`); this module only picks the names the UI uses. A `_Serialize`
// type is the shape Rust sends (optional fields absent, not null).
import type { Target as GeneratedTarget, Value } from '../generated/bindings'

export type {
  ChannelInfo,
  Conv,
  InviteState,
  Invite_Serialize as Invite,
  MemberInfo_Serialize as MemberInfo,
  Presence_Serialize as Presence,
  Profile,
  Role,
} from '../generated/bindings'

/** Any JSON value (serde_json::Value). */
export type JsonValue = Value
/** A free-form JSON object: message bodies, invitation content, signals. */
export type JsonObject = { [key: string]: JsonValue }

/**
 * proto::Target: `{"user":..}`, `{"channel":..}` or `{"call":<iid>}`. The
 * generated type spells each form with `?: never` for the other two, which
 * stops `'channel' in t` from narrowing; this is the same type without them,
 * and the check below fails to compile when the two stop matching.
 */
export type Target = { user: string } | { channel: string } | { call: string }

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
const targetMatchesRust: Same<Target, GeneratedTarget> = true
void targetMatchesRust
