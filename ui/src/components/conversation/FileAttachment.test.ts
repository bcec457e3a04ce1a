// A file a peer sent: its name is shown as it would be saved, never reordered
// by bidi characters (protocol §9).
import { beforeEach, describe, expect, it } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import { mountWith, setup } from '../../testing'
import type { MockTransport } from '../../services/mockTransport'
import type { FileBody, ImageBody } from '../../types/model'
import { useUiStore } from '../../stores/ui'
import { useMediaStore } from '../../stores/media'
import { previewOf } from '../../utils/text'
import FileAttachment from './FileAttachment.vue'
import ImageAttachment from './ImageAttachment.vue'

const BIDI = ['\u200E', '\u200F', '\u061C', '\u202A', '\u202B', '\u202C', '\u202D', '\u202E', '\u2066', '\u2067', '\u2068', '\u2069']

function file(name: string): FileBody {
  return { media: 'm_01J9ZQ4N2D0000000000000000', mime: 'application/octet-stream', size: 2048, name }
}

let t: MockTransport

describe('file names from a peer', () => {
  beforeEach(() => {
    t = setup()
    document.body.innerHTML = ''
  })

  it('a file attachment shows the real extension, not one reversed by bidi characters', () => {
    const w = mountWith(FileAttachment, { props: { body: file('invoice\u202Egpj.exe'), mine: false } })
    expect(w.find('[data-testid="file-name"]').text()).toBe('invoicegpj.exe')
    expect(w.find('[data-testid="file-attachment"]').attributes('aria-label')).toBe('Open file: invoicegpj.exe')
    expect(w.text()).toContain('EXE')
    for (const c of BIDI) {
      const each = mountWith(FileAttachment, { props: { body: file(`a${c}b\u0007.pdf`), mine: true } })
      expect(each.find('[data-testid="file-name"]').text(), `U+${c.codePointAt(0)!.toString(16)}`).toBe('ab.pdf')
    }
    expect(previewOf({ kind: 'file', body: { ...file('invoice\u202Egpj.exe') } })).toBe('📎 invoicegpj.exe')
  })

  it('an image attachment labels and opens its picture without bidi characters', async () => {
    const body: ImageBody = { ...file('cat\u2067gpj.exe'), mime: 'image/png', width: 10, height: 10 }
    useMediaStore().urls.set(body.media, 'blob:cat')
    const w = mountWith(ImageAttachment, { props: { body } })
    expect(w.find('[data-testid="image-attachment"]').attributes('aria-label')).not.toContain('\u2067')
    expect(w.find('img').attributes('alt')).toBe('catgpj.exe')
    await w.find('[data-testid="image-attachment"]').trigger('click')
    expect(useUiStore().lightbox?.name).toBe('catgpj.exe')
  })

  it('an image the shell will not give the webview (a bomb, an SVG) shows its name and opens as a file', async () => {
    const body: ImageBody = { ...file('huge\u202Egnp.png'), mime: 'image/png', width: 20_000, height: 20_000 }
    t.failNext('mediaUrl', 'image_too_large', 'this image is 20000 × 20000 pixels, too large to show here')
    const w = mountWith(ImageAttachment, { props: { body } })
    await flushPromises()
    expect(w.find('img').exists()).toBe(false)
    const tile = w.find('[data-testid="image-attachment"]')
    expect(tile.text()).toBe('hugegnp.png')
    expect(tile.attributes('aria-label')).toBe('Open file: hugegnp.png')
    await tile.trigger('click')
    await flushPromises()
    expect(useUiStore().lightbox).toBeNull()
    expect(t.callsOf('openMedia')).toEqual([[body.media, 'huge\u202Egnp.png', undefined]])
  })

  it('a picture whose cached file went is fetched once more, then counts as failed', async () => {
    const body: ImageBody = { ...file('cat.png'), mime: 'image/png', width: 10, height: 10 }
    t.mediaUrls.set(body.media, 'asset://localhost/cache/cat.png')
    const w = mountWith(ImageAttachment, { props: { body } })
    await flushPromises()
    expect(t.callsOf('mediaUrl')).toHaveLength(1)
    await w.find('img').trigger('error')
    await flushPromises()
    expect(t.callsOf('mediaUrl'), 'fetched again').toHaveLength(2)
    expect(w.find('img').exists()).toBe(true)
    await w.find('img').trigger('error')
    await flushPromises()
    expect(t.callsOf('mediaUrl'), 'only once more').toHaveLength(2)
    expect(w.find('img').exists()).toBe(false)
    expect(w.find('[data-testid="image-attachment"]').text()).toBe('cat.png')
  })
})
