//! Declares the main window's IPC commands to Tauri, and embeds the commit the app is built
//! from for its window's footer, as `tether --version` does (`build-support/commit.rs`).

include!("../build-support/commit.rs");

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
    "sql_shell",
    "show_logs",
    "open_site",
    "database_clients",
    "open_in",
    "copy_as",
    "dump_database",
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
    "switcher_items",
    "switcher_run",
    "close_switcher",
    "open_switcher",
    "switcher_shortcut",
    "doctor",
    "production_projects_view",
];

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
