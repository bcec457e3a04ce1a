// End-to-end test of the real Courier desktop app (issue 4), driven through
// tauri-driver + WebKitWebDriver, against a real courier-server, with a
// courier-cli peer ("bob") on the other side. Run it through
// scripts/e2e.sh (which builds everything and provides Xvfb + a D-Bus
// session); it exits non-zero when a scenario fails.
//
// Scenarios: app → peer message; peer → app message with its sender; a call
// invitation from the peer rings, is accepted by clicking, the peer sees
// `accepted`; a courier://chat/<user> deep link opens the chat in the running
// instance; the app survives a server restart (banner, recovery, the message
// typed while the server was down arrives); v1.1: a reaction and an edit by
// the peer appear in the app, a recall made in the app reaches the peer. Screenshots (light/dark, en/zh)
// go to the run's scratch folder (E2E_SHOTS=docs/screenshots refreshes the
// README's pictures). Then a first run on the embedded server: it refuses
// `dev:` tokens, keeps its secret 0600 in a 0700 directory, the webview loads
// files from the media cache only, and a second profile of the same OS user
// chats with the first through it.
// Desktop conventions (issue 16), against a StatusNotifier host and a
// notification daemon this script starts (desktop-bus.mjs): the tray icon
// registers, shows the unread state and its menu works; a notification click
// opens its conversation; Settings turns start at login on and off (and says
// why it could not) and opens the logs folder; the composer is spell-checked;
// the unread count reaches a Unity launcher as the badge; the window's size is
// saved per profile at exit and restored at start.
import { spawn, execFile } from 'node:child_process'
import { mkdtempSync, mkdirSync, writeFileSync, existsSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import net from 'node:net'
import { promisify } from 'node:util'
import { remote } from 'webdriverio'
import { startDesktopBus } from './desktop-bus.mjs'
import { saveScreenshot } from './screenshot.mjs'

const ROOT = resolve(import.meta.dirname, '../..')
const BIN = join(resolve(ROOT, process.env.CARGO_TARGET_DIR ?? 'target'), 'debug')
const APP = join(BIN, 'courier')
const CLI = join(BIN, 'courier-cli')
const SERVER = join(BIN, 'courier-server')
const run = promisify(execFile)

const tmp = mkdtempSync(join(tmpdir(), 'courier-e2e-'))
// A test run leaves tracked files alone: screenshots go to scratch unless
// E2E_SHOTS names a folder (`E2E_SHOTS=docs/screenshots` to refresh the README's).
const SHOTS = process.env.E2E_SHOTS ? resolve(ROOT, process.env.E2E_SHOTS) : join(tmp, 'shots')
const children = []
const results = []
const metrics = {}

function log(...a) { console.log(`[e2e ${new Date().toISOString().slice(11, 23)}]`, ...a) }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

async function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer()
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)) })
    s.on('error', rej)
  })
}

function start(cmd, args, env = {}, name = cmd) {
  // Own process group, so that cleanup also ends grandchildren
  // (tauri-driver's WebKitWebDriver, the app it launched).
  const p = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  p.out = ''
  p.stdout.on('data', (d) => { p.out += d })
  p.stderr.on('data', (d) => { p.err = (p.err ?? '') + d; if (process.env.E2E_VERBOSE) process.stderr.write(`[${name}] ${d}`) })
  children.push(p)
  return p
}

async function waitFor(pred, ms, what) {
  const end = Date.now() + ms
  let last
  while (Date.now() < end) {
    try { if ((last = await pred())) return last } catch (e) { last = e }
    await sleep(150)
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}${last instanceof Error ? ` (${last.message})` : ''}`)
}

async function scenario(name, fn) {
  const t0 = Date.now()
  try {
    await fn()
    results.push({ name, ok: true, ms: Date.now() - t0 })
    log(`PASS ${name} (${Date.now() - t0} ms)`)
  } catch (e) {
    results.push({ name, ok: false, ms: Date.now() - t0, error: String(e?.stack ?? e) })
    log(`FAIL ${name}: ${e?.message ?? e}`)
    try { await saveScreenshot(browser, join(tmp, `fail-${name.replace(/\W+/g, '_')}.png`)) } catch { /* ignore */ }
  }
}

// Whatever happens, end what this script started (each in its own group).
process.on('exit', () => { for (const c of children) { try { process.kill(-c.pid, 'SIGKILL') } catch { /* gone */ } } })

// ---- the world: server, peer, app environment
const DRIVER_PORT = Number(process.env.E2E_DRIVER_PORT ?? await freePort())
const NATIVE_PORT = await freePort()
const port = await freePort()
const url = `ws://127.0.0.1:${port}`
const serverData = join(tmp, 'server')
mkdirSync(serverData, { recursive: true })
let server
async function startServer() {
  server = start(SERVER, ['--listen', `127.0.0.1:${port}`, '--data', serverData, '--dev-auth'], { RUST_LOG: 'warn' }, 'server')
  await waitFor(() => new Promise((res) => {
    const s = net.connect(port, '127.0.0.1', () => { s.destroy(); res(true) })
    s.on('error', () => res(false))
  }), 15000, 'the server to listen')
}
await startServer()
log(`server on ${url}`)

const bob = (...args) => run(CLI, ['--server', url, '--token', 'dev:bob', '--data', join(tmp, 'bob'), ...args], { timeout: 60000 })
const bobStart = (...args) => start(CLI, ['--server', url, '--token', 'dev:bob', '--data', join(tmp, 'bob'), ...args], {}, 'bob')

const home = join(tmp, 'home')
// An `xdg-open` that records what the app asks the OS to open.
const fakeBin = join(tmp, 'bin')
const OPENED = join(tmp, 'opened.txt')
mkdirSync(fakeBin, { recursive: true })
writeFileSync(join(fakeBin, 'xdg-open'), `#!/bin/sh\nprintf '%s\\n' "$*" >> '${OPENED}'\n`, { mode: 0o755 })
const appEnv = {
  PATH: `${fakeBin}:${process.env.PATH}`,
  HOME: home,
  XDG_DATA_HOME: join(home, '.local/share'),
  XDG_CONFIG_HOME: join(home, '.config'),
  XDG_CACHE_HOME: join(home, '.cache'),
  COURIER_DATA_ROOT: join(tmp, 'courier-root'),
  COURIER_SERVER: url,
  COURIER_USER: 'alice',
  RUST_LOG: process.env.RUST_LOG ?? 'info',
}
mkdirSync(appEnv.XDG_DATA_HOME, { recursive: true })
mkdirSync(appEnv.XDG_CONFIG_HOME, { recursive: true })
// Bob exists and has a profile before alice looks.
await bob('send', '@alice', 'hello alice, bob here')

// The desktop: a StatusNotifier host for the tray, a notification daemon.
const desk = startDesktopBus()
children.push(desk.proc)
await desk.ready
// Watch the session bus for notifications (the app's notify-rust calls).
const monitor = start('dbus-monitor', ['--session', "interface='org.freedesktop.Notifications',member='Notify'"], {}, 'dbus-monitor')

start('tauri-driver', ['--port', String(DRIVER_PORT), '--native-port', String(NATIVE_PORT)], appEnv, 'tauri-driver')
await waitFor(() => new Promise((res) => {
  const s = net.connect(DRIVER_PORT, '127.0.0.1', () => { s.destroy(); res(true) })
  s.on('error', () => res(false))
}), 15000, 'tauri-driver')

let browser
const t0 = Date.now()
try {
  browser = await remote({
    hostname: '127.0.0.1',
    port: DRIVER_PORT,
    logLevel: 'warn',
    connectionRetryTimeout: 60000,
    connectionRetryCount: 0,
    capabilities: {
      browserName: 'wry',
      'wdio:enforceWebDriverClassic': true,
      'tauri:options': { application: APP },
    },
  })
} catch (e) {
  log('cannot start a WebDriver session:', e.message)
  process.exitCode = 1
  await cleanup()
  process.exit(1)
}
globalThis.browser = browser

const $t = (id) => browser.$(`[data-testid="${id}"]`)
// Text through the DOM (WebKitWebDriver's getText is unreliable here).
async function texts(sel) {
  return browser.execute((sel) => [...document.querySelectorAll(sel)].map((e) => e.textContent ?? ''), sel)
}
async function text(sel) { return (await texts(sel)).join('\n') }
async function clickItem(sel, needle) {
  const ok = await browser.execute((sel, needle) => {
    const el = [...document.querySelectorAll(sel)].find((e) => (e.textContent ?? '').toLowerCase().includes(needle))
    if (el) el.click()
    return !!el
  }, sel, needle)
  if (!ok) throw new Error(`no ${sel} containing ${needle}`)
}
async function hasMessage(msg) { return (await texts('[data-testid="message-text"]')).some((t) => t.includes(msg)) }
async function visible(id) { const el = await $t(id); return (await el.isExisting()) && el.isDisplayed() }
async function invoke(cmd, args = {}) {
  return browser.executeAsync((cmd, args, done) => {
    window.__TAURI_INTERNALS__.invoke(cmd, args).then((v) => done({ ok: v }), (e) => done({ err: e }))
  }, cmd, args)
}
async function openDm(user) {
  await (await $t('new-chat')).click()
  const input = await $t('new-chat-user')
  await input.waitForDisplayed({ timeout: 5000 })
  await input.setValue(user)
  await browser.keys('Enter')
  await waitFor(async () => (await text('[data-testid="conv-title"]')).includes(user), 5000, `the chat with ${user}`)
}
async function sendFromApp(msg) {
  const input = await $t('composer-input')
  await input.waitForDisplayed({ timeout: 5000 })
  await input.click()
  await input.setValue(msg)
  await browser.keys('Enter')
}
async function bobHas(msg) {
  const { stdout } = await bob('history', '@alice', '--json', '--limit', '200')
  return stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)).some((m) => m.body?.text === msg && m.from === 'alice')
}
async function shot(name) {
  mkdirSync(SHOTS, { recursive: true })
  await saveScreenshot(browser, join(SHOTS, `${name}.png`))
  log(`screenshot ${name}.png`)
}

await scenario('app starts signed in and renders the conversation list', async () => {
  await waitFor(async () => (await $t('conv-item')).isExisting(), 30000, 'a conversation in the list')
  metrics.cold_start_to_conv_list_ms = Date.now() - t0
  await waitFor(async () => (await text('[data-testid="conv-list"]')).toLowerCase().includes('bob'), 10000, "bob's DM in the list")
})

// ---- the tray, as a StatusNotifier host sees it
const ICONS = join(ROOT, 'src-tauri/icons')
async function trayItem() {
  const items = await desk.tray()
  if (!items.length) throw new Error('no tray icon registered with the StatusNotifier host')
  return items[items.length - 1]
}
// The icon file the item shows (tray-icon writes each icon as a PNG file).
const iconFile = (props) => (props.IconName.startsWith('/') ? props.IconName : join(props.IconThemePath, `${props.IconName}.png`))
async function samePixels(a, b) {
  // (the bundled icons are 16-bit PNGs, the tray's copies 8-bit: allow rounding)
  try { await run('compare', ['-fuzz', '2%', '-metric', 'AE', a, b, 'null:']); return true } catch { return false }
}
async function trayShows(icon) { return samePixels(iconFile((await trayItem()).props), join(ICONS, icon)) }
const menuEntry = async (label) => (await trayItem()).menu.find((m) => (m.label ?? '').replace('_', '') === label)

await scenario('tray: the icon registers with the StatusNotifier host, shows unread messages, and its menu works', async () => {
  const item = await waitFor(() => trayItem(), 15000, 'the tray item')
  if (item.props.Status !== 'Active') throw new Error(`tray status ${item.props.Status}`)
  const labels = item.menu.filter((m) => m.label).map((m) => m.label.replace('_', ''))
  for (const l of ['Open Courier', 'Do not disturb', 'Quit Courier']) {
    if (!labels.includes(l)) throw new Error(`tray menu ${JSON.stringify(labels)} lacks ${l}`)
  }
  // Bob's first message is unread: the unread icon, pixel for pixel.
  await waitFor(() => trayShows('tray-unread.png'), 10000, `the unread tray icon (item: ${JSON.stringify(item.props)})`)
  // The menu's do-not-disturb switches the setting, and its check mark follows.
  const before = (await invoke('settings_get')).ok.do_not_disturb
  await desk.menuClick('Do not disturb')
  await waitFor(async () => (await invoke('settings_get')).ok.do_not_disturb === !before, 5000, 'do not disturb to switch')
  await waitFor(async () => (await menuEntry('Do not disturb'))?.['toggle-state'] === (before ? 0 : 1), 5000, 'the check mark')
  await desk.menuClick('Do not disturb')
  await waitFor(async () => (await invoke('settings_get')).ok.do_not_disturb === before, 5000, 'do not disturb to switch back')
})

await scenario('a message from the peer appears in the app with its sender', async () => {
  const msg = `ping from bob ${Date.now()} <b>not bold</b>`
  await sleep(1200) // past the app's 1 s per-conversation notification coalescing
  await bob('send', '@alice', msg)
  await waitFor(async () => (await text('[data-testid="conv-list"]')).includes('ping from bob'), 10000, 'the preview')
  // Open the DM by clicking its list item.
  await clickItem('[data-testid="conv-item"]', 'bob')
  await waitFor(async () => (await text('[data-testid="conv-title"]')).toLowerCase().includes('bob'), 5000, 'the DM header')
  await waitFor(() => hasMessage(msg), 10000, 'the message text (as text, markup shown literally)')
  // Markup in a message is text: no <b> element was created from it.
  const bold = await browser.execute(() => [...document.querySelectorAll('[data-testid="message-text"] b')].length)
  if (bold) throw new Error('message markup was rendered as HTML')
})

await scenario('OS notifications: a message not on screen, and an invitation', async () => {
  // Alice's window is not focused under a bare X server, so bob's messages notify.
  await waitFor(() => monitor.out.includes('ping from bob'), 10000,
    `a Notify call with the message preview (monitor saw: ${monitor.out.length} bytes)`)
})

await scenario('tray: the icon turns read once the conversation is read', async () => {
  await waitFor(() => trayShows('tray.png'), 10000, 'the read tray icon')
})

await scenario('the unread count is the app badge (a Unity launcher entry on Linux)', async () => {
  // Bob's first message made one unread; reading it cleared the badge.
  const counts = () => desk.badges.filter((b) => b.app_uri.includes('Courier.desktop')).map((b) => (b.props['count-visible'] ? b.props.count : 0))
  await waitFor(() => counts().includes(1), 5000, `a badge of 1 (launcher updates: ${JSON.stringify(desk.badges)})`)
  await waitFor(() => counts().at(-1) === 0, 5000, `the badge cleared (launcher updates: ${JSON.stringify(desk.badges)})`)
})

await scenario('a notification click opens its conversation', async () => {
  await openDm('carol')
  await sleep(1200) // past the per-conversation notification coalescing
  const msg = `open me from the notification ${Date.now()}`
  await bob('send', '@alice', msg)
  const note = await waitFor(() => desk.notes.find((n) => n.body.includes('open me')), 10000,
    `the notification at the daemon (got ${JSON.stringify(desk.notes.map((n) => n.summary))})`)
  if (note.app_name !== 'Courier' || !note.actions.includes('default')) throw new Error(`notification ${JSON.stringify(note)}`)
  await waitFor(() => trayShows('tray-unread.png'), 10000, 'the unread tray icon')
  await desk.clickNotification(note.id)
  await waitFor(async () => (await text('[data-testid="conv-title"]')).toLowerCase().includes('bob'), 8000, 'the chat with bob')
  await waitFor(() => hasMessage(msg), 5000, 'the message')
})

await scenario('a message typed in the app arrives at the peer', async () => {
  const msg = `hi bob from the app ${Date.now()}`
  await openDm('bob')
  await sendFromApp(msg)
  await waitFor(() => bobHas(msg), 20000, 'bob to receive it')
  await shot('conversation-light-en')
})

async function bobHistory() {
  const { stdout } = await bob('history', '@alice', '--json', '--limit', '200')
  return stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l))
}
// The bubble row (the element with the context menu) holding `needle`.
async function openMenuOn(needle) {
  const ok = await browser.execute((needle) => {
    const t = [...document.querySelectorAll('[data-testid="message-text"]')].find((e) => (e.textContent ?? '').includes(needle))
    const bubble = t?.closest('[data-testid="bubble"]')
    if (!bubble) return false
    const r = bubble.getBoundingClientRect()
    bubble.dispatchEvent(new MouseEvent('contextmenu', { bubbles: true, cancelable: true, clientX: r.left + 10, clientY: r.top + 10 }))
    return true
  }, needle)
  if (!ok) throw new Error(`no message bubble containing ${needle}`)
  await waitFor(() => visible('message-menu'), 5000, 'the message menu')
  await sleep(400) // let the pop-in transition finish before clicking into it
}

await scenario('v1.1: a reaction and an edit by the peer appear; a pin and a recall made in the app reach the peer', async () => {
  const original = `typo mesage ${Date.now()}`
  await bob('send', '@alice', original)
  await openDm('bob')
  await waitFor(() => hasMessage(original), 15000, "bob's message in the app")
  const mine = (await bobHistory()).find((m) => m.body?.text === original)
  if (!mine?.mid) throw new Error(`bob's history lacks the message: ${JSON.stringify(mine)}`)
  await bob('react', '@alice', mine.mid, '👍')
  await waitFor(async () => (await text('[data-testid="reaction-chip"]')).includes('👍'), 15000, 'the 👍 reaction chip')
  const fixed = original.replace('mesage', 'message')
  await bob('edit', '@alice', mine.mid, fixed)
  await waitFor(() => hasMessage(fixed), 15000, 'the edited text')
  await waitFor(() => visible('edited'), 5000, 'the "edited" marker')
  if (await hasMessage(original)) throw new Error('the old text is still shown after the edit')
  await shot('reactions-edit-light-en')
  // Pin it from the message menu: the pinned bar appears and bob sees the pin.
  await openMenuOn(fixed)
  await shot('message-menu-light-en')
  await (await browser.$('[data-testid="message-menu"] [data-action="pin"]')).click()
  await waitFor(async () => (await text('[data-testid="pinned-bar-text"]')).includes(fixed), 10000, 'the pinned bar')
  await waitFor(async () => (await bobHistory()).some((m) => m.mid === mine.mid && m.pinned), 20000, 'bob to see the pin')

  const oops = `sent to the wrong chat ${Date.now()}`
  await sendFromApp(oops)
  await waitFor(async () => (await bobHistory()).some((m) => m.body?.text === oops), 20000, 'bob to receive it')
  // Diagnostics: log the shell calls the UI makes from here on.
  await browser.execute(() => {
    const internals = window.__TAURI_INTERNALS__
    if (internals.__logged) return
    const orig = internals.invoke.bind(internals)
    window.__calls = []
    internals.invoke = (cmd, args, opts) => {
      const entry = { cmd, args: JSON.stringify(args ?? {}).slice(0, 200) }
      window.__calls.push(entry)
      return orig(cmd, args, opts).then((v) => { entry.ok = true; return v }, (e) => { entry.err = JSON.stringify(e); throw e })
    }
    internals.__logged = true
  })
  await openMenuOn(oops)
  await (await browser.$('[data-testid="message-menu"] [data-action="recall"]')).click()
  await waitFor(() => visible('confirm-ok'), 5000, 'the recall confirmation')
  await sleep(400) // the dialog's transition: a click during it can land on the backdrop (= cancel)
  await (await $t('confirm-ok')).click()
  await waitFor(async () => !(await hasMessage(oops)), 15000, 'the text to leave the app').catch(async (e) => {
    const sent = (await bobHistory()).find((m) => m.body?.text === oops)
    const direct = sent ? await invoke('recall_message', { conv: sent.conv, mid: sent.mid }) : 'not at bob'
    const calls = await browser.execute(() => (window.__calls ?? []).filter((c) => !['typing', 'set_draft', 'mark_read'].includes(c.cmd)))
    throw new Error(`${e.message}; toasts: ${await text('[data-testid="toast"]')}; confirm still open: ${await visible('confirm-ok')}; UI calls: ${JSON.stringify(calls)}; recall_message directly: ${JSON.stringify(direct)}`)
  })
  await waitFor(() => visible('recalled'), 5000, 'the recalled placeholder')
  await waitFor(async () => {
    const h = await bobHistory()
    return !h.some((m) => m.body?.text === oops) && h.some((m) => m.recalled === true && m.from === 'alice')
  }, 20000, 'bob to see the message recalled')
})

await scenario('an invitation from the peer rings, is accepted by clicking, the peer sees accepted', async () => {
  const inv = bobStart('invite', '@alice', '--ttl', '60', '--wait', '40')
  await waitFor(() => visible('incoming-call'), 15000, 'the incoming call dialog')
  await sleep(700) // let the dialog's transition finish
  await shot('incoming-call-light-en')
  await waitFor(() => monitor.out.includes('is calling'), 5000, 'a Notify call for the invitation')
  await (await $t('accept')).click()
  await waitFor(() => /accepted/.test(inv.out), 15000, `bob to see accepted (got: ${inv.out.trim()})`)
  // The peer answered with the plain `answer`, so there is no media: hang
  // up, and the in-call view must go away rather than cover what follows.
  await waitFor(() => visible('in-call'), 15000, 'the in-call view')
  // Hang up at once, while the shell may still be starting the call: the
  // hang-up must end the call that starts right after, not be lost.
  await waitFor(async () => { await (await $t('hang-up')).click(); return true }, 10000, 'the hang-up button')
  await waitFor(async () => !(await visible('in-call')), 15000, 'the in-call view to close after hang-up')
})

await scenario('a courier://chat deep link opens the chat in the running instance', async () => {
  await bob('send', '@alice', 'to be first') // irrelevant, just activity
  const second = start(APP, ['courier://chat/carol'], appEnv, 'second-instance')
  const code = await new Promise((res) => { second.on('exit', res); setTimeout(() => res('still running'), 15000) })
  if (code === 'still running') throw new Error('the second launch did not hand over to the running instance')
  const r = await waitFor(async () => {
    const v = await invoke('last_deep_link')
    return v.ok?.kind === 'chat' && v.ok?.user === 'carol' ? v : null
  }, 10000, 'the running instance to receive the link')
  log('shell received', JSON.stringify(r.ok))
  await waitFor(async () => (await text('[data-testid="conv-title"]')).includes('carol'), 8000,
    'the UI to open the chat with carol (needs the UI to handle courier://deep-link)')
})

await scenario('a malformed deep link is refused without harm', async () => {
  const second = start(APP, ['courier://chat/not%20valid'], appEnv, 'second-instance-bad')
  const code = await new Promise((res) => { second.on('exit', res); setTimeout(() => res('still running'), 15000) })
  if (code === 'still running') throw new Error('second launch kept running')
  await sleep(500)
  const v = await invoke('conversations')
  if (!v.ok) throw new Error(`app unhealthy after a bad link: ${JSON.stringify(v)}`)
})

await scenario('the app survives the server restarting (banner, recovery, nothing lost)', async () => {
  await openDm('bob')
  server.kill('SIGTERM')
  await new Promise((r) => server.on('exit', r))
  await waitFor(() => visible('connection-banner'), 20000, 'the connection banner')
  await sleep(700)
  await shot('offline-banner-light-en')
  const offlineMsg = `typed while the server was down ${Date.now()}`
  await sendFromApp(offlineMsg)
  await sleep(1000)
  await startServer()
  await waitFor(async () => !(await visible('connection-banner')), 40000, 'the banner to go away')
  await waitFor(() => bobHas(offlineMsg), 20000, 'the offline message to reach bob')
  const back = `after restart ${Date.now()}`
  await bob('send', '@alice', back)
  await waitFor(() => hasMessage(back), 15000, 'a message after the restart')
})

async function openSettings() {
  await browser.execute(() => document.querySelector('button[aria-label="Settings"]')?.click())
  await waitFor(() => visible('start-at-login'), 5000, 'the Settings dialog')
  await waitFor(async () => !(await (await $t('start-at-login')).getAttribute('disabled')), 5000, 'the start-at-login state')
}
const closeSettings = () => browser.keys('Escape')
const checked = () => browser.execute(() => document.querySelector('[data-testid="start-at-login"]').checked)
const autostartDir = join(home, '.config/autostart')
const autostartFile = join(autostartDir, 'Courier.desktop')

await scenario('Settings: start at login is off by default, turns on and off, and says why it failed', async () => {
  await openSettings()
  if (await checked()) throw new Error('start at login is on by default')
  await (await $t('start-at-login')).click()
  await waitFor(() => existsSync(autostartFile), 5000, 'the autostart entry')
  const entry = readFileSync(autostartFile, 'utf8')
  if (!entry.includes(`Exec=${APP}`)) throw new Error(`autostart entry: ${entry}`)
  await waitFor(checked, 3000, 'the toggle to show on')
  await (await $t('start-at-login')).click()
  await waitFor(() => !existsSync(autostartFile), 5000, 'the autostart entry to go')
  // An autostart folder that is a file: the toggle stays off and says why.
  rmSync(autostartDir, { recursive: true, force: true })
  writeFileSync(autostartDir, 'not a folder')
  try {
    await (await $t('start-at-login')).click()
    const why = await waitFor(async () => text('[data-testid="start-at-login-error"]'), 5000, 'the error')
    if (!/couldn't turn on start at login/i.test(why)) throw new Error(`error text: ${why}`)
    if (await checked()) throw new Error('the toggle shows on after a failure')
  } finally {
    rmSync(autostartDir, { force: true })
    await closeSettings()
  }
})

await scenario('Settings: "Open logs folder" opens the profile\'s log folder, which holds the log', async () => {
  await openSettings()
  await browser.execute(() => {
    let el = document.querySelector('[data-testid="open-logs"]')
    while (el && el.scrollHeight <= el.clientHeight) el = el.parentElement
    if (el) el.scrollTop = el.scrollHeight
  })
  await sleep(800) // the dialog's transition
  await shot('settings')
  await (await $t('open-logs')).click()
  const logs = join(appEnv.COURIER_DATA_ROOT, 'default/logs')
  await waitFor(() => existsSync(OPENED) && readFileSync(OPENED, 'utf8').includes(logs), 5000, `xdg-open ${logs}`)
  await closeSettings()
  const files = readdirSync(logs).filter((f) => /^courier\..*\.log$/.test(f))
  if (files.length !== 1) throw new Error(`log files: ${files}`)
  const body = readFileSync(join(logs, files[0]), 'utf8')
  if (!/INFO/.test(body) || body.includes('\u001b[')) throw new Error(`log file: ${body.slice(0, 300)}`)
})

await scenario('the composer is spell-checked (WebKitGTK with its checker enabled and a dictionary)', async () => {
  await openDm('bob')
  const input = await $t('composer-input')
  const draw = async (spell, name) => {
    await browser.execute((on) => {
      const el = document.querySelector('[data-testid="composer-input"]')
      el.setAttribute('spellcheck', on ? 'true' : 'false')
      el.value = ''
      el.dispatchEvent(new Event('input'))
    }, spell)
    await input.click()
    await browser.keys('Thiss sentance is mispelled ')
    await sleep(500)
    await browser.execute(() => document.activeElement?.blur())
    await sleep(300)
    // (element screenshots come out black here: crop the window's)
    const r = await browser.execute(() => {
      const b = document.querySelector('[data-testid="composer-input"]').getBoundingClientRect()
      return { x: Math.round(b.left), y: Math.round(b.top), w: Math.round(b.width), h: Math.round(b.height) }
    })
    const full = join(tmp, `${name}-window.png`)
    const file = join(tmp, `${name}.png`)
    await saveScreenshot(browser, full)
    await run('convert', [full, '-crop', `${r.w}x${r.h}+${r.x}+${r.y}`, '+repage', file])
    return file
  }
  const plain = await draw(false, 'composer-spellcheck-off')
  const checked = await draw(true, 'composer-spellcheck-on')
  if (await samePixels(plain, checked)) throw new Error('no misspelling marks were drawn')
  await browser.execute(() => {
    const el = document.querySelector('[data-testid="composer-input"]')
    el.value = ''
    el.dispatchEvent(new Event('input'))
  })
})

await scenario('screenshots: light/dark, English/Chinese', async () => {
  const base = (await invoke('settings_get')).ok
  for (const [theme, language, name] of [['dark', 'en', 'conversation-dark-en'], ['light', 'zh-CN', 'conversation-light-zh'], ['dark', 'zh-CN', 'conversation-dark-zh']]) {
    await invoke('settings_set', { settings: { ...base, theme, language } })
    await browser.refresh()
    await waitFor(async () => (await $t('conv-item')).isExisting(), 15000, 'the list after reload')
    await clickItem('[data-testid="conv-item"]', 'bob')
    await sleep(800)
    await shot(name)
  }
  await invoke('settings_set', { settings: base })
})

// Idle memory of the app process tree (the app + WebKit's processes).
try {
  const { stdout } = await run('bash', ['-c', `pid=$(pgrep -n -x courier); [ -n "$pid" ] || exit 0; pids="$pid $(pgrep -P $pid | tr '\\n' ' ')"; for c in $(pgrep -P $pid); do pids="$pids $(pgrep -P $c | tr '\\n' ' ')"; done; ps -o rss= -p $(echo $pids | tr ' ' ',') | awk '{s+=$1} END {print s}'`])
  metrics.idle_rss_tree_kib = Number(stdout.trim())
} catch { /* ignore */ }

async function cleanup() {
  try { await browser?.deleteSession() } catch { /* ignore */ }
  browser = null
  // Wait until each is really gone (a dying tauri-driver still holding its
  // port once answered the second run's readiness probe, then dropped the
  // session request); SIGKILL whatever outlives 5 s.
  const gone = children.reverse().map((c) => new Promise((res) => {
    if (c.exitCode !== null || c.signalCode !== null) return res()
    c.once('exit', res)
    try { process.kill(-c.pid, 'SIGTERM') } catch { res() }
    setTimeout(() => { try { process.kill(-c.pid, 'SIGKILL') } catch { /* gone */ } res() }, 5000)
  }))
  await Promise.all(gone)
  children.length = 0
}
// Quit from the tray menu: the app exits, saving its window's state in the profile's folder.
await scenario('tray "Quit Courier" quits, and the window size and position are saved per profile', async () => {
  const file = join(appEnv.COURIER_DATA_ROOT, 'default/window-state.json')
  if (existsSync(file)) throw new Error('a window state before the first exit')
  await desk.menuClick('Quit Courier')
  await waitFor(() => existsSync(file), 10000, 'the saved window state')
  const saved = JSON.parse(readFileSync(file, 'utf8')).main
  if (!(saved?.width > 0 && saved?.height > 0) || saved.maximized !== false) throw new Error(`saved state ${JSON.stringify(saved)}`)
})
await cleanup()

// ---- second app: a first run with nothing configured (embedded server)
const home2 = join(tmp, 'home2')
mkdirSync(join(home2, '.local/share'), { recursive: true })
const env2 = { ...appEnv, HOME: home2, XDG_DATA_HOME: join(home2, '.local/share'), XDG_CONFIG_HOME: join(home2, '.config'),
  COURIER_DATA_ROOT: join(tmp, 'courier-root2'), COURIER_SERVER: '', COURIER_USER: '',
  // Its own profile: its own single-instance key, even if the first app is still exiting.
  COURIER_PROFILE: 'firstrun' }
// Fresh ports too, so nothing left of the first driver can answer for it.
// Its profile remembers a window of 900×640 at (40, 30): the app opens so.
const savedWindow = { width: 900, height: 640, x: 40, y: 30, prev_x: 40, prev_y: 30, maximized: false, visible: true, decorated: true, fullscreen: false }
mkdirSync(join(env2.COURIER_DATA_ROOT, 'firstrun'), { recursive: true })
writeFileSync(join(env2.COURIER_DATA_ROOT, 'firstrun/window-state.json'), JSON.stringify({ main: savedWindow }))
const DRIVER_PORT2 = await freePort()
start('tauri-driver', ['--port', String(DRIVER_PORT2), '--native-port', String(await freePort())], env2, 'tauri-driver-2')
await waitFor(() => new Promise((res) => {
  const s = net.connect(DRIVER_PORT2, '127.0.0.1', () => { s.destroy(); res(true) })
  s.on('error', () => res(false))
}), 15000, 'tauri-driver (second run)')
await scenario('first run: sign-in screen, then chatting on the embedded server', async () => {
  // A session asked for before tauri-driver's WebKitWebDriver listens fails
  // with a closed socket (UND_ERR_SOCKET): retry, as for the second profile.
  for (let attempt = 1; ; attempt++) {
    try {
      browser = await remote({ hostname: '127.0.0.1', port: DRIVER_PORT2, logLevel: 'warn', connectionRetryTimeout: 60000,
        connectionRetryCount: 0, capabilities: {
          browserName: 'wry', 'wdio:enforceWebDriverClassic': true, 'tauri:options': { application: APP } } })
      break
    } catch (e) {
      if (attempt >= 3) throw e
      log(`first-run session attempt ${attempt} failed (${e?.message ?? e}); retrying`)
      await sleep(2000)
    }
  }
  globalThis.browser = browser
  await waitFor(() => visible('signin'), 20000, 'the sign-in screen')
  const rect = await browser.execute(() => ({ w: window.innerWidth, h: window.innerHeight, x: window.screenX, y: window.screenY }))
  if (rect.w !== savedWindow.width || rect.h !== savedWindow.height) throw new Error(`window ${JSON.stringify(rect)}, saved ${savedWindow.width}×${savedWindow.height}`)
  // The screen suggests a random nickname; it must become the profile.
  const nick = await browser.execute(() => document.querySelector('[data-testid="nickname"]').value)
  if (!nick) throw new Error('no suggested nickname')
  await shot('signin-light-en')
  await (await $t('start')).click()
  await waitFor(async () => (await text('[data-testid="conv-list"]')).includes('lobby'), 20000, '#lobby in the list')
  const acc = (await invoke('account')).ok
  if (acc?.server?.mode !== 'embedded' || !/^[a-z]+-\d{4}$/.test(acc.user)) throw new Error(`account ${JSON.stringify(acc)}`)
  // The server has the chosen profile (connect returned with a live session).
  const prof = await invoke('profiles', { users: [acc.user] })
  if (prof.ok?.[0]?.name !== nick) throw new Error(`server profile ${JSON.stringify(prof)} != ${nick}`)
  const shown = () => browser.execute(() => document.body.textContent ?? '').then((t) => t.includes(nick))
  // set_profile emits the user's own `profile` event: no reload needed.
  await waitFor(shown, 10000, `the chosen nickname ${nick} in the sidebar`)
  // First run: the welcome panel offers the default channels and a "start a chat" field.
  await waitFor(async () => (await text('[data-testid="welcome-channels"]')).includes('lobby'), 10000, 'the welcome panel with #lobby')
  await sleep(300)
  await shot('welcome-light-en')
  await clickItem('[data-testid="conv-item"]', 'lobby')
  await sendFromApp('hello from the embedded server')
  await waitFor(() => hasMessage('hello from the embedded server'), 5000, 'own message in #lobby')
  await sleep(500)
  await shot('embedded-lobby-light-en')
})

// ---- the embedded server against a local attacker (issue 13)
const root2 = env2.COURIER_DATA_ROOT
await scenario('embedded server: dev tokens refused, its secret private', async () => {
  const rec = JSON.parse(readFileSync(join(root2, 'embedded-server.json'), 'utf8'))
  const acc = (await invoke('account')).ok
  // A local process that knows (or guesses) a user id cannot be that user.
  const intruder = await run(CLI, ['--server', rec.url, '--token', `dev:${acc.user}`, '--data', join(tmp, 'intruder'),
    'send', '#lobby', 'I am not who I say'], { timeout: 30000 }).then(() => null, (e) => e)
  if (!intruder) throw new Error('the embedded server took a dev token')
  const mode = (p) => (statSync(p).mode & 0o777).toString(8)
  const modes = { dir: mode(join(root2, 'server')), secret: mode(join(root2, 'server/secret')),
    account: mode(join(root2, 'firstrun/account.json')) }
  if (modes.dir !== '700' || modes.secret !== '600' || modes.account !== '600') throw new Error(`modes ${JSON.stringify(modes)}`)
  const secret = readFileSync(join(root2, 'server/secret'), 'utf8').trim()
  if (!/^[0-9a-f]{64}$/.test(secret)) throw new Error('the secret is not 256 bits of hex')
  if (readFileSync(join(root2, 'firstrun/account.json'), 'utf8').includes('eyJ')) throw new Error('a token in account.json')
})
await scenario('the webview loads files from the media cache only', async () => {
  const acc = (await invoke('account')).ok
  // The asset protocol: a picture in the account's media cache loads, the
  // same picture elsewhere in the profile does not.
  const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64')
  const media = join(root2, `firstrun/accounts/${acc.user}@embedded/media`)
  mkdirSync(media, { recursive: true })
  writeFileSync(join(media, 'probe.png'), png)
  writeFileSync(join(root2, 'firstrun/probe.png'), png)
  const load = (path) => browser.executeAsync((path, done) => {
    const img = new Image()
    img.onload = () => done('loaded')
    img.onerror = () => done('refused')
    img.src = window.__TAURI_INTERNALS__.convertFileSrc(path, 'asset')
  }, path)
  const inCache = await load(join(media, 'probe.png'))
  const outside = await load(join(root2, 'firstrun/probe.png'))
  if (inCache !== 'loaded' || outside !== 'refused') throw new Error(`media cache: ${inCache}, profile dir: ${outside}`)
})

// A second profile of the same OS user finds the running embedded server,
// signs in there with a token minted from the shared secret, and chats.
const env3 = { ...env2, COURIER_PROFILE: 'second', COURIER_EMBEDDED: '1' }
const DRIVER_PORT3 = await freePort()
const NATIVE_PORT3 = await freePort()
const driver3 = start('tauri-driver', ['--port', String(DRIVER_PORT3), '--native-port', String(NATIVE_PORT3)], env3, 'tauri-driver-3')
await scenario('a second profile chats with the first through the shared embedded server', async () => {
  // Both the driver and the WebKitWebDriver it starts must answer: a session
  // asked for before the second one listens fails with a closed socket.
  const listening = (port) => () => new Promise((res) => {
    const s = net.connect(port, '127.0.0.1', () => { s.destroy(); res(true) })
    s.on('error', () => res(false))
  })
  await waitFor(listening(DRIVER_PORT3), 15000, 'tauri-driver (second profile)')
  // (tauri-driver starts it at launch; should a version start it lazily, the retries below cover it.)
  await waitFor(listening(NATIVE_PORT3), 10000, 'WebKitWebDriver (second profile)').catch(() => {})
  const first = browser
  let second
  for (let attempt = 1; !second; attempt++) {
    try {
      second = await remote({ hostname: '127.0.0.1', port: DRIVER_PORT3, logLevel: 'warn', connectionRetryTimeout: 60000,
        connectionRetryCount: 0, capabilities: {
          browserName: 'wry', 'wdio:enforceWebDriverClassic': true, 'tauri:options': { application: APP } } })
    } catch (e) {
      if (attempt >= 3) throw new Error(`${e?.message ?? e}; tauri-driver said: ${(driver3.err ?? '').slice(-800)}`)
      log(`second-profile session attempt ${attempt} failed (${e?.message ?? e}); retrying`)
      await sleep(1500)
    }
  }
  const msg = `hello from the second profile ${Date.now()}`
  try {
    browser = globalThis.browser = second
    await waitFor(async () => (await text('[data-testid="conv-list"]')).includes('lobby'), 30000, '#lobby in the second profile')
    const acc = (await invoke('account')).ok
    if (acc?.server?.mode !== 'embedded') throw new Error(`second account ${JSON.stringify(acc)}`)
    await clickItem('[data-testid="conv-item"]', 'lobby')
    await sendFromApp(msg)
    await waitFor(() => hasMessage(msg), 10000, 'own message in #lobby (second profile)')
  } finally {
    try { await second.deleteSession() } catch { /* ignore */ }
    browser = globalThis.browser = first
  }
  await waitFor(() => hasMessage(msg), 15000, "the second profile's message in the first app")
  await saveScreenshot(browser, join(tmp, 'two-profiles.png'))
})
await cleanup()

writeFileSync(join(tmp, 'results.json'), JSON.stringify({ results, metrics }, null, 2))
log('metrics', JSON.stringify(metrics))
const failed = results.filter((r) => !r.ok)
for (const r of results) console.log(`${r.ok ? 'ok  ' : 'FAIL'} ${r.name}${r.ok ? '' : `\n     ${r.error.split('\n')[0]}`}`)
console.log(`${results.length - failed.length}/${results.length} scenarios passed; logs and failure shots in ${tmp}`)
process.exit(failed.length ? 1 : 0)
