//! The release pipeline's shape, read from `.github/workflows/*.yml`: this
//! machine cannot run GitHub Actions, so this test is what stops a job, a
//! platform, a bundle or the tag trigger from disappearing unnoticed.
//!
//! - `release.yml`: on `v*` tags, a `build` matrix with Linux (.deb, .rpm,
//!   optional AppImage), Windows (NSIS, MSI) and macOS (universal .app and
//!   .dmg) entries through a pinned `tauri-apps/tauri-action`, drafting the
//!   release; it needs the `check` job, which calls `check.yml`;
//! - `check.yml`: on pull requests, `cargo check` of the workspace for
//!   Windows and both macOS targets on their runners;
//! - the Linux build installs every package of `scripts/setup.sh`'s app set;
//! - `tauri.conf.json` bundles for all three systems, with their icons.

use std::path::{Path, PathBuf};
use yaml_rust2::{Yaml, YamlLoader};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn load(rel: &str) -> Yaml {
    YamlLoader::load_from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}")).remove(0)
}

fn s(y: &Yaml) -> &str {
    y.as_str().unwrap_or("")
}

fn list(y: &Yaml) -> Vec<&Yaml> {
    y.as_vec().map(|v| v.iter().collect()).unwrap_or_default()
}

/// The packages of a bash array `NAME=( … )` in a script, comments dropped.
fn bash_array(script: &str, name: &str) -> Vec<String> {
    let start = script.find(&format!("{name}=(")).unwrap_or_else(|| panic!("{name} in the script"));
    let body = &script[start + name.len() + 2..];
    let body = &body[..body.find(')').expect("closing parenthesis")];
    body.lines()
        .map(|l| l.split('#').next().unwrap())
        .flat_map(str::split_whitespace)
        .map(str::to_owned)
        .collect()
}

/// Everything wrong with the release workflow, as sentences.
fn release_problems(release: &Yaml, setup_sh: &str) -> Vec<String> {
    let mut out = Vec::new();
    let tags = list(&release["on"]["push"]["tags"]);
    if !tags.iter().any(|t| s(t) == "v*") {
        out.push("release.yml: no `on.push.tags: [\"v*\"]` trigger".into());
    }
    let jobs = &release["jobs"];
    if !s(&jobs["check"]["uses"]).ends_with("workflows/check.yml") {
        out.push("release.yml: no `check` job calling check.yml".into());
    }
    let build = &jobs["build"];
    let needs = &build["needs"];
    if s(needs) != "check" && !list(needs).iter().any(|n| s(n) == "check") {
        out.push("release.yml: `build` does not wait for `check`".into());
    }
    let entries = list(&build["strategy"]["matrix"]["include"]);
    let entry = |name: &str| entries.iter().find(|e| s(&e["name"]) == name).copied();
    let expect: [(&str, &str, &[&str]); 3] = [
        ("linux", "ubuntu-", &["--bundles", "deb", "rpm"]),
        ("windows", "windows-", &["--bundles", "nsis", "msi"]),
        ("macos", "macos-", &["--target universal-apple-darwin", "--bundles", "app", "dmg"]),
    ];
    for (name, runner, args) in expect {
        let Some(e) = entry(name) else {
            out.push(format!("release.yml: no `{name}` build"));
            continue;
        };
        if !s(&e["os"]).starts_with(runner) {
            out.push(format!("release.yml: the {name} build runs on {:?}", s(&e["os"])));
        }
        for arg in args {
            if !s(&e["args"]).contains(arg) {
                out.push(format!("release.yml: the {name} build's args lack {arg:?}"));
            }
        }
    }
    if let Some(mac) = entry("macos") {
        for t in ["aarch64-apple-darwin", "x86_64-apple-darwin"] {
            if !s(&mac["rust-targets"]).contains(t) {
                out.push(format!("release.yml: the macOS build does not install {t}"));
            }
        }
    }

    let steps = list(&build["steps"]);
    let uses = |prefix: &str| steps.iter().find(|st| s(&st["uses"]).starts_with(prefix)).copied();
    let runs = |needle: &str| steps.iter().any(|st| s(&st["run"]).contains(needle));
    match uses("tauri-apps/tauri-action@") {
        None => out.push("release.yml: no tauri-apps/tauri-action step".into()),
        Some(st) => {
            let version = s(&st["uses"]).trim_start_matches("tauri-apps/tauri-action@");
            if !(version.starts_with('v') && version.matches('.').count() == 2) {
                out.push(format!("release.yml: tauri-action is not pinned to a version tag ({version})"));
            }
            let with = &st["with"];
            if with["releaseDraft"].as_bool() != Some(true) {
                out.push("release.yml: the release is not a draft".into());
            }
            if s(&with["tagName"]).is_empty() {
                out.push("release.yml: tauri-action has no tagName (no release is made)".into());
            }
            if !s(&with["args"]).contains("matrix.args") {
                out.push("release.yml: tauri-action ignores the matrix's args".into());
            }
        }
    }
    for (what, present) in [
        ("npm ci", runs("npm ci")),
        ("the UI build", runs("npm run ui:build")),
        ("Swatinem/rust-cache", uses("Swatinem/rust-cache@").is_some()),
        ("the AppImage option", runs("appimage")),
        (
            "TAURI_SIGNING_PRIVATE_KEY",
            steps.iter().any(|st| !st["env"]["TAURI_SIGNING_PRIVATE_KEY"].is_badvalue()),
        ),
    ] {
        if !present {
            out.push(format!("release.yml: no step for {what}"));
        }
    }
    let apt = steps.iter().map(|st| s(&st["run"])).find(|r| r.contains("apt-get install")).unwrap_or("");
    let apt_words: Vec<&str> = apt.split_whitespace().collect();
    for p in bash_array(setup_sh, "BUILD_PACKAGES") {
        if !apt_words.contains(&p.as_str()) {
            out.push(format!("release.yml: the Linux build lacks {p} (scripts/setup.sh BUILD_PACKAGES)"));
        }
    }
    out
}

/// Everything wrong with the compile check, as sentences.
fn check_problems(check: &Yaml) -> Vec<String> {
    let mut out = Vec::new();
    let on = &check["on"];
    for trigger in ["pull_request", "workflow_call"] {
        if on[trigger].is_badvalue() {
            out.push(format!("check.yml: not run on {trigger}"));
        }
    }
    let job = &check["jobs"]["check"];
    let entries = list(&job["strategy"]["matrix"]["include"]);
    for (runner, target) in [
        ("windows-", "x86_64-pc-windows-msvc"),
        ("macos-", "aarch64-apple-darwin"),
        ("macos-", "x86_64-apple-darwin"),
    ] {
        if !entries.iter().any(|e| s(&e["os"]).starts_with(runner) && s(&e["target"]) == target) {
            out.push(format!("check.yml: no {target} check on a {runner}* runner"));
        }
    }
    let cargo_check = list(&job["steps"])
        .into_iter()
        .map(|st| s(&st["run"]))
        .find(|r| r.contains("cargo check"))
        .unwrap_or("");
    for arg in ["--target ${{ matrix.target }}", "--all-targets", "-p courier-desktop", "-p courier-client"] {
        if !cargo_check.contains(arg) {
            out.push(format!("check.yml: `cargo check` lacks {arg}"));
        }
    }
    out
}

#[test]
fn the_release_workflow_builds_all_three_systems_on_tags() {
    let problems = release_problems(&load(".github/workflows/release.yml"), &read("scripts/setup.sh"));
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_check_workflow_compiles_for_windows_and_macos() {
    let problems = check_problems(&load(".github/workflows/check.yml"));
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The checks above can fail: a workflow missing a platform, its check job
/// or its tag trigger is reported.
#[test]
fn a_removed_job_or_trigger_is_reported() {
    let setup = read("scripts/setup.sh");
    let text = read(".github/workflows/release.yml");

    let mut release = YamlLoader::load_from_str(&text).unwrap().remove(0);
    let Yaml::Hash(jobs) = &mut release["jobs"] else { panic!("jobs") };
    jobs.remove(&Yaml::String("check".into()));
    assert!(release_problems(&release, &setup).iter().any(|p| p.contains("no `check` job")));

    let mut release = YamlLoader::load_from_str(&text).unwrap().remove(0);
    let Yaml::Array(entries) = &mut release["jobs"]["build"]["strategy"]["matrix"]["include"] else {
        panic!("matrix")
    };
    entries.retain(|e| s(&e["name"]) != "windows");
    assert_eq!(release_problems(&release, &setup), ["release.yml: no `windows` build"]);

    let untagged = text.replace("tags: [\"v*\"]", "branches: [release]");
    let release = YamlLoader::load_from_str(&untagged).unwrap().remove(0);
    assert!(release_problems(&release, &setup).iter().any(|p| p.contains("v*")));

    let release = YamlLoader::load_from_str(&text).unwrap().remove(0);
    let more = setup.replace("BUILD_PACKAGES=(", "BUILD_PACKAGES=(\n  libfoo-dev");
    assert!(release_problems(&release, &more).iter().any(|p| p.contains("libfoo-dev")));

    let check = read(".github/workflows/check.yml").replace("target: x86_64-pc-windows-msvc", "target: none");
    let check = YamlLoader::load_from_str(&check).unwrap().remove(0);
    assert!(check_problems(&check).iter().any(|p| p.contains("x86_64-pc-windows-msvc")));
}

#[test]
fn the_bundle_config_covers_every_system_with_its_icons() {
    let config: serde_json::Value = serde_json::from_str(&read("src-tauri/tauri.conf.json")).unwrap();
    let bundle = &config["bundle"];
    let targets: Vec<&str> =
        bundle["targets"].as_array().unwrap().iter().filter_map(|t| t.as_str()).collect();
    for t in ["deb", "rpm", "nsis", "msi", "app", "dmg"] {
        assert!(targets.contains(&t), "bundle.targets lacks {t}: {targets:?}");
    }
    let icons: Vec<&str> = bundle["icon"].as_array().unwrap().iter().filter_map(|t| t.as_str()).collect();
    for ext in [".png", ".ico", ".icns"] {
        assert!(icons.iter().any(|i| i.ends_with(ext)), "no {ext} icon in {icons:?}");
    }
    for icon in icons {
        let path = repo().join("src-tauri").join(icon);
        assert!(path.metadata().is_ok_and(|m| m.len() > 0), "{} is missing", path.display());
    }
}
