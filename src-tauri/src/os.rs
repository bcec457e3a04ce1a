//! Handing URLs and files to the OS.

use crate::error::CmdError;
use std::ffi::OsStr;

/// Only web and mail links leave the app (no `file:`, `javascript:`, …).
///
/// # Errors
/// `invalid` for any other scheme, or control characters/whitespace.
pub fn check_external_url(url: &str) -> Result<(), CmdError> {
    let lower = url.to_ascii_lowercase();
    let ok_scheme =
        ["http://", "https://", "mailto:"].iter().any(|p| lower.starts_with(p) && lower.len() > p.len());
    if !ok_scheme {
        return Err(CmdError::new("invalid", "only http, https and mailto links can be opened"));
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) || url.len() > 8192 {
        return Err(CmdError::new("invalid", "the link contains spaces or control characters"));
    }
    Ok(())
}

/// Opens a URL or file with the OS's default handler.
///
/// # Errors
/// When the opener cannot be started.
pub fn open(target: &OsStr) -> Result<(), CmdError> {
    #[cfg(target_os = "macos")]
    let mut cmd = std::process::Command::new("open");
    #[cfg(target_os = "windows")]
    let mut cmd = {
        let mut c = std::process::Command::new("rundll32");
        c.arg("url.dll,FileProtocolHandler");
        c
    };
    #[cfg(not(any(target_os = "macos", target_os = "windows")))]
    let mut cmd = std::process::Command::new("xdg-open");
    cmd.arg(target)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().map_err(|e| CmdError::new("open_failed", format!("cannot open: {e}")))?;
    // Reap it in the background so it leaves no zombie.
    std::thread::spawn(move || child.wait());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_urls() {
        for ok in ["https://example.com/a?b=c", "http://x", "mailto:a@b.c", "HTTPS://EXAMPLE.COM"] {
            assert!(check_external_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "javascript:alert(1)",
            "file:///etc/passwd",
            "courier://chat/bob",
            "https://",
            "ftp://x",
            "",
            "https://a b",
            "https://a\nb",
            "data:text/html,hi",
            "/usr/bin/xterm",
        ] {
            assert_eq!(check_external_url(bad).unwrap_err().code, "invalid", "{bad}");
        }
    }
}
