// End-to-end calls (issue 15): the desktop app, driven through tauri-driver,
// calls a courier-cli peer ("bob", `answer-calls --accept`) through a real
// courier-server. The app runs with COURIER_TEST_MEDIA=1 (a test tone and a
// test picture: Xvfb has no devices). Run it through tests/e2e/call.sh,
// which makes the network namespace, Xvfb and the D-Bus session.
//
// A video call: the in-call view reaches "connected", the received-audio
// meter moves, the remote video surface draws pictures that are not blank
// (screenshot call-video.png), Ctrl+Shift+M mutes, Ctrl+Shift+H hangs up and
// bob's call ends too.
// An audio call: bob hangs up after a few seconds and the app's call ends.
// Bob calls: the OS notification offers Accept and Decline; Accept there
// connects the call, Decline refuses it (bob exits "declined", and the
// window's card says declined, not "answered on another device").
// The call records reach both histories. A photo bob sends is drawn (upload,
// the media cache, the image_file check, the <img>); a file whose bytes are
// not an image is offered as a file. Settings → devices says there is
// no microphone (Xvfb). Frame cost and latency as the
// page measured them are printed (docs/calls.md).
import { spawn, execFile } from 'node:child_process'
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import net from 'node:net'
import { promisify } from 'node:util'
import { remote } from 'webdriverio'
import { startDesktopBus } from './desktop-bus.mjs'
import { saveScreenshot } from './screenshot.mjs'

const ROOT = resolve(import.meta.dirname, '../..')
const BIN = join(resolve(ROOT, process.env.CARGO_TARGET_DIR ?? 'target'), 'debug')
// COURIER_E2E_APP: another build of the app (e.g. the release binary, for its CPU figures).
const APP = process.env.COURIER_E2E_APP ? resolve(process.env.COURIER_E2E_APP) : join(BIN, 'courier')
// The server listens on loopback (dev tokens are refused elsewhere); media
// takes the veth addresses (libnice skips loopback).
const HOST = '127.0.0.1'
const tmp = mkdtempSync(join(tmpdir(), 'courier-call-e2e-'))
const SHOTS = process.env.E2E_SHOTS ? resolve(ROOT, process.env.E2E_SHOTS) : join(tmp, 'shots')
const procs = []
const failures = []
const say = (...a) => console.log(`[call-e2e ${new Date().toISOString().slice(11, 23)}]`, ...a)
const pause = (ms) => new Promise((r) => setTimeout(r, ms))

function launch(name, cmd, args, env = {}) {
  const p = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  p.log = ''
  p.stdout.on('data', (d) => { p.log += d })
  p.stderr.on('data', (d) => { p.log += d; if (process.env.E2E_VERBOSE) process.stderr.write(`[${name}] ${d}`) })
  p.done = new Promise((res) => p.on('exit', (code) => res(code)))
  procs.push(p)
  return p
}
process.on('exit', () => procs.forEach((p) => { try { process.kill(-p.pid, 'SIGKILL') } catch { /* gone */ } }))

/** CPU time (user + system, in clock ticks) of each process: pid → ticks, parent pid, name. */
function processes() {
  const all = new Map()
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      all.set(Number(pid), { ppid: Number(f[1]), name, ticks: Number(f[11]) + Number(f[12]) })
    } catch { /* gone */ }
  }
  return all
}

/**
 * Measures, over `ms`, the CPU of the app (the process running APP), its
 * WebKit processes and `peer`, as % of one core (100 ticks a second).
 */
async function cpuOver(ms, peer) {
  const app = () => [...processes().keys()].find((pid) => { try { return readlinkSync(`/proc/${pid}/exe`) === APP } catch { return false } })
  const pid = app()
  if (!pid) return null
  const group = (all) => {
    const of = { app: 0, web: 0, peer: 0 }
    for (const [p, v] of all) {
      if (p === pid) of.app += v.ticks
      else if (v.ppid === pid && v.name.startsWith('WebKit')) of.web += v.ticks
      else if (p === peer) of.peer += v.ticks
    }
    return of
  }
  const a = group(processes())
  await pause(ms)
  const b = group(processes())
  const pct = (k) => Math.round(((b[k] - a[k]) / (ms / 1000)) * 10) / 10
  return { app: pct('app'), web: pct('web'), peer: pct('peer') }
}

/** Polls `check` until it returns something truthy. */
async function until(what, ms, check) {
  const end = Date.now() + ms
  let why = ''
  for (;;) {
    try { const v = await check(); if (v) return v } catch (e) { why = ` (${e.message})` }
    if (Date.now() > end) throw new Error(`no ${what} within ${ms} ms${why}`)
    await pause(200)
  }
}
const listening = (port, host) => new Promise((res) => {
  const s = net.connect(port, host, () => { s.destroy(); res(true) })
  s.on('error', () => res(false))
})
async function port() {
  const s = net.createServer()
  await new Promise((r) => s.listen(0, '127.0.0.1', r))
  const p = s.address().port
  await new Promise((r) => s.close(r))
  return p
}

// ---- server, bob, the app
const serverPort = await port()
const url = `ws://${HOST}:${serverPort}`
launch('server', join(BIN, 'courier-server'), ['--listen', `${HOST}:${serverPort}`, '--data', join(tmp, 'server'), '--dev-auth'], { RUST_LOG: 'warn' })
await until('server', 15000, () => listening(serverPort, HOST))
const cliArgs = ['--server', url, '--token', 'dev:bob', '--data', join(tmp, 'bob')]
const cli = (...a) => promisify(execFile)(join(BIN, 'courier-cli'), [...cliArgs, ...a], { timeout: 60000 })
const answerCalls = (...a) => launch('bob', join(BIN, 'courier-cli'), [...cliArgs, 'answer-calls', '--accept', ...a])
await cli('send', '@alice', 'call me')

// A notification daemon on the session bus that records Notify calls and
// can invoke their actions (tests/e2e/desktop_bus.py).
const desk = startDesktopBus()
procs.push(desk.proc)
await desk.ready

const driverPort = await port()
const home = join(tmp, 'home')
mkdirSync(home, { recursive: true })
launch('tauri-driver', 'tauri-driver', ['--port', String(driverPort), '--native-port', String(await port())], {
  HOME: home, COURIER_DATA_ROOT: join(tmp, 'courier-root'), COURIER_NO_SCHEME_REGISTER: '1',
  COURIER_SERVER: url, COURIER_USER: 'alice', COURIER_TEST_MEDIA: '1', RUST_LOG: process.env.RUST_LOG ?? 'info,courier_media=debug',
})
await until('tauri-driver', 15000, () => listening(driverPort, '127.0.0.1'))
const browser = await remote({
  hostname: '127.0.0.1', port: driverPort, logLevel: 'warn', connectionRetryTimeout: 60000, connectionRetryCount: 0,
  capabilities: { browserName: 'wry', 'wdio:enforceWebDriverClassic': true, 'tauri:options': { application: APP } },
})

/** Reads the page: `fn` runs in the webview. */
const page = (fn, ...args) => browser.execute(fn, ...args)
const attr = (id, name) => page((id, name) => document.querySelector(`[data-testid="${id}"]`)?.getAttribute(name) ?? null, id, name)
const click = async (id) => {
  if (!(await page((id) => { const el = document.querySelector(`[data-testid="${id}"]`); el?.click(); return !!el }, id))) throw new Error(`no ${id}`)
}
const records = () => page(() => [...document.querySelectorAll('[data-testid="call-record"]')].map((e) => e.getAttribute('data-outcome')))
async function bobRecords() {
  const { stdout } = await cli('history', '@alice', '--json', '--limit', '50')
  return stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((m) => m.kind === 'call')
}

/** The end of the app's own log (its calls, at debug level), for a failure. */
function appLogTail(chars = 3000) {
  try {
    const dir = join(tmp, 'courier-root', 'default', 'logs')
    const newest = readdirSync(dir).filter((f) => f.startsWith('courier.')).sort().pop()
    return newest ? readFileSync(join(dir, newest), 'utf8').slice(-chars) : '(no log file)'
  } catch (e) {
    return `(no log: ${e?.message ?? e})`
  }
}

async function step(name, fn) {
  const t0 = Date.now()
  try {
    await fn()
    say(`PASS ${name} (${Date.now() - t0} ms)`)
  } catch (e) {
    failures.push(name)
    say(`FAIL ${name}: ${e?.message ?? e}`)
    say(`the app's log, last lines:\n${appLogTail()}`)
    try { await saveScreenshot(browser, join(tmp, `fail-${name.replace(/\W+/g, '_')}.png`)) } catch { /* ignore */ }
  }
}

await step('the chat with bob opens', async () => {
  await until('the app signed in', 30000, () => attr('new-chat', 'aria-label'))
  await click('new-chat')
  const input = await browser.$('[data-testid="new-chat-user"]')
  await input.waitForDisplayed({ timeout: 5000 })
  await input.setValue('bob')
  await browser.keys('Enter')
  await until('the call buttons', 10000, () => attr('video-call-button', 'aria-label'))
})

await step('a video call connects; the meter moves and the remote picture is drawn; the keyboard mutes and hangs up, and bob ends', async () => {
  const bob = answerCalls('--tone', '880', '--for', '60', '--json')
  await pause(1000)
  const clicked = Date.now()
  await click('video-call-button')
  try {
    await until('"connected"', 30000, async () => (await attr('in-call', 'data-phase')) === 'connected')
  } catch (e) {
    throw new Error(`${e.message} (the in-call view says ${await attr('in-call', 'data-phase')}); bob (exit ${bob.exitCode}) said: ${bob.log.slice(-3000)}`)
  }
  say(`click to connected: ${Date.now() - clicked} ms`)
  await until('the received-audio meter to move', 15000, async () => Number(await attr('remote-level', 'data-level')) > 0.2)
  const measured = () => page(() => {
    const c = document.querySelector('[data-testid="remote-video"]')
    return c && { frames: Number(c.dataset.frames), drawMs: c.dataset.drawMs, latencyMs: c.dataset.latencyMs, size: `${c.width}x${c.height}` }
  })
  const first = await until('remote pictures', 15000, async () => { const m = await measured(); return m?.frames > 0 && m })
  const cpu = await cpuOver(5000, bob.pid)
  const later = await measured()
  say('remote video as drawn:', JSON.stringify(later), `${((later.frames - first.frames) / 5).toFixed(1)} pictures/s`)
  say('CPU during the video call, % of one core:', JSON.stringify(cpu), `(load ${loadavg()[0].toFixed(1)})`)
  if (later.frames - first.frames < 10) throw new Error(`too few pictures drawn: ${JSON.stringify([first, later])}`)
  // Not blank: the test pattern lights part of the picture (a moving ball on black).
  const lit = await page(() => {
    const c = document.querySelector('[data-testid="remote-video"]')
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data
    let on = 0
    for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 120) on++
    return { lit: on, of: d.length / 4 }
  })
  if (lit.lit < 50) throw new Error(`the remote picture is blank (${JSON.stringify(lit)})`)
  mkdirSync(SHOTS, { recursive: true })
  await pause(1500)
  await saveScreenshot(browser, join(SHOTS, 'call-video.png'))
  // The keyboard: Ctrl+Shift+M mutes (the engine is told), Ctrl+Shift+H hangs up.
  await browser.keys(['Control', 'Shift', 'm'])
  await until('the microphone muted', 5000, async () => (await attr('call-mute', 'aria-pressed')) === 'true')
  await browser.keys(['Control', 'Shift', 'h'])
  const code = await Promise.race([bob.done, pause(20000).then(() => 'still running')])
  if (code !== 0) throw new Error(`bob's answer-calls: ${code}\n${bob.log.slice(-1500)}`)
  await until('the in-call view to close', 10000, async () => (await attr('in-call', 'data-phase')) === null)
})

await step('an audio call: bob hangs up and the app ends too', async () => {
  const bob = answerCalls('--tone', '440', '--for', '4', '--json')
  await pause(1000)
  await click('call-button')
  try {
    await until('"connected"', 30000, async () => (await attr('in-call', 'data-phase')) === 'connected')
  } catch (e) {
    throw new Error(`${e.message} (the in-call view says ${await attr('in-call', 'data-phase')}); bob (exit ${bob.exitCode}) said: ${bob.log.slice(-3000)}`)
  }
  if (await attr('remote-video', 'data-frames')) throw new Error('an audio call shows video')
  await until('the received-audio meter to move', 15000, async () => Number(await attr('remote-level', 'data-level')) > 0.2)
  await saveScreenshot(browser, join(tmp, 'call-audio.png'))
  say('CPU during the audio call, % of one core:', JSON.stringify(await cpuOver(2000, bob.pid)), `(load ${loadavg()[0].toFixed(1)})`)
  try {
    await until('the end of the call', 30000, async () => (await attr('in-call', 'data-phase')) === null)
  } catch (e) {
    throw new Error(`${e.message}; bob (exit ${bob.exitCode}) said: ${bob.log.slice(-1500)}`)
  }
  const code = await bob.done
  if (code !== 0) throw new Error(`bob's answer-calls: ${code}\n${bob.log.slice(-1500)}`)
})

/** The newest incoming-call notification after `seen` of them, with its actions. */
const callNote = (seen) => until('an incoming-call notification', 20000, () =>
  desk.notes.slice(seen).find((n) => n.summary.includes('bob') && n.actions.includes('accept') && n.actions.includes('decline')))

await step('bob calls; Accept on the notification connects the call; bob hangs up and the app ends', async () => {
  const seen = desk.notes.length
  const bob = launch('bob-call', join(BIN, 'courier-cli'), [...cliArgs, 'call', '@alice', '--video', '--tone', '660', '--for', '4', '--json'])
  const note = await callNote(seen)
  if (!note.summary.includes('video')) throw new Error(`the notification does not say video: ${note.summary}`)
  await desk.clickNotification(note.id, 'accept')
  await until('"connected"', 30000, async () => (await attr('in-call', 'data-phase')) === 'connected')
  await until('the end of the call', 30000, async () => (await attr('in-call', 'data-phase')) === null)
  const code = await bob.done
  if (code !== 0) throw new Error(`bob's call: ${code}\n${bob.log.slice(-1500)}`)
})

await step('bob calls; Decline on the notification refuses it', async () => {
  const seen = desk.notes.length
  const bob = launch('bob-call', join(BIN, 'courier-cli'), [...cliArgs, 'call', '@alice', '--ring', '20'])
  const note = await callNote(seen)
  const seenPhases = []
  try {
    await until('the incoming card ringing', 15000, async () => {
      const phase = await attr('call-phase', 'data-phase')
      if (seenPhases.at(-1) !== phase) seenPhases.push(phase)
      return phase === 'ringing'
    })
  } catch (e) {
    const shown = await page(() => document.querySelector('[data-testid="incoming-call"]')?.textContent ?? null)
    throw new Error(`${e.message}: the card went ${JSON.stringify(seenPhases)}, shows ${JSON.stringify(shown)}`)
  }
  await desk.clickNotification(note.id, 'decline')
  // The window's card says what this device did for its last 2 s (it once
  // said "answered on another device").
  const said = await until('the incoming card to change', 10000, async () => {
    const phase = await attr('call-phase', 'data-phase')
    return phase !== 'ringing' && (phase ?? 'closed')
  })
  if (said !== 'declined') throw new Error(`the incoming card says ${said}, not declined`)
  const code = await Promise.race([bob.done, pause(25000).then(() => 'still running')])
  if (code !== 6) throw new Error(`bob's call ended with ${code}, not 6 (declined)\n${bob.log.slice(-800)}`)
})

await step('the call records reach both histories', async () => {
  await until('three completed records in the app', 15000, async () => {
    const r = await records()
    if (r.filter((o) => o === 'completed').length === 3) return true
    throw new Error(`the app shows ${JSON.stringify(r)}; bob has ${JSON.stringify((await bobRecords()).map((m) => [m.from, m.body?.outcome]))}`)
  })
  await until('the declined record in the app', 15000, async () => (await records()).includes('declined'))
  await until('the same records for bob', 15000, async () => {
    const outcomes = (await bobRecords()).map((m) => m.body?.outcome)
    return outcomes.filter((o) => o === 'completed').length === 3 && outcomes.includes('declined')
  })
})

await step('bob sends a photo and a file: the app draws the photo and offers the file', async () => {
  // A real PNG through upload, the media cache and image_file to an <img>.
  const photo = join(ROOT, 'docs/screenshots/light-dm.png')
  await cli('send-file', '@alice', photo, '--wait', '30')
  const notes = join(tmp, 'notes.png')
  writeFileSync(notes, 'named like a picture, but not one')
  await cli('send-file', '@alice', notes, '--name', 'notes.png', '--wait', '30')
  const drawn = await until('the photo drawn', 20000, () => page(() => {
    const img = document.querySelector('[data-testid="image-attachment"] img')
    return img?.complete && img.naturalWidth > 0 && img.classList.contains('opacity-100') && { w: img.naturalWidth, h: img.naturalHeight, src: img.src.slice(0, 40) }
  }))
  const png = readFileSync(photo)
  const [w, h] = [png.readUInt32BE(16), png.readUInt32BE(20)]
  if (drawn.w !== w || drawn.h !== h) throw new Error(`the photo is drawn at ${drawn.w}x${drawn.h}, not ${w}x${h}`)
  // Its bytes are not an image: a file to open, never an <img>.
  await until('the file offered', 10000, () => page(() =>
    [...document.querySelectorAll('[data-testid="file-attachment"]')].some((e) => e.textContent.includes('notes.png'))))
  say('the photo as drawn:', JSON.stringify(drawn))
  await saveScreenshot(browser, join(tmp, 'photo.png'))
})

await step('Settings → devices: the missing microphone is said, not a crash', async () => {
  await page(() => document.querySelector('button[aria-label="Settings"]').click())
  await until('the devices section', 5000, () => attr('call-devices', 'data-testid'))
  await click('mic-test')
  const said = await until('the mic test to say why', 10000, () => page(() => document.querySelector('[data-testid="mic-test-error"]')?.textContent))
  if (!said.includes('No microphone')) throw new Error(`the mic test said: ${said}`)
  await page(() => document.querySelector('[data-testid="call-devices"]').scrollIntoView())
  await saveScreenshot(browser, join(tmp, 'settings-devices.png'))
})

try { await browser.deleteSession() } catch { /* ignore */ }
say(failures.length ? `FAILED: ${failures.join('; ')}` : 'all call scenarios passed')
process.exit(failures.length ? 1 : 0)
