//! `courier-cli call` and `courier-cli answer-calls`: real 1:1 calls
//! (protocol §12) with test media, for bots and tests.
//!
//! Layout:
//! - this file: the flags, their checks, and the stop signal (Ctrl-C or
//!   SIGTERM hangs up cleanly, so a recording is always a whole WAV file);
//! - `flows`: placing a call (invite, wait for the answer) and answering
//!   calls one at a time, then the caller's call record;
//! - `session`: one accepted call on `courier-media`: signals in and out,
//!   `--for`, the figures of the report;
//! - `outcome`: exit codes and the report (pure);
//! - `relay`: the relay-only ICE policy (pure).
//!
//! The media engine is behind the cargo feature `calls` (on by default);
//! a build without it refuses both commands with exit code 1.

#[cfg(feature = "calls")]
mod flows;
#[cfg_attr(not(feature = "calls"), allow(dead_code))]
mod outcome;
#[cfg_attr(not(feature = "calls"), allow(dead_code))]
mod relay;
#[cfg(feature = "calls")]
mod session;

use crate::Exit;
use clap::Args;
use courier_client::Client;
use std::path::PathBuf;

pub use relay::IcePolicy;

/// Flags `call` and `answer-calls` share: what to send, where to put what
/// is heard, how long, how to report.
#[derive(Args, Debug, Clone)]
pub struct MediaArgs {
    /// Send a sine tone of HZ (20–20000) instead of silence.
    #[arg(long, value_name = "HZ", conflicts_with = "play", value_parser = parse_tone)]
    pub tone: Option<f64>,
    /// Send this WAV file (looped) instead of silence.
    #[arg(long, value_name = "FILE.wav")]
    pub play: Option<PathBuf>,
    /// Write what is heard to this file as 16-bit PCM WAV (per call; a
    /// later call of `answer-calls` overwrites it).
    #[arg(long, value_name = "OUT.wav")]
    pub record: Option<PathBuf>,
    /// Hang up this many seconds after media connected (default: when the
    /// other side hangs up, or on Ctrl-C).
    #[arg(long = "for", value_name = "SECONDS", value_parser = parse_seconds)]
    pub for_secs: Option<f64>,
    /// Print the report as one JSON object per call.
    #[arg(long)]
    pub json: bool,
    /// `relay` uses TURN relay candidates only (tells the peer only those
    /// and ignores its others); for checking a TURN deployment.
    #[arg(long, env = "COURIER_ICE_POLICY", value_enum, default_value = "all")]
    pub ice_policy: IcePolicy,
}

/// `courier-cli call`.
#[derive(Args, Debug, Clone)]
pub struct CallArgs {
    /// `@user` to call.
    pub user: String,
    /// Ask for video and send a test picture (640×480).
    #[arg(long)]
    pub video: bool,
    /// Ringing time in seconds (5–300); no answer by then is exit code 7.
    #[arg(long, value_name = "SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(5..=300))]
    pub ring: u32,
    #[command(flatten)]
    pub media: MediaArgs,
}

/// `courier-cli answer-calls`.
#[derive(Args, Debug, Clone)]
pub struct AnswerArgs {
    /// Accept incoming calls (the default).
    #[arg(long, conflicts_with = "decline")]
    pub accept: bool,
    /// Decline incoming calls.
    #[arg(long)]
    pub decline: bool,
    /// Stop after this many calls (default: 1 with --for, else run until
    /// Ctrl-C / SIGTERM).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub calls: Option<u32>,
    #[command(flatten)]
    pub media: MediaArgs,
}

impl AnswerArgs {
    /// How many calls to handle before exiting; `None` is no limit.
    #[cfg_attr(not(feature = "calls"), allow(dead_code))]
    pub fn call_limit(&self) -> Option<u32> {
        self.calls.or(self.media.for_secs.map(|_| 1))
    }
}

fn parse_tone(s: &str) -> Result<f64, String> {
    let hz: f64 = s.parse().map_err(|_| format!("{s:?} is not a number of hertz"))?;
    if !(20.0..=20_000.0).contains(&hz) {
        return Err(format!("a tone is 20 to 20000 Hz, not {hz}"));
    }
    Ok(hz)
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    let secs: f64 = s.parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 604_800.0) {
        return Err(format!("--for takes 0 < SECONDS ≤ 604800, not {secs}"));
    }
    Ok(secs)
}

impl MediaArgs {
    /// Checks what clap cannot: the file to play exists and is a WAV file.
    fn check(&self) -> Result<(), Exit> {
        if let Some(p) = &self.play {
            let mut head = [0u8; 12];
            let ok = std::fs::File::open(p)
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
                .map(|()| &head[0..4] == b"RIFF" && &head[8..12] == b"WAVE");
            match ok {
                Ok(true) => {}
                Ok(false) => return Err(Exit(2, format!("{} is not a WAV file", p.display()))),
                Err(e) => return Err(Exit(2, format!("cannot read {}: {e}", p.display()))),
            }
        }
        if let Some(dir) = self.record.as_deref().and_then(|p| p.parent())
            && !dir.as_os_str().is_empty()
            && !dir.is_dir()
        {
            return Err(Exit(2, format!("no folder {} for --record", dir.display())));
        }
        Ok(())
    }
}

/// Places a call (see the crate README).
pub async fn call(client: &Client, args: &CallArgs) -> Result<(), Exit> {
    let placed = async {
        args.media.check()?;
        let user = args.user.strip_prefix('@').unwrap_or(&args.user);
        if user.is_empty() || args.user.starts_with('#') {
            return Err(Exit(2, format!("call whom? give @user, not {:?}", args.user)));
        }
        #[cfg(feature = "calls")]
        return flows::call(client, user, args).await;
        #[cfg(not(feature = "calls"))]
        return Err(unsupported(client));
    };
    report_early_failure(placed.await, args.media.json)
}

/// Answers calls one at a time (see the crate README).
pub async fn answer_calls(client: &Client, args: &AnswerArgs) -> Result<(), Exit> {
    let answered = async {
        args.media.check()?;
        #[cfg(feature = "calls")]
        return flows::answer_calls(client, args).await;
        #[cfg(not(feature = "calls"))]
        return Err(unsupported(client));
    };
    report_early_failure(answered.await, args.media.json)
}

/// With `--json`, a failure before any call (no report printed: codes
/// other than a call's 6, 7 and 8) still prints one JSON object.
fn report_early_failure(result: Result<(), Exit>, json: bool) -> Result<(), Exit> {
    if let (Err(Exit(code, msg)), true) = (&result, json)
        && let Some(outcome) = early_outcome(*code)
    {
        println!("{}", serde_json::json!({"outcome": outcome, "exit_code": code, "error": msg}));
    }
    result
}

/// The `outcome` of the JSON printed for a failure before any call.
fn early_outcome(code: u8) -> Option<&'static str> {
    match code {
        1 => Some("error"),
        2 => Some("usage"),
        4 => Some("refused"),
        5 => Some("no_server"),
        _ => None,
    }
}

#[cfg(not(feature = "calls"))]
fn unsupported(_: &Client) -> Exit {
    Exit(1, "this courier-cli was built without calls (cargo feature `calls`)".into())
}

/// Resolves once Ctrl-C or SIGTERM arrives (and stays resolved).
#[cfg(feature = "calls")]
#[derive(Clone)]
pub struct Stop(tokio::sync::watch::Receiver<bool>);

#[cfg(feature = "calls")]
impl Stop {
    /// Starts listening for Ctrl-C and SIGTERM.
    pub fn listen() -> Stop {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let term = async {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term => {}
            }
            let _ = tx.send(true);
        });
        Stop(rx)
    }

    /// Waits for the stop.
    pub async fn requested(&mut self) {
        let _ = self.0.wait_for(|s| *s).await;
    }

    /// Whether it has arrived.
    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    enum T {
        Call(CallArgs),
        AnswerCalls(AnswerArgs),
    }

    fn parse(args: &[&str]) -> Result<T, clap::Error> {
        T::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
    }

    #[test]
    fn the_documented_command_lines_parse() {
        let T::Call(c) = parse(&[
            "call", "@bob", "--video", "--tone", "440", "--record", "out.wav", "--for", "5", "--json",
        ])
        .unwrap() else {
            panic!("call")
        };
        assert_eq!(
            (c.user.as_str(), c.video, c.media.tone, c.media.for_secs),
            ("@bob", true, Some(440.0), Some(5.0))
        );
        assert!(c.media.json);
        assert_eq!(c.media.ice_policy, IcePolicy::All);
        let T::AnswerCalls(a) =
            parse(&["answer-calls", "--decline", "--play", "in.wav", "--record", "o.wav", "--for", "2.5"])
                .unwrap()
        else {
            panic!("answer-calls")
        };
        assert!(a.decline && !a.accept);
        assert_eq!(a.call_limit(), Some(1), "--for answers one call");
        let T::AnswerCalls(a) = parse(&["answer-calls", "--accept"]).unwrap() else { panic!() };
        assert_eq!(a.call_limit(), None, "without --for it runs until stopped");
        let T::AnswerCalls(a) = parse(&["answer-calls", "--calls", "3", "--for", "1"]).unwrap() else {
            panic!()
        };
        assert_eq!(a.call_limit(), Some(3));
    }

    #[test]
    fn contradictory_or_out_of_range_flags_are_usage_errors() {
        for bad in [
            &["call", "@bob", "--tone", "440", "--play", "x.wav"][..],
            &["call", "@bob", "--tone", "5"],
            &["call", "@bob", "--tone", "loud"],
            &["call", "@bob", "--for", "0"],
            &["call", "@bob", "--for", "-3"],
            &["call", "@bob", "--ring", "4"],
            &["call"],
            &["answer-calls", "--accept", "--decline"],
            &["answer-calls", "--calls", "0"],
            &["call", "@bob", "--ice-policy", "nearest"],
        ] {
            let e = parse(bad).expect_err(&format!("{bad:?} parsed"));
            assert!(e.use_stderr(), "{bad:?}: {e}");
        }
        let T::Call(c) = parse(&["call", "@bob", "--ice-policy", "relay"]).unwrap() else { panic!() };
        assert_eq!(c.media.ice_policy, IcePolicy::Relay);
    }

    #[test]
    fn failures_before_a_call_have_a_json_outcome_and_call_outcomes_keep_theirs() {
        assert_eq!(early_outcome(5), Some("no_server"));
        assert_eq!(early_outcome(4), Some("refused"));
        for code in [0, 6, 7, 8] {
            assert_eq!(early_outcome(code), None, "{code} is a call's own report");
        }
    }

    #[test]
    fn play_must_name_a_wav_file_and_record_an_existing_folder() {
        let dir = tempfile::tempdir().unwrap();
        let not_wav = dir.path().join("x.wav");
        std::fs::write(&not_wav, b"hello, this is text").unwrap();
        let args = |play: Option<PathBuf>, record: Option<PathBuf>| MediaArgs {
            tone: None,
            play,
            record,
            for_secs: None,
            json: false,
            ice_policy: IcePolicy::All,
        };
        let code = |r: Result<(), Exit>| r.err().map(|Exit(c, _)| c);
        assert_eq!(code(args(Some(not_wav), None).check()), Some(2));
        assert_eq!(code(args(Some(dir.path().join("missing.wav")), None).check()), Some(2));
        let wav = dir.path().join("ok.wav");
        std::fs::write(&wav, b"RIFF\x24\0\0\0WAVEfmt ").unwrap();
        assert_eq!(code(args(Some(wav), Some(dir.path().join("out.wav"))).check()), None);
        assert_eq!(code(args(None, Some(dir.path().join("no/such/out.wav"))).check()), Some(2));
        assert_eq!(code(args(None, Some("out.wav".into())).check()), None, "the current folder");
    }
}
