// The browser demo (`npm run ui:dev`, or the built ui/dist opened without
// Tauri): the scriptable MockTransport with the fixtures of demoData.ts,
// replaying demoScript.ts after the user's actions. It is not a server: it
// checks and decides nothing (the real app talks to the client core). URL
// parameters set up scenes for screenshots:
//   ?signin          first-run screen
//   ?theme=dark|light  ?lang=en|zh-CN
//   ?open=<conv>     open a conversation (e.g. dm:alice:me, ch:lobby)
//   ?panel=members|search|info|pins  ?q=<search>
//   ?removed=<channel>  the user was removed from that channel (v1.1)
//   ?call=incoming|outgoing|elsewhere   ?conn=reconnecting|offline|connecting
//   ?dialog=settings|channels|switcher
//   ?link=channel:<name>  a channel deep link (a channel this user is not in)
//   ?risky=<file name>    opening a file a peer sent that is a program
//   ?still           no transitions (exact screenshots)
import { MockTransport } from './mockTransport'
import { seedDemo } from './demoData'
import { scriptDemo } from './demoScript'
import type { ThemeChoice, Language } from '../types/app'
import type { InviteView } from '../types/model'

let demo: MockTransport | null = null

export function startDemo(params: URLSearchParams): MockTransport {
  demo = seedDemo(new MockTransport({ me: 'me', account: params.has('signin') ? null : undefined }))
  scriptDemo(demo)
  if (params.has('still')) document.documentElement.classList.add('still')
  const theme = params.get('theme')
  if (theme === 'dark' || theme === 'light') demo.settings.theme = theme as ThemeChoice
  const lang = params.get('lang')
  if (lang === 'en' || lang === 'zh-CN') demo.settings.language = lang as Language
  return demo
}

/** Applies the scene parameters once the app has booted. */
export async function applyScene(params: URLSearchParams): Promise<void> {
  const t = demo
  if (!t) return
  const { useConversationsStore } = await import('../stores/conversations')
  const { useUiStore } = await import('../stores/ui')
  const { useSearchStore } = await import('../stores/search')
  const ui = useUiStore()
  const open = params.get('open')
  if (open) {
    useConversationsStore().open(open)
    ui.narrowView = 'chat'
  }
  const panel = params.get('panel')
  if (panel === 'members' || panel === 'search' || panel === 'info' || panel === 'pins') ui.rightPanel = panel
  const removed = params.get('removed')
  if (removed) {
    t.memberLists.set(removed, (t.memberLists.get(removed) ?? []).filter((m) => m.user !== t.me))
    t.emit({ type: 'member', channel: removed, user: t.me, joined: false, removed: true })
  }
  const q = params.get('q')
  if (q) await useSearchStore().run(q)
  const dialog = params.get('dialog')
  if (dialog === 'settings' || dialog === 'channels' || dialog === 'switcher' || dialog === 'new-chat') ui.dialog = dialog
  const conn = params.get('conn')
  if (conn === 'reconnecting') t.emit({ type: 'connection', state: 'reconnecting', url: 'wss://chat.example.com/v1', retry_in_ms: 4200, reason: 'connection refused' })
  if (conn === 'connecting') t.emit({ type: 'connection', state: 'connecting', url: 'wss://chat.example.com/v1' })
  if (conn === 'offline') t.emit({ type: 'connection', state: 'disconnected' })
  const link = params.get('link')
  if (link?.startsWith('channel:')) {
    const channel = link.slice('channel:'.length)
    if (!t.channelList.some((c) => c.channel === channel)) {
      t.channelList.push({
        channel, title: 'Gardening club', topic: 'Seeds, soil and the odd tomato — swap tips and photos of what grows.',
        private: false, members: 23,
      })
    }
    t.emitDeepLink({ kind: 'channel', channel })
  }
  const risky = params.get('risky')
  if (risky) {
    const { useMediaStore } = await import('../stores/media')
    // The shell asks before opening a program; the scene shows that question.
    t.when('openMedia').once().fail('confirm_required', 'this file can run programs')
    void useMediaStore().open('m_01J9ZS1A7PQ8R2XKJT3V4W5Y6H', risky)
  }
  const call = params.get('call')
  const now = Date.now()
  if (call === 'incoming' || call === 'elsewhere') {
    const v: InviteView = {
      iid: 'idemo1', from: 'alice', to: t.me, room: 'call-idemo1', content: { kind: 'call' }, state: 'pending',
      created: now - 9000, expires: now + 36000, received: true, incoming: true, ringing: true,
    }
    t.inviteMap.set(v.iid, v)
    t.emit({ type: 'invite', invite: v })
    if (call === 'elsewhere') t.emit({ type: 'invite', invite: { ...v, state: 'accepted', ringing: false } })
  }
  if (call === 'outgoing') {
    const { useInvitationsStore } = await import('../stores/invitations')
    await useInvitationsStore().callUser('li.lei')
  }
}
