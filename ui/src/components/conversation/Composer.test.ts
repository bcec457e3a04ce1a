import { beforeEach, describe, expect, it } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import { mountWith, setup } from '../../testing'
import type { MockTransport } from '../../services/mockTransport'
import { useConversationsStore } from '../../stores/conversations'
import { useMessagesStore } from '../../stores/messages'
import { useDraftsStore } from '../../stores/drafts'
import { useChannelsStore } from '../../stores/channels'
import { useServerStore } from '../../stores/server'
import { useProfilesStore } from '../../stores/profiles'
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

  it('asks the webview to spell-check in the UI language', async () => {
    const input = (await mountComposer()).find('[data-testid="composer-input"]')
    expect(input.attributes('spellcheck')).toBe('true')
    expect(input.attributes('lang')).toBe('en')
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

  it('edits the last own message on ↑ in an empty composer, not while text is typed', async () => {
    await useServerStore().load()
    t.addMessage({ conv: DM, from: 'me', body: { text: 'first' } })
    t.addMessage({ conv: DM, from: 'me', body: { text: 'second' } })
    t.addMessage({ conv: DM, from: 'alice', body: { text: 'theirs' } })
    const w = await mountComposer()
    const input = w.find('[data-testid="composer-input"]')
    await input.setValue('draft')
    await input.trigger('keydown', { key: 'ArrowUp' })
    expect(useMessagesStore().editing).toBeNull()
    await input.setValue('')
    await input.trigger('keydown', { key: 'ArrowUp' })
    const editing = useMessagesStore().editing
    expect(editing?.conv).toBe(DM)
    expect(useMessagesStore().byConv.get(DM)!.items.find((m) => m.cid === editing!.cid)!.body.text).toBe('second')
  })

  it('does not edit on ↑ when the last own message is past the edit window', async () => {
    await useServerStore().load()
    t.addMessage({ conv: DM, from: 'me', ts: Date.now() - 3 * 24 * 3600_000, body: { text: 'old' } })
    const w = await mountComposer()
    await w.find('[data-testid="composer-input"]').trigger('keydown', { key: 'ArrowUp' })
    expect(useMessagesStore().editing).toBeNull()
  })
})

describe('Composer mention picker', () => {
  const CH = 'ch:team'

  beforeEach(async () => {
    t = setup()
    document.body.innerHTML = ''
    t.addConversation({ conv: CH })
    t.memberLists.set('team', [
      { user: 'me', online: true, role: 'owner' },
      { user: 'alice', online: true, role: 'member' },
      { user: 'albert', online: false, role: 'member' },
      { user: 'li.lei', online: true, role: 'admin' },
    ])
    t.profilesByUser.set('alice', { user: 'alice', name: 'Alice Martin', avatar: '', status: '' })
    t.profilesByUser.set('albert', { user: 'albert', name: 'Albert Wu', avatar: '', status: '' })
    t.profilesByUser.set('li.lei', { user: 'li.lei', name: '李雷', avatar: '', status: '' })
    await useServerStore().load()
    await useChannelsStore().loadMembers('team')
  })

  async function typeIn(w: Awaited<ReturnType<typeof mountComposer>>, value: string) {
    const input = w.find('[data-testid="composer-input"]')
    await input.setValue(value)
    const el = input.element as HTMLTextAreaElement
    el.setSelectionRange(value.length, value.length)
    await input.trigger('input')
    return input
  }
  const options = (w: Awaited<ReturnType<typeof mountComposer>>) => w.findAll('[data-testid="mention-option"]').map((o) => o.attributes('data-user'))

  it('opens on @ with the channel members but not the user', async () => {
    const w = await mountComposer(CH)
    expect(w.find('[data-testid="mention-picker"]').exists()).toBe(false)
    await typeIn(w, 'hi @')
    expect(options(w).sort()).toEqual(['albert', 'alice', 'li.lei'])
  })

  it('does not open for an @ inside a word (an e-mail address)', async () => {
    const w = await mountComposer(CH)
    await typeIn(w, 'mail bob@a')
    expect(w.find('[data-testid="mention-picker"]').exists()).toBe(false)
  })

  it('filters by id or display name as you type', async () => {
    const w = await mountComposer(CH)
    await typeIn(w, '@al')
    expect(options(w)).toEqual(['albert', 'alice'])
    await typeIn(w, '@ali')
    expect(options(w)).toEqual(['alice'])
    await typeIn(w, '@李')
    expect(options(w)).toEqual(['li.lei'])
    await typeIn(w, '@zzz')
    expect(w.find('[data-testid="mention-picker"]').exists()).toBe(false)
  })

  it('selects with the arrow keys and Enter, inserts the mention and sends it in mentions', async () => {
    const w = await mountComposer(CH)
    const input = await typeIn(w, 'ping @al')
    const selected = () => w.find('[aria-selected="true"]').attributes('data-user')
    expect(selected()).toBe('albert')
    await input.trigger('keydown', { key: 'ArrowDown' })
    expect(selected()).toBe('alice')
    await input.trigger('keydown', { key: 'Enter' })
    await flushPromises()
    // Enter picked the member; it did not send.
    expect(t.callsOf('sendText')).toEqual([])
    expect((input.element as HTMLTextAreaElement).value).toBe('ping @alice ')
    expect(w.find('[data-testid="mention-picker"]').exists()).toBe(false)
    await typeIn(w, 'ping @alice please review')
    await input.trigger('keydown', { key: 'Enter' })
    await flushPromises()
    expect(t.callsOf('sendText')).toEqual([[{ channel: 'team' }, 'ping @alice please review', undefined, ['alice']]])
    const sent = t.messages.get(CH)!.at(-1)!
    expect(sent.body.mentions).toEqual(['alice'])
  })

  it('selects with Tab too, and ArrowUp wraps around', async () => {
    const w = await mountComposer(CH)
    const input = await typeIn(w, '@')
    await input.trigger('keydown', { key: 'ArrowUp' })
    const last = w.find('[aria-selected="true"]').attributes('data-user')
    await input.trigger('keydown', { key: 'Tab' })
    expect((input.element as HTMLTextAreaElement).value).toBe(`@${last} `)
  })

  it('closes on Esc without touching the text or closing anything else', async () => {
    const w = await mountComposer(CH)
    const input = await typeIn(w, 'hey @al')
    const esc = new KeyboardEvent('keydown', { key: 'Escape', bubbles: true, cancelable: true })
    let reachedWindow = false
    const spy = () => (reachedWindow = true)
    window.addEventListener('keydown', spy)
    input.element.dispatchEvent(esc)
    window.removeEventListener('keydown', spy)
    await flushPromises()
    expect(w.find('[data-testid="mention-picker"]').exists()).toBe(false)
    expect(reachedWindow).toBe(false)
    expect((input.element as HTMLTextAreaElement).value).toBe('hey @al')
  })

  it('sends only mentions still in the text, and none for plain text', async () => {
    const w = await mountComposer(CH)
    const input = await typeIn(w, 'no one here, mail bob@alice.com')
    await input.trigger('keydown', { key: 'Enter' })
    await flushPromises()
    expect(t.callsOf('sendText')).toEqual([[{ channel: 'team' }, 'no one here, mail bob@alice.com', undefined]])
  })

  it('offers the peer in a DM', async () => {
    t.addConversation({ conv: DM })
    useProfilesStore().setProfile({ user: 'alice', name: 'Alice Martin', avatar: '', status: '' })
    const w = await mountComposer(DM)
    await typeIn(w, '@')
    expect(options(w)).toEqual(['alice'])
  })
})

describe('Composer formatting shortcuts', () => {
  beforeEach(() => {
    t = setup()
    document.body.innerHTML = ''
    t.addConversation({ conv: DM })
  })

  /** The composer holding `text` with `start..end` selected. */
  async function composerWith(text: string, start: number, end = start) {
    const w = await mountComposer()
    const input = w.find('[data-testid="composer-input"]')
    const el = input.element as HTMLTextAreaElement
    await input.setValue(text)
    el.setSelectionRange(start, end)
    const press = async (key: string, mods: KeyboardEventInit = {}) => {
      await input.trigger('keydown', { key, code: `Key${key.toUpperCase()}`, ...mods })
      await flushPromises()
    }
    return { w, el, press }
  }

  it('wraps the selection in bold, italic or code with Ctrl/⌘ + B, I, E and keeps it selected', async () => {
    const { el, press } = await composerWith('make this loud', 5, 9)
    await press('b', { ctrlKey: true })
    expect(el.value).toBe('make **this** loud')
    expect([el.selectionStart, el.selectionEnd]).toEqual([7, 11])
    await press('i', { metaKey: true })
    expect(el.value).toBe('make **_this_** loud')
    await press('i', { ctrlKey: true })
    expect(el.value).toBe('make **this** loud')
    el.setSelectionRange(0, 4)
    await press('e', { ctrlKey: true })
    expect(el.value).toBe('`make` **this** loud')
    expect(t.callsOf('sendText')).toEqual([])
  })

  it('inserts the markers with the caret between them when nothing is selected', async () => {
    const { el } = await composerWith('say ', 4)
    const ev = new KeyboardEvent('keydown', { key: 'b', code: 'KeyB', ctrlKey: true, cancelable: true })
    el.dispatchEvent(ev)
    await flushPromises()
    expect(ev.defaultPrevented).toBe(true)
    expect(el.value).toBe('say ****')
    expect([el.selectionStart, el.selectionEnd]).toEqual([6, 6])
  })

  it('puts a code block around the selection on its own lines with Ctrl+Shift+C', async () => {
    const { el, press } = await composerWith('look: let x = 1', 6, 15)
    await press('C', { ctrlKey: true, shiftKey: true })
    expect(el.value).toBe('look: \n```\nlet x = 1\n```')
  })

  it('leaves Ctrl+C and keys without a modifier alone', async () => {
    const { el, press } = await composerWith('abc', 0, 3)
    await press('c', { ctrlKey: true })
    await press('b')
    expect(el.value).toBe('abc')
  })

  it('names the formatting shortcuts in the field\'s hint', async () => {
    const { w } = await composerWith('', 0)
    const title = w.find('[data-testid="composer-input"]').attributes('title')
    expect(title).toContain('Ctrl+B bold')
    expect(title).toContain('||text|| spoiler')
  })
})
