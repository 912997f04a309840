//! What the window knows of the app around it: which build it is (version and commit, shown
//! in its footer), and whether a tray hosts the app (see [`crate::tray_host`]). Without a tray
//! the window is the app's only surface, so it also offers what the tray would: quitting.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tauri::{AppHandle, State};
use ts_rs::TS;

use crate::tray_host::TrayHost;

/// The event that tells the window to read the app's state again.
pub const CHANGED: &str = "tether://changed";

/// The app's version, from the workspace's.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit the app was built from (`build.rs`: `TETHER_COMMIT`, else git, else "unknown").
pub const COMMIT: &str = env!("TETHER_COMMIT");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct ShellView {
    pub version: String,
    pub commit: String,
    /// Whether a tray host (a StatusNotifierWatcher) shows the app's tray icon. When not, the
    /// window says why and how to get one, and closing it only hides it.
    pub tray_host: bool,
}

#[tauri::command]
pub async fn shell(host: State<'_, Arc<TrayHost>>) -> Result<ShellView, crate::view::IpcError> {
    Ok(ShellView {
        version: VERSION.to_string(),
        commit: COMMIT.to_string(),
        tray_host: host.present(),
    })
}

/// Ends the app, as the tray's Quit does.
#[tauri::command]
pub async fn quit(app: AppHandle) -> Result<(), crate::view::IpcError> {
    tracing::info!("quit from the window");
    app.exit(0);
    Ok(())
}
