// The message rules of utils/permissions.ts with the facts from the stores:
// who I am, the server's features and windows, my role in the channel.
import type { MessageView } from '../types/model'
import { channelOf } from '../types/ids'
import { messagePermissions } from '../utils/permissions'
import type { MessagePermissions } from '../utils/permissions'
import { useSessionStore } from './session'
import { useServerStore } from './server'
import { useChannelsStore } from './channels'

export function permissionsFor(m: MessageView, now: number = Date.now()): MessagePermissions {
  const server = useServerStore()
  const channel = channelOf(m.conv)
  const me = useSessionStore().me
  const channels = useChannelsStore()
  const removed = channel !== null && channels.removed.has(channel)
  const perms = messagePermissions(m, {
    me,
    isChannel: channel !== null,
    role: channel !== null ? channels.roleOf(channel, me) : null,
    v11: server.v11 && !removed,
    editWindowS: server.info?.edit_window_s ?? null,
    recallWindowS: server.info?.recall_window_s ?? null,
    now,
  })
  // Removed from the channel: reading is all that is left.
  return removed ? { ...perms, reply: false } : perms
}
