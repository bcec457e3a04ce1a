// Call records (protocol §14): reading a `call` body safely and the words
// for it — which i18n key, whether it is a failure (drawn red) and whether
// it was this user's call (outgoing). Pure, so the wording is tested alone.
import type { CallBody, CallOutcome, MessageView } from '../types/model'

const OUTCOMES: ReadonlySet<string> = new Set(['completed', 'failed', 'missed', 'declined', 'canceled'])

/** The body of a `call` message, or null when it is not a well-formed one. */
export function callBodyOf(m: Pick<MessageView, 'kind' | 'body'>): CallBody | null {
  if (m.kind !== 'call') return null
  const b = m.body as Record<string, unknown>
  if (typeof b.iid !== 'string' || typeof b.outcome !== 'string' || !OUTCOMES.has(b.outcome)) return null
  const d = typeof b.duration_s === 'number' && Number.isFinite(b.duration_s) ? Math.max(0, Math.floor(b.duration_s)) : 0
  return { iid: b.iid, video: b.video === true, outcome: b.outcome as CallOutcome, duration_s: d }
}

/** `m:ss`, or `h:mm:ss` from an hour. */
export function formatCallDuration(s: number): string {
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const ss = String(s % 60).padStart(2, '0')
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`
}

export interface CallWords {
  /** i18n key under `callRecord`. */
  key: string
  /** `{duration}` for completed calls. */
  params: Record<string, string>
  /** Missed, declined and failed calls are drawn red. */
  bad: boolean
}

/** The words for a record; `outgoing`: the user is the caller (the record's `from`). */
export function callWords(b: CallBody, outgoing: boolean): CallWords {
  const media = b.video ? 'video' : 'audio'
  const which: Record<CallOutcome, string> = {
    completed: outgoing ? 'outgoing' : 'incoming',
    missed: outgoing ? 'noAnswer' : 'missed',
    declined: outgoing ? 'declined' : 'youDeclined',
    canceled: 'canceled',
    failed: 'failed',
  }
  return {
    key: `callRecord.${media}.${which[b.outcome]}`,
    params: b.outcome === 'completed' ? { duration: formatCallDuration(b.duration_s) } : {},
    bad: b.outcome === 'missed' || b.outcome === 'declined' || b.outcome === 'failed',
  }
}
