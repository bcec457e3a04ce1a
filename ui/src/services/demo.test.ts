// The browser demo starts on its fixtures, shows a conversation, and
// replays its script after a send (acknowledged, read, answered).
import { afterEach, describe, expect, it, vi } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { setTransport } from './transport'
import { applyScene, startDemo } from './demo'
import { routeEvent } from '../stores/events'
import { startApp } from '../stores/startup'
import { useSessionStore } from '../stores/session'
import { useConversationsStore } from '../stores/conversations'
import { useMessagesStore } from '../stores/messages'

const DM = 'dm:alice:me'

async function start(query: string) {
  setActivePinia(createPinia())
  const params = new URLSearchParams(query)
  const t = startDemo(params)
  setTransport(t)
  await t.onEvent(routeEvent)
  await useSessionStore().load()
  await startApp()
  await applyScene(params)
  return t
}

const texts = () => useMessagesStore().byConv.get(DM)!.items.map((m) => m.body.text)

/** Starts the demo on fake timers and sends `text` to Alice; returns how that message shows now. */
async function sendToAlice(text: string) {
  vi.useFakeTimers()
  await start('')
  const s = useMessagesStore()
  await s.openLatest(DM)
  const sent = (await s.sendText(DM, text))!
  return () => s.byConv.get(DM)!.items.find((m) => m.cid === sent.cid)!
}

describe('browser demo', () => {
  afterEach(() => vi.useRealTimers())

  it('starts signed in on its fixtures and opens the conversation a scene names', async () => {
    await start(`open=${DM}&still`)
    const c = useConversationsStore()
    expect(c.activeConv).toBe(DM)
    expect(c.sorted.length).toBeGreaterThan(5)
    await useMessagesStore().openLatest(DM)
    expect(texts()).toContain('From the offsite 🌅')
    expect(useMessagesStore().byConv.get(DM)!.items.some((m) => m.recalled)).toBe(true)
  })

  it('replays what follows a send: acknowledged, read, then an answer', async () => {
    const mine = await sendToAlice('Are you there?')
    expect(mine().status).toBe('pending')
    await vi.advanceTimersByTimeAsync(600)
    expect(mine().status).toBe('sent')
    await vi.advanceTimersByTimeAsync(1600)
    expect(mine().status).toBe('read')
    await vi.advanceTimersByTimeAsync(4000)
    expect(texts().at(-1)).toBe('Good question — let me check and get back to you.')
  })

  it('shows the failed state for a message asking for it', async () => {
    const mine = await sendToAlice('this will fail')
    await vi.advanceTimersByTimeAsync(600)
    expect(mine()).toMatchObject({ status: 'failed', error: 'too_large' })
  })
})
