// The durable peer's message store: what a Node team would write with
// better-sqlite3 (12.x: 13.x crashes on Node 20). One SQLite file in
// DATA_DIR, WAL mode, synchronous=FULL (every commit fsyncs the WAL).
//
// Messages are written in one transaction per turn of the event loop
// (group commit): `append` queues a row and schedules a flush with
// setImmediate, so every message read from the sockets in the same turn
// shares one commit and one fsync. Only after the commit does each
// message's callback run (the delivery and the ack). better-sqlite3 is
// synchronous: the fsync blocks the event loop while it lasts, as it would
// in such a service.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const Database = require("better-sqlite3");

function openStore(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const db = new Database(path.join(dir, "messages.db"));
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.exec(`CREATE TABLE IF NOT EXISTS messages (
    id     INTEGER PRIMARY KEY,
    conv   TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    mid    TEXT NOT NULL,
    cid    TEXT NOT NULL,
    sender TEXT NOT NULL,
    target TEXT NOT NULL,
    kind   TEXT NOT NULL,
    body   TEXT NOT NULL,
    ts     INTEGER NOT NULL,
    UNIQUE (conv, seq)
  )`);
  const insert = db.prepare(
    "INSERT INTO messages (conv, seq, mid, cid, sender, target, kind, body, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
  );
  const writeBatch = db.transaction((batch) => {
    for (const { msg } of batch) {
      insert.run(msg.conv, msg.seq, msg.mid, msg.cid, msg.from, JSON.stringify(msg.to), msg.kind, JSON.stringify(msg.body), msg.ts);
    }
  });
  let queue = [];

  function flush() {
    const batch = queue;
    queue = [];
    let error = null;
    try {
      writeBatch(batch);
    } catch (e) {
      error = e;
    }
    for (const { done } of batch) done(error);
  }

  return {
    // Stores `msg` durably, then calls `done(error)`.
    append(msg, done) {
      if (queue.length === 0) setImmediate(flush);
      queue.push({ msg, done });
    },
    close() {
      db.close();
    },
  };
}

module.exports = { openStore };
