// Sending: text (with mentions on a v1.1 server), files and images with
// upload progress, retrying a failed message and discarding an unsent one.
// The core queues each send and reports its fate (`message_updated`: sent,
// failed); the command's result is the same pending view the core emits.
import { reactive } from 'vue'
import type { MessageView } from '../../types/model'
import type { Conv } from '../../types/protocol'
import { targetOf } from '../../types/ids'
import { toTransportError, useTransport } from '../../services/transport'
import { isLimit, limitToast } from '../../utils/errors'
import { useSessionStore } from '../session'
import { useConversationsStore } from '../conversations'
import { useServerStore } from '../server'
import { setItems, type MessagesState } from './window'

export interface Upload {
  id: number
  conv: Conv
  name: string
  size: number
  sent: number
  error: string | null
  /** An i18n key saying why, in the user's language, when the server named a limit. */
  errorKey?: string
}

let uploadIds = 0

export function sending(st: MessagesState, upsert: (m: MessageView) => void) {
  const uploads = reactive<Upload[]>([])
  const me = () => useSessionStore().me

  /** Shows a message the core just queued, in its window and the conversation list. */
  function shown(m: MessageView): MessageView {
    upsert(m)
    useConversationsStore().noteMessage(m)
    return m
  }

  /** Sends text; `mentions` (user ids) go with it when the server has v1.1. */
  async function sendText(conv: Conv, text: string, replyTo?: string, mentions?: string[]): Promise<MessageView | null> {
    const trimmed = text.replace(/^\s*\n|\s+$/g, '')
    if (!trimmed.trim()) return null
    const t = useTransport()
    const m = mentions?.length && useServerStore().v11
      ? await t.sendText(targetOf(conv, me()), trimmed, replyTo, mentions)
      : await t.sendText(targetOf(conv, me()), trimmed, replyTo)
    return shown(m)
  }

  /** Uploads each file (with progress) and sends it as an image or a file. */
  async function sendFiles(conv: Conv, files: File[], replyTo?: string): Promise<void> {
    for (const file of files) {
      const up = reactive<Upload>({ id: ++uploadIds, conv, name: file.name || 'file', size: file.size, sent: 0, error: null })
      uploads.push(up)
      try {
        const bytes = new Uint8Array(await file.arrayBuffer())
        const mime = file.type || 'application/octet-stream'
        const media = await useTransport().upload(bytes, mime, (sent) => (up.sent = sent))
        const dims = mime.startsWith('image/') ? await imageSize(file) : null
        const to = targetOf(conv, me())
        shown(dims
          ? await useTransport().sendImage(to, media, up.name, dims.width, dims.height, replyTo)
          : await useTransport().sendFile(to, media, up.name, replyTo))
        uploads.splice(uploads.findIndex((u) => u.id === up.id), 1)
      } catch (e) {
        const err = toTransportError(e)
        up.error = err.message
        if (isLimit(err)) up.errorKey = limitToast(err).key
        else if (err.code === 'too_large') up.errorKey = 'limits.too_large'
      }
    }
  }

  function dismissUpload(id: number): void {
    const i = uploads.findIndex((u) => u.id === id)
    if (i >= 0) uploads.splice(i, 1)
  }

  async function retry(cid: string): Promise<void> {
    upsert(await useTransport().retry(cid))
  }

  async function discard(m: MessageView): Promise<void> {
    await useTransport().deleteUnsent(m.cid)
    const s = st.byConv.get(m.conv)
    if (s) setItems(s, s.items.filter((x) => x.cid !== m.cid))
  }

  return { uploads, sendText, sendFiles, dismissUpload, retry, discard, shown }
}

/** Natural size of an image file (0×0 when it cannot be decoded). */
async function imageSize(file: File): Promise<{ width: number; height: number }> {
  try {
    if (typeof createImageBitmap === 'function') {
      const bmp = await createImageBitmap(file)
      const out = { width: bmp.width, height: bmp.height }
      bmp.close()
      return out
    }
  } catch {
    // Fall through: SVG and some formats are not decodable as bitmaps.
  }
  return new Promise((resolve) => {
    const url = URL.createObjectURL(file)
    const img = new Image()
    img.onload = () => {
      resolve({ width: img.naturalWidth, height: img.naturalHeight })
      URL.revokeObjectURL(url)
    }
    img.onerror = () => {
      resolve({ width: 0, height: 0 })
      URL.revokeObjectURL(url)
    }
    img.src = url
  })
}
