// Call invitations: the incoming ringing card, the outgoing card, the
// in-call view, and what each shows in every state of proto §7.
import { defineStore } from 'pinia'
import { computed, reactive, ref } from 'vue'
import type { InviteView } from '../types/model'
import type { JsonObject, Target } from '../types/protocol'
import { toTransportError, useTransport } from '../services/transport'
import { useCallsStore } from './calls'

/** Ringing time asked for outgoing invitations (proto: 5–300 s). */
export const INVITE_TTL_S = 45
/** How long a final state stays on screen before the card closes. */
export const FINAL_STATE_MS = 2000
/** How many calls hung up before their start are remembered (their start stays unseen). */
const HUNG_UP_EARLY_KEPT = 16

/** What the outgoing card says. */
export type OutgoingPhase = 'calling' | 'ringing' | 'ringing_seen' | 'accepted' | 'declined' | 'cancelled' | 'no_answer' | 'failed'
/** What the incoming card says. */
export type IncomingPhase = 'ringing' | 'accepted' | 'declined' | 'answered_elsewhere' | 'cancelled' | 'missed'

export function outgoingPhase(v: InviteView): OutgoingPhase {
  switch (v.state) {
    case 'pending':
      return v.received ? 'ringing_seen' : 'ringing'
    case 'accepted':
      return 'accepted'
    case 'refused':
      return 'declined'
    case 'canceled':
      return 'cancelled'
    case 'expired':
      return 'no_answer'
    case 'failed':
      return 'failed'
  }
}

/** Whether an invitation asks for video (`content.video`, protocol §12). */
export function isVideo(v: Pick<InviteView, 'content'>): boolean {
  return v.content.video === true
}

/** `answeredHere`: whether this device sent the answer (else another device did). */
export function incomingPhase(v: InviteView, answeredHere: 'accept' | 'refuse' | null): IncomingPhase {
  switch (v.state) {
    case 'pending':
      return 'ringing'
    case 'accepted':
      return answeredHere === 'accept' ? 'accepted' : 'answered_elsewhere'
    case 'refused':
      return answeredHere === 'refuse' ? 'declined' : 'answered_elsewhere'
    case 'canceled':
      return 'cancelled'
    case 'expired':
    case 'failed':
      return 'missed'
  }
}

export const useInvitationsStore = defineStore('invitations', () => {
  const byIid = reactive(new Map<string, InviteView>())
  /** iid → what this device answered. */
  const answeredHere = reactive(new Map<string, 'accept' | 'refuse'>())
  /** Calls hung up on this device before the shell started them. */
  const hungUpEarly: string[] = []
  /** The outgoing invitation whose card is shown. */
  const outgoingIid = ref<string | null>(null)
  /** The incoming invitation whose card is shown. */
  const incomingIid = ref<string | null>(null)
  /** The accepted invitation whose in-call view is shown. */
  const callIid = ref<string | null>(null)
  const error = ref<string | null>(null)
  const busy = ref(false)
  const timers = new Map<string, ReturnType<typeof setTimeout>>()

  const outgoing = computed(() => (outgoingIid.value ? byIid.get(outgoingIid.value) ?? null : null))
  const incoming = computed(() => (incomingIid.value ? byIid.get(incomingIid.value) ?? null : null))
  const call = computed(() => (callIid.value ? byIid.get(callIid.value) ?? null : null))
  const outgoingState = computed(() => (outgoing.value ? outgoingPhase(outgoing.value) : null))
  const incomingState = computed(() =>
    incoming.value ? incomingPhase(incoming.value, answeredHere.get(incoming.value.iid) ?? null) : null,
  )

  /** Closes a card after a final state has been shown for FINAL_STATE_MS. */
  function closeLater(iid: string, which: 'out' | 'in'): void {
    if (timers.has(iid + which)) return
    timers.set(
      iid + which,
      setTimeout(() => {
        timers.delete(iid + which)
        if (which === 'out' && outgoingIid.value === iid) outgoingIid.value = null
        if (which === 'in' && incomingIid.value === iid) incomingIid.value = null
      }, FINAL_STATE_MS),
    )
  }

  /** Applies an `invite` event (or an op's result). */
  function apply(v: InviteView): void {
    const prev = byIid.get(v.iid)
    // A stale copy never moves a final invitation back to pending.
    if (prev && prev.state !== 'pending' && v.state === 'pending') return
    byIid.set(v.iid, v)
    // This device's own answer: the card's buttons, or an OS notification's.
    if (v.incoming && v.answered_here && !answeredHere.has(v.iid)) {
      answeredHere.set(v.iid, v.state === 'accepted' ? 'accept' : 'refuse')
    }
    if (v.incoming) {
      if (v.ringing && v.state === 'pending' && !incomingIid.value) incomingIid.value = v.iid
      if (incomingIid.value === v.iid && v.state !== 'pending') {
        if (v.state === 'accepted' && answeredHere.get(v.iid) === 'accept') {
          incomingIid.value = null
          startCall(v.iid)
        } else {
          closeLater(v.iid, 'in')
        }
      }
    } else {
      if (outgoingIid.value === v.iid && v.state !== 'pending') {
        if (v.state === 'accepted') {
          // Straight into the call: the in-call view replaces the card.
          outgoingIid.value = null
          startCall(v.iid)
        } else {
          closeLater(v.iid, 'out')
        }
      }
    }
  }

  function startCall(iid: string): void {
    callIid.value = iid
  }

  /**
   * The media of `iid` started on this device (also when it was accepted
   * from the OS notification): the cards close and the in-call view opens.
   */
  function showCall(iid: string): void {
    // Hung up here before the shell started it: it ends as it starts, unseen.
    if (hungUpEarly.includes(iid)) return
    if (byIid.get(iid)?.incoming) answeredHere.set(iid, 'accept')
    if (incomingIid.value === iid) incomingIid.value = null
    if (outgoingIid.value === iid) outgoingIid.value = null
    if (callIid.value !== iid) startCall(iid)
  }

  async function load(): Promise<void> {
    for (const v of await useTransport().invites()) {
      if (v.state === 'pending') apply(v)
      else byIid.set(v.iid, v)
    }
  }

  /**
   * Calls `user` (with video when `video`: the invitation's `content.video`,
   * protocol §12): shows the outgoing card at once, then the server's state.
   */
  async function callUser(user: string, video = false): Promise<void> {
    error.value = null
    busy.value = true
    try {
      const v = await useTransport().invite(user, { kind: 'call', media: video ? 'video' : 'audio', video }, INVITE_TTL_S)
      outgoingIid.value = v.iid
      apply(v)
      if (v.state === 'failed') closeLater(v.iid, 'out')
    } catch (e) {
      error.value = toTransportError(e).message
    } finally {
      busy.value = false
    }
  }

  async function cancel(): Promise<void> {
    const v = outgoing.value
    if (!v || v.state !== 'pending') return
    try {
      const r = await useTransport().cancelInvite(v.iid)
      if (r) apply(r)
    } catch (e) {
      // invite_final: the core has already emitted the final state.
      error.value = toTransportError(e).message
    }
  }

  async function answer(accept: boolean): Promise<void> {
    const v = incoming.value
    if (!v || v.state !== 'pending') return
    answeredHere.set(v.iid, accept ? 'accept' : 'refuse')
    try {
      const r = await useTransport().answer(v.iid, accept, {})
      if (r) apply(r)
    } catch (e) {
      // Lost the race to another device: its answer arrives as an event.
      answeredHere.delete(v.iid)
      error.value = toTransportError(e).message
    }
  }

  /**
   * Hangs up: the media engine ends the call for both sides and the view
   * closes when its end arrives. A call whose media never started (a server
   * without v1.2, no media engine) just closes.
   */
  async function hangUp(): Promise<void> {
    const v = call.value
    if (!v) return
    const calls = useCallsStore()
    if (calls.iid === v.iid && calls.active) {
      await calls.hangUp()
      return
    }
    // Not started yet (the accept is on its way) or never will be (no media
    // engine): the view closes now, and the shell hangs up the call it is
    // about to start; `no_call` means nothing was starting.
    hungUpEarly.push(v.iid)
    if (hungUpEarly.length > HUNG_UP_EARLY_KEPT) hungUpEarly.shift()
    callIid.value = null
    try {
      await useTransport().callHangup()
    } catch {
      // Nothing to hang up: a call without media.
    }
  }

  /**
   * A `signal` event to the open call from a peer without a media engine
   * (before v1.2): its `hangup` ends the view. Nothing else of a signal is
   * kept: a peer may send many large ones for as long as the call lasts.
   */
  function onSignal(to: Target, body: JsonObject): void {
    if (!('call' in to) || to.call !== callIid.value) return
    if (body.type === 'hangup' && !useCallsStore().active) callIid.value = null
  }

  /** Closes a card now (Esc / close button on a final state). */
  function dismiss(which: 'out' | 'in'): void {
    if (which === 'out') outgoingIid.value = null
    else incomingIid.value = null
  }

  return {
    byIid, answeredHere, outgoingIid, incomingIid, callIid, error, busy,
    outgoing, incoming, call, outgoingState, incomingState,
    apply, showCall, load, callUser, cancel, answer, hangUp, onSignal, dismiss,
  }
})
