//! The checks `tether doctor` runs (core's [`tether_core::doctor`]), for the window's
//! Settings: each check's status, what it means and what fixes it, the same report the command
//! prints (`--format json` gives exactly this shape).

use std::sync::Arc;

use tauri::State;
use tether_core::doctor::Report;

use crate::desktop::Desktop;
use crate::view::IpcError;

/// Runs every check for the app's profile (about half a second: it runs `ssh -V` and `ssh -G`,
/// asks the keyring, reads the platform's clock and binds the tunnel ports). Never fails: a
/// check that cannot run says so in its status.
#[tauri::command]
pub async fn doctor(desktop: State<'_, Arc<Desktop>>) -> Result<Report, IpcError> {
    let version = format!("{} ({})", crate::shell::VERSION, crate::shell::COMMIT);
    Ok(tether_core::doctor::run(&desktop.access, &version).await)
}

#[cfg(test)]
mod tests {
    /// The report's TypeScript twins, for the window (ts-rs writes them with the app's own).
    #[test]
    fn the_report_types_are_exported_for_the_window() {
        use ts_rs::TS;
        tether_core::doctor::Report::export_all().expect("export the doctor report's types");
    }
}
