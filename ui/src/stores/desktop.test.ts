import { beforeEach, describe, expect, it } from 'vitest'
import { setup } from '../testing'
import type { MockTransport } from '../services/mockTransport'
import { useDesktopStore } from './desktop'

describe('desktop store', () => {
  let t: MockTransport
  beforeEach(() => { t = setup() })

  it('reads start at login from the OS and changes it there', async () => {
    const d = useDesktopStore()
    await d.load()
    expect(d.startAtLogin).toBe(false)
    await d.setStartAtLogin(true)
    expect(d.startAtLogin).toBe(true)
    expect(t.startsAtLogin).toBe(true)
    expect(d.startAtLoginError).toBeNull()
  })

  it('shows why turning it on failed, and the state the OS kept', async () => {
    const d = useDesktopStore()
    await d.load()
    t.failNext('setStartAtLogin', 'autostart_failed', "Courier couldn't turn on start at login: Not a directory")
    await d.setStartAtLogin(true)
    expect(d.startAtLogin).toBe(false)
    expect(d.startAtLoginError).toContain("couldn't turn on start at login")
    expect(d.busy).toBe(false)
    await d.setStartAtLogin(true)
    expect(d.startAtLoginError).toBeNull()
  })

  it('opens the logs folder through the shell', async () => {
    await useDesktopStore().openLogsFolder()
    expect(t.logsOpened).toBe(1)
  })
})
