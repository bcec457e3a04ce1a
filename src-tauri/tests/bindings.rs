//! The generated TypeScript bridge (style §12): `ui/src/generated/bindings.ts`
//! is what `courier_desktop::bindings::typescript()` renders from the Rust
//! types, commands and events, so a moved field, a changed type or a renamed
//! command argument shows up as a stale file here, and then as a type error
//! in the UI once regenerated.
//!
//! Regenerate: `npm run bindings` (runs the ignored `write_bindings`).

use courier_desktop::bindings::{REGENERATE, TS_PATH, typescript};
use courier_desktop::bridge::{DEEP_LINK_EVENT, EVENT_NAME, NOTICE_EVENT, SETTINGS_EVENT};
use std::path::PathBuf;

fn checked_in() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(TS_PATH)
}

#[test]
fn checked_in_bindings_match_the_rust_types() {
    let fresh = typescript().expect("render the bindings");
    let path = checked_in();
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current == fresh {
        return;
    }
    let first = current
        .lines()
        .zip(fresh.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| current.lines().count().min(fresh.lines().count()));
    let line = |s: &str| s.lines().nth(first).unwrap_or("<end of file>").to_owned();
    panic!(
        "{TS_PATH} is stale: the Rust side of the bridge changed.\n\
         First difference at line {}:\n  checked in: {}\n  generated:  {}\n\
         Regenerate it with `{REGENERATE}` and commit the result.",
        first + 1,
        line(&current),
        line(&fresh),
    );
}

/// Writes the bindings (`npm run bindings`).
#[test]
#[ignore = "writes ui/src/generated/bindings.ts: run by `npm run bindings`"]
fn write_bindings() {
    let path = checked_in();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, typescript().expect("render the bindings")).unwrap();
    println!("wrote {}", path.display());
}

/// What lives outside the bindings and names the bridge by string: the E2E
/// suite invokes these commands by their IPC names, and the event names are
/// the shell's constants.
#[test]
fn names_used_outside_the_bindings_are_in_them() {
    let ts = typescript().expect("render the bindings");
    for cmd in [
        "account",
        "conversations",
        "last_deep_link",
        "profiles",
        "recall_message",
        "settings_get",
        "settings_set",
    ] {
        assert!(
            ts.contains(&format!("(\"{cmd}\"")),
            "command {cmd} (tests/e2e/app.e2e.mjs) is not in the bindings"
        );
    }
    for event in [EVENT_NAME, DEEP_LINK_EVENT, NOTICE_EVENT, SETTINGS_EVENT] {
        assert!(ts.contains(&format!("(\"{event}\")")), "event {event} is not in the bindings");
    }
    assert_eq!(EVENT_NAME, "courier://event");
}
