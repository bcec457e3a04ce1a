// Display names as every list, header and notice shows them.
import { beforeEach, describe, expect, it } from 'vitest'
import { setup } from '../testing'
import { useProfilesStore } from './profiles'

/** Gives `user` the display name `name`, and returns how `user` is shown. */
function named(user: string, name: string): string {
  const p = useProfilesStore()
  p.setProfile({ user, name, avatar: '', status: '' })
  return p.nameOf(user)
}

describe('profiles', () => {
  beforeEach(() => {
    setup()
  })

  it('shows a peer\'s name without bidi or control characters, else the user id', () => {
    expect(named('mallory', 'Bob \u202Enimda')).toBe('Bob nimda')
    expect(named('ghost', '\u2066\u200F \u0007')).toBe('ghost')
    expect(useProfilesStore().nameOf('nobody')).toBe('nobody')
  })

  it('follows a name that looks like another user\'s name or id with the id, on both sides', () => {
    const p = useProfilesStore()
    expect(named('alice', 'Alice')).toBe('Alice')
    expect(named('carol', 'Carol')).toBe('Carol')
    expect(named('mallory', 'Alice')).toBe('Alice (@mallory)')
    expect(p.nameOf('alice')).toBe('Alice (@alice)')
    expect(p.nameOf('carol')).toBe('Carol')
    // Case, zero-width characters, full-width letters and spacing do not make another name.
    for (const lookalike of ['ALICE', 'Al\u200Bice', 'A\u2060lice\uFEFF', 'Ａｌｉｃｅ', ' alice ', 'Carol']) {
      expect(named('mallory', lookalike), JSON.stringify(lookalike)).toMatch(/ \(@mallory\)$/)
    }
    // Letters of other scripts drawn like Latin ones (UTS #39 confusables):
    // Cyrillic А and і, Greek Α, a capital I or a digit 1 for l.
    for (const lookalike of ['\u0410lice', 'Al\u0456ce', '\u0391LICE', 'AIice', 'A1ice', '\u0441arol']) {
      expect(named('mallory', lookalike), JSON.stringify(lookalike)).toMatch(/ \(@mallory\)$/)
    }
    // Another user's id as a display name.
    expect(named('mallory', 'carol')).toBe('carol (@mallory)')
    expect(named('mallory', 'Mal')).toBe('Mal')
    expect(p.nameOf('alice')).toBe('Alice')
  })

  it('keeps a peer\'s status line without bidi or control characters', () => {
    named('mallory', 'Mal')
    useProfilesStore().setProfile({ user: 'mallory', name: 'Mal', avatar: '', status: 'on call \u202Etxt.exe\u0007' })
    expect(useProfilesStore().profiles.get('mallory')?.status).toBe('on call txt.exe')
  })

  it('shows the user id for a name of invisible characters only', () => {
    for (const name of ['\u200B', '\u3164\u3164', '\u200D\uFE0F', '\u115F']) {
      expect(named('nobody', name), JSON.stringify(name)).toBe('nobody')
    }
  })
})
