import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import { mountWith, setup } from '../../testing'
import type { MockTransport } from '../../services/mockTransport'
import type { CallUpdate } from '../../services/transport'
import { useInvitationsStore } from '../../stores/invitations'
import { useProfilesStore } from '../../stores/profiles'
import { handleShortcut } from '../../composables/useShortcuts'
import { frameBytes } from '../../utils/callFrames'
import InCallView from './InCallView.vue'

let t: MockTransport
const mounted: Array<{ unmount(): void }> = []
/** Mounts the view; afterEach unmounts it (its picture loops stop). */
function mountView(locale?: 'en' | 'zh-CN') {
  const w = mountWith(InCallView, { locale })
  mounted.push(w)
  return w
}

function openCall(video: boolean): void {
  const inv = useInvitationsStore()
  inv.apply({ iid: 'i1', from: 'me', to: 'bob', room: 'r', content: { kind: 'call', video }, state: 'accepted', created: 1, expires: 2, received: true, incoming: false, ringing: false })
  inv.callIid = 'i1'
  t.emitCall({ iid: 'i1', event: { type: 'started', peer: 'bob', video, caller: true } })
}
const ev = (event: CallUpdate['event']) => t.emitCall({ iid: 'i1', event })
const key = (k: string) => new KeyboardEvent('keydown', { key: k, ctrlKey: true, shiftKey: true })

describe('in-call view', () => {
  beforeEach(() => {
    t = setup()
    document.body.innerHTML = ''
    useProfilesStore().setProfile({ user: 'bob', name: 'Bob Stone', avatar: '', status: '' })
  })
  afterEach(() => {
    for (const w of mounted.splice(0)) w.unmount()
  })

  it('audio only: both avatars with level meters that follow the levels', async () => {
    openCall(false)
    const w = mountView()
    ev({ type: 'state', phase: 'connected', reason: null, by_peer: false })
    ev({ type: 'levels', local: -30, remote: -6 })
    await flushPromises()
    expect(w.find('[data-testid="in-call"]').attributes('data-video')).toBeUndefined()
    expect(w.find('[data-testid="remote-video"]').exists()).toBe(false)
    expect(w.find('[data-testid="remote-level"]').attributes('data-level')).toBe('0.90')
    expect(w.find('[data-testid="local-level"]').attributes('data-level')).toBe('0.50')
    expect(w.find('[data-testid="remote-level"]').attributes('aria-label')).toBe('Level of Bob Stone')
  })

  it('video: the peer large and the self-view small; pictures are pulled one after another', async () => {
    openCall(true)
    t.when('callFrame').once().answer(frameBytes(7, 2, 1, [235, 16, 128, 128]))
    const w = mountView()
    await flushPromises()
    expect(w.find('[data-testid="in-call"]').attributes('data-video')).toBe('true')
    expect(w.find('[data-testid="remote-video"]').attributes('aria-label')).toBe('Video of Bob Stone')
    expect(w.find('[data-testid="self-view"]').exists()).toBe(true)
    await vi.waitFor(() => {
      const remote = t.callsOf('callFrame').filter((a) => a[0] === true)
      expect(remote.length).toBeGreaterThan(1)
      expect(remote[1][1]).toBe(7)
    })
    // The camera off: no self-view; the peer's camera off: its avatar and level.
    ev({ type: 'remote_media', audio: true, video: false })
    await w.find('[data-testid="call-camera"]').trigger('click')
    await flushPromises()
    expect(t.callsOf('callSetCamera')).toEqual([[false]])
    expect(w.find('[data-testid="in-call"]').attributes('data-video')).toBeUndefined()
  })

  it('reconnecting, device warnings, the peer muted and the quality are shown', async () => {
    openCall(true)
    const w = mountView()
    ev({ type: 'state', phase: 'reconnecting', reason: null, by_peer: false })
    ev({ type: 'warning', code: 'no_camera', message: 'no camera: audio only' })
    ev({ type: 'remote_media', audio: false, video: false })
    ev({ type: 'stats', rtt_ms: 520.4, loss_pct: 7.25, candidate_type: 'relay', ice_state: 'checking', video_frames_decoded: 0 })
    await flushPromises()
    expect(w.find('[data-testid="call-reconnecting"]').text()).toBe('Reconnecting…')
    expect(w.find('[data-testid="call-status"]').text()).toBe('Reconnecting…')
    expect(w.find('[data-testid="call-warnings"]').text()).toBe('No camera found: audio only')
    ev({ type: 'warning', code: 'no_speaker', message: 'no speaker: received audio is not played' })
    ev({ type: 'warning', code: 'device', message: 'could not switch the camera: busy' })
    await flushPromises()
    const lines = w.findAll('[data-testid="call-warnings"] li').map((l) => l.text())
    expect(lines).toEqual([
      'No camera found: audio only',
      'No speaker found: you cannot hear the other side',
      'Device problem: could not switch the camera: busy',
    ])
    expect(w.find('[data-testid="call-camera"]').attributes('disabled')).toBeDefined()
    expect(w.find('[data-testid="peer-muted"]').text()).toBe('Bob Stone is muted')
    const q = w.find('[data-testid="call-quality"]')
    expect(q.attributes('data-quality')).toBe('poor')
    expect(q.attributes('title')).toBe('Connection: poor · Round trip 520 ms · loss 7.3 %')
  })

  it('speaks Chinese too', async () => {
    openCall(false)
    const w = mountView('zh-CN')
    ev({ type: 'warning', code: 'no_microphone', message: 'no microphone: listen only' })
    await flushPromises()
    expect(w.find('[data-testid="call-warnings"]').text()).toBe('未找到麦克风：你只能收听')
    expect(w.find('[data-testid="call-mute"]').attributes('disabled')).toBeDefined()
    ev({ type: 'state', phase: 'ended', reason: 'failed', by_peer: false })
    await flushPromises()
    expect(w.find('[data-testid="call-status"]').text()).toBe('通话失败：无法建立连接')
    expect(w.find('[data-testid="hang-up"]').attributes('aria-label')).toBe('挂断')
  })

  it('Ctrl+Shift+M mutes, O turns the camera, H hangs up; nothing without a call', async () => {
    expect(handleShortcut(key('M'))).toBe(false)
    openCall(true)
    mountView()
    expect(handleShortcut(key('M'))).toBe(true)
    await flushPromises()
    expect(handleShortcut(key('M'))).toBe(true)
    await flushPromises()
    expect(handleShortcut(key('O'))).toBe(true)
    await flushPromises()
    expect(handleShortcut(key('H'))).toBe(true)
    await flushPromises()
    expect(t.callsOf('callSetMuted')).toEqual([[true], [false]])
    expect(t.callsOf('callSetCamera')).toEqual([[false]])
    expect(t.callsOf('callHangup')).toHaveLength(1)
    // The composer's Ctrl+E (code) is not the camera.
    expect(handleShortcut(new KeyboardEvent('keydown', { key: 'e', ctrlKey: true }))).toBe(false)
  })
})
