//! Every call test runs in a network namespace of its own, so ICE finds
//! real (veth) addresses while no packet can leave the machine.
//!
//! The test re-runs itself (this test binary, this one test) under
//! `unshare -n`; inside, it brings `lo` up and adds a veth pair with an
//! address on each end (libnice ignores loopback interfaces, and sends
//! nothing to a TURN server on one either; coturn listens on a veth end). Failing
//! to create the namespace fails the test with the reason: `npm test` runs
//! as root, and nothing is skipped.

use std::future::Future;
use std::process::Command;
use std::sync::Mutex;

/// Set (to the test's name) in the re-run inside the namespace.
const INNER: &str = "COURIER_CALLS_NETNS";
/// A file the inner run writes when its test body finished, so a filter
/// that matched no test cannot pass for a success.
const DONE_FILE: &str = "COURIER_CALLS_NETNS_DONE";

/// The veth ends' addresses (peers gather host candidates on both).
pub const VETH: [&str; 2] = ["10.77.0.1", "10.77.0.2"];
/// coturn's listening and relay address. A relay-only call never uses
/// host candidates, so sharing the address with one is harmless.
pub const TURN_IP: &str = VETH[0];

/// Calls share two cores; one namespace (one call test) at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `body` on a tokio runtime inside a fresh network namespace. `name`
/// must be the test function's name.
pub fn isolated<F, Fut>(name: &str, body: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    if std::env::var(INNER).as_deref() == Ok(name) {
        set_up_links();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(body());
        let done = std::env::var(DONE_FILE).expect("the outer run names a done file");
        std::fs::write(done, "ok").unwrap();
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let probe = Command::new("unshare").args(["-n", "true"]).output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "{name}: cannot create a network namespace: `unshare -n` failed ({}): {}\
             the call tests need root (npm test runs as root)",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("{name}: cannot create a network namespace: no `unshare` (util-linux): {e}"),
    }
    let dir = tempfile::tempdir().unwrap();
    let done = dir.path().join("done");
    let status = Command::new("unshare")
        .arg("-n")
        .arg(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(INNER, name)
        .env(DONE_FILE, &done)
        .status()
        .expect("running the test inside its namespace");
    assert!(status.success(), "{name} failed inside its network namespace ({status}); its output is above");
    assert!(
        done.exists(),
        "{name}: the run inside the namespace did not run the test (is `name` the fn's name?)"
    );
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap_or_else(|e| panic!("no `ip` (iproute2): {e}"));
    assert!(
        out.status.success(),
        "`ip {}` failed in the test's network namespace: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn set_up_links() {
    ip(&["link", "set", "lo", "up"]);
    ip(&["link", "add", "cv0", "type", "veth", "peer", "name", "cv1"]);
    ip(&["addr", "add", &format!("{}/24", VETH[0]), "dev", "cv0"]);
    ip(&["addr", "add", &format!("{}/24", VETH[1]), "dev", "cv1"]);
    ip(&["link", "set", "cv0", "up"]);
    ip(&["link", "set", "cv1", "up"]);
}
