import { describe, expect, it } from 'vitest'
import { msg } from '../../testing'
import { GROUP_WINDOW_MS, rowFlags } from './grouping'

const T = new Date(2026, 4, 10, 12, 0, 0).getTime()

describe('rowFlags', () => {
  it('groups one sender within 5 minutes and breaks the run after', () => {
    const a = msg({ seq: 1, ts: T })
    expect(rowFlags(msg({ seq: 2, ts: T + GROUP_WINDOW_MS }), a, null, T).runStart).toBe(false)
    expect(rowFlags(msg({ seq: 2, ts: T + GROUP_WINDOW_MS + 1 }), a, null, T).runStart).toBe(true)
    expect(rowFlags(msg({ seq: 2, ts: T + 1000, from: 'bob' }), a, null, T).runStart).toBe(true)
  })
  it('puts a day separator first and between days', () => {
    expect(rowFlags(msg({ seq: 1, ts: T }), null, null, T).daySeparator).toBe(true)
    const late = msg({ seq: 1, ts: new Date(2026, 4, 10, 23, 59).getTime() })
    const next = rowFlags(msg({ seq: 2, ts: new Date(2026, 4, 11, 0, 1).getTime() }), late, null, T)
    expect(next.daySeparator).toBe(true)
    expect(next.runStart).toBe(true)
  })
  it('puts the new-messages divider at the first unread and starts a run there', () => {
    const f = rowFlags(msg({ seq: 7, ts: T + 1 }), msg({ seq: 6, ts: T }), 7, T)
    expect(f.newDivider).toBe(true)
    expect(f.runStart).toBe(true)
  })
  it('places pending messages (no ts yet) at now', () => {
    const f = rowFlags(msg({ seq: null, ts: null, from: 'alice' }), msg({ seq: 1, ts: T - 1000 }), null, T)
    expect(f.daySeparator).toBe(false)
    expect(f.runStart).toBe(false)
  })
})
