// Helpers for conversation ids and targets, mirroring proto::Conv / Target.
import type { Conv, Target } from './protocol'

/** The DM conversation between two users, whichever order they come in. */
export function dmConv(a: string, b: string): Conv {
  return a <= b ? `dm:${a}:${b}` : `dm:${b}:${a}`
}

export function channelConv(name: string): Conv {
  return `ch:${name}`
}

export function isChannelConv(conv: Conv): boolean {
  return conv.startsWith('ch:')
}

/** The channel name of `ch:<name>`, else null. */
export function channelOf(conv: Conv): string | null {
  return conv.startsWith('ch:') ? conv.slice(3) : null
}

/** For a DM, the other party as seen from `me` (`me` itself for `dm:a:a`). */
export function peerOf(conv: Conv, me: string): string | null {
  if (!conv.startsWith('dm:')) return null
  const [a, b] = conv.slice(3).split(':')
  if (a === me) return b
  if (b === me) return a
  return null
}

/** Where a message to this conversation is addressed. */
export function targetOf(conv: Conv, me: string): Target {
  const ch = channelOf(conv)
  if (ch !== null) return { channel: ch }
  return { user: peerOf(conv, me) ?? me }
}

/** proto::is_valid_name: `^[A-Za-z0-9_.-]{1,64}$`. */
export function isValidName(s: string): boolean {
  return /^[A-Za-z0-9_.-]{1,64}$/.test(s)
}
