// The browser demo's fixtures: a few believable conversations seeded into a
// MockTransport, so the UI can be looked at without Tauri (what follows the
// user's actions is demoScript.ts). Not used by the real app.
// v1.1 on show: reactions, an edited message, recalled ones, pins, a
// mention of the user, a forwarded message, channel roles (the user owns
// #design, is an admin of #tech and #core-team, a plain member of #lobby).
// v1.2 on show: call records in the DM with Bruno.
import { channelConv, dmConv } from '../types/ids'
import type { MessageView } from '../types/model'
import type { Role } from '../types/protocol'
import { MockTransport } from './mockTransport'

const MIN = 60_000
const HOUR = 60 * MIN
const DAY = 24 * HOUR

/** A 4:3 gradient picture drawn as SVG, so the demo needs no network. */
function demoPicture(hueA: number, hueB: number): string {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="640" height="480" viewBox="0 0 640 480">
<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="hsl(${hueA},70%,62%)"/><stop offset="1" stop-color="hsl(${hueB},65%,38%)"/></linearGradient></defs>
<rect width="640" height="480" fill="url(#g)"/><circle cx="470" cy="140" r="60" fill="hsl(45,95%,75%)"/>
<path d="M0 380 L160 240 L300 360 L420 270 L640 420 L640 480 L0 480Z" fill="hsl(${hueB},40%,22%)" opacity=".8"/></svg>`
  return `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`
}

export function seedDemo(t: MockTransport, now = Date.now()): MockTransport {
  const me = t.me
  const people = [
    { user: 'alice', name: 'Alice Martin', avatar: 'avatar:3', status: 'Shipping the 1.0 🚀', online: true },
    { user: 'li.lei', name: '李雷', avatar: 'avatar:7', status: '在开会，稍后回复', online: true },
    { user: 'bruno', name: 'Bruno Costa', avatar: 'avatar:1', status: 'On call this week', online: false },
    { user: 'priya', name: 'Priya Nair', avatar: 'avatar:5', status: '', online: false },
    { user: 'sam', name: 'Sam Ortiz', avatar: 'avatar:10', status: 'Design systems', online: true },
  ]
  t.profilesByUser.set(me, { user: me, name: 'You', avatar: 'avatar:0', status: 'Trying out Courier' })
  for (const p of people) {
    t.profilesByUser.set(p.user, { user: p.user, name: p.name, avatar: p.avatar, status: p.status })
    t.presence.set(p.user, { user: p.user, online: p.online, ...(p.online ? {} : { last_seen: now - (p.user === 'bruno' ? 42 * MIN : 3 * DAY) }) })
  }

  t.channelList = [
    { channel: 'lobby', title: 'Lobby', topic: 'Say hi 👋', private: false, members: 12 },
    { channel: 'random', title: 'Random', topic: 'Anything goes', private: false, members: 9 },
    { channel: 'tech', title: 'Tech', topic: 'Rust, Vue and the protocol', private: false, members: 7 },
    { channel: 'design', title: 'Design', topic: 'Pixels and type', private: false, members: 4 },
    { channel: 'history', title: 'History', topic: '100,000 messages — scroll away', private: false, members: 3 },
    { channel: 'core-team', title: 'Core team', topic: '', private: true, members: 4 },
  ]
  const allMembers = [me, ...people.map((p) => p.user)]
  // Roles per channel (everyone else a member). Default channels like #lobby have no owner.
  const roles: Record<string, Record<string, Role>> = {
    tech: { bruno: 'owner', [me]: 'admin' },
    design: { [me]: 'owner', sam: 'admin' },
    'core-team': { alice: 'owner', [me]: 'admin' },
  }
  const design = ['sam', me, 'alice', 'priya']
  for (const c of t.channelList) {
    const n = Math.min(allMembers.length, Math.max(3, c.members))
    const users = c.channel === 'design' ? design : allMembers.slice(0, n)
    t.memberLists.set(c.channel, users.map((u) => ({
      user: u, online: u === me || (t.presence.get(u)?.online ?? false), role: roles[c.channel]?.[u] ?? 'member',
    })))
  }

  t.mediaUrls.set('m_demo_sunset', demoPicture(20, 280))
  t.mediaUrls.set('m_demo_lake', demoPicture(190, 230))

  // DM with Alice: links, code, an image, a reply, receipts, 2 unread.
  const a = dmConv(me, 'alice')
  t.addConversation({ conv: a })
  const aliceLines: Array<[string, string, number, Partial<MessageView>?]> = [
    ['alice', 'Morning! Did you see the new build?', -DAY - 3 * HOUR],
    [me, 'Yes — startup feels much faster.', -DAY - 3 * HOUR + 2 * MIN, { reactions: { '👍': ['alice'] } }],
    [me, 'The cold start is under half a second on my laptop.', -DAY - 3 * HOUR + 3 * MIN, { edited: now - DAY - 3 * HOUR + 9 * MIN }],
    ['alice', 'Nice. Release notes are at https://example.com/courier/releases — have a look.', -DAY - 2 * HOUR],
    [me, 'Run `npm run ui:dev` to try the browser demo.\nIt uses the mock transport.', -3 * HOUR],
    ['alice', '', -2 * HOUR, { kind: 'image', body: { media: 'm_demo_sunset', mime: 'image/svg+xml', size: 48213, name: 'sunset.png', width: 640, height: 480 } }],
    ['alice', 'From the offsite 🌅', -2 * HOUR + 20_000, { reactions: { '😍': [me], '🔥': [me, 'alice'] } }],
    [me, '🎉🎉', -2 * HOUR + 2 * MIN, { reactions: { '🎉': ['alice'] } }],
    [me, 'Can you send me the protocol PDF?', -40 * MIN],
    ['alice', '', -35 * MIN, { kind: 'file', body: { media: 'm_demo_pdf', mime: 'application/pdf', size: 1_482_113, name: 'courier-protocol-v1.pdf' }, pinned: now - 30 * MIN }],
    ['alice', 'Here you go. §7 has the call invitations.', -34 * MIN],
    ['alice', 'Also: <img src=x onerror=alert(1)> renders as text, right?', -6 * MIN],
    ['alice', '', -5 * MIN, { recalled: true, body: {} }],
  ]
  for (const [from, text, dt, extra] of aliceLines) {
    t.addMessage({ conv: a, from, ts: now + dt, body: { text }, ...extra })
  }
  const aConv = t.convs.get(a)!
  aConv.read_seq = 10
  aConv.unread = 2
  aConv.peer_recv_seq = 9
  aConv.peer_read_seq = 8
  for (const m of t.messages.get(a)!) {
    if (m.from === me) m.status = m.seq! <= 8 ? 'read' : 'delivered'
  }
  const reply = t.messages.get(a)!.find((m) => m.body.text === 'Here you go. §7 has the call invitations.')!
  reply.reply_to = t.messages.get(a)!.find((m) => m.body.text === 'Can you send me the protocol PDF?')!.mid!

  // DM with 李雷, in Chinese.
  const l = dmConv(me, 'li.lei')
  t.addConversation({ conv: l })
  t.addMessage({ conv: l, from: 'li.lei', ts: now - 5 * HOUR, body: { text: '你好！周五的发布会准备得怎么样了？' } })
  t.addMessage({ conv: l, from: me, ts: now - 5 * HOUR + 4 * MIN, body: { text: '差不多了，演示文稿还在改。' }, status: 'read' })
  t.addMessage({ conv: l, from: 'li.lei', ts: now - 18 * MIN, body: { text: '好的，有问题随时找我 🙂' } })
  Object.assign(t.convs.get(l)!, { read_seq: 2, unread: 1, peer_read_seq: 2, peer_recv_seq: 2 })

  // DM with Bruno: one failed and one pending message.
  const b = dmConv(me, 'bruno')
  t.addConversation({ conv: b })
  t.addMessage({ conv: b, from: 'bruno', ts: now - 2 * DAY, body: { text: 'Are the staging certs renewed?' } })
  t.addMessage({ conv: b, from: me, ts: now - 2 * DAY + 10 * MIN, body: { text: 'Renewed this morning ✅' }, status: 'read' })
  // v1.2 call records (§14): from the caller, cid `call-<iid>`; the last one missed and unread.
  const calls: Array<[string, number, string, boolean, number]> = [
    [me, -DAY - HOUR, 'completed', false, 192],
    ['bruno', -5 * HOUR, 'completed', true, 767],
    [me, -3 * HOUR, 'declined', false, 0],
    ['bruno', -70 * MIN, 'missed', false, 0],
  ]
  for (const [i, [from, dt, outcome, video, duration_s]] of calls.entries()) {
    const iid = `01JDEMOCALL${i}`
    t.addMessage({ conv: b, from, ts: now + dt, cid: `call-${iid}`, kind: 'call', body: { iid, video, outcome, duration_s }, status: from === me ? 'read' : 'received' })
  }
  Object.assign(t.convs.get(b)!, { read_seq: 5, unread: 1, peer_read_seq: 5, peer_recv_seq: 5 })
  t.addMessage({ conv: b, from: me, seq: null, mid: null, ts: null, status: 'failed', error: 'too_large', body: { text: 'Here is the full log dump (too big to send)' } })

  // DM with Priya: a draft.
  const p = dmConv(me, 'priya')
  t.addConversation({ conv: p, draft: 'Let me know when you are back' })
  t.addMessage({ conv: p, from: 'priya', ts: now - 6 * DAY, body: { text: 'Out until Monday, ping me if urgent.' } })
  Object.assign(t.convs.get(p)!, { read_seq: 1, unread: 0 })

  // Channels.
  const lobby = channelConv('lobby')
  t.addConversation({ conv: lobby })
  const lobbyLines: Array<[string, string, number, Partial<MessageView>?]> = [
    ['sam', 'Welcome to Courier, everyone 👋', -26 * HOUR, { reactions: { '👋': ['alice', 'li.lei', 'bruno', me], '❤️': ['alice'] } }],
    ['alice', 'Hi all!', -26 * HOUR + MIN],
    ['li.lei', '大家好！', -25 * HOUR],
    ['bruno', 'Server maintenance tonight at 22:00 UTC, expect a short reconnect.', -4 * HOUR, { reactions: { '👍': ['sam', 'alice'], '🙏': [me] } }],
    ['sam', 'Thanks for the heads-up.', -4 * HOUR + 2 * MIN],
    ['bruno', '', -3 * HOUR, { recalled: true, body: {} }],
    ['sam', 'Design review moved to Thursday.', -12 * MIN],
    ['sam', `@${me} could you look at the release checklist before then? @alice has the draft.`, -11 * MIN],
  ]
  for (const [from, text, dt, extra] of lobbyLines) {
    const mentions = [...text.matchAll(/@([A-Za-z0-9_-]+)/g)].map((m) => m[1])
    t.addMessage({ conv: lobby, from, ts: now + dt, body: mentions.length ? { text, mentions } : { text }, ...extra })
  }
  Object.assign(t.convs.get(lobby)!, { read_seq: 5, unread: 2, mentions_unread: 1 })

  const tech = channelConv('tech')
  t.addConversation({ conv: tech })
  t.addMessage({ conv: tech, from: 'bruno', ts: now - 3 * DAY, body: { text: 'The FTS5 index makes local search instant.' } })
  t.addMessage({ conv: tech, from: me, ts: now - 3 * DAY + 5 * MIN, body: { text: 'Agreed, and `history before=` pages are cheap.' } })
  const notes = t.messages.get(a)!.find((m) => String(m.body.text).startsWith('Nice. Release notes'))!
  t.addMessage({ conv: tech, from: me, ts: now - 50 * MIN, body: { text: notes.body.text, forwarded_from: { conv: a, mid: notes.mid, from: 'alice' } } })
  t.addMessage({ conv: tech, from: 'bruno', ts: now - 45 * MIN, body: { text: 'Reminder: the v1.1 relation kinds ride on the message stream, so sync carries them for free.' }, pinned: now - 44 * MIN, reactions: { '💡': [me, 'sam'] } })
  // Formatting: emphasis, a list, a highlighted code block, a quote, a spoiler.
  t.addMessage({
    conv: tech,
    from: 'bruno',
    ts: now - 20 * MIN,
    body: {
      text: '**Heads-up:** the reconnect fix is in. To try it:\n1. pull `main`\n2. run the _soak_ test\n3. ~~file a bug~~ enjoy\n\n```rust\nlet backoff = Backoff::new(Duration::from_secs(1));\nclient.connect(&url).await?; // retries with jitter\n```',
    },
  })
  t.addMessage({
    conv: tech,
    from: me,
    ts: now - 15 * MIN,
    body: { text: "> ride on the message stream\n\nNice. Spoiler for Friday's demo: ||it starts in under a second|| 🚀\nNotes: https://example.com/courier/sync" },
  })
  Object.assign(t.convs.get(tech)!, { read_seq: 6, unread: 0 })

  // #design: this user is the owner (members panel shows role management).
  const dsg = channelConv('design')
  t.addConversation({ conv: dsg })
  t.addMessage({ conv: dsg, from: 'sam', ts: now - 2 * DAY, body: { text: 'New icon set is up for review — feedback welcome!' }, pinned: now - 2 * DAY + HOUR })
  t.addMessage({ conv: dsg, from: me, ts: now - 2 * DAY + 30 * MIN, body: { text: `Looks great @sam, pinned it for the team.`, mentions: ['sam'] } })
  t.addMessage({ conv: dsg, from: 'priya', ts: now - DAY, body: { text: 'Spacing scale doc: https://example.com/design/spacing' }, pinned: now - DAY + MIN })
  Object.assign(t.convs.get(dsg)!, { read_seq: 3, unread: 0 })

  // 100,000 generated messages: for the virtualized list.
  const hist = channelConv('history')
  const count = 100_000
  const start = now - 400 * DAY
  const authors = ['alice', 'bruno', 'sam', 'li.lei', me]
  t.generated.set(hist, {
    count,
    make: (seq) => {
      const from = authors[(seq * 7 + Math.floor(seq / 3)) % authors.length]
      return {
        conv: hist, seq, mid: `mhist:${seq}`, cid: `gen${seq}`, from, to: { channel: 'history' }, kind: 'text',
        body: { text: seq % 11 === 0 ? `Message #${seq} — a slightly longer line to vary the row heights a bit, with a link https://example.com/${seq}` : `Message #${seq}` },
        ts: start + Math.floor(((now - HOUR - start) * seq) / count), status: from === me ? 'sent' : 'received',
      }
    },
  })
  t.addConversation({ conv: hist, last_seq: count, synced_seq: count, read_seq: count, last_ts: now - HOUR })

  t.settings.pinned = [lobby]
  t.settings.muted = [channelConv('random'), tech]
  return t
}
