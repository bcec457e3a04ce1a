// Display names as every list, header and notice shows them.
import { beforeEach, describe, expect, it } from 'vitest'
import { setup } from '../testing'
import { useProfilesStore } from './profiles'

describe('profiles', () => {
  beforeEach(() => {
    setup()
  })

  it('shows a peer\'s name without bidi or control characters, else the user id', () => {
    const p = useProfilesStore()
    p.setProfile({ user: 'mallory', name: 'Bob \u202Enimda', avatar: '', status: '' })
    expect(p.nameOf('mallory')).toBe('Bob nimda')
    p.setProfile({ user: 'ghost', name: '\u2066\u200F \u0007', avatar: '', status: '' })
    expect(p.nameOf('ghost')).toBe('ghost')
    expect(p.nameOf('nobody')).toBe('nobody')
  })

  it('follows a name that looks like another user\'s name or id with the id, on both sides', () => {
    const p = useProfilesStore()
    p.setProfile({ user: 'alice', name: 'Alice', avatar: '', status: '' })
    p.setProfile({ user: 'carol', name: 'Carol', avatar: '', status: '' })
    expect(p.nameOf('alice')).toBe('Alice')
    p.setProfile({ user: 'mallory', name: 'Alice', avatar: '', status: '' })
    expect(p.nameOf('mallory')).toBe('Alice (@mallory)')
    expect(p.nameOf('alice')).toBe('Alice (@alice)')
    expect(p.nameOf('carol')).toBe('Carol')
    // Case, zero-width characters, full-width letters and spacing do not make another name.
    for (const lookalike of ['ALICE', 'Al\u200Bice', 'A\u2060lice\uFEFF', 'Ａｌｉｃｅ', ' alice ', 'Carol']) {
      p.setProfile({ user: 'mallory', name: lookalike, avatar: '', status: '' })
      expect(p.nameOf('mallory'), JSON.stringify(lookalike)).toMatch(/ \(@mallory\)$/)
    }
    // Another user's id as a display name.
    p.setProfile({ user: 'mallory', name: 'carol', avatar: '', status: '' })
    expect(p.nameOf('mallory')).toBe('carol (@mallory)')
    p.setProfile({ user: 'mallory', name: 'Mal', avatar: '', status: '' })
    expect(p.nameOf('mallory')).toBe('Mal')
    expect(p.nameOf('alice')).toBe('Alice')
  })

  it('shows the user id for a name of invisible characters only', () => {
    const p = useProfilesStore()
    for (const name of ['\u200B', '\u3164\u3164', '\u200D\uFE0F', '\u115F']) {
      p.setProfile({ user: 'nobody', name, avatar: '', status: '' })
      expect(p.nameOf('nobody'), JSON.stringify(name)).toBe('nobody')
    }
  })
})
