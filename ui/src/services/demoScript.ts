// The browser demo's script: what the client core would report after each
// of the user's actions, played on the scriptable MockTransport with
// timers. A send is acknowledged, then delivered, read and answered by an
// online peer (one with "fail" in its text is refused, to show the failed
// state); an invitation is seen, then accepted; an edit, reaction, pin or
// recall is echoed back as accepted.
//
// This is a replay, not a server: it checks nothing. Who may edit, recall
// or pin is the server's rule; what the UI offers comes from
// utils/permissions.ts; the real effects come from the client core.
import type { MessageView } from '../types/model'
import type { Conv } from '../types/protocol'
import type { MockTransport } from './mockTransport'

function later(ms: number, fn: () => void): void {
  setTimeout(fn, ms)
}

const textOf = (m: MessageView): string => (typeof m.body.text === 'string' ? m.body.text : '')

export function scriptDemo(t: MockTransport): void {
  const deliver = (m: MessageView, refuse = /\bfail\b/i.test(textOf(m))) =>
    later(250 + Math.random() * 300, () => {
      if (refuse) t.update(m, { status: 'failed', error: 'too_large' })
      else afterAck(t, t.ack(m.cid))
    })
  t.when('sendText').after((m) => deliver(m))
  t.when('sendImage').after((m) => deliver(m))
  t.when('sendFile').after((m) => deliver(m))
  t.when('retry').after((m) => deliver(m, false))
  t.when('forwardMessage')
    .answer((conv, mid, to) => {
      const m = t.message(conv, mid)
      if (!m) throw { code: 'not_found', message: 'no such message' }
      return t.enqueue(to, m.kind, { ...m.body, forwarded_from: m.body.forwarded_from ?? { conv, mid, from: m.from } })
    })
    .after((m) => deliver(m, false))

  const echo = (conv: Conv, mid: string, patch: (m: MessageView) => Partial<MessageView>) => {
    const m = t.message(conv, mid)
    return m ? t.update(m, patch(m)) : null
  }
  t.when('editMessage').answer((conv, mid, text) => echo(conv, mid, (m) => ({ body: { ...m.body, text }, edited: Date.now() }))!)
  t.when('react').answer((conv, mid, key, on) => void echo(conv, mid, (m) => ({ reactions: withReaction(m.reactions, t.me, key, on) })))
  t.when('pinMessage').answer((conv, mid, on) => {
    echo(conv, mid, () => ({ pinned: on ? Date.now() : undefined }))
    const pins = (t.convs.get(conv)?.pins ?? []).filter((p) => p !== mid)
    t.changeConversation(conv, { pins: on ? [...pins, mid] : pins })
  })
  t.when('recallMessage').answer((conv, mid) => {
    echo(conv, mid, () => ({ recalled: true, body: {}, edited: undefined, reactions: undefined, pinned: undefined }))
    const pins = t.convs.get(conv)?.pins ?? []
    if (pins.includes(mid)) t.changeConversation(conv, { pins: pins.filter((p) => p !== mid) })
  })

  t.when('addMember').answer((channel, user) => {
    const list = t.memberLists.get(channel) ?? []
    if (!list.some((m) => m.user === user)) t.memberLists.set(channel, [...list, { user, online: t.presence.get(user)?.online ?? false, role: 'member' }])
    t.emit({ type: 'member', channel, user, joined: true, removed: false })
  })
  t.when('invite').after((v) => {
    later(900, () => t.putInvite({ ...t.inviteMap.get(v.iid)!, received: true }))
    later(4500, () => {
      const cur = t.inviteMap.get(v.iid)!
      if (cur.state === 'pending') t.putInvite({ ...cur, state: 'accepted', response: {} })
    })
  })
  t.when('openMedia').after((_, media) => open(t.mediaUrls.get(media)))
  t.when('openExternal').after((_, url) => open(url))
}

function open(url: string | undefined): void {
  if (url && typeof window !== 'undefined') window.open(url, '_blank', 'noopener')
}

/** A DM peer receives and reads an acknowledged message, and may answer it. */
function afterAck(t: MockTransport, m: MessageView): void {
  const conv = t.convs.get(m.conv)
  const peer = conv?.kind === 'dm' ? conv.peer : undefined
  if (!conv || !peer || m.seq === null) return
  const seq = m.seq
  const receipt = (status: 'delivered' | 'read') => {
    if (status === 'delivered') conv.peer_recv_seq = Math.max(conv.peer_recv_seq, seq)
    else conv.peer_read_seq = Math.max(conv.peer_read_seq, seq)
    t.update(m, { status })
    t.emit({ type: 'receipt', conv: m.conv, user: peer, recv_seq: conv.peer_recv_seq, read_seq: conv.peer_read_seq })
  }
  later(700, () => receipt('delivered'))
  later(1600, () => {
    receipt('read')
    t.emit({ type: 'typing', conv: m.conv, user: peer })
  })
  const text = textOf(m)
  if (/\bthanks?\b|thank you|谢谢/i.test(text)) later(2200, () => t.update(m, { reactions: withReaction(m.reactions, peer, '❤️', true) }))
  if (text && t.presence.get(peer)?.online) later(3800, () => t.receive({ conv: m.conv, from: peer, body: { text: replyFor(text) } }))
}

/** `reactions` with `user`'s reaction `key` on or off (undefined when none are left). */
function withReaction(reactions: Record<string, string[]> | undefined, user: string, key: string, on: boolean) {
  const out = { ...(reactions ?? {}) }
  const users = (out[key] ?? []).filter((u) => u !== user)
  if (on) users.push(user)
  if (users.length) out[key] = users
  else delete out[key]
  return Object.keys(out).length ? out : undefined
}

function replyFor(text: string): string {
  if (/[\u4e00-\u9fff]/.test(text)) return '收到 👍'
  if (/\?\s*$/.test(text)) return 'Good question — let me check and get back to you.'
  return 'Got it 👍'
}
