// Call records (protocol §14) in a DM bubble: words per outcome and
// direction in both languages, red for the bad outcomes, the direction
// arrow, and "Call back" inviting the other party.
import { beforeEach, describe, expect, it } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import { msg, mountWith, setup } from '../../testing'
import type { MockTransport } from '../../services/mockTransport'
import MessageBubble from './MessageBubble.vue'
import { formatCallDuration } from '../../utils/callRecord'

const flags = { daySeparator: false, newDivider: false, runStart: true }
const NOW = 1_700_000_100_000

function record(outcome: string, mine: boolean, video = false, duration_s = 0, locale: 'en' | 'zh-CN' = 'en') {
  const message = msg({
    seq: 7,
    from: mine ? 'me' : 'alice',
    to: { user: mine ? 'alice' : 'me' },
    cid: 'call-i1',
    kind: 'call',
    body: { iid: 'i1', video, outcome, duration_s },
    status: mine ? 'read' : 'received',
  })
  return mountWith(MessageBubble, { props: { message, mine, flags, now: NOW }, locale })
}

describe('CallRecord', () => {
  let t: MockTransport
  beforeEach(() => {
    t = setup()
    document.body.innerHTML = ''
  })

  it.each([
    ['completed', true, false, 192, 'Outgoing call · 3:12', false],
    ['completed', false, false, 192, 'Incoming call · 3:12', false],
    ['completed', true, true, 3725, 'Outgoing video call · 1:02:05', false],
    ['missed', false, false, 0, 'Missed call', true],
    ['missed', false, true, 0, 'Missed video call', true],
    ['missed', true, false, 0, 'Call · No answer', true],
    ['declined', true, false, 0, 'Declined', true],
    ['declined', false, false, 0, 'Declined by you', true],
    ['canceled', true, false, 0, 'Call canceled', false],
    ['canceled', false, true, 0, 'Video call canceled', false],
    ['failed', true, false, 0, 'Call failed', true],
  ] as const)('%s (mine: %s, video: %s, %i s) reads "%s"', (outcome, mine, video, d, text, bad) => {
    const w = record(outcome, mine, video, d)
    const r = w.find('[data-testid="call-record"]')
    expect(r.exists()).toBe(true)
    expect(r.find('[data-testid="call-text"]').text()).toBe(text)
    expect(r.attributes('data-direction')).toBe(mine ? 'outgoing' : 'incoming')
    expect(r.attributes('data-video')).toBe(video ? 'true' : undefined)
    const icon = r.find('[data-testid="call-icon"]')
    expect(icon.classes().includes('text-danger')).toBe(bad)
    expect(r.find('[data-testid="call-text"]').classes().includes('text-danger')).toBe(bad)
    // Camera body (two paths) or handset (one), plus the two-stroke arrow.
    expect(icon.findAll('path')).toHaveLength(video ? 4 : 3)
  })

  it('draws the arrow the other way round for an incoming call', () => {
    const out = record('completed', true).find('[data-testid="call-icon"]').findAll('path').map((p) => p.attributes('d'))
    const inc = record('completed', false).find('[data-testid="call-icon"]').findAll('path').map((p) => p.attributes('d'))
    expect(out[0]).toBe(inc[0])
    expect(out.slice(1)).not.toEqual(inc.slice(1))
  })

  it('speaks Chinese', () => {
    const w = record('missed', false, false, 0, 'zh-CN')
    expect(w.find('[data-testid="call-text"]').text()).toBe('未接来电')
    expect(w.find('[data-testid="call-back"]').text()).toBe('回拨')
    expect(record('completed', true, false, 65, 'zh-CN').find('[data-testid="call-text"]').text()).toBe('呼出通话 · 1:05')
  })

  it.each([
    [false, 'alice'],
    [true, 'alice'],
  ])('Call back invites the other party (mine: %s)', async (mine, peer) => {
    const w = record('missed', mine)
    await w.find('[data-testid="call-back"]').trigger('click')
    await flushPromises()
    expect(t.callsOf('invite')).toHaveLength(1)
    expect(t.callsOf('invite')[0][0]).toBe(peer)
  })

  it.each([
    [true, true],
    [false, false],
  ])('Call back on a video record (%s) calls back with video (%s)', async (video, asked) => {
    const w = record('completed', true, video, 42)
    await w.find('[data-testid="call-back"]').trigger('click')
    await flushPromises()
    expect(t.callsOf('invite')[0][1]).toMatchObject({ kind: 'call', video: asked })
  })

  it('a malformed body falls back to the placeholder', () => {
    const message = msg({ seq: 8, kind: 'call', body: { iid: 'i1', outcome: 'exploded' } })
    const w = mountWith(MessageBubble, { props: { message, mine: false, flags, now: NOW } })
    expect(w.find('[data-testid="call-record"]').exists()).toBe(false)
    expect(w.text()).toContain('call')
  })

  it('formats durations', () => {
    expect(formatCallDuration(0)).toBe('0:00')
    expect(formatCallDuration(59)).toBe('0:59')
    expect(formatCallDuration(192)).toBe('3:12')
    expect(formatCallDuration(3600)).toBe('1:00:00')
  })
})
