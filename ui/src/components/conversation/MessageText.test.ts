import { beforeEach, describe, expect, it } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import { mountWith, setup } from '../../testing'
import type { MockTransport } from '../../services/mockTransport'
import MessageText from './MessageText.vue'
import { loadHighlighter } from '../../utils/highlight'
import { MAX_ELEMENTS, SPOILER_MASK } from '../../utils/markdown'

let t: MockTransport

describe('MessageText', () => {
  beforeEach(() => {
    t = setup()
    document.body.innerHTML = ''
  })

  it('renders markup in a message as text and creates no element from it', () => {
    const xss = '<img src=x onerror=alert(1)> <script>alert(2)</script> <b>bold</b>'
    const w = mountWith(MessageText, { props: { text: xss } })
    expect(w.text()).toBe(xss)
    expect(w.find('img').exists()).toBe(false)
    expect(w.find('script').exists()).toBe(false)
    expect(w.find('b').exists()).toBe(false)
    expect(document.querySelector('img, script')).toBeNull()
    // The only element inside is the paragraph, holding one text node.
    const el = w.find('[data-testid="message-text"]').element
    expect([...el.querySelectorAll('*')].map((e) => e.tagName)).toEqual(['P'])
    expect([...el.children[0].childNodes].map((n) => n.nodeType)).toEqual([Node.TEXT_NODE])
  })

  it('splits URLs into links that open in the OS browser', async () => {
    const w = mountWith(MessageText, { props: { text: 'see https://example.com/a?b=1. and http://x.org/(wiki) ok' } })
    const links = w.findAll('a')
    expect(links.map((a) => a.attributes('href'))).toEqual(['https://example.com/a?b=1', 'http://x.org/(wiki)'])
    expect(w.text()).toBe('see https://example.com/a?b=1. and http://x.org/(wiki) ok')
    await links[0].trigger('click')
    await flushPromises()
    expect(t.opened).toEqual(['https://example.com/a?b=1'])
  })

  it('never links javascript: or data: URLs', () => {
    const w = mountWith(MessageText, { props: { text: 'javascript:alert(1) data:text/html,<b>x</b>' } })
    expect(w.findAll('a')).toHaveLength(0)
  })

  it('keeps `code` spans and line breaks', () => {
    const w = mountWith(MessageText, { props: { text: 'run `npm test`\nthen <b>`x<y`</b>' } })
    const codes = w.findAll('code')
    expect(codes.map((c) => c.text())).toEqual(['npm test', 'x<y'])
    expect(w.find('[data-testid="message-text"]').element.textContent).toContain('\nthen ')
    expect(w.find('[data-testid="message-text"]').classes()).toContain('whitespace-pre-wrap')
    expect(w.find('b').exists()).toBe(false)
  })

  it('does not link URLs inside code', () => {
    const w = mountWith(MessageText, { props: { text: '`https://example.com`' } })
    expect(w.findAll('a')).toHaveLength(0)
    expect(w.find('code').text()).toBe('https://example.com')
  })

  it('renders emoji-only messages large, and text with emoji normally', () => {
    expect(mountWith(MessageText, { props: { text: '🎉🎉' } }).find('[data-testid="message-text"]').classes()).toContain('text-4xl')
    expect(mountWith(MessageText, { props: { text: 'ok 🎉' } }).find('[data-testid="message-text"]').classes()).not.toContain('text-4xl')
    expect(mountWith(MessageText, { props: { text: '123' } }).find('[data-testid="message-text"]').classes()).not.toContain('text-4xl')
  })

  it('draws emoji inside text with the colour emoji fonts, and the text around them as text', () => {
    const w = mountWith(MessageText, { props: { text: 'peace ✌️ **and ☺️**' } })
    expect(w.findAll('[data-emoji]').map((n) => [n.text(), n.classes()])).toEqual([
      ['✌️', ['font-emoji']],
      ['☺️', ['font-emoji']],
    ])
    expect(w.find('[data-testid="message-text"]').text()).toBe('peace ✌️ and ☺️')
  })

  it('renders bold, italic, strikethrough, code, quotes and lists as elements', () => {
    const w = mountWith(MessageText, { props: { text: '**bold** _it_ ~~gone~~ `x`\n\n> quoted\n\n- one\n- two\n\n3. three' } })
    expect(w.find('strong').text()).toBe('bold')
    expect(w.find('em').text()).toBe('it')
    expect(w.find('s').text()).toBe('gone')
    expect(w.find('code').text()).toBe('x')
    expect(w.find('blockquote').text()).toBe('quoted')
    expect(w.findAll('ul > li').map((li) => li.text())).toEqual(['one', 'two'])
    expect(w.find('ol').attributes('start')).toBe('3')
    expect(w.text()).not.toContain('*')
  })

  it('nests constructs: bold inside a quote, a link inside bold', () => {
    const w = mountWith(MessageText, { props: { text: '> **see https://x.io/a**' } })
    expect(w.find('blockquote strong a').attributes('href')).toBe('https://x.io/a')
  })

  it('covers a spoiler until it is clicked, and a link inside only reveals', async () => {
    const w = mountWith(MessageText, { props: { text: 'the end: ||she wins at https://x.io||' } })
    const sp = w.find('[data-testid="spoiler"]')
    expect(sp.attributes('role')).toBe('button')
    expect(sp.attributes('aria-label')).toBe('Spoiler: click to reveal')
    expect(sp.find('[aria-hidden="true"]').text()).toBe('she wins at https://x.io')
    await sp.find('a').trigger('click')
    await flushPromises()
    expect(t.opened).toEqual([])
    const shown = w.find('[data-testid="spoiler"]')
    expect(shown.attributes('data-revealed')).toBe('true')
    expect(shown.find('[aria-hidden]').exists()).toBe(false)
    await shown.find('a').trigger('click')
    await flushPromises()
    expect(t.opened).toEqual(['https://x.io'])
  })

  it('reveals a spoiler from the keyboard', async () => {
    const w = mountWith(MessageText, { props: { text: '||x||' } })
    await w.find('[data-testid="spoiler"]').trigger('keydown', { key: 'Enter' })
    expect(w.find('[data-testid="spoiler"]').attributes('data-revealed')).toBe('true')
  })

  it('links e-mail addresses through the same opener', async () => {
    const w = mountWith(MessageText, { props: { text: 'write to a@b.co' } })
    await w.find('a').trigger('click')
    await flushPromises()
    expect(t.opened).toEqual(['mailto:a@b.co'])
  })

  it('shows a code block as text, then coloured with spans (no HTML) once the highlighter loads', async () => {
    const code = 'const a = "<b>x</b>" // hi'
    const w = mountWith(MessageText, { props: { text: '```js\n' + code + '\n```' } })
    const pre = w.find('[data-testid="code-block"]')
    expect(pre.attributes('data-lang')).toBe('js')
    await loadHighlighter()
    await flushPromises()
    expect(pre.text()).toBe(code)
    const spans = pre.findAll('span')
    expect(spans.find((s) => s.text() === 'const')?.classes()).toContain('hljs-keyword')
    expect(spans.find((s) => s.text() === '"<b>x</b>"')?.classes()).toContain('hljs-string')
    expect(pre.find('b').exists()).toBe(false)
    expect(new Set([...pre.element.querySelectorAll('*')].map((e) => e.tagName))).toEqual(new Set(['CODE', 'SPAN']))
  })

  it('leaves code in an unknown language plain', async () => {
    const w = mountWith(MessageText, { props: { text: '```nosuchlang\nx = 1\n```' } })
    await loadHighlighter()
    await flushPromises()
    expect(w.find('[data-testid="code-block"]').findAll('span')).toHaveLength(0)
    expect(w.find('[data-testid="code-block"]').text()).toBe('x = 1')
  })

  it('keeps mentions inside formatting', () => {
    const w = mountWith(MessageText, { props: { text: '**hey @bob**', mentions: ['bob'] } })
    expect(w.find('strong [data-testid="mention"]').attributes('data-mention')).toBe('bob')
  })

  it('draws a message of thousands of spoilers, links, mentions or emoji with a bounded number of elements', () => {
    const elements = (text: string, mentions: string[] = []) => {
      const w = mountWith(MessageText, { props: { text, mentions } })
      const el = w.find('[data-testid="message-text"]').element
      const r = { count: el.querySelectorAll('*').length, text: el.textContent ?? '' }
      w.unmount()
      return r
    }
    for (const [text, mentions] of [
      ['||secret|| '.repeat(3_000), []],
      ['https://a.io/x '.repeat(3_000), []],
      ['@bob '.repeat(3_000), ['bob']],
      ['😀 a '.repeat(3_000), []],
      ['**b** `c` _d_ '.repeat(1_500), []],
    ] as [string, string[]][]) {
      const drawn = elements(text, mentions)
      expect(drawn.count, text.slice(0, 20)).toBeLessThanOrEqual(MAX_ELEMENTS)
      expect(drawn.text).not.toContain('secret')
      expect(drawn.text.length).toBeGreaterThan(8_000)
    }
    expect(elements('||secret|| '.repeat(3_000)).text.startsWith(`${SPOILER_MASK} ${SPOILER_MASK}`)).toBe(true)
    // Ordinary formatting, and long text with line breaks, are drawn as always.
    expect(elements('||a|| **b** https://c.io\n'.repeat(200)).count).toBeGreaterThan(800)
    expect(elements('line\n'.repeat(10_000)).text).toBe('line\n'.repeat(10_000).trimEnd())
  }, 60_000)
})
