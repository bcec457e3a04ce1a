// `:shortcode:` in the composer: the suggestion list and its keys (the
// same completion as @mentions), the closing colon, and sending.
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import { mountWith, setup } from '../../testing'
import type { MockTransport } from '../../services/mockTransport'
import type { Settings } from '../../types/app'
import { useConversationsStore } from '../../stores/conversations'
import { useMessagesStore } from '../../stores/messages'
import { useSettingsStore } from '../../stores/settings'
import Composer from './Composer.vue'

const DM = 'dm:alice:me'
let t: MockTransport

async function mountComposer() {
  await useSettingsStore().load()
  await useConversationsStore().load()
  await useMessagesStore().openLatest(DM)
  const w = mountWith(Composer, { props: { conv: DM, title: 'Alice', replyTo: null } })
  return { w, input: w.find('[data-testid="composer-input"]') }
}
type Mounted = Awaited<ReturnType<typeof mountComposer>>
const field = (m: Mounted) => m.input.element as HTMLTextAreaElement
const list = (m: Mounted) => m.w.find('[data-testid="emoji-suggestions"]')
const options = (m: Mounted) => m.w.findAll('[data-testid="emoji-option"]').map((o) => o.attributes('data-emoji'))
const selected = (m: Mounted) => m.w.find('[data-testid="emoji-option"][aria-selected="true"]').attributes('data-emoji')
const key = (m: Mounted, k: string, extra: Record<string, unknown> = {}) => m.input.trigger('keydown', { key: k, ...extra })

async function type(m: Mounted, value: string) {
  await m.input.setValue(value)
  await flushPromises()
}

async function suggestFor(m: Mounted, value: string) {
  await type(m, value)
  await vi.waitFor(() => expect(list(m).exists()).toBe(true))
}

describe('Composer :emoji: completion', () => {
  beforeEach(() => {
    t = setup()
    document.body.innerHTML = ''
    t.addConversation({ conv: DM })
  })

  it('opens on `:` and two letters with the best matches, shortcode shown', async () => {
    const m = await mountComposer()
    await type(m, 'hi :s')
    expect(list(m).exists()).toBe(false)
    await suggestFor(m, 'hi :smi')
    expect(options(m)[0]).toBe('😄')
    expect(options(m).length).toBeLessThanOrEqual(8)
    expect(list(m).text()).toContain(':smile:')
    await suggestFor(m, 'ok :thu')
    expect(options(m)[0]).toBe('👍')
    expect(list(m).find('[data-emoji="👍"]').text()).toContain(':thumbsup:') // the code being typed, not :+1:
    expect(m.input.attributes('aria-activedescendant')).toBe('emoji-list-0')
  })

  it('moves with ↑/↓ (wrapping), inserts the pick in the tone on Enter, and does not send', async () => {
    t.settings = { ...t.settings, emoji_skin_tone: 'dark' }
    const m = await mountComposer()
    await suggestFor(m, 'bye :wav')
    expect(selected(m)).toBe('👋')
    expect(list(m).text()).toContain('👋🏿')
    await key(m, 'ArrowDown')
    const second = selected(m)
    expect(second).not.toBe('👋')
    await key(m, 'ArrowUp')
    await key(m, 'ArrowUp')
    expect(selected(m)).toBe(options(m).at(-1))
    await key(m, 'ArrowDown')
    await key(m, 'Enter')
    await flushPromises()
    expect(field(m).value).toBe('bye 👋🏿')
    expect(list(m).exists()).toBe(false)
    expect(t.callsOf('sendText')).toEqual([])
    expect((t.callsOf('setSettings').at(-1)?.[0] as Settings).recent_emoji).toEqual(['👋'])
  })

  it('picks with Tab too, keeping the text after the caret', async () => {
    const m = await mountComposer()
    await suggestFor(m, 'great :tad')
    await key(m, 'Tab')
    expect(field(m).value).toBe('great 🎉')
  })

  it('closes on Esc without touching the text, and stays closed for that colon', async () => {
    const m = await mountComposer()
    await suggestFor(m, 'x :hea')
    await key(m, 'Escape')
    expect(list(m).exists()).toBe(false)
    expect(field(m).value).toBe('x :hea')
    await type(m, 'x :hear')
    expect(list(m).exists()).toBe(false)
    await key(m, 'Enter') // now Enter sends
    await flushPromises()
    expect(t.callsOf('sendText')).toHaveLength(1)
  })

  it('finds by Chinese name after a full-width colon', async () => {
    const m = await mountComposer()
    await suggestFor(m, '好 ：笑哭')
    expect(options(m)[0]).toBe('😂')
    await key(m, 'Enter')
    expect(field(m).value).toBe('好 😂')
  })

  it('turns a whole :shortcode: into its emoji on the closing colon', async () => {
    const m = await mountComposer()
    await suggestFor(m, 'nice :+1') // the data is loaded by now
    await type(m, 'nice :+1:')
    expect(field(m).value).toBe('nice 👍')
    await type(m, 'nice 👍 :nosuchthing:')
    expect(field(m).value).toBe('nice 👍 :nosuchthing:')
  })

  it('sends shortcodes as emoji, but not inside code', async () => {
    const m = await mountComposer()
    await type(m, 'ship it :rocket: `:rocket:`') // pasted: nothing converted yet
    expect(field(m).value).toBe('ship it :rocket: `:rocket:`')
    await key(m, 'Enter')
    await vi.waitFor(() => expect(t.callsOf('sendText')).toHaveLength(1))
    expect(t.callsOf('sendText')[0][1]).toBe('ship it 🚀 `:rocket:`')
  })
})
