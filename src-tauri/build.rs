use std::path::Path;

fn main() {
    // `tauri::generate_context!` embeds ../ui/dist and fails to compile when
    // it is missing (a fresh clone running `cargo test --workspace` before
    // the UI is built). Put a placeholder page there instead; `npm run
    // ui:build` (and `tauri build`'s beforeBuildCommand) replaces it.
    let dist = Path::new("../ui/dist");
    if !dist.join("index.html").exists() {
        let page = "<!doctype html><meta charset=utf-8><title>Courier</title>\
                    <p style=\"font:16px sans-serif;padding:2em\">The Courier UI is not built: run \
                    <code>npm run ui:build</code>, then rebuild the app.</p>";
        if std::fs::create_dir_all(dist).and_then(|()| std::fs::write(dist.join("index.html"), page)).is_ok()
        {
            println!(
                "cargo:warning=ui/dist was missing: embedded a placeholder page (run `npm run ui:build`)"
            );
        }
    }
    println!("cargo:rerun-if-changed=../ui/dist/index.html");
    tauri_build::build()
}
