//! "Download a database dump…": a save dialog offering `db:dump`'s file name, the dump's
//! progress in the tray's tooltip (the window's button says it is under way), and a
//! notification when the file is there.

use std::path::PathBuf;
use std::sync::Arc;

use tauri::{AppHandle, Manager};
use tauri_plugin_dialog::DialogExt;
use tether_core::tunnel::AppKey;

use crate::desktop::Desktop;
use crate::view::{DumpView, IpcError};
use crate::workflow::size;

/// Shows `text` as the tray icon's tooltip (while a dump runs).
fn tooltip(app: &AppHandle, text: String) {
    let handle = app.clone();
    let _ = app.run_on_main_thread(move || {
        if let Some(tray) = handle.tray_by_id(crate::tray::TRAY_ID) {
            let _ = tray.set_tooltip(Some(text));
        }
    });
}

/// Where the save dialog starts: `~/Downloads` when there is one, else home.
fn start_dir(app: &AppHandle) -> Option<PathBuf> {
    let downloads = app.path().download_dir().ok().filter(|d| d.is_dir());
    downloads.or_else(|| app.path().home_dir().ok())
}

/// Asks where to save the dump, then dumps; `None` when the person cancelled the dialog.
pub async fn run(
    app: &AppHandle,
    desktop: &Arc<Desktop>,
    key: &AppKey,
    relationship: Option<&str>,
) -> Result<Option<DumpView>, IpcError> {
    let name = desktop.dump_file_name(key, relationship).await?;
    let mut dialog = app
        .dialog()
        .file()
        .set_title("Save the database dump")
        .set_file_name(&name)
        .add_filter("SQL dump", &["sql", "gz"]);
    if let Some(dir) = start_dir(app) {
        dialog = dialog.set_directory(dir);
    }
    let picked = tauri::async_runtime::spawn_blocking(move || dialog.blocking_save_file())
        .await
        .map_err(|e| IpcError::other(e.to_string()))?;
    let Some(path) = picked.and_then(|p| p.into_path().ok()) else {
        return Ok(None);
    };
    let what = format!("{} of {}", key.app, key.environment);
    tooltip(app, format!("Tether: dumping the database of {what}…"));
    let handle = app.clone();
    let told = what.clone();
    let result = desktop
        .dump(key, relationship, path.clone(), move |bytes| {
            tooltip(
                &handle,
                format!("Tether: dumping the database of {told}: {}", size(bytes)),
            )
        })
        .await;
    // The tooltip says the app's state again.
    desktop.refresh_wanted.notify_one();
    let bytes = result?;
    crate::notify::show((
        "Database dump saved".to_string(),
        format!("{} ({}, {what})", path.display(), size(bytes)),
    ));
    Ok(Some(DumpView {
        path: path.display().to_string(),
        bytes,
    }))
}
