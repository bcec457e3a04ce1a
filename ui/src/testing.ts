// Test helpers: a fresh Pinia with a MockTransport, and mounting with i18n.
import { createPinia, setActivePinia } from 'pinia'
import { mount } from '@vue/test-utils'
import type { Component } from 'vue'
import { MockTransport } from './services/mockTransport'
import { setTransport } from './services/transport'
import { createAppI18n } from './i18n'
import { useSessionStore } from './stores/session'
import { routeEvent } from './stores/events'
import type { MessageView } from './types/model'

export function setup(me = 'me'): MockTransport {
  const pinia = createPinia()
  setActivePinia(pinia)
  const t = new MockTransport({ me })
  setTransport(t)
  useSessionStore().account = { user: me, server: { mode: 'embedded' } }
  // Events take the app's real path: transport → router → stores.
  void t.onEvent(routeEvent)
  return t
}

/** Mounts with the active Pinia and an English i18n. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function mountWith(component: Component, options: { props?: Record<string, any>; locale?: 'en' | 'zh-CN' } = {}) {
  const i18n = createAppI18n(options.locale ?? 'en')
  // The active pinia from setup() is used by the stores; no plugin needed to share it.
  return mount(component, { props: options.props, global: { plugins: [i18n] }, attachTo: document.body })
}

export function msg(partial: Partial<MessageView> & { seq: number | null }): MessageView {
  return {
    conv: 'dm:alice:me',
    mid: partial.seq === null ? null : `m${partial.seq}`,
    cid: `c${partial.seq ?? Math.random()}`,
    from: 'alice',
    to: { user: 'me' },
    kind: 'text',
    body: { text: `message ${partial.seq}` },
    ts: 1_700_000_000_000 + (partial.seq ?? 0) * 1000,
    status: 'received',
    ...partial,
  }
}
