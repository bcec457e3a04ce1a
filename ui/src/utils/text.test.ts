import { describe, expect, it, vi } from 'vitest'
import { excerpt, highlight, isEmojiOnly, previewOf } from './text'

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
  it('reads no further than the seventh emoji of a long run (a peer can send 30,000)', () => {
    // Listing all graphemes of a long string is quadratic in the webview.
    let read = 0
    const segment = Intl.Segmenter.prototype.segment
    const spy = vi.spyOn(Intl.Segmenter.prototype, 'segment').mockImplementation(function (this: Intl.Segmenter, s: string) {
      const all = segment.call(this, s)
      return {
        *[Symbol.iterator]() {
          for (const x of all) {
            read++
            yield x
          }
        },
      } as unknown as Intl.Segments
    })
    try {
      expect(isEmojiOnly('😀'.repeat(10_000))).toBe(false)
      expect(read).toBeLessThanOrEqual(7)
      expect(isEmojiOnly('😀 🇫🇷 👨‍👩‍👧')).toBe(true)
    } finally {
      spy.mockRestore()
    }
  })
})

describe('previewOf', () => {
  it('shows a text message as one line of words without markup, spoilers masked', () => {
    const m = { kind: 'text', body: { text: '**Launch** is _Friday_\n\n> ~~maybe~~ `sure`\n- ||the code is 42||' } }
    expect(previewOf(m)).toBe('Launch is Friday maybe sure ▒▒▒')
  })
  it('keeps raw HTML as the text it is', () => {
    expect(previewOf({ kind: 'text', body: { text: '<b>hi</b>' } })).toBe('<b>hi</b>')
  })
})

