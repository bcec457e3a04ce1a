//! `courier-cli`: a command-line Courier client on the same core as the
//! desktop app. One account per `--data` directory. The call commands
//! (`call`, `answer-calls`) live in [`calls`].

mod calls;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use courier_client::media::{ImageInfo, image_info};
use courier_client::{
    Client, ClientConfig, ClientError, ClientEvent, ConnState, DeliveryStatus, MessageView,
};
use courier_proto::{Conv, InviteState, Target};
use serde_json::Map;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio::time::{Instant, timeout_at};

const EXIT_CODES: &str = "\
Exit codes:
  0  ok
  1  other failure (e.g. the server refused a message or an edit/recall/reaction/pin permanently,
     no such message, local store error)
  2  usage error
  3  not delivered in time (messages stay queued; any later command that connects delivers them)
  4  authentication refused (or session replaced by the same device)
  5  server unreachable (no server)
  6  call declined (or the callee was busy)
  7  call not answered (the invitation expired or was canceled; answer-calls: no call came)
  8  call accepted but media never connected (ICE failed)";

/// Command-line Courier client.
#[derive(Parser, Debug)]
#[command(
    name = "courier-cli",
    version,
    about = "Command-line Courier client: send, sync, history, listen, edit/recall/react/pin, channels, calls.",
    after_help = EXIT_CODES
)]
struct Cli {
    /// Server base URL (`ws://host:7700`, `wss://chat.example.com`); `/v1/ws`
    /// is appended unless a path is given. Repeat (or comma-separate) for fail-over.
    #[arg(long, env = "COURIER_SERVER", value_delimiter = ',', required = true)]
    server: Vec<String>,
    /// Bearer token (`dev:<user>` on a dev server, else a JWT).
    #[arg(long, env = "COURIER_TOKEN", hide_env_values = true)]
    token: String,
    /// The account's data directory (local store, media cache).
    #[arg(long, env = "COURIER_DATA", default_value = "courier-data")]
    data: PathBuf,
    /// Stable device id; a second session with the same id replaces the first.
    #[arg(long, env = "COURIER_DEVICE", default_value = "cli")]
    device: String,
    /// PEM file of extra trusted CA certificates for `wss://` and `https://`
    /// (a self-hosted server with a private CA); the built-in web roots stay trusted.
    #[arg(long, env = "COURIER_CA_FILE")]
    ca_file: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Send a message to @user or #channel (via the outbox).
    Send {
        /// `@user` or `#channel`.
        target: String,
        /// The text (omit with --stdin).
        text: Option<String>,
        /// Send each line of standard input as one message, in order.
        #[arg(long)]
        stdin: bool,
        /// Seconds to wait for the server's acknowledgements.
        #[arg(long, default_value_t = 10.0)]
        wait: f64,
    },
    /// Upload a file and send it to @user or #channel: as an image when its
    /// bytes are a PNG, JPEG, GIF or WebP (with its size in pixels), else as
    /// a file.
    SendFile {
        /// `@user` or `#channel`.
        target: String,
        /// The file.
        path: PathBuf,
        /// The name the recipient sees (default: the file's own name).
        #[arg(long)]
        name: Option<String>,
        /// Seconds to wait for the server's acknowledgement.
        #[arg(long, default_value_t = 10.0)]
        wait: f64,
    },
    /// Deliver the outbox, sync every conversation, print a summary.
    Sync {
        /// Seconds to wait.
        #[arg(long, default_value_t = 10.0)]
        wait: f64,
    },
    /// Print a conversation from the local store (after a sync), with each message's mid.
    History {
        /// `@user`, `#channel`, or a conversation id (`dm:a:b`, `ch:x`).
        target: String,
        /// Newest N messages.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// One JSON object per line (the protocol's `msg` fields plus `status`).
        #[arg(long)]
        json: bool,
        /// Seconds to wait for the sync.
        #[arg(long, default_value_t = 10.0)]
        wait: f64,
    },
    /// Edit the text of one of your text messages (v1.1).
    Edit {
        /// `@user`, `#channel`, or a conversation id (`dm:a:b`, `ch:x`).
        target: String,
        /// The message's id (`mid`, shown by `history`).
        mid: String,
        /// The new text.
        text: String,
        /// Seconds to wait for the server's acknowledgement.
        #[arg(long, default_value_t = 10.0)]
        wait: f64,
    },
    /// Recall a message for everyone: one of yours within the recall window, or (channel owner/admin) any (v1.1).
    Recall {
        /// `@user`, `#channel`, or a conversation id (`dm:a:b`, `ch:x`).
        target: String,
        /// The message's id (`mid`, shown by `history`).
        mid: String,
        /// Seconds to wait for the server's acknowledgement.
        #[arg(long, default_value_t = 10.0)]
        wait: f64,
    },
    /// Turn your reaction KEY (e.g. 👍) on a message on, or off with --off (v1.1).
    React {
        /// `@user`, `#channel`, or a conversation id (`dm:a:b`, `ch:x`).
        target: String,
        /// The message's id (`mid`, shown by `history`).
        mid: String,
        /// The reaction, 1–32 bytes (an emoji, a short word).
        key: String,
        /// Take the reaction back.
        #[arg(long)]
        off: bool,
        /// Seconds to wait for the server's acknowledgement.
        #[arg(long, default_value_t = 10.0)]
        wait: f64,
    },
    /// Pin a message in its conversation, or unpin it with --off (v1.1; in channels owners/admins only).
    Pin {
        /// `@user`, `#channel`, or a conversation id (`dm:a:b`, `ch:x`).
        target: String,
        /// The message's id (`mid`, shown by `history`).
        mid: String,
        /// Unpin instead.
        #[arg(long)]
        off: bool,
        /// Seconds to wait for the server's acknowledgement.
        #[arg(long, default_value_t = 10.0)]
        wait: f64,
    },
    /// Stay connected and print every event; keeps the outbox draining.
    Listen {
        /// Stop after this many seconds (default: until interrupted).
        #[arg(long = "for")]
        for_secs: Option<f64>,
        /// Print events as JSON lines (default: human-readable lines).
        #[arg(long)]
        json: bool,
    },
    /// Join a public channel.
    Join {
        /// `#channel`.
        channel: String,
    },
    /// List public channels.
    Channels,
    /// Invite @user to a call and wait for the answer.
    Invite {
        /// `@user`.
        user: String,
        /// Ringing time in seconds (5–300).
        #[arg(long, default_value_t = 60)]
        ttl: u32,
        /// Seconds to wait for a final state.
        #[arg(long, default_value_t = 30.0)]
        wait: f64,
    },
    /// Call @user: invite, and once accepted send a tone/file, record what is
    /// heard, print the call's figures (exit 0 once media connected).
    Call(calls::CallArgs),
    /// Answer incoming calls one at a time: accept (or decline), send a
    /// tone/file, record what is heard, print each call's figures.
    AnswerCalls(calls::AnswerArgs),
    /// Answer an invitation.
    Answer {
        /// Invitation id.
        iid: String,
        /// `accept` or `refuse`.
        #[arg(value_parser = ["accept", "refuse"])]
        answer: String,
    },
    /// Search the local store.
    Search {
        /// Words to find (the last one may be a prefix).
        query: String,
        /// At most this many results.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Show who the token signs in as.
    Whoami,
}

/// A failure with the exit code it maps to.
struct Exit(u8, String);

impl From<anyhow::Error> for Exit {
    fn from(e: anyhow::Error) -> Self {
        Exit(1, format!("{e:#}"))
    }
}

impl From<ClientError> for Exit {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Stopped { .. } => Exit(4, e.to_string()),
            ClientError::Offline | ClientError::Timeout => Exit(5, e.to_string()),
            ClientError::Media(courier_client::media::MediaError::Transport(_)) => Exit(5, e.to_string()),
            other => Exit(1, other.to_string()),
        }
    }
}

fn parse_target(s: &str) -> anyhow::Result<Target> {
    let t = if let Some(u) = s.strip_prefix('@') {
        Target::User(u.to_owned())
    } else if let Some(c) = s.strip_prefix('#') {
        Target::Channel(c.to_owned())
    } else {
        bail!("target must be @user or #channel, got {s:?}");
    };
    if !t.is_valid() {
        bail!("invalid target {s:?}");
    }
    Ok(t)
}

fn parse_conv(client: &Client, s: &str) -> anyhow::Result<Conv> {
    if let Some(c) = Conv::parse(s) {
        return Ok(c);
    }
    Ok(client.conv_of(&parse_target(s)?)?)
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    if let Cmd::Call(calls::CallArgs { media, .. }) | Cmd::AnswerCalls(calls::AnswerArgs { media, .. }) =
        &cli.cmd
        && media.ice_policy == calls::IcePolicy::Relay
    {
        // SAFETY: no other thread exists yet (the runtime starts below).
        // courier-media reads this switch when it builds the ICE agent.
        unsafe { std::env::set_var("COURIER_ICE_RELAY_ONLY", "1") };
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("courier-cli: cannot start runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Exit(code, msg)) => {
            if !msg.is_empty() {
                eprintln!("courier-cli: {msg}");
            }
            ExitCode::from(code)
        }
    }
}

fn open(cli: &Cli) -> Result<Client, Exit> {
    let mut cfg = ClientConfig::new(cli.server.clone(), cli.token.clone(), cli.data.clone());
    cfg.device = cli.device.clone();
    cfg.ca_file = cli.ca_file.clone();
    cfg.client_name = concat!("courier-cli/", env!("CARGO_PKG_VERSION")).into();
    Client::open(cfg)
        .map_err(|e| Exit(if matches!(e, ClientError::Config(_)) { 2 } else { 1 }, e.to_string()))
}

/// The most `send-file` reads: the whole file is held in memory for the
/// upload, and servers take far less (the reference server 10 MiB).
const MAX_UPLOAD: u64 = 256 << 20;

/// Reads a file to upload (at most [`MAX_UPLOAD`] bytes) and what image it
/// is (a PNG, JPEG, GIF or WebP by its bytes, what the desktop app draws).
fn read_upload(path: &std::path::Path) -> Result<(Vec<u8>, Option<ImageInfo>), Exit> {
    let unreadable = |e: std::io::Error| Exit(2, format!("cannot read {}: {e}", path.display()));
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    if !meta.is_file() {
        return Err(Exit(2, format!("{} is not a file", path.display())));
    }
    if meta.len() > MAX_UPLOAD {
        return Err(Exit(
            2,
            format!("{} is {} bytes; send-file takes at most {MAX_UPLOAD}", path.display(), meta.len()),
        ));
    }
    let bytes = std::fs::read(path).map_err(unreadable)?;
    // A picture of no pixels is sent as the file it is.
    let image = image_info(&bytes).filter(|i| i.width > 0 && i.height > 0);
    Ok((bytes, image))
}

/// Sends the outbox (messages `cids` among it) and waits up to `wait`
/// seconds for the server's acknowledgements; prints `sent`, `queued` or
/// `failed` for each message.
async fn settle(client: &Client, cids: &[String], wait: f64) -> Result<(), Exit> {
    let deadline = Instant::now() + secs(wait);
    client.start();
    let mut stopped = None;
    let settled = tokio::select! {
        r = timeout_at(deadline, client.wait_settled(cids)) => r.ok().transpose()?,
        s = client.wait_state(|s| s == ConnState::Stopped) => { stopped = Some(s); None }
    };
    let msgs = match settled {
        Some(m) => m,
        None => {
            cids.iter().filter_map(|c| client.store().message_by_cid(client.me(), c).ok().flatten()).collect()
        }
    };
    let (mut queued, mut failed) = (0, 0);
    for m in &msgs {
        match (m.status, m.seq) {
            (DeliveryStatus::Failed, _) => {
                failed += 1;
                println!("failed {} {}", m.cid, m.error.as_deref().unwrap_or(""));
            }
            (_, Some(seq)) => println!("sent {} {seq}", m.conv),
            (_, None) => {
                queued += 1;
                println!("queued {}", m.cid);
            }
        }
    }
    if stopped.is_some() {
        let reason = client.stop_reason().map(|r| r.1).unwrap_or_default();
        return Err(Exit(4, reason));
    }
    if queued > 0 {
        return Err(Exit(3, format!("{queued} message(s) not acknowledged in time; they stay queued")));
    }
    if failed > 0 {
        return Err(Exit(1, format!("{failed} message(s) refused by the server")));
    }
    Ok(())
}

/// Starts the client and waits for the first sync, mapping failures to
/// exit codes 4 (refused) and 5 (unreachable).
async fn connect(client: &Client, deadline: Instant) -> Result<(), Exit> {
    client.start();
    match timeout_at(deadline, client.wait_synced()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(Exit(
            5,
            match client.last_error() {
                Some(why) => format!("server unreachable or sync incomplete ({:?}: {why})", client.state()),
                None => format!("server unreachable or sync incomplete ({:?})", client.state()),
            },
        )),
    }
}

async fn run(cli: Cli) -> Result<(), Exit> {
    let client = open(&cli)?;
    let result = command(&cli, &client).await;
    client.stop().await;
    result
}

async fn command(cli: &Cli, client: &Client) -> Result<(), Exit> {
    match &cli.cmd {
        Cmd::Send { target, text, stdin, wait } => {
            let to = parse_target(target).map_err(|e| Exit(2, e.to_string()))?;
            let mut texts = Vec::new();
            if *stdin {
                for line in std::io::stdin().lock().lines() {
                    let line = line.context("reading stdin")?;
                    if !line.is_empty() {
                        texts.push(line);
                    }
                }
            }
            if let Some(t) = text {
                texts.insert(0, t.clone());
            }
            if texts.is_empty() {
                return Err(Exit(2, "nothing to send: give TEXT or --stdin".into()));
            }
            let cids: Vec<String> = client.send_texts(&to, &texts)?.into_iter().map(|m| m.cid).collect();
            settle(client, &cids, *wait).await
        }
        Cmd::SendFile { target, path, name, wait } => {
            let to = parse_target(target).map_err(|e| Exit(2, e.to_string()))?;
            let (bytes, image) = read_upload(path)?;
            let name = name
                .clone()
                .or_else(|| path.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "file".into());
            let mime = image.map_or("application/octet-stream", |i| i.mime);
            let media = client.upload(bytes, mime).await?;
            let m = match image {
                Some(i) => client.send_image(&to, &media, &name, i.width, i.height, None)?,
                None => client.send_file(&to, &media, &name, None)?,
            };
            settle(client, &[m.cid], *wait).await
        }
        Cmd::Sync { wait } => {
            let deadline = Instant::now() + secs(*wait);
            connect(client, deadline).await?;
            let outbox = client.outbox()?;
            let pending = if outbox.is_empty() {
                Vec::new()
            } else {
                match timeout_at(deadline, client.wait_settled(&outbox)).await {
                    Ok(r) => r?.into_iter().filter(|m| m.status == DeliveryStatus::Pending).collect(),
                    Err(_) => client
                        .outbox()?
                        .into_iter()
                        .filter_map(|c| client.store().message_by_cid(client.me(), &c).ok().flatten())
                        .collect::<Vec<MessageView>>(),
                }
            };
            for c in client.conversations()? {
                println!("{} last_seq={} unread={}", c.conv, c.last_seq, c.unread);
            }
            println!("outbox: {} queued", pending.len());
            for m in &pending {
                println!("queued {}", m.cid);
            }
            if !pending.is_empty() {
                return Err(Exit(3, "outbox not delivered in time".into()));
            }
            Ok(())
        }
        Cmd::History { target, limit, json, wait } => {
            let conv = parse_conv(client, target).map_err(|e| Exit(2, e.to_string()))?;
            let synced = connect(client, Instant::now() + secs(*wait)).await;
            if let Err(Exit(4, m)) = synced {
                return Err(Exit(4, m));
            }
            for m in client.history(&conv, None, *limit)? {
                if *json {
                    println!("{}", serde_json::to_string(&m).context("encoding")?);
                } else {
                    print_message(&m);
                }
            }
            synced
        }
        Cmd::Edit { target, mid, text, wait } => relation(client, target, mid, Act::Edit(text), *wait).await,
        Cmd::Recall { target, mid, wait } => relation(client, target, mid, Act::Recall, *wait).await,
        Cmd::React { target, mid, key, off, wait } => {
            relation(client, target, mid, Act::React(key, !off), *wait).await
        }
        Cmd::Pin { target, mid, off, wait } => relation(client, target, mid, Act::Pin(!off), *wait).await,
        Cmd::Listen { for_secs, json } => {
            let mut rx = client.subscribe();
            client.start();
            let end = for_secs.map(|s| Instant::now() + secs(s));
            loop {
                let ev = tokio::select! {
                    ev = rx.recv() => ev,
                    _ = async { match end { Some(e) => tokio::time::sleep_until(e).await, None => std::future::pending().await } } => return Ok(()),
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                };
                let ev = match ev {
                    Ok(ev) => ev,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        eprintln!("courier-cli: {n} events skipped (output too slow)");
                        continue;
                    }
                    Err(_) => return Ok(()),
                };
                if *json {
                    println!("{}", serde_json::to_string(&ev).context("encoding")?);
                } else {
                    print_event(&ev);
                }
                if let ClientEvent::Connection { state: ConnState::Stopped, reason, .. } = &ev {
                    return Err(Exit(4, reason.clone().unwrap_or_default()));
                }
            }
        }
        Cmd::Join { channel } => {
            let name = channel.strip_prefix('#').unwrap_or(channel);
            connect(client, Instant::now() + secs(10.0)).await?;
            let conv = client.join(name).await?;
            let c = client.conversations()?.into_iter().find(|c| c.conv == conv);
            println!("joined {conv} last_seq={}", c.map(|c| c.last_seq).unwrap_or(0));
            Ok(())
        }
        Cmd::Channels => {
            connect(client, Instant::now() + secs(10.0)).await?;
            for ch in client.channels().await? {
                let lock = if ch.private { " (private)" } else { "" };
                println!("#{} members={} {}{} {}", ch.channel, ch.members, ch.title, lock, ch.topic);
            }
            Ok(())
        }
        Cmd::Invite { user, ttl, wait } => {
            let user = user.strip_prefix('@').unwrap_or(user);
            let deadline = Instant::now() + secs(*wait);
            connect(client, deadline).await?;
            let mut rx = client.subscribe();
            let inv = client.invite(user, Map::new(), *ttl).await?;
            let iid = inv.invite.iid.clone();
            println!("invite {iid} {}", inv.invite.state.as_str());
            let mut state = inv.invite.state;
            while state == InviteState::Pending {
                match timeout_at(deadline, rx.recv()).await {
                    Err(_) => return Err(Exit(3, "no answer in time".into())),
                    Ok(Ok(ClientEvent::Invite { invite })) if invite.invite.iid == iid => {
                        if invite.invite.state != state || invite.invite.received {
                            state = invite.invite.state;
                            let rcv = if invite.invite.received && state == InviteState::Pending {
                                " received"
                            } else {
                                ""
                            };
                            println!("invite {iid} {}{rcv}", state.as_str());
                        }
                    }
                    Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                    Ok(Err(_)) => return Err(Exit(5, "disconnected".into())),
                }
            }
            Ok(())
        }
        Cmd::Answer { iid, answer } => {
            connect(client, Instant::now() + secs(10.0)).await?;
            let accept = answer == "accept";
            match client.answer(iid, accept, Map::new()).await {
                Ok(v) => {
                    let state = v.map(|v| v.invite.state.as_str()).unwrap_or(if accept {
                        "accepted"
                    } else {
                        "refused"
                    });
                    println!("invite {iid} {state}");
                    Ok(())
                }
                Err(ClientError::Server(e)) if e.invite.is_some() => {
                    let inv = e.invite.unwrap_or_else(|| unreachable!());
                    println!("invite {iid} {} (already final)", inv.state.as_str());
                    Err(Exit(1, format!("{}: {}", e.code, e.message)))
                }
                Err(e) => Err(e.into()),
            }
        }
        Cmd::Call(args) => calls::call(client, args).await,
        Cmd::AnswerCalls(args) => calls::answer_calls(client, args).await,
        Cmd::Search { query, limit } => {
            for m in client.search(query, *limit)? {
                print_message(&m);
            }
            Ok(())
        }
        Cmd::Whoami => {
            connect(client, Instant::now() + secs(10.0)).await?;
            println!("{}", client.me());
            Ok(())
        }
    }
}

/// What `edit`, `recall`, `react` and `pin` do.
enum Act<'a> {
    Edit(&'a str),
    Recall,
    React(&'a str, bool),
    Pin(bool),
}

/// Runs a relation subcommand: sync (so the message is in the local store
/// and the server's windows are known), queue it, wait for the outbox.
/// Exit 0 once acknowledged, 3 while still queued, 1 when refused.
async fn relation(client: &Client, target: &str, mid: &str, act: Act<'_>, wait: f64) -> Result<(), Exit> {
    let conv = parse_conv(client, target).map_err(|e| Exit(2, e.to_string()))?;
    match act {
        _ if mid.is_empty() => return Err(Exit(2, "the message id is empty".into())),
        Act::Edit("") => return Err(Exit(2, "the new text is empty".into())),
        Act::React(key, _) if key.is_empty() || key.len() > 32 => {
            return Err(Exit(2, format!("a reaction key has 1 to 32 bytes, {key:?} has {}", key.len())));
        }
        _ => {}
    }
    let deadline = Instant::now() + secs(wait);
    // Unreachable is fine: the relation is queued for a later command.
    if let Err(Exit(4, m)) = connect(client, deadline).await {
        return Err(Exit(4, m));
    }
    let done = match act {
        Act::Edit(text) => timeout_at(deadline, client.edit(&conv, mid, text)).await,
        Act::Recall => timeout_at(deadline, client.recall(&conv, mid)).await,
        Act::React(key, on) => timeout_at(deadline, client.react(&conv, mid, key, on)).await,
        Act::Pin(on) => timeout_at(deadline, client.pin(&conv, mid, on)).await,
    };
    if let Ok(r) = done {
        r?;
    }
    let what = match act {
        Act::Edit(_) => "edited".to_owned(),
        Act::Recall => "recalled".to_owned(),
        Act::React(key, on) => format!("reaction {key} {}", if on { "on" } else { "off" }),
        Act::Pin(true) => "pinned".to_owned(),
        Act::Pin(false) => "unpinned".to_owned(),
    };
    let outbox = client.outbox()?;
    let settled = match timeout_at(deadline, client.wait_settled(&outbox)).await {
        Ok(r) => r?,
        Err(_) => outbox
            .iter()
            .filter_map(|c| client.store().message_by_cid(client.me(), c).ok().flatten())
            .collect(),
    };
    for m in settled.iter().filter(|m| m.status == DeliveryStatus::Failed) {
        println!("failed {} {}", m.cid, m.error.as_deref().unwrap_or(""));
    }
    if settled.iter().any(|m| m.status == DeliveryStatus::Failed) {
        return Err(Exit(1, "refused by the server".into()));
    }
    if settled.iter().any(|m| m.status == DeliveryStatus::Pending) {
        println!("queued {what} {conv} {mid}");
        return Err(Exit(3, "not acknowledged in time; it stays queued".into()));
    }
    println!("{what} {conv} {mid}");
    Ok(())
}

fn print_message(m: &MessageView) {
    let seq = m.seq.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
    let text = match m.text() {
        _ if m.recalled => "(message recalled)".to_owned(),
        Some(t) if m.kind == "text" => courier_client::markup::plain_text(t),
        Some(t) => t.to_owned(),
        None => format!("[{}] {}", m.kind, serde_json::Value::Object(m.body.clone())),
    };
    let forwarded = match m.body.get("forwarded_from").and_then(|f| f.get("from")).and_then(|f| f.as_str()) {
        Some(from) => format!("(forwarded from {from}) "),
        None => String::new(),
    };
    let mut marks = String::new();
    if m.edited.is_some() {
        marks.push_str(" (edited)");
    }
    for (key, users) in &m.reactions {
        marks.push_str(&format!(" [{key} {}]", users.join(",")));
    }
    if m.pinned.is_some() {
        marks.push_str(" (pinned)");
    }
    let status = match m.status {
        DeliveryStatus::Received => String::new(),
        s => format!(" ({})", s.as_str()),
    };
    let mid = m.mid.as_deref().map(|mid| format!("  mid={mid}")).unwrap_or_default();
    println!("{} #{seq} {}: {forwarded}{text}{marks}{status}{mid}", m.conv, m.from);
}

fn print_event(ev: &ClientEvent) {
    match ev {
        ClientEvent::MessageAdded { message } => print_message(message),
        ClientEvent::MessageUpdated { message } => {
            print!("updated ");
            print_message(message)
        }
        ClientEvent::Connection { state, reason, .. } => {
            println!("connection {state:?}{}", reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())
        }
        ClientEvent::Typing { conv, user } => println!("{conv} {user} is typing"),
        ClientEvent::Invite { invite } => {
            println!(
                "invite {} from {} to {}: {}",
                invite.invite.iid,
                invite.invite.from,
                invite.invite.to,
                invite.invite.state.as_str()
            )
        }
        other => println!("{}", serde_json::to_string(other).unwrap_or_default()),
    }
}
