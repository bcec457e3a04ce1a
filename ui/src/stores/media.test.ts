// Opening a file a peer sent: programs open only after the user confirms.
import { beforeEach, describe, expect, it } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import { setup } from '../testing'
import type { MockTransport } from '../services/mockTransport'
import { useMediaStore } from './media'
import { useUiStore } from './ui'
import { useToastsStore } from './toasts'

describe('opening media files', () => {
  let t: MockTransport
  beforeEach(() => {
    t = setup()
  })

  it('opens an ordinary file at once', async () => {
    await useMediaStore().open('m_1', 'report.pdf')
    expect(t.callsOf('openMedia')).toEqual([['m_1', 'report.pdf', undefined]])
    expect(useUiStore().confirming).toBeNull()
  })

  it('asks before opening a program, naming it, and opens only on yes', async () => {
    t.failNext('openMedia', 'confirm_required', 'this file can run programs') // the shell's answer
    const media = useMediaStore()
    const ui = useUiStore()
    const opening = media.open('m_2', 'invoice.pdf.exe')
    await flushPromises()
    expect(ui.confirming?.params?.name).toBe('invoice.pdf.exe')
    expect(ui.confirming?.danger).toBe(true)
    ui.answerConfirm(true)
    await opening
    expect(t.callsOf('openMedia')).toEqual([
      ['m_2', 'invoice.pdf.exe', undefined],
      ['m_2', 'invoice.pdf.exe', true],
    ])
  })

  it('names the program in the question without bidi characters, and opens the file as sent', async () => {
    t.failNext('openMedia', 'confirm_required', 'this file can run programs')
    const media = useMediaStore()
    const ui = useUiStore()
    const opening = media.open('m_4', 'invoice\u202Egpj.exe')
    await flushPromises()
    expect(ui.confirming?.params?.name).toBe('invoicegpj.exe')
    ui.answerConfirm(true)
    await opening
    expect(t.callsOf('openMedia').map((c) => c[1])).toEqual(['invoice\u202Egpj.exe', 'invoice\u202Egpj.exe'])
  })

  it('never opens a program the user declined', async () => {
    t.failNext('openMedia', 'confirm_required', 'this file can run programs')
    const media = useMediaStore()
    const ui = useUiStore()
    const opening = media.open('m_3', 'run.sh')
    await flushPromises()
    expect(ui.confirming?.params?.name).toBe('run.sh')
    ui.answerConfirm(false)
    await opening
    expect(t.callsOf('openMedia').filter((c) => c[2] === true)).toEqual([])
  })

  it('a file the core refuses (a hostile media id) is a toast, not an unhandled rejection', async () => {
    t.failNext('openMedia', 'invalid', 'not a valid media id: "m_x#.bat"')
    await useMediaStore().open('m_x#.bat', 'x.pdf')
    expect(useToastsStore().toasts.map((x) => [x.key, x.params?.name])).toEqual([['toast.openFailed', 'x.pdf']])
    expect(useUiStore().confirming).toBeNull()
  })
})
