// The channel browser (public channels with member counts) and channel
// membership (member lists with online state for the right panel).
import { defineStore } from 'pinia'
import { reactive, ref } from 'vue'
import type { ChannelInfo, Conv, MemberInfo } from '../types/protocol'
import { toTransportError, useTransport } from '../services/transport'
import { useProfilesStore } from './profiles'
import { useSessionStore } from './session'
import { useConnectionStore } from './connection'

export const useChannelsStore = defineStore('channels', () => {
  const publicChannels = ref<ChannelInfo[]>([])
  const loading = ref(false)
  const error = ref<string | null>(null)
  const members = reactive(new Map<string, MemberInfo[]>())

  async function loadPublic(): Promise<void> {
    loading.value = true
    error.value = null
    try {
      publicChannels.value = await useTransport().channels()
    } catch (e) {
      error.value = toTransportError(e).message
    } finally {
      loading.value = false
    }
  }

  async function join(channel: string): Promise<Conv> {
    const conv = await useTransport().join(channel)
    const info = publicChannels.value.find((c) => c.channel === channel)
    if (info) info.members += 1
    return conv
  }

  async function create(channel: string, title: string, topic: string, isPrivate: boolean): Promise<Conv> {
    return useTransport().createChannel(channel, title, topic, isPrivate)
  }

  async function loadMembers(channel: string): Promise<void> {
    const list = await useTransport().members(channel)
    members.set(channel, list)
    const profiles = useProfilesStore()
    const users = list.map((m) => m.user)
    await Promise.all([profiles.ensure(users), profiles.watch(users)])
  }

  async function addMember(channel: string, user: string): Promise<void> {
    await useTransport().addMember(channel, user)
    await loadMembers(channel)
  }

  async function leaveChannel(channel: string): Promise<void> {
    await useTransport().leave(channel)
    members.delete(channel)
  }

  /** A `member` event. */
  function onMember(channel: string, user: string, joined: boolean): void {
    const list = members.get(channel)
    if (!list) return
    if (joined && !list.some((m) => m.user === user)) members.set(channel, [...list, { user, online: false }])
    if (!joined) members.set(channel, list.filter((m) => m.user !== user))
  }

  /** Online state of a member, preferring live presence over the list snapshot. */
  function isOnline(m: MemberInfo): boolean {
    if (m.user === useSessionStore().me) return useConnectionStore().state === 'connected'
    return useProfilesStore().presence.get(m.user)?.online ?? m.online
  }

  return { publicChannels, loading, error, members, loadPublic, join, create, loadMembers, addMember, leaveChannel, onMember, isOnline }
})
