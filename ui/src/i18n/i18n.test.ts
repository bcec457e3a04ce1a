import { describe, expect, it } from 'vitest'
import en from './en'
import zhCN from './zh-CN'
import { languageFor } from './index'

type Tree = { [k: string]: string | Tree }

function flatten(tree: Tree, prefix = ''): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(tree)) {
    const key = prefix ? `${prefix}.${k}` : k
    if (typeof v === 'string') out[key] = v
    else Object.assign(out, flatten(v, key))
  }
  return out
}

const EN = flatten(en)
const ZH = flatten(zhCN)
const placeholders = (s: string) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort()
const forms = (s: string) => s.split('|').length

/** Every source file of the UI, as text (Vite's glob import). */
const SOURCES = import.meta.glob(['../**/*.vue', '../**/*.ts', '!../**/*.test.ts'], { query: '?raw', import: 'default', eager: true }) as Record<string, string>

describe('i18n', () => {
  it('has exactly the same keys in English and Chinese', () => {
    expect(Object.keys(ZH).sort()).toEqual(Object.keys(EN).sort())
  })

  it('has no empty strings', () => {
    for (const [k, v] of [...Object.entries(EN), ...Object.entries(ZH)]) expect(v.trim(), k).not.toBe('')
  })

  it('uses the same placeholders and plural forms in both languages', () => {
    for (const k of Object.keys(EN)) {
      expect(placeholders(ZH[k] ?? ''), k).toEqual(placeholders(EN[k]))
      expect(forms(ZH[k] ?? ''), k).toBe(forms(EN[k]))
    }
  })

  it('defines every key the code uses', () => {
    const used = new Set<string>()
    for (const text of Object.values(SOURCES)) {
      for (const m of text.matchAll(/\bt\(\s*'([a-zA-Z_]+\.[a-zA-Z_.]+)'/g)) used.add(m[1])
    }
    expect(used.size).toBeGreaterThan(50)
    const missing = [...used].filter((k) => !(k in EN))
    expect(missing).toEqual([])
  })

  it('defaults to Chinese for any zh locale and English otherwise', () => {
    expect(languageFor('zh-CN')).toBe('zh-CN')
    expect(languageFor('zh-TW')).toBe('zh-CN')
    expect(languageFor('en-GB')).toBe('en')
    expect(languageFor('fr')).toBe('en')
    expect(languageFor(undefined)).toBe('en')
  })
})
