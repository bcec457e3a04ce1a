//! Handing URLs and files to the OS.

use crate::error::CmdError;
use std::ffi::OsStr;

/// Header fields a `mailto:` link may carry (RFC 6068). Several mail
/// clients (Evolution, KMail, older Thunderbird) attach the local file an
/// `attach=` field names to the draft a link opens.
const MAIL_FIELDS: &[&str] = &["to", "cc", "bcc", "subject", "body"];

/// Only web and mail links leave the app (no `file:`, `javascript:`, …):
/// `http`/`https` with a host, `mailto` with an address and no field but
/// [`MAIL_FIELDS`]. Returns the URL as parsed, which is what is opened.
///
/// # Errors
/// `invalid` for any other scheme or field, control characters or whitespace.
pub fn check_external_url(link: &str) -> Result<url::Url, CmdError> {
    if link.chars().any(|c| c.is_control() || c.is_whitespace()) || link.len() > 8192 {
        return Err(CmdError::new("invalid", "the link contains spaces or control characters"));
    }
    let refused = || CmdError::new("invalid", "only http, https and mailto links can be opened");
    let url = url::Url::parse(link).map_err(|_| refused())?;
    match url.scheme() {
        "http" | "https" if url.host_str().is_some_and(|h| !h.is_empty()) => Ok(url),
        "mailto" if !url.path().is_empty() => {
            match url.query_pairs().find(|(k, _)| !MAIL_FIELDS.contains(&k.to_ascii_lowercase().as_str())) {
                Some((field, _)) => Err(CmdError::new(
                    "invalid",
                    format!("a mail link may not set \"{}\"", field.chars().take(40).collect::<String>()),
                )),
                None => Ok(url),
            }
        }
        _ => Err(refused()),
    }
}

/// Extensions the OS may run rather than show (Windows, macOS, Linux
/// desktops, and interpreters a double click may start).
const EXECUTABLE_EXTENSIONS: &[&str] = &[
    "exe",
    "com",
    "bat",
    "cmd",
    "scr",
    "pif",
    "msi",
    "msp",
    "msix",
    "appx",
    "cpl",
    "dll",
    "sys",
    "ps1",
    "psm1",
    "vbs",
    "vbe",
    "js",
    "jse",
    "wsf",
    "wsh",
    "hta",
    "lnk",
    "url",
    "reg",
    "inf",
    "jar",
    "jnlp",
    "sh",
    "bash",
    "zsh",
    "csh",
    "ksh",
    "command",
    "tool",
    "app",
    "pkg",
    "dmg",
    "mpkg",
    "scpt",
    "workflow",
    "desktop",
    "appimage",
    "run",
    "bin",
    "elf",
    "deb",
    "rpm",
    "snap",
    "flatpak",
    "py",
    "pyw",
    "pl",
    "rb",
    "php",
    "iso",
    "img",
    "vhd",
    "vhdx",
    "xll",
    "docm",
    "xlsm",
    "pptm",
    "library-ms",
    "settingcontent-ms",
    "application",
];

/// MIME types of programs and scripts.
const EXECUTABLE_MIME_HINTS: &[&str] = &[
    "application/x-msdownload",
    "application/x-msdos-program",
    "application/x-executable",
    "application/x-elf",
    "application/x-sharedlib",
    "application/x-sh",
    "application/x-shellscript",
    "text/x-shellscript",
    "application/x-bat",
    "application/x-msi",
    "application/java-archive",
    "application/x-java-archive",
    "application/vnd.microsoft.portable-executable",
    "application/x-apple-diskimage",
    "application/x-debian-package",
    "application/x-rpm",
    "application/x-python",
    "text/x-python",
    "application/javascript",
    "text/javascript",
    "application/hta",
    "application/x-ms-shortcut",
    "application/x-desktop",
];

/// Whether a downloaded file could run code when handed to the OS: by the
/// name a peer gave it, by its MIME type, or by its first bytes (a Windows
/// PE `MZ`, ELF, Mach-O, a `#!` script, a Java archive). Such files are
/// opened only after the user confirms.
pub fn is_executable(name: Option<&str>, mime: Option<&str>, head: &[u8]) -> bool {
    let ext_risky = name.is_some_and(|n| {
        // Trailing dots and spaces are dropped by Windows: `a.exe.` runs.
        let n = n.trim_end_matches(['.', ' ']).to_ascii_lowercase();
        n.rsplit_once('.').is_some_and(|(_, ext)| EXECUTABLE_EXTENSIONS.contains(&ext))
    });
    let mime_risky = mime.is_some_and(|m| {
        let m = m.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        EXECUTABLE_MIME_HINTS.contains(&m.as_str())
    });
    let magic: &[&[u8]] = &[
        b"MZ",
        b"\x7fELF",
        b"#!",
        b"\xfe\xed\xfa",
        b"\xcf\xfa\xed\xfe",
        b"\xce\xfa\xed\xfe",
        b"\xca\xfe\xba\xbe",
        b"[Desktop Entry]",
    ];
    let magic_risky = magic.iter().any(|m| head.starts_with(m));
    ext_risky || mime_risky || magic_risky
}

/// Whether a downloaded file may be handed to the OS: one that could run
/// code ([`is_executable`]) only when the user confirmed it (`confirmed`
/// exactly `true`; absent or `false` is a refusal).
///
/// # Errors
/// `confirm_required` for an unconfirmed program or script.
pub fn check_open(
    name: Option<&str>,
    mime: Option<&str>,
    head: &[u8],
    confirmed: Option<bool>,
) -> Result<(), CmdError> {
    if is_executable(name, mime, head) && confirmed != Some(true) {
        return Err(CmdError::new(
            "confirm_required",
            "this file can run programs on your computer; open it only if you trust the sender",
        ));
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
    fn programs_open_only_when_confirmed() {
        for (name, mime, head) in [
            (Some("invoice.pdf.exe"), None, &b""[..]),
            (Some("run.sh"), Some("text/plain"), b"echo"),
            (Some("photo.jpg"), Some("image/jpeg"), b"MZ\x90\x00"),
            (None, Some("application/x-msdownload"), b""),
            (Some("notes"), None, b"[Desktop Entry]\nExec=sh"),
        ] {
            for confirmed in [None, Some(false)] {
                let e = check_open(name, mime, head, confirmed).unwrap_err();
                assert_eq!(e.code, "confirm_required", "{name:?} {confirmed:?}");
            }
            assert!(check_open(name, mime, head, Some(true)).is_ok(), "{name:?} confirmed");
        }
        for confirmed in [None, Some(false), Some(true)] {
            assert!(check_open(Some("report.pdf"), Some("application/pdf"), b"%PDF-1.7", confirmed).is_ok());
            assert!(check_open(Some("cat.png"), Some("image/png"), b"\x89PNG\r\n", confirmed).is_ok());
        }
    }

    #[test]
    fn executables_are_recognised() {
        for name in [
            "setup.exe",
            "RUN.BAT",
            "a.exe.",
            "x.tar.sh",
            "app.AppImage",
            "pay.pdf.scr",
            "x.jar",
            "k.desktop",
        ] {
            assert!(is_executable(Some(name), None, b""), "{name}");
        }
        for name in ["report.pdf", "cat.png", "notes.txt", "archive.zip", "noext", "exe"] {
            assert!(!is_executable(Some(name), Some("application/pdf"), b"%PDF-1.7"), "{name}");
        }
        assert!(is_executable(Some("cat.png"), Some("application/x-msdownload"), b""));
        assert!(is_executable(Some("cat.png"), Some("Application/X-SH; charset=utf-8"), b""));
        assert!(is_executable(None, None, b"MZ\x90\x00"), "a PE file named like a picture");
        assert!(is_executable(Some("cute.jpg"), Some("image/jpeg"), b"\x7fELF\x02"));
        assert!(is_executable(Some("readme"), Some("text/plain"), b"#!/bin/sh\nrm -rf ~"));
        assert!(!is_executable(None, Some("image/png"), b"\x89PNG\r\n"));
    }

    #[test]
    fn mail_links_cannot_attach_local_files() {
        let ok = check_external_url("mailto:a@b.c?Subject=hi&body=x&cc=d@e.f").unwrap();
        assert_eq!(ok.as_str(), "mailto:a@b.c?Subject=hi&body=x&cc=d@e.f");
        for evil in [
            "mailto:a@b.c?attach=/home/me/.ssh/id_rsa",
            "mailto:a@b.c?subject=hi&ATTACHMENT=~/.ssh/id_rsa",
            "mailto:a@b.c?%61ttach=/etc/passwd",
            "mailto:a@b.c?body=x&x-attach=file:///etc/shadow",
        ] {
            let e = check_external_url(evil).unwrap_err();
            assert_eq!(e.code, "invalid", "{evil}");
            assert!(e.message.contains("may not set"), "{evil}: {}", e.message);
        }
    }

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
