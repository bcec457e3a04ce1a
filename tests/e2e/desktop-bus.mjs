// The test's own desktop on the session bus (tests/e2e/desktop_bus.py): a
// StatusNotifier host the tray registers with, and a notification daemon
// that records Notify calls and reports clicks. Start it before the app.
import { spawn } from 'node:child_process'
import { join } from 'node:path'

export function startDesktopBus() {
  const proc = spawn('/usr/bin/python3', [join(import.meta.dirname, 'desktop_bus.py')], { stdio: ['pipe', 'pipe', 'pipe'], detached: true })
  const pending = new Map()
  const bus = { proc, notes: [], items: [], badges: [], err: '' }
  let nextId = 1
  let buf = ''
  let onReady
  bus.ready = new Promise((res, rej) => { onReady = res; proc.on('exit', (c) => rej(new Error(`desktop_bus.py exited (${c}): ${bus.err}`))) })
  proc.stderr.on('data', (d) => { bus.err += d })
  proc.stdout.on('data', (d) => {
    buf += d
    let nl
    while ((nl = buf.indexOf('\n')) >= 0) {
      const msg = JSON.parse(buf.slice(0, nl))
      buf = buf.slice(nl + 1)
      if (msg.event === 'ready') onReady(msg)
      else if (msg.event === 'notify') bus.notes.push(msg)
      else if (msg.event === 'item') bus.items.push(msg)
      else if (msg.event === 'badge') bus.badges.push(msg)
      else if (msg.reply !== undefined) {
        const p = pending.get(msg.reply)
        pending.delete(msg.reply)
        if (msg.err) p?.rej(new Error(msg.err)); else p?.res(msg.ok)
      }
    }
  })
  bus.call = (cmd, args = {}) => new Promise((res, rej) => {
    const id = nextId++
    pending.set(id, { res, rej })
    proc.stdin.write(`${JSON.stringify({ id, cmd, ...args })}\n`)
  })
  /** Each registered tray item: its StatusNotifierItem properties and its menu entries. */
  bus.tray = () => bus.call('tray')
  /** Clicks the tray menu entry labelled `label`. */
  bus.menuClick = (label) => bus.call('menu_click', { label })
  /** Reports a click on notification `nid` (the default action). */
  bus.clickNotification = (nid, action = 'default') => bus.call('click_notification', { nid, action })
  return bus
}
