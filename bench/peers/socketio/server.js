// A minimal Socket.IO chat server with Courier's semantics where Socket.IO
// has them, so that courier-bench can put the same load on both:
//   - sign-in: handshake `auth: {token: "dev:<user>"}` (dev tokens only);
//   - one room per user (`user:<id>`) for direct messages, one room per
//     channel (`ch:<name>`), one per watched user (`watch:<id>`) for presence;
//   - requests are events with an ack callback answering {ok: {...}} or
//     {err: {code, message}}; pushed events carry Courier's shapes.
// Without DATA_DIR it keeps NO history and writes nothing to disk: messages
// are numbered in memory and forwarded, nothing else. With DATA_DIR (the
// durable peer) each message is first stored in SQLite (store.js: WAL,
// synchronous=FULL, one commit per event-loop turn), then delivered and
// acked. See README.md.
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");

const PORT = Number(process.env.PORT || 7800);
const HOST = process.env.HOST || "127.0.0.1";
const store = process.env.DATA_DIR ? require("./store").openStore(process.env.DATA_DIR) : null;
const USER_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const TYPING_INTERVAL_MS = 2000;

const channels = new Map(); // name -> { title, members: Set<user> }
const lastSeq = new Map(); // conv -> seq
const online = new Map(); // user -> live socket count
const dmConvs = new Map(); // user -> Set<conv>
let nextMid = 1;

const err = (code, message) => ({ err: { code, message } });
const dmConv = (a, b) => (a < b ? `dm:${a}:${b}` : `dm:${b}:${a}`);
const isFn = (f) => typeof f === "function";

function presence(user) {
  return { user, online: (online.get(user) || 0) > 0, last_seen: Date.now() };
}

const httpServer = http.createServer((req, res) => {
  res.writeHead(req.url === "/healthz" ? 200 : 404, { "content-type": "application/json" });
  res.end(req.url === "/healthz" ? '{"ok":true}' : "{}");
});
const io = new Server(httpServer, { transports: ["websocket"], perMessageDeflate: false, serveClient: false });

io.use((socket, next) => {
  const token = socket.handshake.auth && socket.handshake.auth.token;
  const user = typeof token === "string" && token.startsWith("dev:") ? token.slice(4) : "";
  if (!USER_RE.test(user)) return next(new Error("unauthenticated"));
  socket.data.user = user;
  next();
});

io.on("connection", (socket) => {
  const me = socket.data.user;
  const typingLast = new Map();
  socket.join(`user:${me}`);
  for (const [name, ch] of channels) if (ch.members.has(me)) socket.join(`ch:${name}`);
  const n = (online.get(me) || 0) + 1;
  online.set(me, n);
  if (n === 1) io.to(`watch:${me}`).emit("presence", presence(me));

  socket.on("send", (req, ack) => {
    if (!isFn(ack)) return;
    const { to, cid, kind, body } = req || {};
    if (!to || typeof cid !== "string" || !cid || kind !== "text" || !body || typeof body.text !== "string" || !body.text) {
      return ack(err("bad_request", "send needs to, cid, kind text and body.text"));
    }
    let conv;
    let room;
    if (typeof to.user === "string" && USER_RE.test(to.user)) {
      conv = dmConv(me, to.user);
      room = [`user:${to.user}`, `user:${me}`];
      for (const u of [me, to.user]) {
        if (!dmConvs.has(u)) dmConvs.set(u, new Set());
        dmConvs.get(u).add(conv);
      }
    } else if (typeof to.channel === "string") {
      if (!socket.rooms.has(`ch:${to.channel}`)) return ack(err("forbidden", "not a member"));
      conv = `ch:${to.channel}`;
      room = conv;
    } else {
      return ack(err("bad_request", "invalid to"));
    }
    const seq = (lastSeq.get(conv) || 0) + 1;
    lastSeq.set(conv, seq);
    const msg = { conv, seq, mid: `m${nextMid++}`, cid, from: me, to, kind, body, ts: Date.now() };
    const deliver = () => {
      socket.to(room).emit("msg", msg);
      ack({ ok: { conv, seq, mid: msg.mid, ts: msg.ts, dup: false } });
    };
    if (!store) return deliver();
    store.append(msg, (e) => (e ? ack(err("internal", "not stored")) : deliver()));
  });

  socket.on("create_channel", (req, ack) => {
    if (!isFn(ack)) return;
    const name = req && req.channel;
    if (typeof name !== "string" || !USER_RE.test(name)) return ack(err("bad_request", "invalid channel name"));
    if (channels.has(name)) return ack(err("conflict", "channel exists"));
    channels.set(name, { title: req.title || name, members: new Set([me]) });
    socket.join(`ch:${name}`);
    ack({ ok: { conv: `ch:${name}`, members: 1 } });
  });

  socket.on("join", (req, ack) => {
    if (!isFn(ack)) return;
    const ch = req && channels.get(req.channel);
    if (!ch) return ack(err("forbidden", "no such channel"));
    if (!ch.members.has(me)) {
      ch.members.add(me);
      socket.to(`ch:${req.channel}`).emit("member", { channel: req.channel, user: me, joined: true });
    }
    socket.join(`ch:${req.channel}`);
    ack({ ok: { conv: `ch:${req.channel}`, last_seq: lastSeq.get(`ch:${req.channel}`) || 0, members: ch.members.size } });
  });

  socket.on("typing", (req, ack) => {
    if (!isFn(ack)) return;
    const conv = req && req.conv;
    if (typeof conv !== "string") return ack(err("bad_request", "conv required"));
    const now = Date.now();
    if (now - (typingLast.get(conv) || 0) >= TYPING_INTERVAL_MS) {
      typingLast.set(conv, now);
      const room = conv.startsWith("ch:") ? conv : `user:${conv.slice(3).split(":").find((u) => u !== me) || me}`;
      socket.to(room).emit("typing", { conv, user: me });
    }
    ack({ ok: {} });
  });

  socket.on("read", (req, ack) => {
    if (!isFn(ack)) return;
    const conv = req && req.conv;
    if (typeof conv !== "string") return ack(err("bad_request", "conv required"));
    const seq = Math.min(Number(req.seq) || 0, lastSeq.get(conv) || 0);
    if (conv.startsWith("dm:")) {
      const peer = conv.slice(3).split(":").find((u) => u !== me) || me;
      socket.to(`user:${peer}`).emit("receipt", { conv, user: me, recv_seq: seq, read_seq: seq });
      socket.to(`user:${me}`).emit("read", { conv, seq });
    }
    ack({ ok: {} });
  });

  socket.on("watch", (req, ack) => {
    if (!isFn(ack)) return;
    const users = Array.isArray(req && req.users) ? req.users.filter((u) => USER_RE.test(u)) : [];
    for (const u of users) socket.join(`watch:${u}`);
    ack({ ok: { presence: users.map(presence) } });
  });

  socket.on("sync", (_req, ack) => {
    if (!isFn(ack)) return;
    const conversations = [];
    for (const [name, ch] of channels) {
      if (ch.members.has(me)) conversations.push({ conv: `ch:${name}`, kind: "channel", channel: name, last_seq: lastSeq.get(`ch:${name}`) || 0 });
    }
    for (const conv of dmConvs.get(me) || []) conversations.push({ conv, kind: "dm", last_seq: lastSeq.get(conv) || 0 });
    ack({ ok: { conversations, invites: [] } });
  });

  socket.on("disconnect", () => {
    const left = (online.get(me) || 1) - 1;
    if (left > 0) online.set(me, left);
    else {
      online.delete(me);
      io.to(`watch:${me}`).emit("presence", presence(me));
    }
  });
});

httpServer.listen(PORT, HOST, () => {
  console.log(`socket.io peer listening on ${HOST}:${PORT}`);
});
for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () =>
    io.close(() => {
      if (store) store.close();
      process.exit(0);
    }),
  );
}
