// Measures the desktop app against a server whose alice<->bob DM holds 100,000
// messages (seeded beforehand by tests/e2e/seed-100k.mjs). Env: M_PORT (server port, server
// already running), M_TMP (work dir; reuse it and the app's store is already
// synced), M_APP (the app binary; default the debug build), M_REPS (opens).
// Run under:
//   xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session -- node tests/e2e/measure-100k.mjs
import { spawn, execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { basename, join, resolve } from 'node:path'
import net from 'node:net'
import { remote } from 'webdriverio'

const ROOT = resolve(import.meta.dirname, '../..')
const APP = process.env.M_APP ?? join(resolve(ROOT, process.env.CARGO_TARGET_DIR ?? 'target'), 'debug/courier')
const TMP = process.env.M_TMP
const port = Number(process.env.M_PORT)
const N = Number(process.env.M_N ?? 100000)
const REPS = Number(process.env.M_REPS ?? 5)
const children = []
const out = { n: N }
const log = (...a) => console.log(`[m ${new Date().toISOString().slice(11, 23)}]`, ...a)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
process.on('exit', () => { for (const c of children) { try { process.kill(-c.pid, 'SIGKILL') } catch {} } })
async function freePort() {
  return new Promise((res) => { const s = net.createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)) }) })
}
function start(cmd, args, env) {
  const p = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  p.out = ''; p.stdout.on('data', (d) => { p.out += d }); p.stderr.on('data', (d) => { p.out += d })
  children.push(p); return p
}
async function waitFor(pred, ms, what, every = 100) {
  const end = Date.now() + ms
  while (Date.now() < end) { try { const v = await pred(); if (v) return v } catch {} await sleep(every) }
  throw new Error(`timeout ${what}`)
}
const stats = (a) => { const s = [...a].sort((x, y) => x - y); return { median: s[Math.floor(s.length / 2)], min: s[0], max: s.at(-1), all: a.map((x) => Math.round(x)) } }

const home = join(TMP, 'home')
const appEnv = {
  HOME: home, XDG_DATA_HOME: join(home, '.local/share'), XDG_CONFIG_HOME: join(home, '.config'), XDG_CACHE_HOME: join(home, '.cache'),
  COURIER_DATA_ROOT: join(TMP, 'courier-root'), COURIER_SERVER: `ws://127.0.0.1:${port}`, COURIER_USER: 'alice', RUST_LOG: 'info',
}
mkdirSync(appEnv.XDG_DATA_HOME, { recursive: true }); mkdirSync(appEnv.XDG_CONFIG_HOME, { recursive: true })

let browser, driver
async function session() {
  const DP = await freePort(), NP = await freePort()
  driver = start('tauri-driver', ['--port', String(DP), '--native-port', String(NP)], appEnv)
  await waitFor(() => new Promise((res) => { const s = net.connect(DP, '127.0.0.1', () => { s.destroy(); res(true) }); s.on('error', () => res(false)) }), 15000, 'driver')
  const t0 = Date.now()
  browser = await remote({ hostname: '127.0.0.1', port: DP, logLevel: 'warn', connectionRetryTimeout: 120000, connectionRetryCount: 0,
    capabilities: { browserName: 'wry', 'wdio:enforceWebDriverClassic': true, 'tauri:options': { application: APP } } })
  await browser.setTimeout({ script: 120000 })
  return t0
}
async function endSession() {
  try { await browser?.deleteSession() } catch {}
  try { process.kill(-driver.pid, 'SIGTERM') } catch {}
  await sleep(1500)
}
const invoke = (cmd, args = {}) => browser.executeAsync((cmd, args, done) => {
  window.__TAURI_INTERNALS__.invoke(cmd, args).then((v) => done({ ok: v }), (e) => done({ err: String(e) }))
}, cmd, args)

// Clicks the conv-item containing `needle` and resolves, measured in the page
// (performance.now), when a rendered message-text contains `want` (checked on
// every animation frame, i.e. at most one frame late).
const openAndTime = (needle, want) => browser.executeAsync((needle, want, done) => {
  const el = [...document.querySelectorAll('[data-testid="conv-item"]')].find((e) => (e.textContent ?? '').toLowerCase().includes(needle))
  if (!el) return done({ err: 'no item ' + needle })
  const t0 = performance.now()
  el.click()
  const tick = () => {
    const hit = [...document.querySelectorAll('[data-testid="message-text"]')].some((e) => (e.textContent ?? '').trim() === want)
    if (hit) return done({ ms: performance.now() - t0 })
    if (performance.now() - t0 > 100000) return done({ err: 'timeout' })
    requestAnimationFrame(tick)
  }
  requestAnimationFrame(tick)
}, needle, want)

function rssTree() {
  const sh = `pid=$(pgrep -n -x ${basename(APP).slice(0, 15)}); all="$pid"; todo="$pid"; while [ -n "$todo" ]; do nxt=""; for p in $todo; do c=$(pgrep -P $p | tr '\\n' ' '); nxt="$nxt $c"; all="$all $c"; done; todo=$(echo $nxt); done; for p in $all; do n=$(cat /proc/$p/comm 2>/dev/null); r=$(awk '/VmRSS/{print $2}' /proc/$p/status 2>/dev/null); echo "$p $n $r"; done`
  const lines = execFileSync('bash', ['-c', sh]).toString().trim().split('\n').map((l) => l.split(' '))
  return { total_kib: lines.reduce((s, l) => s + Number(l[2] || 0), 0), procs: lines.map((l) => `${l[1]}(${l[0]})=${l[2]}kB`) }
}
const minRendered = () => browser.execute(() => {
  let m = Infinity
  for (const e of document.querySelectorAll('[data-testid="message-text"]')) { const r = /^message (\d+)$/.exec((e.textContent ?? '').trim()); if (r) m = Math.min(m, Number(r[1])) }
  return m
})

try {
  // ---------- first sign-in: sync of 100k
  const t0 = await session()
  log('session up', Date.now() - t0, 'ms')
  let seenList = null, seenAll = null, first = null, samples = 0
  await waitFor(async () => {
    const r = await invoke('conversations')
    const c = r.ok?.find((x) => x.peer === 'bob')
    samples++
    if (c && !seenList) { seenList = Date.now() - t0; log('bob conv known', seenList, 'ms', JSON.stringify({ last: c.last_seq, synced: c.synced_seq, unread: c.unread })) }
    if (c && samples % 10 === 0) log('  synced_seq', c.synced_seq, 'unread', c.unread, 't', Date.now() - t0)
    if (c && c.synced_seq >= N) { seenAll = Date.now() - t0; first = c; return true }
    return false
  }, 600000, 'sync', 250)
  out.sync = { session_start_to_conv_known_ms: seenList, session_start_to_synced_all_ms: seenAll, unread_at_end: first.unread, synced_seq: first.synced_seq }
  log('SYNC', JSON.stringify(out.sync))
  // The list shows both conversations (a reused, already synced store gets here before the first draw).
  await waitFor(() => browser.execute(() => {
    const t = [...document.querySelectorAll('[data-testid="conv-item"]')].map((e) => (e.textContent ?? '').toLowerCase())
    return t.some((x) => x.includes('bob')) && t.some((x) => x.includes('carol'))
  }), 60000, 'conversation list')
  // UI badge text once synced
  out.sync.badge = await browser.execute(() => [...document.querySelectorAll('[data-testid="conv-item"]')].map((e) => e.textContent.replace(/\s+/g, ' ').trim()))
  log('items', JSON.stringify(out.sync.badge))

  // ---------- warm opens: carol then bob, REPS times
  const opens = []
  for (let i = 0; i < REPS; i++) {
    const c = await openAndTime('carol', 'hello from carol')
    if (c.err) throw new Error('carol ' + c.err)
    await sleep(500)
    const w0 = Date.now()
    const r = await openAndTime('bob', `message ${N}`)
    if (r.err) throw new Error('bob ' + r.err)
    opens.push(r.ms); log(`open bob #${i + 1}: ${r.ms.toFixed(1)} ms in-page, ${Date.now() - w0} ms wall (incl. WebDriver round trip)`)
    if (i === 0) { await sleep(1500); out.rss_after_first_open = rssTree(); log('RSS', JSON.stringify(out.rss_after_first_open)) }
    await sleep(500)
  }
  out.open_warm = stats(opens)

  // ---------- scroll-up: older pages
  const older = []
  for (let i = 0; i < 4; i++) {
    const before = await minRendered()
    const r = await browser.executeAsync((before, done) => {
      const sc = document.querySelector('[data-testid="message-list"]')
      const t0 = performance.now()
      sc.scrollTop = 0
      sc.dispatchEvent(new Event('scroll'))
      const tick = () => {
        let m = Infinity
        for (const e of document.querySelectorAll('[data-testid="message-text"]')) { const x = /^message (\d+)$/.exec((e.textContent ?? '').trim()); if (x) m = Math.min(m, Number(x[1])) }
        if (m < before && sc.scrollTop > 0) return done({ ms: performance.now() - t0, min: m, scrollTop: sc.scrollTop })
        if (performance.now() - t0 > 30000) return done({ err: 'timeout', min: m, scrollTop: sc.scrollTop })
        requestAnimationFrame(tick)
      }
      requestAnimationFrame(tick)
    }, before)
    log(`older page #${i + 1}: before min ${before}`, JSON.stringify(r))
    if (r.ms != null) older.push(r.ms)
    await sleep(800)
  }
  out.scroll_older = stats(older)
  out.rss_after_scroll = rssTree().total_kib
  await endSession()

  // ---------- cold app start (store already synced), first open of bob
  const t1 = await session()
  await waitFor(async () => (await browser.$('[data-testid="conv-item"]')).isExisting(), 60000, 'list')
  out.cold_start_to_conv_list_ms = Date.now() - t1
  await sleep(1000)
  const w1 = Date.now()
  const cold = await openAndTime('bob', `message ${N}`)
  out.open_cold = { in_page_ms: cold.ms, wall_ms: Date.now() - w1, err: cold.err }
  log('COLD open', JSON.stringify(out.open_cold))
  await sleep(1500)
  out.rss_after_cold_open = rssTree()
  await endSession()
} catch (e) {
  log('ERROR', e.stack ?? e); out.error = String(e)
  try { await browser?.saveScreenshot(join(TMP, 'fail.png')) } catch {}
  await endSession()
}
writeFileSync(join(TMP, 'results.json'), JSON.stringify(out, null, 2))
console.log(JSON.stringify(out, null, 2))
process.exit(out.error ? 1 : 0)
