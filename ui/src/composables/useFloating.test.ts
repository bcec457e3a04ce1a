import { afterEach, describe, expect, it, vi } from 'vitest'
import { defineComponent, h, nextTick, ref } from 'vue'
import { mount } from '@vue/test-utils'
import { useFloating } from './useFloating'
import type { Anchor } from './useFloating'

// A floating box of a given size opened at an anchor in a 1100 × 720 window.
function open(anchor: Anchor, size = { w: 280, h: 300 }) {
  vi.spyOn(HTMLElement.prototype, 'offsetWidth', 'get').mockReturnValue(size.w)
  vi.spyOn(HTMLElement.prototype, 'offsetHeight', 'get').mockReturnValue(size.h)
  Object.assign(window, { innerWidth: 1100, innerHeight: 720 })
  const Box = defineComponent(() => {
    const el = ref<HTMLElement | null>(null)
    const { style } = useFloating(el, () => anchor, () => {})
    return () => h('div', { ref: el, style: style.value, 'data-testid': 'box' })
  })
  return mount(Box, { attachTo: document.body })
}

async function placed(w: ReturnType<typeof open>) {
  await nextTick()
  await nextTick()
  const s = (w.get('[data-testid="box"]').element as HTMLElement).style
  return { left: parseFloat(s.left), top: parseFloat(s.top) }
}

describe('useFloating', () => {
  afterEach(() => {
    vi.restoreAllMocks()
    document.body.innerHTML = ''
  })

  it('opens below the point when it fits', async () => {
    expect(await placed(open({ x: 100, y: 100 }))).toEqual({ left: 100, top: 100 })
  })

  it('opens above a right click near the bottom and never past the bottom edge', async () => {
    const p = await placed(open({ x: 800, y: 600 }))
    expect(p.top + 300).toBeLessThanOrEqual(720 - 8)
    expect(p.top).toBe(300)
    expect(p.left + 280).toBeLessThanOrEqual(1100 - 8)
  })

  it('moves when its content grows after opening (it would hang off the bottom)', async () => {
    let grown: (() => void) | undefined
    vi.stubGlobal(
      'ResizeObserver',
      class {
        constructor(cb: () => void) {
          grown = cb
        }
        observe() {}
        disconnect() {}
      },
    )
    const w = open({ x: 800, y: 600 }, { w: 280, h: 100 })
    expect((await placed(w)).top).toBe(600)
    vi.spyOn(HTMLElement.prototype, 'offsetHeight', 'get').mockReturnValue(300)
    grown?.()
    await nextTick()
    const top = parseFloat((w.get('[data-testid="box"]').element as HTMLElement).style.top)
    expect(top + 300).toBeLessThanOrEqual(720 - 8)
    vi.unstubAllGlobals()
  })

  it('stays inside a window too short for either side', async () => {
    const p = await placed(open({ x: 10, y: 400, top: 200 }, { w: 200, h: 600 }))
    expect(p.top).toBeGreaterThanOrEqual(8)
    expect(p.top + 600).toBeLessThanOrEqual(720 - 8 + 0.5)
  })
})
