// The running call's media, as the shell's media engine reports it
// (`courier://call` updates): phase, mute and camera, the peer's media,
// levels, connection quality and device warnings; the device choice and
// the Settings mic test. Which invitation shows the in-call view is the
// invitations store's job; this store applies what the engine says.
import { defineStore } from 'pinia'
import { computed, reactive, ref } from 'vue'
import type { CallUpdate, DeviceChoice, DeviceInfo } from '../services/transport'
import { toTransportError, useTransport } from '../services/transport'
import { useInvitationsStore } from './invitations'
import { useSettingsStore } from './settings'

export type CallPhase = 'connecting' | 'connected' | 'reconnecting' | 'ended'

/** What the quality indicator shows, from the last stats. */
export type Quality = 'good' | 'fair' | 'poor' | 'unknown'

/** Silence, in dBFS, for meters that have heard nothing yet. */
export const SILENCE_DB = -100
/** How long "Call ended" stays before the in-call view closes. */
export const ENDED_SHOWN_MS = 2000

/**
 * The media engine's warning codes that have their own sentence (the
 * engine's `courier_media::warning` codes, and the shell's
 * `media_unavailable`); any other code is shown with its message.
 */
export const KNOWN_WARNINGS = ['no_camera', 'no_microphone', 'no_speaker', 'media_unavailable']

/** A device problem of the running call that does not end it. */
export interface CallWarning {
  code: string
  message: string
}

/** The quality words for a round-trip time and loss (thresholds of common VoIP practice). */
export function qualityOf(rttMs: number | null, lossPct: number): Quality {
  if (rttMs === null) return 'unknown'
  if (rttMs > 400 || lossPct > 5) return 'poor'
  if (rttMs > 150 || lossPct > 1) return 'fair'
  return 'good'
}

/** A dBFS level as the fraction of a meter (−60 dB empty, 0 dB full). */
export function meterFraction(dbfs: number): number {
  if (!Number.isFinite(dbfs)) return 0
  return Math.min(1, Math.max(0, (dbfs + 60) / 60))
}

export interface CallStatsView {
  rttMs: number | null
  lossPct: number
  candidateType: string | null
  iceState: string
  framesDecoded: number
}

export const useCallsStore = defineStore('calls', () => {
  const iid = ref<string | null>(null)
  const peer = ref('')
  const caller = ref(false)
  const phase = ref<CallPhase>('connecting')
  const endReason = ref<string | null>(null)
  const endedByPeer = ref(false)
  const muted = ref(false)
  const camera = ref(false)
  const remoteAudio = ref(true)
  const remoteVideo = ref(false)
  const levels = reactive({ local: SILENCE_DB, remote: SILENCE_DB })
  const stats = ref<CallStatsView | null>(null)
  /** Warnings of the running call, first seen first: one per known code, one per message of the others. */
  const warnings = ref<CallWarning[]>([])
  const hasWarning = (code: string) => warnings.value.some((w) => w.code === code)
  /** When media first connected (ms, this clock): the timer counts from it. */
  const connectedAt = ref<number | null>(null)
  const error = ref<string | null>(null)

  const devices = ref<DeviceInfo[]>([])
  const micLevel = ref<number | null>(null)

  const active = computed(() => iid.value !== null && phase.value !== 'ended')
  const quality = computed<Quality>(() => (stats.value ? qualityOf(stats.value.rttMs, stats.value.lossPct) : 'unknown'))
  let closeTimer: ReturnType<typeof setTimeout> | null = null

  function reset(id: string): void {
    if (closeTimer) clearTimeout(closeTimer)
    closeTimer = null
    iid.value = id
    phase.value = 'connecting'
    endReason.value = null
    endedByPeer.value = false
    muted.value = false
    remoteAudio.value = true
    remoteVideo.value = false
    levels.local = SILENCE_DB
    levels.remote = SILENCE_DB
    stats.value = null
    warnings.value = []
    connectedAt.value = null
    error.value = null
  }

  /** Applies one update of the shell's media engine. */
  function apply(u: CallUpdate): void {
    const e = u.event
    if (e.type === 'started') {
      reset(u.iid)
      peer.value = e.peer
      caller.value = e.caller
      camera.value = e.video
      remoteVideo.value = e.video
      useInvitationsStore().showCall(u.iid)
      return
    }
    if (u.iid !== iid.value) return
    switch (e.type) {
      case 'state':
        phase.value = e.phase
        if (e.phase === 'connected' && connectedAt.value === null) connectedAt.value = Date.now()
        if (e.phase === 'ended') ended(e.reason ?? 'hangup', e.by_peer)
        break
      case 'remote_media':
        remoteAudio.value = e.audio
        remoteVideo.value = e.video
        break
      case 'levels':
        // JSON has no -Infinity: silence may come as null.
        levels.local = e.local ?? SILENCE_DB
        levels.remote = e.remote ?? SILENCE_DB
        break
      case 'stats':
        stats.value = {
          rttMs: e.rtt_ms, lossPct: e.loss_pct ?? 0, candidateType: e.candidate_type, iceState: e.ice_state,
          framesDecoded: e.video_frames_decoded,
        }
        break
      case 'warning':
        if (KNOWN_WARNINGS.includes(e.code) ? !hasWarning(e.code) : !warnings.value.some((w) => w.code === e.code && w.message === e.message)) {
          warnings.value.push({ code: e.code, message: e.message })
        }
        if (e.code === 'no_camera') camera.value = false
        if (e.code === 'no_microphone') muted.value = true
        break
    }
  }

  /** The end: shown for ENDED_SHOWN_MS, then the in-call view closes. */
  function ended(reason: string, byPeer: boolean): void {
    endReason.value = reason
    endedByPeer.value = byPeer
    const id = iid.value
    closeTimer = setTimeout(() => {
      closeTimer = null
      const invitations = useInvitationsStore()
      if (invitations.callIid === id) invitations.callIid = null
      if (iid.value === id) iid.value = null
    }, ENDED_SHOWN_MS)
  }

  async function act(run: () => Promise<void>): Promise<boolean> {
    error.value = null
    try {
      await run()
      return true
    } catch (e) {
      error.value = toTransportError(e).message
      return false
    }
  }

  async function hangUp(): Promise<void> {
    await act(() => useTransport().callHangup())
  }

  async function toggleMute(): Promise<void> {
    if (!active.value || hasWarning('no_microphone')) return
    const next = !muted.value
    muted.value = next
    if (!(await act(() => useTransport().callSetMuted(next)))) muted.value = !next
  }

  async function toggleCamera(): Promise<void> {
    if (!active.value || hasWarning('no_camera')) return
    const next = !camera.value
    camera.value = next
    if (!(await act(() => useTransport().callSetCamera(next)))) camera.value = !next
  }

  // ---- devices and the mic test

  async function loadDevices(): Promise<void> {
    try {
      devices.value = await useTransport().callDevices()
    } catch (e) {
      error.value = toTransportError(e).message
    }
  }

  const choice = computed<DeviceChoice>(
    () => useSettingsStore().settings.call_devices ?? { mic: null, camera: null, speaker: null },
  )

  /** Chooses one device (`null`: the system default); the shell persists it. */
  async function choose(kind: 'mic' | 'camera' | 'speaker', id: string | null): Promise<void> {
    const next: DeviceChoice = { ...choice.value, [kind]: id }
    const settings = useSettingsStore()
    settings.settings = { ...settings.settings, call_devices: next }
    await act(() => useTransport().callSetDevices(next))
  }

  /** Why the mic test could not start: `no_device`, `unavailable`, or another code. */
  const micTestError = ref<string | null>(null)

  async function startMicTest(): Promise<void> {
    micLevel.value = SILENCE_DB
    micTestError.value = null
    try {
      await useTransport().micTestStart(choice.value.mic, (db) => (micLevel.value = db))
    } catch (e) {
      micLevel.value = null
      micTestError.value = toTransportError(e).code
    }
  }

  async function stopMicTest(): Promise<void> {
    if (micLevel.value === null) return
    micLevel.value = null
    await act(() => useTransport().micTestStop())
  }

  return {
    iid, peer, caller, phase, endReason, endedByPeer, muted, camera, remoteAudio, remoteVideo, levels, stats,
    warnings, hasWarning, connectedAt, error, devices, micLevel, micTestError, active, quality, choice,
    apply, hangUp, toggleMute, toggleCamera, loadDevices, choose, startMicTest, stopMicTest,
  }
})
