// The dialogs a hostile peer's content leads to, as a user sees them: a
// channel link shows the channel and joins only on Join; a program a peer
// sent is named and opens only on "Open anyway".
import { beforeEach, describe, expect, it } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import { mountWith, setup } from '../../testing'
import type { MockTransport } from '../../services/mockTransport'
import { startApp, subscribeShell } from '../../stores/startup'
import { useMediaStore } from '../../stores/media'
import { useConversationsStore } from '../../stores/conversations'
import ConfirmDialog from './ConfirmDialog.vue'

describe('confirmation dialogs for what a peer sends', () => {
  let t: MockTransport
  beforeEach(async () => {
    t = setup()
    await subscribeShell()
  })

  it('a channel link shows title, topic and member count, and joins only on Join', async () => {
    t.channelList.push({ channel: 'rust', title: 'Rustaceans', topic: 'ownership & borrowing', private: false, members: 42 })
    await startApp()
    const w = mountWith(ConfirmDialog)
    t.emitDeepLink({ kind: 'channel', channel: 'rust' })
    await flushPromises()
    const body = document.body.textContent ?? ''
    expect(body).toContain('Join #rust?')
    expect(document.querySelector('[data-testid="confirm-channel-title"]')?.textContent).toBe('Rustaceans')
    expect(document.querySelector('[data-testid="confirm-channel-topic"]')?.textContent).toBe('ownership & borrowing')
    expect(document.querySelector('[data-testid="confirm-channel"]')?.textContent).toContain('42 members')
    expect(t.callsOf('join')).toEqual([])
    ;(document.querySelector('[data-testid="confirm-ok"]') as HTMLElement).click()
    await flushPromises()
    expect(t.callsOf('join')).toEqual([['rust']])
    expect(useConversationsStore().activeConv).toBe('ch:rust')
    w.unmount()
  })

  it('Cancel on a channel link joins nothing', async () => {
    t.channelList.push({ channel: 'rust', title: 'Rust', topic: '', private: false, members: 1 })
    await startApp()
    const w = mountWith(ConfirmDialog)
    t.emitDeepLink({ kind: 'channel', channel: 'rust' })
    await flushPromises()
    ;(document.querySelector('[data-testid="confirm-cancel"]') as HTMLElement).click()
    await flushPromises()
    expect(t.callsOf('join')).toEqual([])
    expect(document.querySelector('[data-testid="confirm-channel"]')).toBeNull()
    w.unmount()
  })

  it('a program is named with its risk, in Chinese too, and opens only when confirmed', async () => {
    t.failNext('openMedia', 'confirm_required', 'this file can run programs') // the shell's answer
    const w = mountWith(ConfirmDialog, { locale: 'zh-CN' })
    const opening = useMediaStore().open('m_01J9ZS1A7PQ8R2XKJT3V4W5Y6H', 'invoice.pdf.exe')
    await flushPromises()
    const text = document.querySelector('[data-testid="confirm-message"]')?.textContent ?? ''
    expect(text).toContain('invoice.pdf.exe')
    expect(text).toContain('运行程序')
    expect(t.callsOf('openMedia').filter((c) => c[2] === true)).toEqual([])
    ;(document.querySelector('[data-testid="confirm-ok"]') as HTMLElement).click()
    await opening
    expect(t.callsOf('openMedia').at(-1)).toEqual(['m_01J9ZS1A7PQ8R2XKJT3V4W5Y6H', 'invoice.pdf.exe', true])
    w.unmount()
  })
})
