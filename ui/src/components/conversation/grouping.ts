// Which separators and headers a message row shows, from it and the row
// before it. Pure, so the virtualized list computes it per visible row.
import type { MessageView } from '../../types/model'
import { sameDay } from '../../utils/format'

/** Messages of one sender within this window group without repeating name/avatar. */
export const GROUP_WINDOW_MS = 5 * 60_000

export interface RowFlags {
  /** Show a day separator above. */
  daySeparator: boolean
  /** Show the "New messages" divider above. */
  newDivider: boolean
  /** First of a run: show name and avatar. */
  runStart: boolean
}

/** The time a message is placed at: its server time, or now while pending. */
export function placedAt(m: MessageView, now: number): number {
  return m.ts ?? now
}

export function rowFlags(m: MessageView, prev: MessageView | null, firstUnreadSeq: number | null, now: number): RowFlags {
  const at = placedAt(m, now)
  const daySeparator = !prev || !sameDay(placedAt(prev, now), at)
  // The first loaded message at or after the first unread seq (relations take seqs too, so it may be later).
  const newDivider =
    firstUnreadSeq !== null && m.seq !== null && m.seq >= firstUnreadSeq && (!prev || prev.seq === null || prev.seq < firstUnreadSeq)
  const runStart =
    daySeparator || newDivider || !prev || prev.from !== m.from || at - placedAt(prev, now) > GROUP_WINDOW_MS || prev.kind === 'custom'
  return { daySeparator, newDivider, runStart }
}
