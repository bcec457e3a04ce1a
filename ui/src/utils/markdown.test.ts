import { describe, expect, it } from 'vitest'
import type { MdNode } from './markdown'
import { isOpenableLink, parseMessage, plainText, SPOILER_MASK } from './markdown'

/** The children of the only paragraph of `text`. */
function inline(text: string, mentions: string[] = []): MdNode[] {
  const nodes = parseMessage(text, mentions)
  expect(nodes).toHaveLength(1)
  const [p] = nodes
  if (p.type !== 'p') throw new Error(`not a paragraph: ${p.type}`)
  return p.children
}

describe('parseMessage', () => {
  it('parses bold, italic, strikethrough, code and spoilers', () => {
    expect(inline('**b** _i_ *j* ~~s~~ `c` ||x||')).toEqual([
      { type: 'strong', children: [{ type: 'text', text: 'b' }] },
      { type: 'text', text: ' ' },
      { type: 'em', children: [{ type: 'text', text: 'i' }] },
      { type: 'text', text: ' ' },
      { type: 'em', children: [{ type: 'text', text: 'j' }] },
      { type: 'text', text: ' ' },
      { type: 's', children: [{ type: 'text', text: 's' }] },
      { type: 'text', text: ' ' },
      { type: 'code', text: 'c' },
      { type: 'text', text: ' ' },
      { type: 'spoiler', children: [{ type: 'text', text: 'x' }] },
    ])
  })

  it('nests constructs, also inside spoilers and quotes', () => {
    expect(inline('||a **b _c_**||')).toEqual([
      {
        type: 'spoiler',
        children: [
          { type: 'text', text: 'a ' },
          { type: 'strong', children: [{ type: 'text', text: 'b ' }, { type: 'em', children: [{ type: 'text', text: 'c' }] }] },
        ],
      },
    ])
    expect(parseMessage('> **q**\n> - x')).toEqual([
      {
        type: 'blockquote',
        children: [
          { type: 'p', children: [{ type: 'strong', children: [{ type: 'text', text: 'q' }] }] },
          { type: 'ul', children: [{ type: 'li', children: [{ type: 'text', text: 'x' }] }] },
        ],
      },
    ])
  })

  it('parses lists with their start number and fenced code with its language', () => {
    expect(parseMessage('3. a\n4. b\n\n```ts\nconst x = 1\n```')).toEqual([
      { type: 'ol', start: 3, children: [{ type: 'li', children: [{ type: 'text', text: 'a' }] }, { type: 'li', children: [{ type: 'text', text: 'b' }] }] },
      { type: 'pre', lang: 'ts', text: 'const x = 1' },
    ])
  })

  it('keeps line breaks as breaks', () => {
    expect(inline('a\nb')).toEqual([{ type: 'text', text: 'a' }, { type: 'br' }, { type: 'text', text: 'b' }])
  })

  it('links http(s) and e-mail addresses, never javascript:', () => {
    const links = (t: string) => inline(t).filter((n) => n.type === 'link').map((n) => (n as { href: string }).href)
    expect(links('see https://x.io/a?b=1. and (http://x.org/(wiki)) or <https://y.io> a@b.co')).toEqual([
      'https://x.io/a?b=1',
      'http://x.org/(wiki)',
      'https://y.io',
      'mailto:a@b.co',
    ])
    expect(links('javascript:alert(1) <javascript:alert(1)> [x](javascript:alert(1))')).toEqual([])
    // No masked links: a link always shows its own address.
    expect(inline('[y](https://z.io)')).toEqual([
      { type: 'text', text: '[y](' },
      { type: 'link', href: 'https://z.io', children: [{ type: 'text', text: 'https://z.io' }] },
      { type: 'text', text: ')' },
    ])
  })

  it('leaves HTML, headings, rules, tables and images as the text typed', () => {
    for (const t of ['<script>alert(1)</script>', '<img src=x onerror=alert(1)>', '# not a heading', '![i](https://x.io/i.png)', 'a | b', '&amp;']) {
      expect(plainText(t), t).toBe(t)
    }
  })

  it('marks mentions in text but not in code or links', () => {
    expect(inline('@bob `@bob`', ['bob']).map((n) => n.type)).toEqual(['mention', 'text', 'code'])
  })

  it('keeps unclosed markers as text', () => {
    expect(plainText('a `b ||c **d ~~e')).toBe('a `b ||c **d ~~e')
  })
})

describe('plainText', () => {
  it('drops markup, one line per block, and masks spoilers', () => {
    expect(plainText('**bold** and ||secret||\n\n> quoted\n- one\n- two\n\n```js\nx()\n```')).toBe(
      `bold and ${SPOILER_MASK}\nquoted\none\ntwo\nx()`,
    )
  })
})

describe('link text', () => {
  it('shows a host that is not plain ASCII as punycode, as the browser gets it (no look-alike of apple.com)', () => {
    const link = (t: string) => {
      const n = inline(t).find((x) => x.type === 'link') as { href: string; children: MdNode[] } | undefined
      return n && { href: n.href, text: n.children.map((c) => ('text' in c ? c.text : '')).join('') }
    }
    const spoof = 'https://xn--pple-43d.com/login'
    expect(link(spoof)).toEqual({ href: spoof, text: spoof })
    expect(link('<https://xn--pple-43d.com/login>')).toEqual({ href: spoof, text: spoof })
    expect(link('https://\u0430pple.com/login')).toEqual({ href: spoof, text: spoof })
    expect(link('a@\u0430pple.com')).toEqual({ href: 'mailto:a@xn--pple-43d.com', text: 'a@xn--pple-43d.com' })
    // ASCII hosts read as before, %-escapes of the path decoded.
    expect(link('https://example.com/caf%C3%A9?q=xn--1')).toEqual({ href: 'https://example.com/caf%C3%A9?q=xn--1', text: 'https://example.com/café?q=xn--1' })
  })
})

describe('isOpenableLink', () => {
  it('allows http(s) with a host and mailto with an address only', () => {
    expect(['https://a.io', 'http://a.io', 'mailto:a@b.co', 'MAILTO:a@b.co?Subject=hi&body=x&cc=c@d.io'].map(isOpenableLink)).toEqual([true, true, true, true])
    expect(['javascript:alert(1)', 'data:text/html,x', 'file:///etc/passwd', 'mailto:', 'https://', 'courier://chat/bob'].map(isOpenableLink))
      .toEqual([false, false, false, false, false, false])
  })

  it('never opens a mail draft that attaches a local file (attach=, a field mail clients honour)', () => {
    for (const evil of [
      'mailto:a@b.co?attach=/home/me/.ssh/id_rsa',
      'mailto:a@b.co?subject=hi&Attachment=~/.ssh/id_rsa',
      'mailto:a@b.co?%61ttach=/etc/passwd',
      'mailto:a@b.co?body=x&x-attach=file:///etc/shadow',
    ]) {
      expect(isOpenableLink(evil), evil).toBe(false)
      // Neither auto-detected nor written as an autolink does it become one.
      for (const text of [evil, `<${evil}>`, `see ${evil} now`]) {
        const hrefs = JSON.stringify(parseMessage(text)).match(/"href":"[^"]*"/g) ?? []
        expect(hrefs.filter((h) => /attach|%61/i.test(h)), text).toEqual([])
      }
    }
  })
})
