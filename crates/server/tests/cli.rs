//! The binary's own promises: `courier-server secret` prints a fresh
//! 256-bit secret, and unsafe starts are refused with a message that says
//! why and what to do.

use std::process::Command;

fn server() -> Command {
    Command::new(env!("CARGO_BIN_EXE_courier-server"))
}

#[test]
fn secret_prints_a_fresh_256_bit_secret() {
    let run = || {
        let out = server().arg("secret").output().expect("courier-server runs");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let (a, b) = (run(), run());
    assert_eq!(a.len(), 64, "{a}");
    assert!(a.bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
    assert_ne!(a, b, "two runs, two secrets");
}

#[test]
fn unsafe_starts_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let long = "k".repeat(32);
    let cases: [(&[&str], &str); 3] = [
        (&["--listen", "0.0.0.0:0", "--dev-auth", "--auth-secret", &long], "--dev-auth"),
        (&["--listen", "127.0.0.1:0", "--auth-secret", "change-me"], "courier-server secret"),
        (&["--listen", "127.0.0.1:0", "--admin-secret", "short"], "admin secret"),
    ];
    for (args, says) in cases {
        let out = server()
            .args(args)
            .args(["--data", data])
            .env_remove("COURIER_AUTH_SECRET")
            .env_remove("COURIER_ADMIN_SECRET")
            .output()
            .expect("courier-server runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started");
        assert!(err.contains(says), "{args:?}: the refusal should say {says:?}:\n{err}");
    }
}
