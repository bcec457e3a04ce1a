//! `courier-cli` end to end: exit codes, the outbox across invocations,
//! a `kill -9` in the middle of a send, and `listen`.

mod support;

use courier_proto::{Conv, Target};
use std::path::Path;
use std::process::Stdio;
use support::{TestServer, client, synced, until};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

fn cli(url: &str, token: &str, data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_courier-cli"));
    c.env("COURIER_SERVER", url).env("COURIER_TOKEN", token).env("COURIER_DATA", data).env_remove("RUST_LOG");
    c.kill_on_drop(true);
    c
}

async fn run(mut c: Command, args: &[&str]) -> (i32, String) {
    let out =
        tokio::time::timeout(support::PATIENCE, c.args(args).output()).await.expect("cli hung").unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!(
        "courier-cli {args:?} → {:?}\n{stdout}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_queues_while_unreachable_and_a_later_sync_delivers() {
    let mut server = TestServer::new();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let url = server.url();
    let (code, out) =
        run(cli(&url, "dev:alice", a.path()), &["send", "@bob", "hello bob", "--wait", "1"]).await;
    assert_eq!(code, 3);
    assert!(out.starts_with("queued "), "{out}");
    let (code, _) = run(cli(&url, "dev:alice", a.path()), &["sync", "--wait", "1"]).await;
    assert_eq!(code, 5, "unreachable");

    server.start().await;
    let (code, out) = run(cli(&url, "dev:alice", a.path()), &["sync", "--wait", "30"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("outbox: 0 queued"), "{out}");
    let (code, out) = run(cli(&url, "dev:alice", a.path()), &["history", "@bob", "--json"]).await;
    assert_eq!(code, 0);
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["seq"], 1);
    assert_eq!(lines[0]["conv"], "dm:alice:bob");
    assert_eq!(lines[0]["from"], "alice");
    assert_eq!(lines[0]["body"]["text"], "hello bob");
    assert_eq!(lines[0]["status"], "sent");

    let (code, out) = run(cli(&url, "dev:bob", b.path()), &["history", "@alice"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("alice: hello bob"), "{out}");
    let (code, out) = run(cli(&url, "dev:bob", b.path()), &["search", "hel"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("hello bob"), "{out}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_send_stdin_and_exit_codes() {
    let mut server = TestServer::started().await;
    let a = tempfile::tempdir().unwrap();
    let url = server.url();
    let (code, out) = run(cli(&url, "dev:alice", a.path()), &["whoami"]).await;
    assert_eq!((code, out.trim()), (0, "alice"));
    let (code, out) = run(cli(&url, "dev:alice", a.path()), &["channels"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("#lobby"), "{out}");
    let (code, out) = run(cli(&url, "dev:alice", a.path()), &["join", "#lobby"]).await;
    assert_eq!(code, 0);
    assert!(out.starts_with("joined ch:lobby"), "{out}");

    let mut c = cli(&url, "dev:alice", a.path());
    c.args(["send", "#lobby", "--stdin"]).stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"one\ntwo\nthree\n").await.unwrap();
    let out = tokio::time::timeout(support::PATIENCE, child.wait_with_output()).await.unwrap().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "sent ch:lobby 1\nsent ch:lobby 2\nsent ch:lobby 3\n");

    let (code, _) = run(cli(&url, "dev:alice", a.path()), &["send", "lobby", "no prefix"]).await;
    assert_eq!(code, 2, "usage error");
    let (code, _) = run(cli(&url, "dev:alice", a.path()), &["frobnicate"]).await;
    assert_eq!(code, 2, "usage error");
    // A JWT-shaped token the server cannot verify: authentication refused.
    let m = tempfile::tempdir().unwrap();
    let (code, _) =
        run(cli(&url, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.c2lnbmF0dXJl", m.path()), &["sync"])
            .await;
    assert_eq!(code, 4, "authentication refused");
    server.stop().await;
}

/// `kill -9` of the CLI while it is sending, then a restart: every line is
/// delivered exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_client_mid_send_then_restarting_delivers_everything_once() {
    let mut server = TestServer::started().await;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let url = server.url();
    let bob = client(&url, "bob", "d", b.path());
    synced(&bob).await;
    let conv = Conv::dm("alice", "bob");
    let n = 120;
    let input: String = (0..n).map(|i| format!("line {i}\n")).collect();

    let mut c = cli(&url, "dev:alice", a.path());
    c.args(["send", "@bob", "--stdin", "--wait", "60"]).stdin(Stdio::piped()).stdout(Stdio::null());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).await.unwrap();
    // Kill it once bob has seen some of the messages (the rate limit keeps
    // the rest in flight or queued).
    until(&bob, "bob got 30 messages", || bob.store().synced_seq(&conv).unwrap() >= 30).await;
    child.start_kill().unwrap();
    let status = child.wait().await.unwrap();
    assert!(!status.success());
    assert!(bob.store().synced_seq(&conv).unwrap() < n, "killed too late to prove anything");

    let (code, out) = run(cli(&url, "dev:alice", a.path()), &["sync", "--wait", "40"]).await;
    assert_eq!(code, 0, "{out}");
    until(&bob, "bob got everything", || bob.store().synced_seq(&conv).unwrap() >= n).await;
    let texts: Vec<String> =
        bob.history(&conv, None, u32::MAX).unwrap().iter().map(|m| m.text().unwrap().to_owned()).collect();
    assert_eq!(texts, (0..n).map(|i| format!("line {i}")).collect::<Vec<_>>());
    bob.stop().await;
    server.stop().await;
}

async fn next_json(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) -> serde_json::Value {
    let l = tokio::time::timeout(support::PATIENCE, lines.next_line())
        .await
        .expect("listen printed nothing")
        .unwrap();
    serde_json::from_str(&l.expect("listen ended")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_prints_events_as_json_lines() {
    let mut server = TestServer::started().await;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let url = server.url();
    let mut c = cli(&url, "dev:bob", b.path());
    c.args(["listen", "--json", "--for", "60"]).stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        if next_json(&mut lines).await["type"] == "sync_completed" {
            break;
        }
    }
    let alice = client(&url, "alice", "d", a.path());
    synced(&alice).await;
    alice.send_text(&Target::User("bob".into()), "are you there").unwrap();
    loop {
        let ev = next_json(&mut lines).await;
        if ev["type"] == "message_added" {
            assert_eq!(ev["message"]["body"]["text"], "are you there");
            assert_eq!(ev["message"]["status"], "received");
            break;
        }
    }
    child.start_kill().unwrap();
    let _ = child.wait().await;
    alice.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_react_pin_and_recall_from_the_command_line() {
    let mut server = TestServer::started().await;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let url = server.url();
    let (code, help) = run(cli(&url, "dev:alice", a.path()), &["--help"]).await;
    assert_eq!(code, 0);
    for cmd in ["edit", "recall", "react", "pin"] {
        assert!(help.lines().any(|l| l.trim_start().starts_with(cmd)), "--help lists {cmd}");
    }
    let (code, _) = run(cli(&url, "dev:alice", a.path()), &["send", "@bob", "first take"]).await;
    assert_eq!(code, 0);
    let (_, out) = run(cli(&url, "dev:alice", a.path()), &["history", "@bob", "--json"]).await;
    let line: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let mid = line["mid"].as_str().unwrap().to_owned();

    let (code, out) = run(cli(&url, "dev:alice", a.path()), &["edit", "@bob", &mid, "second take"]).await;
    assert_eq!((code, out.trim()), (0, format!("edited dm:alice:bob {mid}").as_str()));
    let (code, out) = run(cli(&url, "dev:alice", a.path()), &["react", "@bob", &mid, "👍"]).await;
    assert_eq!((code, out.trim()), (0, format!("reaction 👍 on dm:alice:bob {mid}").as_str()));
    let (code, _) = run(cli(&url, "dev:alice", a.path()), &["pin", "dm:alice:bob", &mid]).await;
    assert_eq!(code, 0);
    let (code, out) = run(cli(&url, "dev:alice", a.path()), &["history", "@bob"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("alice: second take (edited) [👍 alice] (pinned) (sent)"), "{out}");
    assert!(out.contains(&format!("mid={mid}")), "history shows the mid to act on: {out}");
    let (_, out) = run(cli(&url, "dev:alice", a.path()), &["history", "@bob", "--json"]).await;
    let line: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(line["body"]["text"], "second take");
    assert_eq!(line["reactions"], serde_json::json!({"👍": ["alice"]}));
    assert!(line["edited"].is_i64() && line["pinned"].is_i64());
    assert_eq!(out.lines().count(), 1, "relations are not listed as messages");

    // Bad input: usage errors (2); an unknown message or a refusal (1).
    for args in [
        vec!["edit", "@bob", &mid, ""],
        vec!["react", "@bob", &mid, ""],
        vec!["react", "@bob", &mid, "this key is far longer than 32 bytes"],
        vec!["pin", "bob", &mid],
    ] {
        let (code, _) = run(cli(&url, "dev:alice", a.path()), &args).await;
        assert_eq!(code, 2, "{args:?}");
    }
    let (code, _) = run(cli(&url, "dev:alice", a.path()), &["edit", "@bob", "m_nope", "x"]).await;
    assert_eq!(code, 1);
    let (code, _) = run(cli(&url, "dev:bob", b.path()), &["edit", "@alice", &mid, "not mine"]).await;
    assert_eq!(code, 1, "only the sender may edit");

    let (code, out) = run(cli(&url, "dev:alice", a.path()), &["recall", "@bob", &mid]).await;
    assert_eq!((code, out.trim()), (0, format!("recalled dm:alice:bob {mid}").as_str()));
    let (code, out) = run(cli(&url, "dev:bob", b.path()), &["history", "@alice"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("alice: (message recalled)"), "{out}");
    let (_, out) = run(cli(&url, "dev:bob", b.path()), &["search", "take"]).await;
    assert!(out.is_empty(), "recalled text is not searchable: {out}");
    let (code, _) = run(cli(&url, "dev:alice", a.path()), &["react", "@bob", &mid, "👍", "--off"]).await;
    assert_eq!(code, 1, "a recalled message takes no reactions");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relation_queued_while_unreachable_is_sent_by_a_later_command() {
    let mut server = TestServer::started().await;
    let a = tempfile::tempdir().unwrap();
    let url = server.url();
    let (code, _) = run(cli(&url, "dev:alice", a.path()), &["send", "@bob", "hello"]).await;
    assert_eq!(code, 0);
    let (_, out) = run(cli(&url, "dev:alice", a.path()), &["history", "@bob", "--json"]).await;
    let line: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let mid = line["mid"].as_str().unwrap().to_owned();
    server.stop().await;
    let (code, out) =
        run(cli(&url, "dev:alice", a.path()), &["react", "@bob", &mid, "👋", "--wait", "1"]).await;
    assert_eq!(code, 3, "queued");
    assert!(out.starts_with("queued reaction 👋 on"), "{out}");
    server.start().await;
    let (code, out) = run(cli(&url, "dev:alice", a.path()), &["sync", "--wait", "30"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("outbox: 0 queued"), "{out}");
    let (_, out) = run(cli(&url, "dev:alice", a.path()), &["history", "@bob", "--json"]).await;
    let line: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(line["reactions"], serde_json::json!({"👋": ["alice"]}));
    assert_eq!(line["status"], "sent");
    server.stop().await;
}

/// Formatted messages print as their words: markup dropped, spoilers masked
/// (`courier_client::markup::plain_text`); search finds the words only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_prints_formatted_text_as_plain_text() {
    let mut server = TestServer::started().await;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let url = server.url();
    let text = "**Ship it** on _Friday_: ||the code is 42||";
    let (code, _) = run(cli(&url, "dev:alice", a.path()), &["send", "@bob", text, "--wait", "30"]).await;
    assert_eq!(code, 0);
    let (code, out) = run(cli(&url, "dev:bob", b.path()), &["history", "@alice"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("alice: Ship it on Friday: ▒▒▒"), "{out}");
    assert!(!out.contains("code is"), "the spoiler stays hidden: {out}");
    let (_, out) = run(cli(&url, "dev:bob", b.path()), &["search", "ship friday"]).await;
    assert!(out.contains("Ship it"), "{out}");
    let (_, out) = run(cli(&url, "dev:bob", b.path()), &["search", "**"]).await;
    assert!(!out.contains("Ship it"), "{out}");
    server.stop().await;
}

/// A PNG signature and header chunk of `w` × `h` pixels: what `send-file`
/// reads to call a file an image.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    v.extend(w.to_be_bytes());
    v.extend(h.to_be_bytes());
    v.extend([8, 6, 0, 0, 0, 0, 0, 0, 0]);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_file_sends_an_image_as_an_image_and_anything_else_as_a_file() {
    let mut server = TestServer::new();
    let (a, b, files) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let url = server.url();
    let photo = files.path().join("photo.png");
    std::fs::write(&photo, png_header(640, 480)).unwrap();
    // Named like an image, but its bytes are not one.
    let notes = files.path().join("notes.png");
    std::fs::write(&notes, "not a picture").unwrap();
    let photo_arg = photo.to_str().unwrap();

    let (code, _) = run(cli(&url, "dev:alice", a.path()), &["send-file", "@bob", photo_arg]).await;
    assert_eq!(code, 5, "unreachable: nothing uploaded, nothing queued");
    server.start().await;
    let (code, out) =
        run(cli(&url, "dev:alice", a.path()), &["send-file", "@bob", photo_arg, "--wait", "30"]).await;
    assert_eq!((code, out.as_str()), (0, "sent dm:alice:bob 1\n"));
    let notes_arg = notes.to_str().unwrap();
    let args = ["send-file", "@bob", notes_arg, "--name", "notes for bob.txt", "--wait", "30"];
    let (code, out) = run(cli(&url, "dev:alice", a.path()), &args).await;
    assert_eq!((code, out.as_str()), (0, "sent dm:alice:bob 2\n"));

    let (code, out) = run(cli(&url, "dev:bob", b.path()), &["history", "@alice", "--json"]).await;
    assert_eq!(code, 0);
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0]["kind"], "image");
    let image = &lines[0]["body"];
    assert_eq!(
        (&image["mime"], &image["width"], &image["height"]),
        (&"image/png".into(), &640.into(), &480.into())
    );
    assert_eq!((&image["name"], &image["size"]), (&"photo.png".into(), &33.into()));
    assert_eq!(lines[1]["kind"], "file");
    let file = &lines[1]["body"];
    assert_eq!(
        (&file["mime"], &file["name"]),
        (&"application/octet-stream".into(), &"notes for bob.txt".into())
    );
    assert!(image["media"].as_str().is_some_and(|m| m.starts_with("m_")), "{image}");

    // What cannot be sent is said before anything is uploaded.
    let missing = files.path().join("missing.png");
    let (code, _) =
        run(cli(&url, "dev:alice", a.path()), &["send-file", "@bob", missing.to_str().unwrap()]).await;
    assert_eq!(code, 2, "no such file");
    let (code, _) =
        run(cli(&url, "dev:alice", a.path()), &["send-file", "@bob", files.path().to_str().unwrap()]).await;
    assert_eq!(code, 2, "a directory");
    let huge = files.path().join("huge.bin");
    std::fs::File::create(&huge).unwrap().set_len((256 << 20) + 1).unwrap();
    let (code, _) =
        run(cli(&url, "dev:alice", a.path()), &["send-file", "@bob", huge.to_str().unwrap()]).await;
    assert_eq!(code, 2, "over what send-file reads");
    let (code, out) = run(cli(&url, "dev:alice", a.path()), &["history", "@bob", "--json"]).await;
    assert_eq!((code, out.lines().count()), (0, 2), "nothing more was sent");
    server.stop().await;
}
