//! OS notifications: a pure decision ([`decide`]) and the display through
//! `notify-rust`. With no notification service (no D-Bus session on Linux)
//! showing fails quietly: no notification, never a crash.

use crate::settings::{Language, Settings};
use courier_client::{ClientEvent, DeliveryStatus};
use courier_proto::ids::is_bidi_control;
use courier_proto::{Conv, InviteState, is_relation_kind};

/// Messages older than this (ms) are history arriving, not news.
pub const FRESH_MS: i64 = 60_000;

/// Call notifications (incoming or missed) from one caller in a minute;
/// past that the invitation still rings in the app, but no notification
/// pops up. Cancelling is free and each invitation costs the caller one
/// token of 20 a second, so a caller ringing and cancelling in a loop put
/// up to 20 incoming-call notifications a second on the screen, each with
/// a thread waiting up to 5 minutes for its buttons, plus a missed-call
/// notification for each.
pub const CALL_NOTES_PER_MIN: usize = 3;

/// Paces call notifications per caller ([`CALL_NOTES_PER_MIN`]).
#[derive(Debug, Default)]
pub struct CallPacer {
    recent: std::collections::HashMap<String, std::collections::VecDeque<std::time::Instant>>,
}

impl CallPacer {
    /// Whether a call notification of `kind` (`"call"`, `"missed"`) from
    /// `from` may show at `now`; counts it when it may. Remembers only
    /// callers of the last minute.
    pub fn allow(&mut self, kind: &str, from: &str, now: std::time::Instant) -> bool {
        const MINUTE: std::time::Duration = std::time::Duration::from_secs(60);
        self.recent.retain(|_, times| {
            while times.front().is_some_and(|t| now.duration_since(*t) >= MINUTE) {
                times.pop_front();
            }
            !times.is_empty()
        });
        let times = self.recent.entry(format!("{kind}:{from}")).or_default();
        if times.len() >= CALL_NOTES_PER_MIN {
            return false;
        }
        times.push_back(now);
        true
    }
}

/// What the app knows when an event arrives.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// The signed-in user.
    pub me: &'a str,
    /// The settings.
    pub settings: &'a Settings,
    /// The window is visible and focused.
    pub attentive: bool,
    /// The conversation on screen.
    pub active: Option<&'a Conv>,
    /// Local time (ms).
    pub now_ms: i64,
}

/// A notification to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// A new message.
    Message {
        /// Its conversation (`dm:…` / `ch:…`).
        conv: String,
        /// The sender's user id.
        from: String,
        /// The channel, for channel messages.
        channel: Option<String>,
        /// A one-line preview.
        preview: String,
        /// The message mentions this user.
        mention: bool,
    },
    /// An incoming call invitation.
    Call {
        /// The invitation.
        iid: String,
        /// The caller.
        from: String,
    },
    /// An incoming call that ended unanswered (expired, or canceled by
    /// the caller).
    MissedCall {
        /// The invitation.
        iid: String,
        /// The caller.
        from: String,
    },
}

/// Whether `ev` deserves a notification: a fresh message from someone else
/// in a conversation not on screen (or while the window is hidden or
/// unfocused), unless notifications are off, do-not-disturb is on or the
/// conversation is muted — a message that mentions this user notifies in a
/// muted conversation too; an incoming ringing invitation unless
/// notifications are off or do-not-disturb is on, and an incoming call
/// that ended unanswered as a missed call (under do-not-disturb it waits:
/// see [`deferred`]). Edits, recalls, reactions and pins never notify.
pub fn decide(ev: &ClientEvent, cx: &Context<'_>) -> Option<Note> {
    match ev {
        ClientEvent::MessageAdded { message: m } => {
            if m.from == cx.me || m.status != DeliveryStatus::Received {
                return None;
            }
            if is_relation_kind(&m.kind) || m.recalled {
                return None;
            }
            if !cx.settings.notifications || cx.settings.do_not_disturb {
                return None;
            }
            if m.kind == "call" {
                // Call records (§14): only a fresh `missed` one notifies,
                // as the missed call it records.
                return if m.ts.is_some_and(|ts| cx.now_ms - ts > FRESH_MS) { None } else { missed_call(ev) };
            }
            let conv = m.conv.to_string();
            let mention = m.mentions(cx.me);
            if cx.settings.muted.contains(&conv) && !mention {
                return None;
            }
            if cx.attentive && cx.active == Some(&m.conv) {
                return None;
            }
            if m.ts.is_some_and(|ts| cx.now_ms - ts > FRESH_MS) {
                return None;
            }
            let preview = match m.kind.as_str() {
                "text" => courier_client::markup::plain_text(m.text().unwrap_or_default()),
                "image" => format!("🖼 {}", m.text().unwrap_or("image")),
                "file" => format!("📎 {}", m.text().unwrap_or("file")),
                _ => return None,
            };
            Some(Note::Message {
                conv,
                from: m.from.clone(),
                channel: m.conv.channel_name().map(str::to_owned),
                preview: truncate(&preview, 160),
                mention,
            })
        }
        ClientEvent::Invite { .. } if !cx.settings.notifications || cx.settings.do_not_disturb => None,
        ClientEvent::Invite { invite } if invite.ringing && invite.invite.state == InviteState::Pending => {
            Some(Note::Call { iid: invite.invite.iid.clone(), from: invite.invite.from.clone() })
        }
        ev => missed_call(ev),
    }
}

/// A notification held back by do-not-disturb, to show when it ends: a
/// call missed meanwhile. (Messages are not replayed: the unread badges
/// tell of them.)
pub fn deferred(ev: &ClientEvent, cx: &Context<'_>) -> Option<Note> {
    if cx.settings.notifications && cx.settings.do_not_disturb { missed_call(ev) } else { None }
}

fn missed_call(ev: &ClientEvent) -> Option<Note> {
    match ev {
        ClientEvent::Invite { invite }
            if invite.incoming
                && matches!(invite.invite.state, InviteState::Expired | InviteState::Canceled) =>
        {
            Some(Note::MissedCall { iid: invite.invite.iid.clone(), from: invite.invite.from.clone() })
        }
        ClientEvent::MessageAdded { message: m }
            if m.kind == "call"
                && m.status == DeliveryStatus::Received
                && !m.recalled
                && m.body.get("outcome").and_then(|o| o.as_str()) == Some("missed") =>
        {
            let iid = m.body.get("iid").and_then(|i| i.as_str())?;
            Some(Note::MissedCall { iid: iid.to_owned(), from: m.from.clone() })
        }
        _ => None,
    }
}

/// Whether notifications speak Chinese: the language the user picked, else
/// the OS locale (`LC_ALL`, `LC_MESSAGES` or `LANG`, e.g. `zh_CN.UTF-8`).
pub fn speaks_chinese(picked: Option<Language>, os_locale: Option<&str>) -> bool {
    match picked {
        Some(l) => l == Language::ZhCn,
        None => os_locale.is_some_and(|l| l.to_ascii_lowercase().starts_with("zh")),
    }
}

/// The OS locale, as [`speaks_chinese`] reads it.
pub fn os_locale() -> Option<String> {
    ["LC_ALL", "LC_MESSAGES", "LANG"].iter().find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
}

/// Summary and body of a missed-call notification from `name`.
pub fn missed_call_text(name: &str, chinese: bool) -> (String, String) {
    if chinese {
        (format!("{name} 的未接来电"), "点击打开聊天".into())
    } else {
        (format!("Missed call from {name}"), "Click to open the chat".into())
    }
}

/// What an incoming-call notification says: summary, body, and the labels
/// of its Accept and Decline actions.
pub fn incoming_call_text(name: &str, video: bool, chinese: bool) -> [String; 4] {
    let [s, b, a, d] = match (chinese, video) {
        (true, true) => ["{} 邀请你视频通话", "视频来电", "接听", "拒绝"],
        (true, false) => ["{} 来电", "语音来电", "接听", "拒绝"],
        (false, true) => ["{} is video calling", "Incoming video call", "Accept", "Decline"],
        (false, false) => ["{} is calling", "Incoming call", "Accept", "Decline"],
    };
    [s.replace("{}", name), b.into(), a.into(), d.into()]
}

/// What the person chose on an incoming-call notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallChoice {
    /// Clicked the notification: show the ringing call.
    Open,
    /// The Accept action.
    Accept,
    /// The Decline action.
    Decline,
}

impl CallChoice {
    /// The choice an action key names (`None`: closed without a choice).
    pub fn of_action(action: &str) -> Option<CallChoice> {
        match action {
            "default" => Some(CallChoice::Open),
            "accept" => Some(CallChoice::Accept),
            "decline" => Some(CallChoice::Decline),
            _ => None,
        }
    }
}

/// Shows an incoming call (`text` from [`incoming_call_text`]) with Accept
/// and Decline actions where the notification server offers actions
/// (freedesktop; elsewhere a click opens the ringing call), for as long as
/// it rings.
pub fn show_call(text: [String; 4], ring_ms: u32, on_choice: impl FnOnce(CallChoice) + Send + 'static) {
    let [summary, body, accept, decline] = text;
    std::thread::spawn(move || {
        let mut n = notify_rust::Notification::new();
        n.appname("Courier").summary(&plain_summary(&summary)).body(&plain_body(&body));
        n.timeout(notify_rust::Timeout::Milliseconds(ring_ms));
        #[cfg(all(unix, not(target_os = "macos")))]
        n.action("default", "Open")
            .action("accept", &accept)
            .action("decline", &decline)
            .hint(notify_rust::Hint::Category("im".into()))
            .urgency(notify_rust::Urgency::Critical);
        let _ = (&accept, &decline);
        match n.show() {
            #[cfg(all(unix, not(target_os = "macos")))]
            Ok(handle) => handle.wait_for_action(|action| {
                if let Some(choice) = CallChoice::of_action(action) {
                    on_choice(choice);
                }
            }),
            #[cfg(not(all(unix, not(target_os = "macos"))))]
            Ok(_) => drop(on_choice),
            Err(e) => tracing::debug!("no notification ({e})"),
        }
    });
}

/// Notification text as plain text: freedesktop notification servers read
/// a subset of HTML in the body, so a peer's `<a href=…>` or `<img>` would
/// become a link or an image. Escapes `&`, `<` and `>` there, and drops
/// control and bidi characters everywhere (a file name must not read
/// backwards).
pub fn plain_body(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' if cfg!(all(unix, not(target_os = "macos"))) => out.push_str("&amp;"),
            '<' if cfg!(all(unix, not(target_os = "macos"))) => out.push_str("&lt;"),
            '>' if cfg!(all(unix, not(target_os = "macos"))) => out.push_str("&gt;"),
            c if (c.is_control() && c != '\n') || is_bidi_control(c) => {}
            c => out.push(c),
        }
    }
    out
}

/// A notification's title: plain text by the specification, but some
/// servers (older KDE Plasma, custom dunst formats) render it as markup.
/// Escaping would show `&lt;` where the server is faithful, so `<` and `>`
/// become the look-alikes `‹` and `›` (no tag can form without them) and
/// control and bidi characters go (a name must not reorder the title).
pub fn plain_summary(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() && !is_bidi_control(*c))
        .map(|c| match c {
            '<' => '‹',
            '>' => '›',
            c => c,
        })
        .collect()
}

/// Characters that draw nothing in a name: zero-width spaces, joiners
/// and marks, word joiners, the byte-order mark, Hangul fillers.
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(c, '\u{00AD}' | '\u{034F}' | '\u{115F}' | '\u{1160}' | '\u{180B}'..='\u{180F}')
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{3164}' | '\u{FEFF}' | '\u{FFA0}')
}

/// Who a notification says a message or call is from: the display name
/// followed by the user id, "Alice (@mallory)", since anyone may call
/// themselves Alice and a call notification has an Accept button; the name
/// alone when it is the id but for case; the id alone when there is no
/// name or it draws nothing (zero-width characters, fillers).
pub fn sender_label(name: Option<&str>, user: &str) -> String {
    let name = name.unwrap_or_default().trim();
    if name.chars().all(|c| is_invisible(c) || c.is_control() || is_bidi_control(c)) {
        user.to_owned()
    } else if name.to_lowercase() == user.to_lowercase() {
        name.to_owned()
    } else {
        format!("{name} (@{user})")
    }
}

fn truncate(s: &str, max: usize) -> String {
    let one_line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        one_line.chars().take(max - 1).chain(['…']).collect()
    }
}

/// Shows `summary`/`body`; `on_click` runs when the user clicks it (where
/// the platform reports clicks). Runs on a blocking thread; errors are
/// logged, never raised.
pub fn show(summary: String, body: String, on_click: impl FnOnce() + Send + 'static) {
    std::thread::spawn(move || {
        let mut n = notify_rust::Notification::new();
        n.appname("Courier").summary(&plain_summary(&summary)).body(&plain_body(&body));
        #[cfg(all(unix, not(target_os = "macos")))]
        n.action("default", "Open").hint(notify_rust::Hint::Category("im.received".into()));
        match n.show() {
            #[cfg(all(unix, not(target_os = "macos")))]
            Ok(handle) => handle.wait_for_action(|action| {
                if action == "default" {
                    on_click();
                }
            }),
            #[cfg(not(all(unix, not(target_os = "macos"))))]
            Ok(_) => drop(on_click),
            Err(e) => tracing::debug!("no notification ({e})"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use courier_client::{InviteView, MessageView};
    use courier_proto::{Invite, Target};
    use serde_json::json;

    fn msg(from: &str, conv: Conv, ts: i64) -> ClientEvent {
        ClientEvent::MessageAdded {
            message: MessageView {
                conv,
                seq: Some(1),
                mid: Some("m1".into()),
                cid: "c1".into(),
                from: from.into(),
                to: Target::User("alice".into()),
                kind: "text".into(),
                body: json!({"text": "hello\n  there"}).as_object().unwrap().clone(),
                ts: Some(ts),
                reply_to: None,
                status: if from == "alice" { DeliveryStatus::Sent } else { DeliveryStatus::Received },
                error: None,
                edited: None,
                reactions: Default::default(),
                recalled: false,
                pinned: None,
            },
        }
    }

    /// `msg` with the message changed by `f`.
    fn with(ev: ClientEvent, f: impl FnOnce(&mut MessageView)) -> ClientEvent {
        let ClientEvent::MessageAdded { mut message } = ev else { unreachable!() };
        f(&mut message);
        ClientEvent::MessageAdded { message }
    }

    #[test]
    fn a_caller_ringing_in_a_loop_pops_up_three_notifications_a_minute() {
        let t0 = std::time::Instant::now();
        let mut pacer = CallPacer::default();
        let at = |ms: u64| t0 + std::time::Duration::from_millis(ms);
        // 20 invitations a second for a minute, each cancelled (so also missed).
        let (mut rang, mut missed) = (0, 0);
        for i in 0..1_200u64 {
            rang += usize::from(pacer.allow("call", "mallory", at(i * 50)));
            missed += usize::from(pacer.allow("missed", "mallory", at(i * 50 + 1)));
        }
        assert_eq!((rang, missed), (CALL_NOTES_PER_MIN, CALL_NOTES_PER_MIN));
        assert!(pacer.allow("call", "bob", at(59_000)), "another caller still rings");
        assert!(pacer.allow("call", "mallory", at(60_000)), "a minute later she rings again");
        assert_eq!(pacer.recent.len(), 3, "only the last minute's callers are remembered");
    }

    #[test]
    fn incoming_calls_offer_accept_and_decline_in_the_users_language() {
        assert_eq!(
            incoming_call_text("Bob", true, false),
            ["Bob is video calling", "Incoming video call", "Accept", "Decline"].map(String::from)
        );
        assert_eq!(
            incoming_call_text("鲍勃", false, true),
            ["鲍勃 来电", "语音来电", "接听", "拒绝"].map(String::from)
        );
        assert_eq!(CallChoice::of_action("accept"), Some(CallChoice::Accept));
        assert_eq!(CallChoice::of_action("decline"), Some(CallChoice::Decline));
        assert_eq!(CallChoice::of_action("default"), Some(CallChoice::Open));
        assert_eq!(CallChoice::of_action("__closed"), None);
    }

    #[test]
    fn message_rules() {
        let s = Settings::default();
        let dm = Conv::dm("alice", "bob");
        let other = Conv::channel("lobby");
        let cx = Context { me: "alice", settings: &s, attentive: true, active: Some(&dm), now_ms: 10_000 };
        // On screen, focused: nothing.
        assert_eq!(decide(&msg("bob", dm.clone(), 9_000), &cx), None);
        // Unfocused: notify, with a one-line preview.
        let away = Context { attentive: false, ..cx.clone() };
        assert_eq!(
            decide(&msg("bob", dm.clone(), 9_000), &away),
            Some(Note::Message {
                conv: dm.to_string(),
                from: "bob".into(),
                channel: None,
                preview: "hello there".into(),
                mention: false,
            })
        );
        // Another conversation while focused: notify.
        let elsewhere = Context { active: Some(&other), ..cx.clone() };
        assert!(decide(&msg("bob", dm.clone(), 9_000), &elsewhere).is_some());
        // Own messages, old history: nothing.
        assert_eq!(decide(&msg("alice", dm.clone(), 9_000), &away), None);
        assert_eq!(decide(&msg("bob", dm.clone(), 10_000 - FRESH_MS - 1), &away), None);
        // Muted, DND, notifications off: nothing.
        for s2 in [
            Settings { muted: vec![dm.to_string()], ..Settings::default() },
            Settings { do_not_disturb: true, ..Settings::default() },
            Settings { notifications: false, ..Settings::default() },
        ] {
            let cx2 = Context { settings: &s2, ..away.clone() };
            assert_eq!(decide(&msg("bob", dm.clone(), 9_000), &cx2), None);
        }
    }

    #[test]
    fn a_formatted_message_notifies_as_plain_text_with_spoilers_hidden() {
        let s = Settings::default();
        let dm = Conv::dm("alice", "bob");
        let cx = Context { me: "alice", settings: &s, attentive: false, active: None, now_ms: 10_000 };
        let ev = with(msg("bob", dm, 9_000), |m| {
            m.body
                .insert("text".into(), json!("**Ship it** on _Friday_: ||the code is 42||\n> `cargo test`"));
        });
        let Some(Note::Message { preview, .. }) = decide(&ev, &cx) else { panic!("no note") };
        assert_eq!(preview, "Ship it on Friday: ▒▒▒ cargo test");
    }

    #[test]
    fn mentions_notify_in_muted_conversations_but_not_under_do_not_disturb() {
        let lobby = Conv::channel("lobby");
        let mention = |who: &str| {
            let who = who.to_owned();
            with(msg("bob", lobby.clone(), 9_000), move |m| {
                m.body.insert("mentions".into(), json!([who]));
            })
        };
        let muted = Settings { muted: vec![lobby.to_string()], ..Settings::default() };
        let cx = Context { me: "alice", settings: &muted, attentive: false, active: None, now_ms: 10_000 };
        assert_eq!(decide(&msg("bob", lobby.clone(), 9_000), &cx), None, "muted");
        assert_eq!(decide(&mention("carol"), &cx), None, "someone else is mentioned");
        match decide(&mention("alice"), &cx) {
            Some(Note::Message { mention: true, channel, .. }) => {
                assert_eq!(channel.as_deref(), Some("lobby"))
            }
            other => panic!("a mention must notify: {other:?}"),
        }
        let dnd = Settings { do_not_disturb: true, ..muted.clone() };
        assert_eq!(
            decide(&mention("alice"), &Context { settings: &dnd, ..cx.clone() }),
            None,
            "do not disturb"
        );
        let off = Settings { notifications: false, ..muted.clone() };
        assert_eq!(
            decide(&mention("alice"), &Context { settings: &off, ..cx.clone() }),
            None,
            "notifications off"
        );
    }

    #[test]
    fn relations_and_recalled_messages_never_notify() {
        let s = Settings::default();
        let dm = Conv::dm("alice", "bob");
        let cx = Context { me: "alice", settings: &s, attentive: false, active: None, now_ms: 10_000 };
        for kind in ["edit", "recall", "reaction", "pin"] {
            let ev = with(msg("bob", dm.clone(), 9_000), |m| {
                m.kind = kind.into();
                m.body = json!({"target": "m0", "text": "x", "key": "👍", "on": true})
                    .as_object()
                    .unwrap()
                    .clone();
            });
            assert_eq!(decide(&ev, &cx), None, "{kind}");
        }
        let recalled = with(msg("bob", dm.clone(), 9_000), |m| {
            m.recalled = true;
            m.body.clear();
        });
        assert_eq!(decide(&recalled, &cx), None);
        // An edit reaches the UI as an update of the target: no notification.
        let ClientEvent::MessageAdded { message } = msg("bob", dm, 9_000) else { unreachable!() };
        assert_eq!(decide(&ClientEvent::MessageUpdated { message }, &cx), None);
    }

    #[cfg(all(unix, not(target_os = "macos")))]
    #[test]
    fn notification_text_is_never_markup() {
        assert_eq!(
            plain_body("<b>hi</b> & <a href=\"https://evil\">x</a><img src=x>"),
            "&lt;b&gt;hi&lt;/b&gt; &amp; &lt;a href=\"https://evil\"&gt;x&lt;/a&gt;&lt;img src=x&gt;"
        );
        assert_eq!(plain_body("a\u{1b}[31mb\u{0}c"), "a[31mbc");
        assert_eq!(plain_summary("Bob\u{7}\u{1b} is calling"), "Bob is calling");
        let title = plain_summary("<img src=x onerror=1><b>Eve</b> & co");
        assert!(!title.contains(['<', '>']), "{title}");
        assert_eq!(title, "‹img src=x onerror=1›‹b›Eve‹/b› & co");
    }

    /// A peer calling themselves Alice is not announced as Alice.
    #[test]
    fn notifications_name_the_sender_by_id_too() {
        assert_eq!(sender_label(Some("Alice"), "mallory"), "Alice (@mallory)");
        assert_eq!(sender_label(Some("Alice Smith"), "alice"), "Alice Smith (@alice)");
        assert_eq!(sender_label(Some(" Alice "), "alice"), "Alice");
        assert_eq!(sender_label(Some("Bob"), "bob"), "Bob");
        for nothing in [None, Some(""), Some("\u{200B}\u{3164}"), Some("\u{FEFF} \u{2060}"), Some("\u{202E}")]
        {
            assert_eq!(sender_label(nothing, "mallory"), "mallory", "{nothing:?}");
        }
        let [title, ..] = incoming_call_text(&sender_label(Some("Alice"), "mallory"), false, false);
        assert_eq!(plain_summary(&title), "Alice (@mallory) is calling");
    }

    /// A peer's name or file name cannot reorder what the notification
    /// shows: `invoice\u{202E}gpj.exe` would read "invoiceexe.jpg".
    #[test]
    fn notification_text_has_no_bidi_controls() {
        let bidi = [
            '\u{200E}', '\u{200F}', '\u{061C}', '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}',
            '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
        ];
        assert_eq!(plain_summary("\u{202E}x"), "x");
        assert_eq!(plain_body("invoice\u{202E}gpj.exe"), "invoicegpj.exe");
        for c in bidi {
            let s = format!("Eve{c} sent a{c} file");
            assert_eq!(plain_summary(&s), "Eve sent a file", "U+{:04X}", c as u32);
            assert_eq!(plain_body(&s), "Eve sent a file", "U+{:04X}", c as u32);
        }
        // Joiners stay: they hold emoji sequences together.
        assert_eq!(plain_body("👩\u{200D}💻"), "👩\u{200D}💻");
    }

    fn call(state: InviteState, me: &str) -> ClientEvent {
        let inv = Invite {
            iid: "i1".into(),
            from: "bob".into(),
            to: "alice".into(),
            room: "call-i1".into(),
            content: Default::default(),
            state,
            created: 0,
            expires: i64::MAX,
            received: true,
            reason: None,
            response: None,
        };
        ClientEvent::Invite { invite: InviteView::new(inv, me, 1) }
    }

    /// Do-not-disturb and the notification switch silence ringing; a call
    /// missed under do-not-disturb is kept for later, one missed otherwise
    /// notifies at once; answered calls and outgoing ones never do.
    #[test]
    fn calls_respect_do_not_disturb_and_missed_calls_notify_afterwards() {
        let normal = Settings::default();
        let dnd = Settings { do_not_disturb: true, ..Settings::default() };
        let off = Settings { notifications: false, ..Settings::default() };
        let cx = |s| Context { me: "alice", settings: s, attentive: false, active: None, now_ms: 1 };
        let ring = call(InviteState::Pending, "alice");
        assert_eq!(decide(&ring, &cx(&normal)), Some(Note::Call { iid: "i1".into(), from: "bob".into() }));
        assert_eq!(decide(&ring, &cx(&dnd)), None, "do not disturb");
        assert_eq!(decide(&ring, &cx(&off)), None, "notifications off");
        assert_eq!(deferred(&ring, &cx(&dnd)), None, "a ringing call is not missed yet");
        let missed = Note::MissedCall { iid: "i1".into(), from: "bob".into() };
        for state in [InviteState::Expired, InviteState::Canceled] {
            let ev = call(state, "alice");
            assert_eq!(decide(&ev, &cx(&normal)), Some(missed.clone()));
            assert_eq!(decide(&ev, &cx(&dnd)), None);
            assert_eq!(deferred(&ev, &cx(&dnd)), Some(missed.clone()), "shown when DND ends");
            assert_eq!(deferred(&ev, &cx(&off)), None, "notifications off: never");
            assert_eq!(deferred(&ev, &cx(&normal)), None, "shown already");
        }
        for ev in [
            call(InviteState::Accepted, "alice"),
            call(InviteState::Refused, "alice"),
            call(InviteState::Expired, "bob"),
        ] {
            assert_eq!(decide(&ev, &cx(&normal)), None, "{ev:?}");
            assert_eq!(deferred(&ev, &cx(&dnd)), None, "{ev:?}");
        }
    }

    /// A `call` record notifies only when its outcome is `missed`, as the
    /// missed call (one note per invitation with the invite's own), never
    /// under do-not-disturb or with notifications off, never when stale.
    #[test]
    fn call_records_notify_only_missed() {
        let normal = Settings::default();
        let dnd = Settings { do_not_disturb: true, ..Settings::default() };
        let off = Settings { notifications: false, ..Settings::default() };
        let cx = |s| Context { me: "alice", settings: s, attentive: false, active: None, now_ms: 10_000 };
        let record = |outcome: &str| {
            with(msg("bob", Conv::dm("alice", "bob"), 9_000), |m| {
                m.kind = "call".into();
                m.cid = "call-i1".into();
                m.body = json!({"iid": "i1", "video": false, "outcome": outcome, "duration_s": 0})
                    .as_object()
                    .unwrap()
                    .clone();
            })
        };
        let missed = Note::MissedCall { iid: "i1".into(), from: "bob".into() };
        assert_eq!(decide(&record("missed"), &cx(&normal)), Some(missed.clone()));
        assert_eq!(decide(&record("missed"), &cx(&dnd)), None, "do not disturb");
        assert_eq!(deferred(&record("missed"), &cx(&dnd)), Some(missed), "shown when DND ends");
        assert_eq!(decide(&record("missed"), &cx(&off)), None, "notifications off");
        for outcome in ["completed", "failed", "declined", "canceled"] {
            assert_eq!(decide(&record(outcome), &cx(&normal)), None, "{outcome}");
            assert_eq!(deferred(&record(outcome), &cx(&dnd)), None, "{outcome}");
        }
        let stale = Context { now_ms: 9_000 + FRESH_MS + 1, ..cx(&normal) };
        assert_eq!(decide(&record("missed"), &stale), None, "history, not news");
        let mine = with(record("missed"), |m| {
            m.from = "alice".into();
            m.status = DeliveryStatus::Sent;
        });
        assert_eq!(decide(&mine, &cx(&normal)), None, "the caller's own record");
        let recalled = with(record("missed"), |m| m.recalled = true);
        assert_eq!(decide(&recalled, &cx(&normal)), None, "recalled");
    }

    #[test]
    fn missed_calls_notify_in_the_users_language() {
        assert!(speaks_chinese(Some(Language::ZhCn), Some("en_US.UTF-8")));
        assert!(!speaks_chinese(Some(Language::En), Some("zh_CN.UTF-8")));
        assert!(speaks_chinese(None, Some("zh_CN.UTF-8")));
        assert!(!speaks_chinese(None, Some("en_GB.UTF-8")));
        assert!(!speaks_chinese(None, None));
        assert_eq!(missed_call_text("Bob", false).0, "Missed call from Bob");
        assert_eq!(missed_call_text("鲍勃", true).0, "鲍勃 的未接来电");
    }

    #[test]
    fn calls_ring_in_muted_and_open_conversations() {
        let inv = Invite {
            iid: "i1".into(),
            from: "bob".into(),
            to: "alice".into(),
            room: "call-i1".into(),
            content: Default::default(),
            state: InviteState::Pending,
            created: 0,
            expires: i64::MAX,
            received: true,
            reason: None,
            response: None,
        };
        let ev = ClientEvent::Invite { invite: InviteView::new(inv.clone(), "alice", 1) };
        let s = Settings { muted: vec![Conv::dm("alice", "bob").to_string()], ..Settings::default() };
        let dm = Conv::dm("alice", "bob");
        let cx = Context { me: "alice", settings: &s, attentive: true, active: Some(&dm), now_ms: 1 };
        assert_eq!(decide(&ev, &cx), Some(Note::Call { iid: "i1".into(), from: "bob".into() }));
        // Outgoing or answered: nothing.
        let out = ClientEvent::Invite { invite: InviteView::new(inv.clone(), "bob", 1) };
        assert_eq!(decide(&out, &cx), None);
        let done = ClientEvent::Invite {
            invite: InviteView::new(Invite { state: InviteState::Accepted, ..inv }, "alice", 1),
        };
        assert_eq!(decide(&done, &cx), None);
    }

    #[test]
    fn showing_without_a_bus_does_not_crash() {
        // In CI there may be no session bus: show() must just log.
        show("t".into(), "b".into(), || {});
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
