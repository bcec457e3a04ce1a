// Copying text: the async Clipboard API where the webview allows it, else a
// hidden textarea and execCommand (older WebKitGTK).

export async function copyText(text: string): Promise<boolean> {
  try {
    if (navigator.clipboard?.writeText) {
      await navigator.clipboard.writeText(text)
      return true
    }
  } catch {
    // Fall through to the legacy path.
  }
  try {
    const el = document.createElement('textarea')
    el.value = text
    el.setAttribute('readonly', '')
    el.style.position = 'fixed'
    el.style.opacity = '0'
    document.body.appendChild(el)
    el.select()
    const ok = document.execCommand?.('copy') ?? false
    el.remove()
    return ok
  } catch {
    return false
  }
}
