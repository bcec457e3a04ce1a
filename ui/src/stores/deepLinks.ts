// Deep links (`courier://chat/<user>`, `…/channel/<name>`, `…/call/<iid>`):
// opens the DM, shows a channel and asks before joining it (a link is
// anyone's to send), or shows the call invitation. A conversation a link
// opened is marked read only once the user interacts with it.
// Links that arrive before sign-in wait until the app has started.
import { defineStore } from 'pinia'
import { nextTick, ref } from 'vue'
import type { DeepLink } from '../services/transport'
import { toTransportError, useTransport } from '../services/transport'
import { channelConv, dmConv } from '../types/ids'
import { useSessionStore } from './session'
import { useConversationsStore } from './conversations'
import { useChannelsStore } from './channels'
import { useInvitationsStore } from './invitations'
import { useProfilesStore } from './profiles'
import { useToastsStore } from './toasts'
import { useUiStore } from './ui'

export const useDeepLinksStore = defineStore('deepLinks', () => {
  /** A link received before the app was ready. */
  const pending = ref<DeepLink | null>(null)
  /** Whether `last_deep_link` was asked already (once per run). */
  const coldChecked = ref(false)
  /** Whether startApp() has finished (links are handled at once from then on). */
  const started = ref(false)

  /** A `courier://deep-link` event. */
  async function receive(link: DeepLink): Promise<void> {
    if (!started.value || !useSessionStore().me) {
      pending.value = link
      return
    }
    await handle(link)
  }

  /** Called at the end of startApp(): the cold-start link (once), then a link that waited. */
  async function onStarted(): Promise<void> {
    started.value = true
    if (!coldChecked.value) {
      coldChecked.value = true
      try {
        const cold = await useTransport().lastDeepLink()
        if (cold) await handle(cold)
      } catch {
        // No link to go to: start normally.
      }
    }
    const waiting = pending.value
    pending.value = null
    if (waiting) await handle(waiting)
  }

  async function handle(link: DeepLink): Promise<void> {
    const ui = useUiStore()
    const conversations = useConversationsStore()
    switch (link.kind) {
      case 'chat': {
        const me = useSessionStore().me
        if (!link.user) return
        ui.dialog = null
        // A web page can send this link: the DM opens, but no read receipt
        // goes to the user it names before this user does something there.
        conversations.holdRead(dmConv(me, link.user))
        conversations.openDm(me, link.user)
        ui.narrowView = 'chat'
        const profiles = useProfilesStore()
        void Promise.all([profiles.ensure([link.user]), profiles.watch([link.user])])
        break
      }
      case 'channel': {
        if (!link.channel) return
        const conv = channelConv(link.channel)
        if (!conversations.byConv.has(conv)) {
          if (!(await askToJoin(link.channel))) return
          try {
            await useChannelsStore().join(link.channel)
          } catch (e) {
            useToastsStore().push({ level: 'error', key: 'toast.joinFailed', params: { channel: link.channel, reason: toTransportError(e).message } })
            return
          }
          if (!conversations.byConv.has(conv)) {
            // The core's conversation_updated event may come later: show the channel meanwhile.
            conversations.upsert({
              conv, kind: 'channel', channel: link.channel, last_seq: 0, last_ts: Date.now(), synced_seq: 0, read_seq: 0,
              unread: 0, peer_read_seq: 0, peer_recv_seq: 0, mentions_unread: 0, pins: [],
            })
          }
        }
        ui.dialog = null
        conversations.holdRead(conv)
        conversations.open(conv)
        ui.narrowView = 'chat'
        break
      }
      case 'call': {
        const invitations = useInvitationsStore()
        if (!invitations.byIid.has(link.iid)) {
          try {
            await invitations.load()
          } catch {
            // Shown as not found below.
          }
        }
        const v = invitations.byIid.get(link.iid)
        if (!v) {
          useToastsStore().push({ level: 'error', key: 'toast.callNotFound' })
          return
        }
        ui.dialog = null
        if (invitations.callIid === v.iid) break
        if (v.incoming) invitations.incomingIid = v.iid
        else invitations.outgoingIid = v.iid
        await nextTick()
        focusCallDialog()
        break
      }
    }
  }

  return { pending, coldChecked, started, receive, onStarted, handle }
})

/**
 * Shows what a channel link leads to (title, topic, members, when the
 * channel is public and listed) and asks before joining it.
 */
async function askToJoin(channel: string): Promise<boolean> {
  const channels = useChannelsStore()
  if (!channels.publicChannels.some((c) => c.channel === channel)) await channels.loadPublic()
  const info = channels.publicChannels.find((c) => c.channel === channel)
  return useUiStore().confirm({
    title: 'deepLink.joinTitle',
    message: info ? 'deepLink.joinBody' : 'deepLink.joinUnlisted',
    confirm: 'deepLink.join',
    params: {
      channel,
      title: info?.title || channel,
      topic: info?.topic || '',
      members: String(info?.members ?? 0),
    },
    channel: {
      channel,
      title: info?.title || channel,
      topic: info?.topic || '',
      members: info ? info.members : null,
    },
  })
}

/** Moves keyboard focus into the shown call card. */
function focusCallDialog(): void {
  if (typeof document === 'undefined') return
  const el = document.querySelector<HTMLElement>('[data-testid="incoming-call"] button, [data-testid="outgoing-call"] button')
  el?.focus()
}
