//! IPC commands: small adapters over tether-core. Errors, when a command can fail, cross as
//! `{code, message}`.

use tether_core::Profile;

/// The platforms Tether knows out of the box.
#[tauri::command]
pub fn profiles() -> Vec<Profile> {
    Profile::builtins()
}
