// Seeds the conversations measure-100k.mjs opens: carol -> alice "hello from
// carol", then bob -> alice "message 1" .. "message N" (one session, up to
// 2,000 sends in flight). The server must accept dev tokens and a send rate
// this high, e.g. `courier-server --dev-auth --config seed.toml` with
//   [limits]
//   max_frame_bytes = 1048576
//   max_body_bytes = 65536
//   send_per_sec = 100000
//   send_burst = 100000
//   history_page = 500
// Env: M_PORT (server port), M_N (default 100000).
import WebSocket from 'ws'

const port = Number(process.env.M_PORT)
const N = Number(process.env.M_N ?? 100000)
const IN_FLIGHT = 2000

function connect(user) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/ws`, 'courier.v1')
    ws.on('open', () => ws.send(JSON.stringify({ op: 'hello', id: 1, token: `dev:${user}`, device: 'seed', client: 'seed/1' })))
    ws.once('message', (d) => {
      const m = JSON.parse(d)
      if (m.ok === false || m.err) reject(new Error(String(d)))
      else resolve(ws)
    })
    ws.on('error', reject)
  })
}
const send = (ws, id, cid, text) =>
  ws.send(JSON.stringify({ op: 'send', id, to: { user: 'alice' }, cid, kind: 'text', body: { text } }))

const carol = await connect('carol')
await new Promise((resolve) => {
  carol.on('message', (d) => { if (JSON.parse(d).re === 2) resolve() })
  send(carol, 2, 'seed-carol-1', 'hello from carol')
})

const bob = await connect('bob')
let sent = 0
let answered = 0
let refused = 0
const done = new Promise((resolve) => bob.on('message', (d) => {
  const m = JSON.parse(d)
  if (m.re == null || m.re < 10) return
  answered++
  if (m.ok === false || m.err) refused++
  if (answered === N) resolve()
}))
function pump() {
  while (sent < N && sent - answered < IN_FLIGHT) {
    sent++
    send(bob, 9 + sent, `seed-bob-${sent}`, `message ${sent}`)
  }
  if (sent < N) setTimeout(pump, 5)
}
pump()
await done
console.log(`seeded ${N} messages bob -> alice, ${refused} refused`)
process.exit(refused ? 1 : 0)
