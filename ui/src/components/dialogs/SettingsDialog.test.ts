import { beforeEach, describe, expect, it } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import { mountWith, setup } from '../../testing'
import type { MockTransport } from '../../services/mockTransport'
import SettingsDialog from './SettingsDialog.vue'

describe('SettingsDialog: desktop settings', () => {
  let t: MockTransport
  beforeEach(() => {
    t = setup()
    document.body.innerHTML = ''
  })

  const box = (w: ReturnType<typeof mountWith>) => w.find('[data-testid="start-at-login"]').element as HTMLInputElement

  it('shows start at login off by default and turns it on at the OS', async () => {
    const w = mountWith(SettingsDialog)
    await flushPromises()
    expect(box(w).checked).toBe(false)
    box(w).checked = true
    await w.find('[data-testid="start-at-login"]').trigger('change')
    await flushPromises()
    expect(t.startsAtLogin).toBe(true)
    expect(box(w).checked).toBe(true)
  })

  it('says why start at login could not be turned on, and stays off', async () => {
    const w = mountWith(SettingsDialog)
    await flushPromises()
    t.failNext('setStartAtLogin', 'autostart_failed', "Courier couldn't turn on start at login: Permission denied")
    box(w).checked = true
    await w.find('[data-testid="start-at-login"]').trigger('change')
    await flushPromises()
    expect(box(w).checked).toBe(false)
    expect(w.find('[data-testid="start-at-login-error"]').text()).toContain('Permission denied')
  })

  it('shows the error only once the toggle is back to what the OS has', async () => {
    const w = mountWith(SettingsDialog)
    await flushPromises()
    t.failNext('setStartAtLogin', 'autostart_failed', "Courier couldn't turn on start at login: Permission denied")
    let reread: (on: boolean) => void = () => {}
    t.when('startAtLogin').once().answer(() => new Promise<boolean>((r) => (reread = r)))
    box(w).checked = true
    await w.find('[data-testid="start-at-login"]').trigger('change')
    await flushPromises()
    // The OS is still being asked: no error beside a box that reads on.
    expect(w.find('[data-testid="start-at-login-error"]').exists()).toBe(false)
    reread(false)
    await flushPromises()
    expect(w.find('[data-testid="start-at-login-error"]').text()).toContain('Permission denied')
    expect(box(w).checked).toBe(false)
  })

  it('opens the logs folder', async () => {
    const w = mountWith(SettingsDialog)
    await w.find('[data-testid="open-logs"]').trigger('click')
    await flushPromises()
    expect(t.logsOpened).toBe(1)
  })
})
