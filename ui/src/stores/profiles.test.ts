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
})
