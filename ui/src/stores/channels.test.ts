// The channel browser's list as the stores keep it.
import { beforeEach, describe, expect, it } from 'vitest'
import { setup } from '../testing'
import type { MockTransport } from '../services/mockTransport'
import { useChannelsStore } from './channels'
import { conversationInfo } from '../composables/useConversationInfo'

let t: MockTransport

describe('channels', () => {
  beforeEach(() => {
    t = setup()
  })

  it('keeps titles and topics without bidi or control characters', async () => {
    t.channelList.push({ channel: 'deals', title: 'Deals \u202Efdp.exe', topic: 'free\u2066 stuff\u0000', private: false, members: 2 })
    await useChannelsStore().loadPublic()
    const [info] = useChannelsStore().publicChannels
    expect([info.title, info.topic]).toEqual(['Deals fdp.exe', 'free stuff'])
    expect(conversationInfo('ch:deals').title).toBe('Deals fdp.exe')
  })
})
