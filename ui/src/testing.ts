// Test helpers: a fresh Pinia with a MockTransport, mounting with i18n, and
// building the views and events the client core would report.
import { createPinia, setActivePinia } from 'pinia'
import { mount } from '@vue/test-utils'
import type { Component } from 'vue'
import { MockTransport } from './services/mockTransport'
import { setTransport } from './services/transport'
import { createAppI18n } from './i18n'
import { useSessionStore } from './stores/session'
import { routeEvent } from './stores/events'
import { useCallsStore } from './stores/calls'
import type { ClientEvent } from './types/events'
import type { MessageView } from './types/model'

export function setup(me = 'me'): MockTransport {
  const pinia = createPinia()
  setActivePinia(pinia)
  const t = new MockTransport({ me })
  setTransport(t)
  useSessionStore().account = { user: me, server: { mode: 'embedded' } }
  // Events take the app's real path: transport → router → stores.
  void t.onEvent(routeEvent)
  void t.onCall((u) => useCallsStore().apply(u))
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

/** The core's `message_updated` for `m` with `patch` applied (an `undefined` field is gone). */
export function updated(m: MessageView, patch: Partial<MessageView> = {}): ClientEvent {
  const message = { ...m, ...patch }
  for (const k of Object.keys(patch) as (keyof MessageView)[]) if (patch[k] === undefined) delete message[k]
  return { type: 'message_updated', message }
}
