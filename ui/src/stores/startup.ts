// Start-up: subscribe to events (the running call's too), load settings and the account, then the
// conversation list, profiles, presence and pending invitations.
import { useTransport } from '../services/transport'
import { subscribeEvents } from './events'
import { useSessionStore } from './session'
import { useSettingsStore } from './settings'
import { useConnectionStore } from './connection'
import { useConversationsStore } from './conversations'
import { useProfilesStore } from './profiles'
import { useInvitationsStore } from './invitations'
import { useChannelsStore } from './channels'
import { useDeepLinksStore } from './deepLinks'
import { useToastsStore } from './toasts'
import { useServerStore } from './server'
import { useCallsStore } from './calls'

let unsubscribe: (() => void) | null = null
let unsubscribeShell: (() => void) | null = null

/** Subscribes to the shell's own events: deep links, notices, settings. */
export async function subscribeShell(): Promise<() => void> {
  const t = useTransport()
  const deepLinks = useDeepLinksStore()
  const toasts = useToastsStore()
  const settings = useSettingsStore()
  const offs = await Promise.all([
    t.onDeepLink((link) => void deepLinks.receive(link)),
    t.onNotice((n) => void toasts.push({ level: n.level === 'error' ? 'error' : 'info', message: n.message })),
    t.onSettings((s) => settings.apply(s)),
    t.onCall((u) => useCallsStore().apply(u)),
  ])
  return () => offs.forEach((off) => off())
}

/** Loads what the signed-in app shows. Safe to call again after sign-in. */
export async function startApp(): Promise<void> {
  const session = useSessionStore()
  if (!session.me) return
  const t = useTransport()
  useConnectionStore().apply(await t.connectionState())
  const conversations = useConversationsStore()
  await conversations.load()
  const profiles = useProfilesStore()
  const peers = conversations.sorted.map((c) => c.peer).filter((p): p is string => !!p)
  const senders = [...conversations.previews.values()].map((m) => m.from)
  await Promise.all([
    profiles.ensure([session.me, ...peers, ...senders]),
    profiles.watch(peers),
    useInvitationsStore().load(),
    useChannelsStore().loadPublic(),
    useServerStore().load(),
  ])
  // Signed in and connected: the link the app was started with, then any that waited.
  await useDeepLinksStore().onStarted()
}

/** Boot: events first (so nothing is missed), then settings and the account. */
export async function boot(): Promise<void> {
  unsubscribe ??= await subscribeEvents()
  unsubscribeShell ??= await subscribeShell()
  const connection = useConnectionStore()
  if (typeof window !== 'undefined') {
    connection.setNetworkUp(navigator.onLine)
    window.addEventListener('online', () => connection.setNetworkUp(true))
    window.addEventListener('offline', () => connection.setNetworkUp(false))
  }
  const settings = useSettingsStore()
  if (!settings.loaded) await settings.load()
  const account = await useSessionStore().load()
  if (account) await startApp()
}
