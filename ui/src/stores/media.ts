// Displayable URLs of media ids (images, files), resolved once and cached.
import { defineStore } from 'pinia'
import { reactive } from 'vue'
import { toTransportError, useTransport } from '../services/transport'
import { useUiStore } from './ui'

export const useMediaStore = defineStore('media', () => {
  const urls = reactive(new Map<string, string>())
  const pending = new Map<string, Promise<string>>()

  async function resolve(media: string): Promise<string> {
    const known = urls.get(media)
    if (known) return known
    let p = pending.get(media)
    if (!p) {
      p = useTransport().mediaUrl(media)
      pending.set(media, p)
    }
    try {
      const url = await p
      if (url) urls.set(media, url)
      return url
    } catch {
      return ''
    } finally {
      pending.delete(media)
    }
  }

  /**
   * Opens a file with the OS. One that could run programs (the shell says
   * `confirm_required`) opens only after the user confirms, naming the file.
   */
  async function open(media: string, name?: string): Promise<void> {
    try {
      await useTransport().openMedia(media, name)
    } catch (e) {
      if (toTransportError(e).code !== 'confirm_required') throw e
      const ok = await useUiStore().confirm({
        title: 'msg.riskyTitle',
        message: 'msg.riskyBody',
        confirm: 'msg.riskyOpen',
        params: { name: name ?? media },
        danger: true,
      })
      if (ok) await useTransport().openMedia(media, name, true)
    }
  }

  return { urls, resolve, open }
})
