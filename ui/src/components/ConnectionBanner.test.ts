import { beforeEach, describe, expect, it } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import { mountWith, setup } from '../testing'
import type { MockTransport } from '../services/mockTransport'
import ConnectionBanner from './ConnectionBanner.vue'

let t: MockTransport

describe('ConnectionBanner', () => {
  beforeEach(() => {
    t = setup()
    document.body.innerHTML = ''
  })

  it('says which server it is connecting to', async () => {
    const w = mountWith(ConnectionBanner)
    t.emit({ type: 'connection', state: 'connecting', url: 'wss://chat.example.com/v1' })
    await flushPromises()
    expect(w.find('[data-testid="connection-banner"]').text()).toBe('Connecting to chat.example.com…')
  })

  it('counts down to the next attempt while reconnecting', async () => {
    const w = mountWith(ConnectionBanner)
    t.emit({ type: 'connection', state: 'reconnecting', url: 'wss://chat.example.com/v1', retry_in_ms: 4000 })
    await flushPromises()
    expect(w.find('[data-testid="connection-banner"]').text()).toMatch(/^Couldn't reach chat\.example\.com — retrying in [34] s\. Your messages are saved and will be sent\.$/)
  })

  it('says a session refused for a limit (4029, v1.2) is not a network fault', async () => {
    const w = mountWith(ConnectionBanner)
    t.emit({ type: 'connection', state: 'reconnecting', url: 'wss://chat.example.com/v1', retry_in_ms: 30000, close_code: 4029, reason: 'too many sessions' })
    await flushPromises()
    expect(w.find('[data-testid="connection-banner"]').text()).toMatch(/^You're signed in on too many devices at once\. Sign out on one of them; retrying in (29|30) s\.$/)
    t.emit({ type: 'connection', state: 'reconnecting', url: 'wss://chat.example.com/v1', retry_in_ms: 9000, reason: 'hello failed: limit_reached: at most 16 live sessions per user; close one first' })
    await flushPromises()
    expect(w.find('[data-testid="connection-banner"]').text()).toMatch(/^You're signed in on too many devices/)
    t.emit({ type: 'connection', state: 'reconnecting', url: 'wss://chat.example.com/v1', retry_in_ms: 5000, close_code: 4029, reason: 'rate abuse' })
    await flushPromises()
    expect(w.find('[data-testid="connection-banner"]').text()).toMatch(/slow down/)
  })

  it('promises to send later when offline, and disappears when connected', async () => {
    const w = mountWith(ConnectionBanner)
    t.emit({ type: 'connection', state: 'disconnected' })
    await flushPromises()
    expect(w.find('[data-testid="connection-banner"]').text()).toBe("You're offline. Messages will be sent when you're back online.")
    t.emit({ type: 'connection', state: 'connected' })
    await flushPromises()
    expect(w.find('[data-testid="connection-banner"]').exists()).toBe(false)
  })

  it('speaks Chinese when the app does', async () => {
    const w = mountWith(ConnectionBanner, { locale: 'zh-CN' })
    t.emit({ type: 'connection', state: 'disconnected' })
    await flushPromises()
    expect(w.find('[data-testid="connection-banner"]').text()).toBe('你已离线。恢复联网后消息会自动发送。')
  })
})
