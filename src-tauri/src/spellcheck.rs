//! Spell checking in the webview. The composer asks for it
//! (`spellcheck="true"` with the UI language as `lang`); WebView2 and
//! WKWebView honour that on their own, but WebKitGTK checks nothing until
//! its web context enables it with a list of languages (dictionaries come
//! from Enchant: hunspell packages such as `hunspell-en-us`; a language
//! without one is skipped).

/// The dictionaries to ask for: the user's locale (`LANG`-style, e.g.
/// `de_DE.UTF-8` → `de_DE`), then English.
pub fn languages(locale: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(l) = locale {
        let l = l.split(['.', '@']).next().unwrap_or("");
        if !l.is_empty() && l != "C" && l != "POSIX" {
            out.push(l.to_owned());
        }
    }
    if !out.iter().any(|l| l == "en_US") {
        out.push("en_US".into());
    }
    out
}

/// Turns spell checking on for the main window's webview (WebKitGTK only;
/// elsewhere the webview needs nothing).
pub fn enable(app: &tauri::AppHandle) {
    #[cfg(target_os = "linux")]
    {
        use tauri::Manager;
        use webkit2gtk::{WebContextExt, WebViewExt};
        let Some(window) = app.get_webview_window("main") else { return };
        let locale = ["LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
        let langs = languages(locale.as_deref());
        let r = window.with_webview(move |wv| {
            if let Some(cx) = wv.inner().context() {
                let refs: Vec<&str> = langs.iter().map(String::as_str).collect();
                cx.set_spell_checking_languages(&refs);
                cx.set_spell_checking_enabled(true);
            }
        });
        if let Err(e) = r {
            tracing::info!("no spell checking: {e}");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = app;
}

#[cfg(test)]
mod tests {
    use super::languages;

    #[test]
    fn the_locale_then_english() {
        assert_eq!(languages(Some("de_DE.UTF-8")), ["de_DE", "en_US"]);
        assert_eq!(languages(Some("en_US.UTF-8")), ["en_US"]);
        assert_eq!(languages(Some("sr_RS@latin")), ["sr_RS", "en_US"]);
        assert_eq!(languages(Some("C.UTF-8")), ["en_US"]);
        assert_eq!(languages(None), ["en_US"]);
    }
}
