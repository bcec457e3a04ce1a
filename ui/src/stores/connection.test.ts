import { beforeEach, describe, expect, it } from 'vitest'
import { setup } from '../testing'
import { useConnectionStore } from './connection'

describe('connection store', () => {
  beforeEach(() => setup())

  it('shows no banner and a green dot when connected', () => {
    const c = useConnectionStore()
    c.apply({ type: 'connection', state: 'connected', url: 'wss://chat.example.com/v1' })
    expect(c.banner).toBe('none')
    expect(c.dot).toBe('online')
    expect(c.host).toBe('chat.example.com')
  })

  it('counts down to the next reconnect attempt', () => {
    const c = useConnectionStore()
    c.apply({ type: 'connection', state: 'reconnecting', url: 'wss://h/v1', retry_in_ms: 4000 }, 10_000)
    expect(c.banner).toBe('reconnecting')
    expect(c.dot).toBe('trying')
    expect(c.secondsUntilRetry(10_000)).toBe(4)
    expect(c.secondsUntilRetry(12_500)).toBe(2)
    expect(c.secondsUntilRetry(20_000)).toBe(0)
  })

  it('forgets the countdown once connected again', () => {
    const c = useConnectionStore()
    c.apply({ type: 'connection', state: 'reconnecting', retry_in_ms: 4000 }, 0)
    c.apply({ type: 'connection', state: 'connected' }, 100)
    expect(c.secondsUntilRetry(100)).toBeNull()
    expect(c.everConnected).toBe(true)
  })

  it('is offline when the network is down, whatever the core is trying', () => {
    const c = useConnectionStore()
    c.apply({ type: 'connection', state: 'reconnecting', retry_in_ms: 1000 })
    c.setNetworkUp(false)
    expect(c.banner).toBe('offline')
    expect(c.dot).toBe('offline')
    c.setNetworkUp(true)
    expect(c.banner).toBe('reconnecting')
  })

  it('maps every core state to a banner', () => {
    const c = useConnectionStore()
    const seen: Record<string, string> = {}
    for (const state of ['disconnected', 'connecting', 'connected', 'reconnecting', 'stopped'] as const) {
      c.apply({ type: 'connection', state, reason: 'auth' })
      seen[state] = c.banner
    }
    expect(seen).toEqual({ disconnected: 'offline', connecting: 'connecting', connected: 'none', reconnecting: 'reconnecting', stopped: 'stopped' })
    expect(c.reason).toBe('auth')
  })
})
