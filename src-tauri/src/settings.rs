//! Types the shell owns (mirrored in `ui/src/types/app.ts`): the connect
//! configuration, the signed-in account, the persisted app settings, and
//! what the server offers.

use serde::{Deserialize, Serialize};

/// How to reach a server (the sign-in screen's choice).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum ConnectConfig {
    /// The server embedded in the app, on loopback. Its tokens are minted
    /// by the app from the secret all profiles of this OS user share.
    Embedded,
    /// Any server, with a bearer token (a JWT, or `dev:<user>`).
    Remote {
        /// `ws://…` or `wss://…`.
        url: String,
        /// The token.
        token: String,
    },
    /// A dev server: sign in as `user` with a `dev:` token.
    Dev {
        /// `ws://…`.
        url: String,
        /// The user id.
        user: String,
    },
}

/// The signed-in account (persisted as `account.json` in the profile dir,
/// without its token: see [`crate::credentials`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
pub struct Account {
    /// The user id.
    pub user: String,
    /// How it connects.
    pub server: ConnectConfig,
}

/// `light`, `dark` or follow the OS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, specta::Type, Default)]
#[serde(rename_all = "snake_case")]
pub enum ThemeChoice {
    /// Follow the OS.
    #[default]
    System,
    /// Light.
    Light,
    /// Dark.
    Dark,
}

/// The UI language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
pub enum Language {
    /// English.
    #[serde(rename = "en")]
    En,
    /// Simplified Chinese.
    #[serde(rename = "zh-CN")]
    ZhCn,
}

/// The skin tone of emoji that have tones (the picker, `:shortcode:`
/// completion and the quick reactions), as the Unicode modifiers name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, specta::Type, Default)]
#[serde(rename_all = "snake_case")]
pub enum SkinTone {
    /// No modifier: the default yellow.
    #[default]
    Default,
    /// U+1F3FB.
    Light,
    /// U+1F3FC.
    MediumLight,
    /// U+1F3FD.
    Medium,
    /// U+1F3FE.
    MediumDark,
    /// U+1F3FF.
    Dark,
}

/// App settings (persisted as `settings.json` in the profile dir).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(default)]
pub struct Settings {
    /// OS notifications on/off.
    pub notifications: bool,
    /// Do not disturb: no message notifications.
    pub do_not_disturb: bool,
    /// Conversation ids whose notifications are muted.
    pub muted: Vec<String>,
    /// Conversation ids pinned to the top of the list.
    pub pinned: Vec<String>,
    /// `None`: follow the OS language.
    pub language: Option<Language>,
    /// The theme.
    pub theme: ThemeChoice,
    /// Closing the window hides it to the tray.
    pub close_to_tray: bool,
    /// The emoji skin tone the user chose.
    pub emoji_skin_tone: SkinTone,
    /// Emoji the user picked lately, newest first, without skin tone (the
    /// UI shows them in [`Settings::emoji_skin_tone`] and keeps at most 24).
    pub recent_emoji: Vec<String>,
    /// The microphone, camera and speaker calls use (the system default
    /// when unset).
    pub call_devices: crate::calls::DeviceChoice,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            notifications: true,
            do_not_disturb: false,
            muted: Vec::new(),
            pinned: Vec::new(),
            language: None,
            theme: ThemeChoice::System,
            close_to_tray: true,
            emoji_skin_tone: SkinTone::Default,
            recent_emoji: Vec::new(),
            call_devices: crate::calls::DeviceChoice::default(),
        }
    }
}

/// The most recent emoji kept, and the longest one (bytes; the reaction
/// key's limit, which every emoji the picker offers fits).
pub const RECENT_EMOJI_MAX: usize = 24;
const EMOJI_MAX_BYTES: usize = 32;

impl Settings {
    /// The settings as stored: whatever the webview sends, the recent-emoji
    /// list stays a short list of short strings (no duplicates, newest first).
    #[must_use]
    pub fn bounded(mut self) -> Settings {
        let mut seen = std::collections::HashSet::new();
        self.recent_emoji.retain(|e| !e.is_empty() && e.len() <= EMOJI_MAX_BYTES && seen.insert(e.clone()));
        self.recent_emoji.truncate(RECENT_EMOJI_MAX);
        self.call_devices = self.call_devices.bounded();
        self
    }
}

/// What the server of the last `hello` offers (command `server_info`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
pub struct ServerInfo {
    /// Optional protocol features (`"v1.1"`: edits, recalls, reactions,
    /// pins, mentions, roles); empty before the first hello.
    pub features: Vec<String>,
    /// Seconds after a message's `ts` during which its sender may edit it;
    /// `null` when the server announced none.
    pub edit_window_s: Option<u64>,
    /// Seconds after a message's `ts` during which its sender may recall
    /// it; `null` when the server announced none.
    pub recall_window_s: Option<u64>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn recent_emoji_stay_a_short_list_of_short_strings() {
        let long = "x".repeat(33);
        let mut sent = vec!["👍".to_owned(), long, String::new(), "👍".to_owned(), "🎉".to_owned()];
        sent.extend((0..100).map(|i| format!("e{i}")));
        let kept = Settings { recent_emoji: sent, ..Settings::default() }.bounded().recent_emoji;
        assert_eq!(kept.len(), RECENT_EMOJI_MAX);
        assert_eq!(&kept[..3], ["👍", "🎉", "e0"]);
    }

    use super::*;
    use serde_json::json;

    #[test]
    fn wire_shapes_match_app_ts() {
        let s = serde_json::to_value(Settings::default()).unwrap();
        assert_eq!(
            s,
            json!({"notifications": true, "do_not_disturb": false, "muted": [], "pinned": [],
                   "language": null, "theme": "system", "close_to_tray": true,
                   "emoji_skin_tone": "default", "recent_emoji": [],
                   "call_devices": {"mic": null, "camera": null, "speaker": null}})
        );
        let c: ConnectConfig =
            serde_json::from_value(json!({"mode": "dev", "url": "ws://h", "user": "a"})).unwrap();
        assert_eq!(c, ConnectConfig::Dev { url: "ws://h".into(), user: "a".into() });
        assert_eq!(serde_json::to_value(ConnectConfig::Embedded).unwrap(), json!({"mode": "embedded"}));
        let l: Settings = serde_json::from_value(json!({"language": "zh-CN"})).unwrap();
        assert_eq!(l.language, Some(Language::ZhCn));
        assert!(l.close_to_tray, "missing fields take defaults");
    }

    #[test]
    fn emoji_preferences_default_for_old_files_and_round_trip() {
        // A settings.json written before the emoji fields existed.
        let old: Settings = serde_json::from_value(json!({
            "notifications": false, "do_not_disturb": false, "muted": [], "pinned": ["ch:lobby"],
            "language": "en", "theme": "dark", "close_to_tray": false
        }))
        .unwrap();
        assert_eq!(old.emoji_skin_tone, SkinTone::Default);
        assert!(old.recent_emoji.is_empty());
        assert_eq!(old.pinned, vec!["ch:lobby".to_string()], "the old fields still load");

        let chosen = Settings {
            emoji_skin_tone: SkinTone::MediumDark,
            recent_emoji: vec!["👍".into(), "🎉".into()],
            ..Settings::default()
        };
        let text = serde_json::to_string(&chosen).unwrap();
        assert!(text.contains(r#""emoji_skin_tone":"medium_dark""#), "{text}");
        let back: Settings = serde_json::from_str(&text).unwrap();
        assert_eq!(back, chosen);

        // Through the profile's settings.json, as the shell persists them.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.json");
        crate::profile::write_json(&path, &chosen).unwrap();
        assert_eq!(crate::profile::read_json::<Settings>(&path), Some(chosen));
    }
}
