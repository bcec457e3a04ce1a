// The messages of the conversations that have been opened, as one Pinia
// store built from parts with one job each:
//   window.ts     a conversation's loaded window, its order and tick rule
//   applying.ts   renders what the client core reports (added, updated, receipts)
//   paging.ts     latest page, search-hit windows, older / newer pages
//   sending.ts    text, files, retry, discard
//   editing.ts    the inline editor
//   relations.ts  recall, reactions, pins, forward, the pinned lists
// The store applies what the core emits and nothing else: no action is
// patched in here first, so there is no second copy of what a relation does.
import { defineStore } from 'pinia'
import { applying } from './applying'
import { editing } from './editing'
import { paging } from './paging'
import { relations } from './relations'
import { sending } from './sending'
import { newMessagesState, stateOf } from './window'
import type { Conv } from '../../types/protocol'

export { PAGE, canTransition, insertSorted, type ConvMessages } from './window'
export { actionErrorToast } from './relations'
export type { Upload } from './sending'

export const useMessagesStore = defineStore('messages', () => {
  const st = newMessagesState()
  const apply = applying(st)
  const send = sending(st, apply.upsert)
  return {
    byConv: st.byConv,
    pinned: st.pinned,
    editing: st.editing,
    stateOf: (conv: Conv) => stateOf(st, conv),
    upsert: apply.upsert,
    applyReceipt: apply.applyReceipt,
    byMid: apply.byMid,
    ...paging(st),
    uploads: send.uploads,
    sendText: send.sendText,
    sendFiles: send.sendFiles,
    dismissUpload: send.dismissUpload,
    retry: send.retry,
    discard: send.discard,
    ...editing(st, apply.current),
    ...relations(st, apply.current, send.shown),
  }
})
