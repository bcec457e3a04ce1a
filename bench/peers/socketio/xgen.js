// A second load generator, independent of courier-bench: Node and the `ws`
// package, every frame built with JSON.stringify and read with JSON.parse,
// as a Node team's test client would. It drives either server with durable
// one-to-one messages at a fixed offered rate and reports the server's CPU
// per message over a window, so that courier-bench's own tuning (frames
// written and scanned by hand, one thread, batched ACKs) cannot be what
// makes Courier look cheap. `bench/xcheck.sh` starts the servers and runs it
// against each in turn.
//
//   node xgen.js --proto courier|socketio --url ws://127.0.0.1:PORT
//                --pid SERVER_PID [--mode p2p] --pairs 200 --rate 10000 --duration 10
//   node xgen.js ... --mode fanout --members 1000 --rate 100
//
// p2p: pair i is a sender `x<i>s` writing to a receiver `x<i>r` (dev
// tokens). fanout: `xfs` creates a public channel and writes to it, and
// `members` more users join it; every member's delivery counts.
// Sends are open loop: every 5 ms the sends due write their messages
// whether or not earlier ones were answered. One JSON line is printed:
// acked and delivered per second in the window, send->deliver p50/p99,
// the server's CPU (utime + stime from /proc/PID/stat) and this process's
// own per message delivered (per p2p message, per fan-out delivery).
"use strict";

const fs = require("node:fs");
const WebSocket = require("ws");

function args() {
  const a = {
    proto: "courier",
    mode: "p2p",
    url: "",
    pid: 0,
    pairs: 200,
    members: 1000,
    rate: 10000,
    duration: 10,
    warmup: 3,
    body: 100,
  };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i += 2) {
    const k = v[i].replace(/^--/, "");
    if (!(k in a) || v[i + 1] === undefined) throw new Error(`unknown or empty flag ${v[i]}`);
    a[k] = typeof a[k] === "number" ? Number(v[i + 1]) : v[i + 1];
    if (typeof a[k] === "number" && !Number.isFinite(a[k])) throw new Error(`${v[i]} wants a number`);
  }
  if (!["courier", "socketio"].includes(a.proto)) throw new Error("--proto is courier or socketio");
  if (!["p2p", "fanout"].includes(a.mode)) throw new Error("--mode is p2p or fanout");
  if (!a.url || !a.pid) throw new Error("--url and --pid are required");
  return a;
}

const TICKS = 100; // USER_HZ: the unit of /proc/PID/stat times on Linux
function serverCpuS(pid) {
  const s = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / TICKS;
}

/// One connection of either protocol: `request(op, fields)` with a promise
/// of its answer, `onMsg(text, body)` for every delivered message.
class Client {
  constructor(proto, url, user) {
    this.proto = proto;
    this.user = user;
    this.nextId = 1;
    this.waiting = new Map();
    this.onMsg = () => {};
    const path = proto === "courier" ? "/v1/ws" : "/socket.io/?EIO=4&transport=websocket";
    this.ws = new WebSocket(url + path, proto === "courier" ? ["courier.v1"] : undefined, { perMessageDeflate: false });
    this.ready = new Promise((resolve, reject) => {
      this.ws.on("error", reject);
      this.ws.on("close", (code) => reject(new Error(`${user}: closed ${code}`)));
      this.ws.on("open", () => {
        if (proto === "courier") {
          this.request("hello", { token: `dev:${user}`, device: "xgen", client: "xgen/0.1" }).then(resolve, reject);
        }
      });
      this.connected = resolve;
    });
    this.ws.on("message", (data) => this.frame(data.toString()));
  }

  frame(text) {
    if (this.proto === "courier") {
      const f = JSON.parse(text);
      if (f.ev === "msg") this.onMsg(f.body.text);
      else if (f.re !== undefined) this.answer(f.re, f);
      return;
    }
    const t = text.charCodeAt(0);
    if (t === 0x30 /* 0 open */) this.ws.send(`40${JSON.stringify({ token: `dev:${this.user}` })}`);
    else if (t === 0x32 /* 2 ping */) this.ws.send("3");
    else if (text.startsWith("40")) this.connected();
    else if (text.startsWith("44")) this.ws.emit("error", new Error(text));
    else if (text.startsWith("42")) {
      const [name, arg] = JSON.parse(text.slice(2));
      if (name === "msg") this.onMsg(arg.body.text);
    } else if (text.startsWith("43")) {
      const open = text.indexOf("[");
      const [reply] = JSON.parse(text.slice(open));
      this.answer(Number(text.slice(2, open)), reply);
    }
  }

  answer(id, reply) {
    const w = this.waiting.get(id);
    if (!w) return;
    this.waiting.delete(id);
    if (reply.err) w.reject(new Error(`${reply.err.code}: ${reply.err.message}`));
    else w.resolve(reply.ok);
  }

  request(op, fields) {
    const id = this.nextId++;
    const p = new Promise((resolve, reject) => this.waiting.set(id, { resolve, reject }));
    if (this.proto === "courier") this.ws.send(JSON.stringify({ op, id, ...fields }));
    else this.ws.send(`42${id}${JSON.stringify([op, fields])}`);
    return p;
  }
}

function quantile(sorted, q) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : NaN;
}

/// The connections of a run: `senders` (each with the destination it
/// writes to) and `receivers` (every connection a message is delivered to).
async function connect(a) {
  const wave = async (clients) => {
    for (let i = 0; i < clients.length; i += 50) await Promise.all(clients.slice(i, i + 50).map((c) => c.ready));
  };
  if (a.mode === "p2p") {
    const pairs = [];
    for (let i = 0; i < a.pairs; i++) {
      pairs.push({ s: new Client(a.proto, a.url, `x${i}s`), to: { user: `x${i}r` }, r: new Client(a.proto, a.url, `x${i}r`) });
      if (i % 50 === 49) await wave(pairs.slice(-50).flatMap((p) => [p.s, p.r]));
    }
    await wave(pairs.flatMap((p) => [p.s, p.r]));
    return { senders: pairs.map((p) => ({ c: p.s, to: p.to })), receivers: pairs.map((p) => p.r) };
  }
  // fanout: one sender, `members` more members of one public channel.
  const channel = `xfan${process.pid}`;
  const sender = new Client(a.proto, a.url, "xfs");
  await sender.ready;
  await sender.request("create_channel", { channel, title: channel, topic: "", private: false });
  const members = [];
  for (let i = 0; i < a.members; i += 50) {
    const batch = [];
    for (let k = i; k < Math.min(a.members, i + 50); k++) batch.push(new Client(a.proto, a.url, `xf${k}`));
    await Promise.all(batch.map((c) => c.ready));
    await Promise.all(batch.map((c) => c.request("join", { channel })));
    members.push(...batch);
  }
  return { senders: [{ c: sender, to: { channel } }], receivers: members };
}

async function main() {
  const a = args();
  const pad = "x".repeat(Math.max(0, a.body - 40));
  const { senders, receivers } = await connect(a);

  let measuring = false;
  let acked = 0;
  let delivered = 0;
  let failed = 0;
  const lat = [];
  for (const r of receivers) {
    r.onMsg = (text) => {
      if (!measuring) return;
      delivered++;
      const t = Number(text.slice(0, text.indexOf(" ")));
      lat.push(performance.now() - t);
    };
  }
  let n = 0;
  let next = 0;
  const start = performance.now();
  // Every 5 ms (or as late as the event loop gets to it), the sends due
  // since the start that have not been made: the offered rate holds
  // however late the timer fires.
  const timer = setInterval(() => {
    const due = Math.floor(((performance.now() - start) * a.rate) / 1000);
    for (; n < due; ) {
      const p = senders[next];
      next = (next + 1) % senders.length;
      const cid = `c${n++}`;
      const counted = measuring;
      p.c
        .request("send", { to: p.to, cid, kind: "text", body: { text: `${performance.now()} ${pad}` } })
        .then(
          () => counted && measuring && acked++,
          () => failed++,
        );
    }
  }, 5);

  await new Promise((r) => setTimeout(r, a.warmup * 1000));
  const cpu0 = serverCpuS(a.pid);
  const own0 = process.cpuUsage();
  const t0 = performance.now();
  measuring = true;
  await new Promise((r) => setTimeout(r, a.duration * 1000));
  measuring = false;
  const secs = (performance.now() - t0) / 1000;
  const cpu = serverCpuS(a.pid) - cpu0;
  const own = process.cpuUsage(own0);
  clearInterval(timer);
  lat.sort((x, y) => x - y);
  const out = {
    proto: a.proto,
    mode: a.mode,
    pairs: a.mode === "p2p" ? a.pairs : undefined,
    members: a.mode === "fanout" ? a.members : undefined,
    rate: a.rate,
    acked_per_s: Math.round(acked / secs),
    delivered_per_s: Math.round(delivered / secs),
    failed,
    deliver_p50_ms: Number(quantile(lat, 0.5).toFixed(3)),
    deliver_p99_ms: Number(quantile(lat, 0.99).toFixed(3)),
    // Per message delivered: per p2p message, or per fan-out delivery.
    server_cpu_us_per_msg: Number(((cpu * 1e6) / Math.max(1, delivered)).toFixed(2)),
    generator_cpu_us_per_msg: Number(((own.user + own.system) / Math.max(1, delivered)).toFixed(2)),
    load_1m: Number(fs.readFileSync("/proc/loadavg", "utf8").split(" ")[0]),
  };
  console.log(JSON.stringify(out));
  process.exit(0);
}

main().catch((e) => {
  console.error(`xgen: ${e.message}`);
  process.exit(1);
});
