import { beforeEach, describe, expect, it } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import { mountWith, setup } from '../../testing'
import type { MockTransport } from '../../services/mockTransport'
import MessageText from './MessageText.vue'

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
    // The only node inside is one text node.
    const el = w.find('[data-testid="message-text"]').element
    expect(el.children).toHaveLength(0)
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
})
