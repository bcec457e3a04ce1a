import { describe, expect, it } from 'vitest'
import { excerpt, highlight, isEmojiOnly, segmentText } from './text'

describe('segmentText', () => {
  it('splits text, links and code in order', () => {
    expect(segmentText('a https://x.io/p, `c` b')).toEqual([
      { kind: 'text', text: 'a ' },
      { kind: 'link', text: 'https://x.io/p', href: 'https://x.io/p' },
      { kind: 'text', text: ', ' },
      { kind: 'code', text: 'c' },
      { kind: 'text', text: ' b' },
    ])
  })
  it('leaves an unclosed backtick as text', () => {
    expect(segmentText('a `b')).toEqual([{ kind: 'text', text: 'a `b' }])
  })
})

describe('highlight', () => {
  it('marks every case-insensitive hit of every word', () => {
    expect(highlight('Call the Server, server!', 'server call')).toEqual([
      { text: 'Call', hit: true },
      { text: ' the ', hit: false },
      { text: 'Server', hit: true },
      { text: ', ', hit: false },
      { text: 'server', hit: true },
      { text: '!', hit: false },
    ])
  })
  it('treats regex characters in the query literally', () => {
    expect(highlight('a+b (c)', '(c)').filter((p) => p.hit).map((p) => p.text)).toEqual(['(c)'])
  })
  it('highlights CJK text', () => {
    expect(highlight('周五的发布会', '发布').filter((p) => p.hit).map((p) => p.text)).toEqual(['发布'])
  })
})

describe('excerpt / emoji', () => {
  it('cuts long text around the first hit', () => {
    const long = 'x'.repeat(200) + ' needle ' + 'y'.repeat(200)
    const e = excerpt(long, 'needle', 20)
    expect(e.startsWith('…')).toBe(true)
    expect(e.endsWith('…')).toBe(true)
    expect(e).toContain('needle')
  })
  it('knows emoji-only text', () => {
    expect(isEmojiOnly('👍')).toBe(true)
    expect(isEmojiOnly('👨‍👩‍👧 🇫🇷')).toBe(true)
    expect(isEmojiOnly('👍 ok')).toBe(false)
    expect(isEmojiOnly('#1')).toBe(false)
    expect(isEmojiOnly('🎉🎉🎉🎉🎉🎉🎉')).toBe(false)
  })
})
