// WebDriver screenshots of the app's window, for the E2E scripts.
//
// The app turns WebKit's accelerated compositing off (src-tauri/src/webview.rs,
// docs/benchmarks.md). In that mode WebKitGTK 2.50's WebDriver screenshot
// waits for the page's next drawn frame, and an idle page draws none: the
// request never returns (reproduced with WEBKIT_DISABLE_COMPOSITING_MODE=1 on
// the first screenshot after a load; it returns as soon as anything on the
// page changes). So while a screenshot is taken, a 1×1 px, nearly
// transparent element in the top-left corner changes every 100 ms, and is
// removed afterwards. The app itself is not changed for the test.

export async function saveScreenshot(browser, file) {
  await browser.execute(() => {
    const el = document.createElement('div')
    el.id = '__e2e_frame_tick'
    el.style.cssText = 'position:fixed;left:0;top:0;width:1px;height:1px;pointer-events:none;z-index:2147483647;opacity:0.01'
    document.body.appendChild(el)
    let on = false
    window.__e2eFrameTick = setInterval(() => { on = !on; el.style.opacity = on ? '0.02' : '0.01' }, 100)
  })
  try {
    return await browser.saveScreenshot(file)
  } finally {
    await browser.execute(() => {
      clearInterval(window.__e2eFrameTick)
      document.getElementById('__e2e_frame_tick')?.remove()
    }).catch(() => {})
  }
}
