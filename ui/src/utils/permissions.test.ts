// Call records (protocol §14) take reactions and pins, are recalled by the
// caller only, and are never edited, copied or forwarded.
import { describe, expect, it } from 'vitest'
import { msg } from '../testing'
import { messagePermissions, type PermissionContext } from './permissions'

const cx: PermissionContext = { me: 'me', isChannel: false, role: null, v11: true, editWindowS: null, recallWindowS: null, now: 1_700_000_100_000 }

function record(from: string) {
  return msg({ seq: 3, from, kind: 'call', cid: 'call-i1', body: { iid: 'i1', video: false, outcome: 'completed', duration_s: 30 } })
}

describe('messagePermissions for call records', () => {
  it('the caller may react, pin and recall, never edit', () => {
    const p = messagePermissions(record('me'), cx)
    expect(p).toMatchObject({ react: true, pin: true, recall: true, edit: false, copy: false, forward: false })
  })

  it('the callee may react and pin but not recall', () => {
    const p = messagePermissions(record('alice'), cx)
    expect(p).toMatchObject({ react: true, pin: true, recall: false, edit: false })
  })

  it('a text message of mine stays editable (the rule is per kind)', () => {
    expect(messagePermissions(msg({ seq: 4, from: 'me' }), cx).edit).toBe(true)
  })
})
