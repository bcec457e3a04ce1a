// One-line previews (chat list, reply quote, pinned bar): the words of a
// formatted message, mentions by name, spoilers masked.
import { beforeEach, describe, expect, it } from 'vitest'
import { defineComponent, h } from 'vue'
import { mountWith, msg, setup } from '../testing'
import { useProfilesStore } from '../stores/profiles'
import { usePreview } from './usePreview'
import type { MessageView } from '../types/model'

function previewText(m: MessageView): string {
  const Probe = defineComponent({
    setup() {
      const preview = usePreview()
      return () => h('p', preview(m))
    },
  })
  return mountWith(Probe).text()
}

describe('usePreview', () => {
  beforeEach(() => {
    setup()
    useProfilesStore().setProfile({ user: 'bob', name: 'Bob Stone', avatar: '', status: '' })
  })

  it('shows a formatted message as its words, mentions by name and spoilers masked', () => {
    const m = msg({ seq: 1, body: { text: '**Ship it**, @bob!\n\n> _soon_\n||the code is 42||', mentions: ['bob'] } })
    expect(previewText(m)).toBe('Ship it, @Bob Stone! soon ▒▒▒')
  })

  it('is at most 300 characters for a message of a megabyte, cut between whole characters', () => {
    const long = previewText(msg({ seq: 1, body: { text: `@bob ${'word '.repeat(200_000)}`, mentions: ['bob'] } }))
    expect(long.length).toBe(301 + '@Bob Stone'.length - '@bob'.length) // mentions are named after the cut
    expect(long.startsWith('@Bob Stone word word')).toBe(true)
    expect(long.endsWith('…')).toBe(true)
    const emoji = previewText(msg({ seq: 2, body: { text: `a${'😀'.repeat(1000)}` } }))
    expect(emoji).toBe(`a${'😀'.repeat(149)}…`)
  })

  it('keeps raw HTML as text and does not touch file names', () => {
    expect(previewText(msg({ seq: 1, body: { text: '<b>**x**</b>' } }))).toBe('<b>x</b>')
    expect(previewText(msg({ seq: 2, kind: 'file', body: { name: '**notes**.txt' } }))).toBe('📎 **notes**.txt')
  })

  it.each([
    ['missed', 'alice', false, 'Missed call'],
    ['missed', 'me', false, 'Call · No answer'],
    ['completed', 'me', true, 'Outgoing video call · 3:12'],
    ['declined', 'me', false, 'Declined'],
    ['canceled', 'alice', false, 'Call canceled'],
  ] as const)('shows a %s call record from %s as plain words', (outcome, from, video, text) => {
    const m = msg({ seq: 2, from, kind: 'call', cid: 'call-i1', body: { iid: 'i1', video, outcome, duration_s: 192 } })
    expect(previewText(m)).toBe(text)
  })
})
