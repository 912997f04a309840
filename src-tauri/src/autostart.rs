//! Start at login: the platform's own way (an XDG autostart entry on Linux, a launch agent on
//! macOS, the Run key on Windows), through tauri-plugin-autostart. The app then starts in the
//! tray (`--hidden`).

use tauri::AppHandle;
use tauri_plugin_autostart::ManagerExt;

use crate::view::IpcError;

pub fn plugin() -> tauri::plugin::TauriPlugin<tauri::Wry> {
    tauri_plugin_autostart::init(
        tauri_plugin_autostart::MacosLauncher::LaunchAgent,
        Some(vec!["--hidden"]),
    )
}

/// Makes the system start Tether at login, or not.
pub fn apply(app: &AppHandle, enabled: bool) -> Result<(), IpcError> {
    let launcher = app.autolaunch();
    let now = launcher.is_enabled().unwrap_or(false);
    let changed = match (enabled, now) {
        (true, false) => launcher.enable(),
        (false, true) => launcher.disable(),
        _ => Ok(()),
    };
    changed.map_err(|e| IpcError::other(format!("cannot change start at login: {e}")))
}
