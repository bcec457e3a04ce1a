// Displayable URLs of media ids (images, files), resolved once and cached.
import { defineStore } from 'pinia'
import { reactive } from 'vue'
import { useTransport } from '../services/transport'

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

  async function open(media: string): Promise<void> {
    await useTransport().openMedia(media)
  }

  return { urls, resolve, open }
})
