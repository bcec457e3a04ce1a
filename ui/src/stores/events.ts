// Routes the client core's event stream to the stores. One subscription for
// the whole app, made at start-up.
import type { ClientEvent } from '../types/events'
import { useTransport } from '../services/transport'
import { useConnectionStore } from './connection'
import { useConversationsStore } from './conversations'
import { useMessagesStore } from './messages'
import { useProfilesStore } from './profiles'
import { useInvitationsStore } from './invitations'
import { useChannelsStore } from './channels'
import { useServerStore } from './server'
import { RELATION_KINDS } from '../types/model'

export function routeEvent(e: ClientEvent): void {
  switch (e.type) {
    case 'connection':
      useConnectionStore().apply(e)
      // Features and windows may differ after a reconnect (another server, an upgrade).
      if (e.state === 'connected') void useServerStore().load()
      break
    case 'message_added':
    case 'message_updated':
      // Relation kinds (edit, recall, reaction, pin) arrive as their target's update.
      if ((RELATION_KINDS as readonly string[]).includes(e.message.kind)) break
      useMessagesStore().upsert(e.message)
      useConversationsStore().noteMessage(e.message)
      break
    case 'history_filled':
      void useMessagesStore().refill(e.conv)
      break
    case 'conversation_updated':
      useConversationsStore().upsert(e.conversation)
      break
    case 'sync_completed':
      void useConversationsStore().load()
      break
    case 'receipt':
      useMessagesStore().applyReceipt(e.conv, e.recv_seq, e.read_seq)
      break
    case 'typing':
      useConversationsStore().noteTyping(e.conv, e.user)
      break
    case 'presence':
      useProfilesStore().setPresence({ user: e.user, online: e.online, ...(e.last_seen !== undefined ? { last_seen: e.last_seen } : {}) })
      break
    case 'profile':
      useProfilesStore().setProfile(e.profile)
      break
    case 'member':
      useChannelsStore().onMember(e.channel, e.user, e.joined, e.removed, e.role)
      break
    case 'invite':
      useInvitationsStore().apply(e.invite)
      break
    case 'signal':
      useInvitationsStore().onSignal(e.to, e.body)
      break
    case 'token_expiring':
    case 'token_required':
      // The shell renews tokens; the banner shows the connection state meanwhile.
      break
  }
}

/** Subscribes the stores to the transport's events. */
export function subscribeEvents(): Promise<() => void> {
  return useTransport().onEvent(routeEvent)
}
