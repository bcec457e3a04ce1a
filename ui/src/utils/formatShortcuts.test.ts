import { describe, expect, it } from 'vitest'
import { applyEdit, formatEdit, formatForKey, modKeyLabel } from './formatShortcuts'

const key = (k: string, mods: Partial<KeyboardEvent> = {}) =>
  ({ key: k, code: `Key${k.toUpperCase()}`, ctrlKey: false, metaKey: false, altKey: false, shiftKey: false, ...mods }) as KeyboardEvent

describe('formatForKey', () => {
  it('maps Ctrl or ⌘ with B, I, E and Shift+C', () => {
    expect(formatForKey(key('b', { ctrlKey: true }))).toBe('bold')
    expect(formatForKey(key('i', { metaKey: true }))).toBe('italic')
    expect(formatForKey(key('e', { ctrlKey: true }))).toBe('code')
    expect(formatForKey(key('C', { ctrlKey: true, shiftKey: true }))).toBe('codeBlock')
  })
  it('ignores other combinations', () => {
    expect(formatForKey(key('b'))).toBeNull()
    expect(formatForKey(key('b', { ctrlKey: true, altKey: true }))).toBeNull()
    expect(formatForKey(key('c', { ctrlKey: true }))).toBeNull()
    expect(formatForKey(key('b', { ctrlKey: true, shiftKey: true }))).toBeNull()
  })
  it('reads the physical key, so other keyboard layouts work', () => {
    expect(formatForKey({ key: 'и', code: 'KeyB', ctrlKey: true, metaKey: false, altKey: false, shiftKey: false })).toBe('bold')
  })
})

describe('formatEdit', () => {
  const run = (text: string, s: number, e: number, k: Parameters<typeof formatEdit>[3]) => {
    const edit = formatEdit(text, s, e, k)
    const out = applyEdit(text, edit)
    return [out, out.slice(edit.selStart, edit.selEnd)]
  }
  it('wraps and unwraps the selection', () => {
    expect(run('a b c', 2, 3, 'bold')).toEqual(['a **b** c', 'b'])
    expect(run('a **b** c', 4, 5, 'bold')).toEqual(['a b c', 'b'])
    expect(run('a b', 2, 3, 'code')).toEqual(['a `b`', 'b'])
  })
  it('starts a code block on a new line and ends it on its own', () => {
    expect(run('x\ny', 0, 3, 'codeBlock')).toEqual(['```\nx\ny\n```', 'x\ny'])
    expect(run('see: y!', 5, 6, 'codeBlock')).toEqual(['see: \n```\ny\n```\n!', 'y'])
  })
})

it('names the modifier ⌘ on macOS and Ctrl elsewhere', () => {
  expect(modKeyLabel('MacIntel')).toBe('⌘')
  expect(modKeyLabel('Linux x86_64')).toBe('Ctrl')
})
