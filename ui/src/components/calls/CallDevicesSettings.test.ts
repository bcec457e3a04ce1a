// Settings → Calls: the device lists, the choice kept, and the mic test
// meter following the levels the shell sends.
import { beforeEach, describe, expect, it } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import { mountWith, setup } from '../../testing'
import type { MockTransport } from '../../services/mockTransport'
import CallDevicesSettings from './CallDevicesSettings.vue'

describe('call devices settings', () => {
  let t: MockTransport
  beforeEach(() => {
    t = setup()
    t.deviceList = [
      { id: 'mic-a', name: 'USB mic', kind: 'mic' },
      { id: 'cam-a', name: 'Webcam', kind: 'camera' },
    ]
  })

  it('lists devices by kind and keeps the choice', async () => {
    const w = mountWith(CallDevicesSettings)
    await flushPromises()
    const mic = w.find('[data-testid="device-mic"]')
    expect(mic.findAll('option').map((o) => o.text())).toEqual(['System default', 'USB mic'])
    expect(w.find('[data-testid="device-speaker"]').findAll('option').map((o) => o.text())).toEqual(['System default'])
    await mic.setValue('mic-a')
    await flushPromises()
    expect(t.callsOf('callSetDevices')).toEqual([[{ mic: 'mic-a', camera: null, speaker: null }]])
    await w.find('[data-testid="device-mic"]').setValue('')
    await flushPromises()
    expect(t.callsOf('callSetDevices')[1]).toEqual([{ mic: null, camera: null, speaker: null }])
  })

  it('the mic test meter moves with the levels and stops with the dialog', async () => {
    const w = mountWith(CallDevicesSettings, { locale: 'zh-CN' })
    await flushPromises()
    await w.find('[data-testid="mic-test"]').trigger('click')
    await flushPromises()
    expect(w.find('[data-testid="mic-test"]').text()).toBe('停止测试')
    t.micLevels?.(-15)
    await flushPromises()
    expect(w.find('[data-testid="mic-test-meter"]').attributes('data-level')).toBe('0.75')
    w.unmount()
    await flushPromises()
    expect(t.callsOf('micTestStop')).toHaveLength(1)
  })

  it.each([
    ['no_device', 'No microphone found. Connect one, or pick another above.'],
    ['unavailable', 'The microphone test is not available on this computer.'],
  ])('says why when the mic test cannot start (%s)', async (code, words) => {
    t.failNext('micTestStart', code, 'device: no microphone')
    const w = mountWith(CallDevicesSettings)
    await flushPromises()
    await w.find('[data-testid="mic-test"]').trigger('click')
    await flushPromises()
    expect(w.find('[data-testid="mic-test-error"]').text()).toBe(words)
    expect(w.find('[data-testid="mic-test"]').text()).toBe('Test microphone')
  })
})
