import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { setup } from '../testing'
import type { MockTransport } from '../services/mockTransport'
import type { CallUpdate } from '../services/transport'
import { routeEvent } from './events'
import { ENDED_SHOWN_MS, SILENCE_DB, meterFraction, qualityOf, useCallsStore } from './calls'
import { useInvitationsStore } from './invitations'
import { useSettingsStore } from './settings'

let t: MockTransport

const started = (iid = 'i1', video = false): CallUpdate => ({ iid, event: { type: 'started', peer: 'bob', video, caller: true } })
const phase = (p: 'connecting' | 'connected' | 'reconnecting' | 'ended', iid = 'i1', reason: 'hangup' | 'failed' | null = null): CallUpdate => ({
  iid, event: { type: 'state', phase: p, reason, by_peer: false },
})

describe('pure rules', () => {
  it('quality from round trip and loss', () => {
    expect(qualityOf(null, 0)).toBe('unknown')
    expect(qualityOf(40, 0)).toBe('good')
    expect(qualityOf(200, 0)).toBe('fair')
    expect(qualityOf(40, 2)).toBe('fair')
    expect(qualityOf(40, 8)).toBe('poor')
    expect(qualityOf(600, 0)).toBe('poor')
  })

  it('meters span −60 to 0 dBFS', () => {
    expect(meterFraction(-100)).toBe(0)
    expect(meterFraction(-30)).toBe(0.5)
    expect(meterFraction(3)).toBe(1)
    expect(meterFraction(Number.NEGATIVE_INFINITY)).toBe(0)
  })
})

describe('calls store', () => {
  beforeEach(() => {
    vi.useFakeTimers()
    t = setup()
  })
  afterEach(() => vi.useRealTimers())

  it('applies what the media engine reports, for its own call only', () => {
    const c = useCallsStore()
    t.emitCall(started('i1', true))
    expect(c.iid).toBe('i1')
    expect(c.camera).toBe(true)
    expect(c.active).toBe(true)
    t.emitCall({ iid: 'i1', event: { type: 'levels', local: -12, remote: -20 } })
    t.emitCall({ iid: 'other', event: { type: 'levels', local: -1, remote: -1 } })
    expect(c.levels).toEqual({ local: -12, remote: -20 })
    t.emitCall({ iid: 'i1', event: { type: 'stats', rtt_ms: 220, loss_pct: 0.5, candidate_type: 'host', ice_state: 'connected', video_frames_decoded: 90 } })
    expect(c.quality).toBe('fair')
    expect(c.stats?.framesDecoded).toBe(90)
    t.emitCall({ iid: 'i1', event: { type: 'remote_media', audio: false, video: true } })
    expect([c.remoteAudio, c.remoteVideo]).toEqual([false, true])
    t.emitCall(phase('connected'))
    expect(c.connectedAt).not.toBeNull()
    t.emitCall(phase('reconnecting'))
    expect(c.phase).toBe('reconnecting')
    // A new call starts from scratch.
    t.emitCall(started('i2'))
    expect([c.iid, c.levels.remote, c.stats, c.connectedAt]).toEqual(['i2', SILENCE_DB, null, null])
  })

  it('a call accepted from the OS notification opens the in-call view when its media starts', () => {
    const inv = useInvitationsStore()
    routeEvent({ type: 'invite', invite: { iid: 'i7', from: 'bob', to: 'me', room: 'r', content: {}, state: 'pending', created: 1, expires: Date.now() + 30_000, received: true, incoming: true, ringing: true } })
    expect(inv.incomingIid).toBe('i7')
    routeEvent({ type: 'invite', invite: { iid: 'i7', from: 'bob', to: 'me', room: 'r', content: {}, state: 'accepted', created: 1, expires: Date.now() + 30_000, received: true, incoming: true, ringing: false } })
    expect(inv.incomingState).toBe('answered_elsewhere')
    t.emitCall({ iid: 'i7', event: { type: 'started', peer: 'bob', video: false, caller: false } })
    expect(inv.incomingIid).toBeNull()
    expect(inv.call?.iid).toBe('i7')
  })

  it('the end is shown, then the in-call view closes', async () => {
    const c = useCallsStore()
    const inv = useInvitationsStore()
    routeEvent({ type: 'invite', invite: { iid: 'i1', from: 'me', to: 'bob', room: 'r', content: {}, state: 'accepted', created: 1, expires: 2, received: true, incoming: false, ringing: false } })
    inv.callIid = 'i1'
    t.emitCall(started())
    t.emitCall(phase('ended', 'i1', 'failed'))
    expect([c.phase, c.endReason, c.active]).toEqual(['ended', 'failed', false])
    expect(inv.callIid).toBe('i1')
    vi.advanceTimersByTime(ENDED_SHOWN_MS)
    expect(inv.callIid).toBeNull()
    expect(c.iid).toBeNull()
  })

  it('mute and camera go to the shell and roll back when it refuses', async () => {
    const c = useCallsStore()
    t.emitCall(started())
    await c.toggleMute()
    expect(t.callsOf('callSetMuted')).toEqual([[true]])
    expect(c.muted).toBe(true)
    t.failNext('callSetCamera', 'not_found', 'no call is running')
    await c.toggleCamera()
    expect(t.callsOf('callSetCamera')).toEqual([[true]])
    expect(c.camera).toBe(false)
    expect(c.error).toBe('no call is running')
  })

  it('no camera: audio only; no microphone: listen only (the controls stay off)', async () => {
    const c = useCallsStore()
    t.emitCall(started('i1', true))
    t.emitCall({ iid: 'i1', event: { type: 'warning', code: 'no_camera', message: 'no camera: audio only' } })
    t.emitCall({ iid: 'i1', event: { type: 'warning', code: 'no_microphone', message: 'no microphone: listen only' } })
    t.emitCall({ iid: 'i1', event: { type: 'warning', code: 'no_microphone', message: 'again' } })
    t.emitCall({ iid: 'i1', event: { type: 'warning', code: 'device', message: 'cannot record to /x' } })
    t.emitCall({ iid: 'i1', event: { type: 'warning', code: 'device', message: 'cannot record to /x' } })
    t.emitCall({ iid: 'i1', event: { type: 'warning', code: 'device', message: 'speaker 7 is not available' } })
    expect(c.warnings.map((w) => w.code)).toEqual(['no_camera', 'no_microphone', 'device', 'device'])
    expect(c.warnings[3].message).toBe('speaker 7 is not available')
    expect([c.camera, c.muted]).toEqual([false, true])
    await c.toggleCamera()
    await c.toggleMute()
    expect(t.callsOf('callSetCamera')).toEqual([])
    expect(t.callsOf('callSetMuted')).toEqual([])
  })

  it('a device choice is kept in the settings; the mic test reports levels until stopped', async () => {
    const c = useCallsStore()
    t.deviceList = [{ id: 'mic-a', name: 'USB mic', kind: 'mic' }]
    await c.loadDevices()
    expect(c.devices.map((d) => d.name)).toEqual(['USB mic'])
    await c.choose('mic', 'mic-a')
    expect(t.callsOf('callSetDevices')).toEqual([[{ mic: 'mic-a', camera: null, speaker: null }]])
    expect(useSettingsStore().settings.call_devices.mic).toBe('mic-a')
    await c.startMicTest()
    expect(t.callsOf('micTestStart')).toEqual([['mic-a']])
    t.micLevels?.(-18)
    expect(c.micLevel).toBe(-18)
    await c.stopMicTest()
    expect(t.callsOf('micTestStop')).toHaveLength(1)
    expect(c.micLevel).toBeNull()
    await c.stopMicTest()
    expect(t.callsOf('micTestStop')).toHaveLength(1)
  })
})
