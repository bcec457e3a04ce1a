// Title, avatar and subtitle facts of a conversation, shared by the list,
// the header and the quick switcher.
import { computed } from 'vue'
import type { ComputedRef } from 'vue'
import type { Conv } from '../types/protocol'
import { channelOf, peerOf } from '../types/ids'
import { useProfilesStore } from '../stores/profiles'
import { useSessionStore } from '../stores/session'
import { useChannelsStore } from '../stores/channels'

export interface ConvInfo {
  conv: Conv
  isChannel: boolean
  peer: string | null
  channel: string | null
  title: string
  avatarUser: string
  avatar: string
}

export function conversationInfo(conv: Conv): ConvInfo {
  const profiles = useProfilesStore()
  const me = useSessionStore().me
  const channel = channelOf(conv)
  if (channel !== null) {
    const info = useChannelsStore().publicChannels.find((c) => c.channel === channel)
    return { conv, isChannel: true, peer: null, channel, title: info?.title || channel, avatarUser: channel, avatar: '' }
  }
  const peer = peerOf(conv, me) ?? conv
  return {
    conv, isChannel: false, peer, channel: null, title: profiles.nameOf(peer), avatarUser: peer,
    avatar: profiles.profiles.get(peer)?.avatar ?? '',
  }
}

export function useConversationInfo(conv: () => Conv | null): ComputedRef<ConvInfo | null> {
  return computed(() => {
    const c = conv()
    return c ? conversationInfo(c) : null
  })
}
