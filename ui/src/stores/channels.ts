// The channel browser (public channels with member counts) and channel
// membership: member lists with online state and roles (v1.1) for the right
// panel and the message actions, role changes and removals.
import { defineStore } from 'pinia'
import { reactive, ref } from 'vue'
import type { ChannelInfo, Conv, MemberInfo, Role } from '../types/protocol'
import { toTransportError, useTransport } from '../services/transport'
import { useProfilesStore } from './profiles'
import { useSessionStore } from './session'
import { useConnectionStore } from './connection'
import { useToastsStore } from './toasts'
import { useConversationsStore } from './conversations'
import { plainName } from '../utils/text'

export const useChannelsStore = defineStore('channels', () => {
  const publicChannels = ref<ChannelInfo[]>([])
  const loading = ref(false)
  const error = ref<string | null>(null)
  const members = reactive(new Map<string, MemberInfo[]>())
  /** Channels an owner/admin removed this user from (the conversation stays readable, marked). */
  const removed = reactive(new Set<string>())

  async function loadPublic(): Promise<void> {
    loading.value = true
    error.value = null
    try {
      // Titles and topics are a peer's words: without control or bidi
      // characters (a "\u202E" would make the browser, the header and the
      // join prompt read backwards), as names are.
      publicChannels.value = (await useTransport().channels()).map((c) => ({
        ...c, title: plainName(c.title), topic: plainName(c.topic),
      }))
    } catch (e) {
      error.value = toTransportError(e).message
    } finally {
      loading.value = false
    }
  }

  async function join(channel: string): Promise<Conv> {
    const conv = await useTransport().join(channel)
    removed.delete(channel)
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

  /** A member's role; null when the list is not loaded or the user is not in it. */
  function roleOf(channel: string, user: string): Role | null {
    return members.get(channel)?.find((m) => m.user === user)?.role ?? null
  }

  function putRole(channel: string, user: string, role: Role): void {
    const list = members.get(channel)
    if (!list) return
    members.set(channel, list.some((m) => m.user === user)
      ? list.map((m) => (m.user === user ? { ...m, role } : m))
      : [...list, { user, online: false, role }])
  }

  /** Owner only. The server announces every role it changed (a transfer
   *  demotes the old owner too) as `member` events, which `onMember` applies. */
  async function setRole(channel: string, user: string, role: Role): Promise<void> {
    await useTransport().setRole(channel, user, role)
  }

  async function removeMember(channel: string, user: string): Promise<void> {
    await useTransport().removeMember(channel, user)
    const list = members.get(channel)
    if (list) members.set(channel, list.filter((m) => m.user !== user))
  }

  /** A `member` event: joins, leaves, removals and role changes. */
  function onMember(channel: string, user: string, joined: boolean, wasRemoved = false, role?: Role): void {
    const me = useSessionStore().me
    if (user === me) {
      if (!joined && wasRemoved && !removed.has(channel)) {
        removed.add(channel)
        members.delete(channel)
        useToastsStore().push({ level: 'error', key: 'channels.removedToast', params: { channel } }, 8000)
        return
      }
      if (joined) removed.delete(channel)
      if (!joined && !wasRemoved) {
        // Left, here or on another device: the channel goes from the list.
        members.delete(channel)
        useConversationsStore().remove(`ch:${channel}`)
        return
      }
    }
    const list = members.get(channel)
    if (!list) return
    if (joined) {
      const cur = list.find((m) => m.user === user)
      if (!cur) members.set(channel, [...list, { user, online: false, role: role ?? 'member' }])
      else if (role && cur.role !== role) putRole(channel, user, role)
    } else {
      members.set(channel, list.filter((m) => m.user !== user))
    }
  }

  /** Online state of a member, preferring live presence over the list snapshot. */
  function isOnline(m: MemberInfo): boolean {
    if (m.user === useSessionStore().me) return useConnectionStore().state === 'connected'
    return useProfilesStore().presence.get(m.user)?.online ?? m.online
  }

  return {
    publicChannels, loading, error, members, removed, loadPublic, join, create, loadMembers, addMember, leaveChannel,
    roleOf, setRole, removeMember, onMember, isOnline,
  }
})
