// Floating menus and pickers: placed at a point (a right click) or under an
// element, kept inside the window, closed by a click outside, a resize or a
// scroll of the list; focus goes back where it was when they close.
import { nextTick, onBeforeUnmount, onMounted, ref, watch } from 'vue'
import type { Ref } from 'vue'

/** Where to open: a point (x, y) — below it if it fits, else above `top` (or y). */
export interface Anchor {
  x: number
  y: number
  /** The top of the anchoring element, to open above it when there is no room below. */
  top?: number
  /** Align the right edge to x instead of the left edge. */
  alignRight?: boolean
  /** The button that opened it: a press on it is left to its own click (which may toggle). */
  trigger?: Element
}

/** The anchor of an element: under it, left-aligned (or right-aligned). */
export function anchorOf(el: Element, alignRight = false): Anchor {
  const r = el.getBoundingClientRect()
  return { x: alignRight ? r.right : r.left, y: r.bottom + 4, top: r.top - 4, alignRight, trigger: el }
}

export function useFloating(el: Ref<HTMLElement | null>, anchor: () => Anchor, onClose: () => void) {
  const style = ref<Record<string, string>>({ left: '0px', top: '0px', visibility: 'hidden' })
  let returnFocus: Element | null = null
  const MARGIN = 8

  function place(): void {
    const e = el.value
    if (!e) return
    const a = anchor()
    const w = e.offsetWidth
    const h = e.offsetHeight
    const vw = window.innerWidth
    const vh = window.innerHeight
    const x = a.alignRight ? a.x - w : a.x
    const left = Math.max(MARGIN, Math.min(x, vw - w - MARGIN))
    const below = a.y + h + MARGIN <= vh
    const wanted = below ? a.y : (a.top ?? a.y) - h
    // Never past the bottom edge, never above the top one.
    const top = Math.max(MARGIN, Math.min(wanted, vh - h - MARGIN))
    style.value = { left: `${left}px`, top: `${top}px` }
  }
  // Content can grow after the first placement (permissions arriving, the
  // emoji row): place again whenever the size changes.
  const resized = typeof ResizeObserver === 'undefined' ? null : new ResizeObserver(() => place())

  function onPointerDown(ev: Event): void {
    if (!(ev.target instanceof Node) || !el.value || el.value.contains(ev.target)) return
    if (anchor().trigger?.contains(ev.target)) return
    onClose()
  }
  function onResize(): void {
    onClose()
  }

  onMounted(async () => {
    returnFocus = document.activeElement
    await nextTick()
    place()
    if (el.value) resized?.observe(el.value)
    window.addEventListener('pointerdown', onPointerDown, true)
    window.addEventListener('resize', onResize)
  })
  onBeforeUnmount(() => {
    resized?.disconnect()
    window.removeEventListener('pointerdown', onPointerDown, true)
    window.removeEventListener('resize', onResize)
    // Give focus back unless something else (an editor, a dialog) took it meanwhile.
    const active = document.activeElement
    const ours = !active || active === document.body || (el.value?.contains(active) ?? false)
    if (ours && returnFocus instanceof HTMLElement && returnFocus.isConnected) returnFocus.focus()
  })
  watch(anchor, () => void nextTick(place))

  return { style, place }
}

/**
 * Keyboard for a menu: ↑/↓ (and ←/→) move between `[role="menuitem"]`s,
 * Home/End jump, Esc and Tab close. Returns the keydown handler.
 */
export function useMenuKeys(el: Ref<HTMLElement | null>, onClose: () => void) {
  function items(): HTMLElement[] {
    return [...(el.value?.querySelectorAll<HTMLElement>('[role="menuitem"]:not([disabled])') ?? [])]
  }
  function focusAt(i: number): void {
    const list = items()
    if (list.length === 0) return
    list[((i % list.length) + list.length) % list.length].focus()
  }
  function focusFirst(): void {
    focusAt(0)
  }
  function onKeydown(e: KeyboardEvent): void {
    const list = items()
    const i = list.indexOf(document.activeElement as HTMLElement)
    switch (e.key) {
      case 'ArrowDown':
      case 'ArrowRight':
        focusAt(i + 1)
        break
      case 'ArrowUp':
      case 'ArrowLeft':
        focusAt(i < 0 ? list.length - 1 : i - 1)
        break
      case 'Home':
        focusAt(0)
        break
      case 'End':
        focusAt(list.length - 1)
        break
      case 'Escape':
      case 'Tab':
        onClose()
        break
      default:
        return
    }
    e.preventDefault()
    e.stopPropagation()
  }
  return { onKeydown, focusFirst }
}
