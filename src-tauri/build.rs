//! Declares the main window's IPC commands to Tauri, and embeds the commit the app is built
//! from for its window's footer, found as `tether --version` finds it (crates/cli/build.rs):
//! `TETHER_COMMIT` when set, else `git rev-parse --short HEAD`, else "unknown".

use std::path::PathBuf;
use std::process::Command;

/// The main window's IPC commands. Declared here so that Tauri checks every call against the
/// capabilities (`capabilities/`), whatever page makes it: only the main window is granted
/// them, and the sign-in window, which shows the platform's page, nothing. A command missing
/// here is refused to every page.
const COMMANDS: &[&str] = &[
    "account",
    "sign_in",
    "sign_out",
    "catalog",
    "connection_details",
    "open_terminal",
    "open_tunnels",
    "tunnels",
    "close_tunnel",
    "close_all_tunnels",
    "reopen_tunnels",
    "tunnel_export",
    "copy_text",
    "set_pinned",
    "settings",
    "save_settings",
    "use_token_store",
    "welcome",
    "welcome_step",
    "shell",
    "quit",
];

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (out.status.success() && !text.is_empty()).then(|| text.to_string())
}

/// Sets `TETHER_COMMIT` for the crate, and has cargo run this again when HEAD moves (HEAD, the
/// branch it names, the packed refs: only files that exist, or cargo reruns every time).
fn embed_commit() {
    println!("cargo:rerun-if-env-changed=TETHER_COMMIT");
    let commit = std::env::var("TETHER_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    let here = std::env::current_dir().unwrap_or_default();
    for path in watched
        .iter()
        .filter_map(|name| git(&["rev-parse", "--git-path", name]))
        .map(|p| here.join(PathBuf::from(p)))
        .filter(|p| p.is_file())
    {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    println!("cargo:rustc-env=TETHER_COMMIT={commit}");
}

fn main() {
    embed_commit();
    // The app's config lives at the repository root (design.md), not beside this crate.
    let attributes = tauri_build::Attributes::new()
        .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS));
    tauri_build::try_build(attributes.config_path("../tauri.conf.json")).unwrap_or_else(|e| {
        eprintln!("tauri-build failed: {e:#}");
        std::process::exit(1)
    });
}
