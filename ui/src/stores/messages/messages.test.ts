// The messages store's windows: paging through history, rendering what the
// core reports about sends (pending → sent → delivered → read, failed,
// retried), and uploads.
import { beforeEach, describe, expect, it } from 'vitest'
import { msg, setup } from '../../testing'
import type { MockTransport } from '../../services/mockTransport'
import type { DeliveryStatus } from '../../types/model'
import { routeEvent } from '../events'
import { PAGE, canTransition, insertSorted, useMessagesStore } from './index'
import { useConversationsStore } from '../conversations'

const DM = 'dm:alice:me'
let t: MockTransport

function fill(conv: string, n: number) {
  for (let i = 1; i <= n; i++) t.addMessage({ conv, from: i % 2 ? 'alice' : 'me', ts: i * 1000, body: { text: `m${i}` } })
}

describe('delivery status transitions', () => {
  const all: DeliveryStatus[] = ['pending', 'sent', 'delivered', 'read', 'failed']
  it('only move forward, except failing and retrying', () => {
    const allowed = all.flatMap((from) => all.filter((to) => from !== to && canTransition(from, to)).map((to) => `${from}>${to}`))
    expect(allowed.sort()).toEqual(
      [
        'pending>sent', 'pending>delivered', 'pending>read', 'pending>failed',
        'sent>delivered', 'sent>read', 'delivered>read',
        'failed>pending', 'failed>sent', 'failed>delivered', 'failed>read',
      ].sort(),
    )
  })
})

describe('insertSorted', () => {
  it('keeps seq order with unsent messages last', () => {
    let items = [msg({ seq: 1 }), msg({ seq: 3 }), msg({ seq: null, cid: 'p1' })]
    items = insertSorted(items, msg({ seq: 2 }))
    items = insertSorted(items, msg({ seq: 4 }))
    items = insertSorted(items, msg({ seq: null, cid: 'p2' }))
    expect(items.map((m) => m.seq ?? m.cid)).toEqual([1, 2, 3, 4, 'p1', 'p2'])
  })
})

describe('messages store', () => {
  beforeEach(async () => {
    t = setup()
    t.addConversation({ conv: DM })
    await useConversationsStore().load()
  })

  it('opens with the latest page and knows whether older pages exist', async () => {
    fill(DM, PAGE + 30)
    const s = useMessagesStore()
    await s.openLatest(DM)
    const st = s.byConv.get(DM)!
    expect(st.items).toHaveLength(PAGE)
    expect(st.items[0].seq).toBe(31)
    expect(st.items[PAGE - 1].seq).toBe(PAGE + 30)
    expect(st.hasOlder).toBe(true)
  })

  it('re-opening keeps the loaded objects of unchanged messages (their rows do not re-render)', async () => {
    fill(DM, 5)
    const s = useMessagesStore()
    await s.openLatest(DM)
    const st = s.byConv.get(DM)!
    const first = st.items
    await s.openLatest(DM)
    expect(st.items).toBe(first)
    // One message changed and one arrived: only those are new objects.
    t.messages.get(DM)![1].body = { text: 'edited' }
    fill(DM, 1)
    await s.openLatest(DM)
    expect(st.items).not.toBe(first)
    expect(st.items.map((m) => m.body.text)).toEqual(['m1', 'edited', 'm3', 'm4', 'm5', 'm1'])
    expect(st.items.map((m, i) => m === first[i])).toEqual([true, false, true, true, true, false])
  })

  it('loads older pages in front, without duplicates, until the beginning', async () => {
    fill(DM, PAGE + 30)
    const s = useMessagesStore()
    await s.openLatest(DM)
    expect(await s.loadOlder(DM)).toBe(30)
    const st = s.byConv.get(DM)!
    expect(st.items.map((m) => m.seq)).toEqual(Array.from({ length: PAGE + 30 }, (_, i) => i + 1))
    expect(st.hasOlder).toBe(false)
    expect(await s.loadOlder(DM)).toBe(0)
  })

  it('remembers where the unread messages start (for the divider)', async () => {
    fill(DM, 10)
    await useConversationsStore().load()
    const c = useConversationsStore().byConv.get(DM)!
    expect(c.unread).toBeGreaterThan(0)
    const s = useMessagesStore()
    await s.openLatest(DM)
    expect(s.byConv.get(DM)!.firstUnreadSeq).toBe(c.read_seq + 1)
  })

  it('shows an error when history cannot be loaded', async () => {
    t.failNext('history', 'internal', 'disk on fire')
    const s = useMessagesStore()
    await s.openLatest(DM)
    expect(s.byConv.get(DM)!.error).toBe('disk on fire')
    expect(s.byConv.get(DM)!.loading).toBe(false)
  })

  it('takes an own message through pending → sent → delivered → read', async () => {
    const s = useMessagesStore()
    await s.openLatest(DM)
    const sent = await s.sendText(DM, 'hello')
    const status = () => s.byConv.get(DM)!.items.find((m) => m.cid === sent!.cid)!.status
    expect(status()).toBe('pending')
    expect(s.byConv.get(DM)!.items.filter((m) => m.cid === sent!.cid)).toHaveLength(1) // event + return value: one row

    t.ack(sent!.cid) // the core reports the server's ack
    expect(status()).toBe('sent')
    const seq = s.byConv.get(DM)!.items.find((m) => m.cid === sent!.cid)!.seq!
    routeEvent({ type: 'receipt', conv: DM, user: 'alice', recv_seq: seq, read_seq: 0 })
    expect(status()).toBe('delivered')
    routeEvent({ type: 'receipt', conv: DM, user: 'alice', recv_seq: seq, read_seq: seq })
    expect(status()).toBe('read')
  })

  it('never downgrades a tick when events arrive out of order', async () => {
    const s = useMessagesStore()
    await s.openLatest(DM)
    const m = msg({ seq: 1, from: 'me', status: 'read', cid: 'x' })
    s.upsert(m)
    s.upsert({ ...m, status: 'sent' })
    expect(s.byConv.get(DM)!.items[0].status).toBe('read')
  })

  it('marks a refused message failed, then retries it with the same cid', async () => {
    const s = useMessagesStore()
    await s.openLatest(DM)
    const sent = (await s.sendText(DM, 'this will fail please'))!
    const stored = t.messages.get(DM)!.find((m) => m.cid === sent.cid)!
    t.emit({ type: 'message_updated', message: { ...stored, status: 'failed', error: 'too_large' } })
    stored.status = 'failed'
    const row = () => s.byConv.get(DM)!.items.find((m) => m.cid === sent.cid)!
    expect(row().status).toBe('failed')
    expect(row().error).toBe('too_large')

    await s.retry(sent.cid)
    expect(t.callsOf('retry')).toEqual([[sent.cid]])
    expect(row().status).toBe('pending')
    expect(row().error).toBeUndefined()
  })

  it('deletes a failed message from the list and the store', async () => {
    const s = useMessagesStore()
    await s.openLatest(DM)
    const sent = (await s.sendText(DM, 'nope'))!
    await s.discard(sent)
    expect(t.callsOf('deleteUnsent')).toEqual([[sent.cid]])
    expect(s.byConv.get(DM)!.items.some((m) => m.cid === sent.cid)).toBe(false)
  })

  it('places an acknowledged message among messages that arrived meanwhile', async () => {
    fill(DM, 3)
    const s = useMessagesStore()
    await s.openLatest(DM)
    const mine = (await s.sendText(DM, 'mine'))!
    const incoming = t.addMessage({ conv: DM, from: 'alice', body: { text: 'theirs' } }) // seq 4
    routeEvent({ type: 'message_added', message: incoming })
    expect(s.byConv.get(DM)!.items.map((m) => m.body.text)).toEqual(['m1', 'm2', 'm3', 'theirs', 'mine'])
    routeEvent({ type: 'message_updated', message: { ...mine, seq: 5, mid: 'm5', ts: 9, status: 'sent' } })
    expect(s.byConv.get(DM)!.items.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5])
  })

  it('keeps an acknowledged message in its place when the send result arrives after the ack', async () => {
    fill(DM, 1)
    const s = useMessagesStore()
    await s.openLatest(DM)
    const pendingView = msg({ seq: null, mid: null, ts: null, from: 'me', status: 'pending', cid: 'late', body: { text: 'mine' } })
    // The core's event with the seq comes first, then a peer's newer message...
    routeEvent({ type: 'message_added', message: { ...pendingView, seq: 2, mid: 'm2', ts: 5, status: 'sent' } })
    routeEvent({ type: 'message_added', message: msg({ seq: 3, from: 'alice', cid: 'theirs', body: { text: 'theirs' } }) })
    // ...and only then the send command's (pending) result.
    s.upsert(pendingView)
    const items = s.byConv.get(DM)!.items
    expect(items.map((m) => m.body.text)).toEqual(['m1', 'mine', 'theirs'])
    expect(items[1]).toMatchObject({ seq: 2, mid: 'm2', status: 'sent' })
  })

  it('does not add the same message twice', async () => {
    fill(DM, 2)
    const s = useMessagesStore()
    await s.openLatest(DM)
    const again = t.messages.get(DM)![1]
    routeEvent({ type: 'message_added', message: { ...again } })
    expect(s.byConv.get(DM)!.items).toHaveLength(2)
  })

  it('refuses to send blank text', async () => {
    const s = useMessagesStore()
    await s.openLatest(DM)
    expect(await s.sendText(DM, '  \n ')).toBeNull()
    expect(t.callsOf('sendText')).toEqual([])
  })

  it('opens at a search hit, then pages newer messages up to the latest', async () => {
    fill(DM, 1000)
    const s = useMessagesStore()
    await s.openAt(DM, 200)
    const st = s.byConv.get(DM)!
    expect(st.items.some((m) => m.seq === 200)).toBe(true)
    expect(st.focusSeq).toBe(200)
    expect(st.hasNewer).toBe(true)
    // Live messages do not land in a window that does not reach the latest.
    routeEvent({ type: 'message_added', message: t.addMessage({ conv: DM, from: 'alice', body: { text: 'live' } }) })
    expect(st.items.some((m) => m.body.text === 'live')).toBe(false)
    let guard = 0
    while (s.byConv.get(DM)!.hasNewer && guard++ < 20) await s.loadNewer(DM)
    const seqs = s.byConv.get(DM)!.items.map((m) => m.seq)
    expect(seqs[seqs.length - 1]).toBe(1001)
    expect(new Set(seqs).size).toBe(seqs.length)
    expect(seqs).toEqual([...seqs].sort((a, b) => a! - b!))
  })

  it('uploads a file with progress and sends it as a file message', async () => {
    const s = useMessagesStore()
    await s.openLatest(DM)
    const file = new File([new Uint8Array(2048)], 'report.pdf', { type: 'application/pdf' })
    await s.sendFiles(DM, [file])
    expect(t.callsOf('upload')).toEqual([[2048, 'application/pdf']])
    const [to, media, name] = t.callsOf('sendFile')[0] as [unknown, { size: number }, string]
    expect(to).toEqual({ user: 'alice' })
    expect(media.size).toBe(2048)
    expect(name).toBe('report.pdf')
    expect(s.uploads).toHaveLength(0)
    expect(s.byConv.get(DM)!.items.at(-1)?.kind).toBe('file')
  })

  it('keeps a failed upload visible with its error', async () => {
    const s = useMessagesStore()
    await s.openLatest(DM)
    t.failNext('upload', 'too_large', '413 Payload Too Large')
    await s.sendFiles(DM, [new File([new Uint8Array(10)], 'big.bin')])
    expect(s.uploads).toHaveLength(1)
    expect(s.uploads[0].error).toBe('413 Payload Too Large')
    expect(s.uploads[0].errorKey).toBe('limits.too_large')
    expect(t.callsOf('sendFile')).toEqual([])
  })

  it('says in words why the server refused an upload (429: rate_limited, limit_reached upload_bytes_day)', async () => {
    const s = useMessagesStore()
    await s.openLatest(DM)
    t.failNext('upload', 'limit_reached', 'daily upload quota reached', 'upload_bytes_day')
    await s.sendFiles(DM, [new File([new Uint8Array(10)], 'a.bin')])
    t.failNext('upload', 'rate_limited', 'too many requests; slow down')
    await s.sendFiles(DM, [new File([new Uint8Array(10)], 'b.bin')])
    expect(s.uploads.map((u) => u.errorKey)).toEqual(['limits.upload_bytes_day', 'limits.rate'])
    expect(t.callsOf('sendFile')).toEqual([])
  })
})
