import { beforeEach, describe, expect, it } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import { mountWith, setup } from '../../testing'
import type { MockTransport } from '../../services/mockTransport'
import { useConversationsStore } from '../../stores/conversations'
import { useMessagesStore } from '../../stores/messages'
import { useDraftsStore } from '../../stores/drafts'
import Composer from './Composer.vue'

const DM = 'dm:alice:me'
let t: MockTransport

async function mountComposer(conv = DM) {
  await useConversationsStore().load()
  await useMessagesStore().openLatest(conv)
  return mountWith(Composer, { props: { conv, title: 'Alice', replyTo: null } })
}

describe('Composer', () => {
  beforeEach(() => {
    t = setup()
    document.body.innerHTML = ''
    t.addConversation({ conv: DM })
    t.addConversation({ conv: 'ch:lobby' })
  })

  it('sends on Enter and clears the field', async () => {
    const w = await mountComposer()
    const input = w.find('[data-testid="composer-input"]')
    await input.setValue('hello there')
    await input.trigger('keydown', { key: 'Enter' })
    await flushPromises()
    expect(t.callsOf('sendText')).toEqual([[{ user: 'alice' }, 'hello there', undefined]])
    expect((input.element as HTMLTextAreaElement).value).toBe('')
  })

  it('adds a line on Shift+Enter and never sends while an IME is composing', async () => {
    const w = await mountComposer()
    const input = w.find('[data-testid="composer-input"]')
    await input.setValue('你好')
    await input.trigger('keydown', { key: 'Enter', shiftKey: true })
    await input.trigger('keydown', { key: 'Enter', isComposing: true })
    await flushPromises()
    expect(t.callsOf('sendText')).toEqual([])
  })

  it('does not send blank text', async () => {
    const w = await mountComposer()
    const input = w.find('[data-testid="composer-input"]')
    await input.setValue('   ')
    await input.trigger('keydown', { key: 'Enter' })
    await flushPromises()
    expect(t.callsOf('sendText')).toEqual([])
    expect(w.find('[data-testid="send"]').attributes('disabled')).toBeDefined()
  })

  it('keeps a draft per conversation and saves it to the core', async () => {
    const w = await mountComposer()
    const input = w.find('[data-testid="composer-input"]')
    await input.setValue('half a thought')
    await w.setProps({ conv: 'ch:lobby' })
    expect((input.element as HTMLTextAreaElement).value).toBe('')
    await w.setProps({ conv: DM })
    expect((input.element as HTMLTextAreaElement).value).toBe('half a thought')
    await useDraftsStore().flush()
    expect(t.callsOf('setDraft')).toContainEqual([DM, 'half a thought'])
  })

  it('sends typing notices while typing', async () => {
    const w = await mountComposer()
    await w.find('[data-testid="composer-input"]').trigger('input')
    expect(t.callsOf('typing')).toEqual([[DM]])
  })
})
