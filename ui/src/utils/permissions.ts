// Which actions a user may take on a message, by the rules of protocol §11.
// Pure: the caller passes who the user is, the server's windows and the
// user's channel role, so the rules are tested without a store.
import type { MessageView } from '../types/model'
import type { Role } from '../types/protocol'

export interface PermissionContext {
  me: string
  /** The message's conversation is a channel. */
  isChannel: boolean
  /** The user's role in that channel (null: unknown or a DM). */
  role: Role | null
  /** The server has feature `v1.1`. */
  v11: boolean
  /** Seconds after `ts` the sender may edit / recall; null: no window. */
  editWindowS: number | null
  recallWindowS: number | null
  now: number
}

export interface MessagePermissions {
  reply: boolean
  copy: boolean
  edit: boolean
  recall: boolean
  react: boolean
  pin: boolean
  forward: boolean
}

export const NO_PERMISSIONS: MessagePermissions = { reply: false, copy: false, edit: false, recall: false, react: false, pin: false, forward: false }

// v1.2: `call` records (§14) take relations too, but are never edited or forwarded.
const CONTENT_KINDS = new Set(['text', 'image', 'file', 'custom', 'call'])

function within(ts: number | null, windowS: number | null, now: number): boolean {
  if (windowS === null) return true
  return ts !== null && now - ts <= windowS * 1000
}

/** Owners and admins moderate a channel: pin, recall anything, remove plain members. */
export function isModerator(role: Role | null): boolean {
  return role === 'owner' || role === 'admin'
}

export function messagePermissions(m: MessageView, c: PermissionContext): MessagePermissions {
  const text = m.kind === 'text' && typeof m.body.text === 'string' ? m.body.text : ''
  // Unsent or recalled: nothing to act on (a recalled message takes no relation: `conflict`).
  if (m.recalled) return NO_PERMISSIONS
  const copy = text.length > 0
  const stored = m.mid !== null && m.seq !== null
  if (!stored || !CONTENT_KINDS.has(m.kind)) return { ...NO_PERMISSIONS, copy }
  const mine = m.from === c.me
  const moderator = c.isChannel && isModerator(c.role)
  return {
    reply: true,
    copy,
    edit: c.v11 && mine && m.kind === 'text' && within(m.ts, c.editWindowS, c.now),
    recall: c.v11 && (moderator || (mine && within(m.ts, c.recallWindowS, c.now))),
    react: c.v11,
    pin: c.v11 && (!c.isChannel || moderator),
    forward: c.v11 && m.kind !== 'custom' && m.kind !== 'call',
  }
}
