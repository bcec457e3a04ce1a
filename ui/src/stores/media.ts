// Displayable URLs of media ids (images, files), resolved once and cached.
import { defineStore } from 'pinia'
import { reactive } from 'vue'
import { toTransportError, useTransport } from '../services/transport'
import { useUiStore } from './ui'
import { useToastsStore } from './toasts'
import { plainName } from '../utils/text'

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
   * Any other failure (a media id the core refuses, a download error) is a
   * toast, never an unhandled rejection of a click.
   */
  async function open(media: string, name?: string): Promise<void> {
    try {
      try {
        await useTransport().openMedia(media, name)
      } catch (e) {
        if (toTransportError(e).code !== 'confirm_required') throw e
        const ok = await useUiStore().confirm({
          title: 'msg.riskyTitle',
          message: 'msg.riskyBody',
          confirm: 'msg.riskyOpen',
          params: { name: name === undefined ? media : plainName(name) },
          danger: true,
        })
        if (ok) await useTransport().openMedia(media, name, true)
      }
    } catch (e) {
      useToastsStore().push({ level: 'error', key: 'toast.openFailed', params: { name: plainName(name ?? ''), reason: toTransportError(e).message } })
    }
  }

  /** Forgets the URL of `media` (its cached file went): the next resolve fetches it again. */
  function forget(media: string): void {
    urls.delete(media)
  }

  return { urls, resolve, forget, open }
})
