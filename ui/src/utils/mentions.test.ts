import { describe, expect, it } from 'vitest'
import { filterCandidates, findMentions, mentionQueryAt, splitMentions } from './mentions'
import { parseMessage } from './markdown'

describe('mentions', () => {
  it('finds the @query being typed before the caret', () => {
    expect(mentionQueryAt('hi @al', 6)).toEqual({ start: 3, query: 'al' })
    expect(mentionQueryAt('@', 1)).toEqual({ start: 0, query: '' })
    expect(mentionQueryAt('hi @al there', 12)).toBeNull()
    expect(mentionQueryAt('bob@al', 6)).toBeNull()
    expect(mentionQueryAt('你好，@李', 5)).toEqual({ start: 3, query: '李' })
  })

  it('ranks prefix matches of id or name first', () => {
    const list = [
      { user: 'sam', name: 'Sam Ortiz' },
      { user: 'alice', name: 'Alice Martin' },
      { user: 'mart', name: 'Mart Ortiz' },
    ]
    expect(filterCandidates(list, 'mart').map((c) => c.user)).toEqual(['mart', 'alice'])
    expect(filterCandidates(list, 'ortiz').map((c) => c.user)).toEqual(['mart', 'sam'])
    expect(filterCandidates(list, '').map((c) => c.user)).toEqual(['alice', 'mart', 'sam'])
  })

  it('collects mentioned members once, in order, ignoring e-mails and full stops', () => {
    const ids = ['alice', 'li.lei', 'bob']
    expect(findMentions('@bob and @alice, then @bob again', ids)).toEqual(['bob', 'alice'])
    expect(findMentions('thanks @li.lei.', ids)).toEqual(['li.lei'])
    expect(findMentions('mail alice@example.com or @carol', ids)).toEqual([])
  })

  it('splits text around mentions of the listed ids only', () => {
    expect(splitMentions('hi @alice and @carol.', ['alice'])).toEqual([
      { kind: 'text', text: 'hi ' },
      { kind: 'mention', text: '@alice', user: 'alice' },
      { kind: 'text', text: ' and @carol.' },
    ])
    expect(splitMentions('hi @alice', [])).toEqual([{ kind: 'text', text: 'hi @alice' }])
  })

  it('marks mentions in message text, but not inside code or links', () => {
    const [p] = parseMessage('@bob see `@bob` at https://x.org/@bob', ['bob'])
    expect(p.type === 'p' && p.children.map((s) => s.type)).toEqual(['mention', 'text', 'code', 'text', 'link'])
  })
})
