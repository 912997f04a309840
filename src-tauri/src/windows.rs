//! The main window, made when it is wanted and destroyed when it is closed (the app lives in
//! the tray; an idle app keeps no webview).

use tauri::{AppHandle, Emitter, Manager, WebviewUrl, WebviewWindowBuilder};

pub const MAIN: &str = "main";

/// Shows the main window (making it if it is not there), on `view` when one is given
/// (`environments`, `tunnels`, `settings`, `account`, `details:project/environment/app`).
pub fn show(app: &AppHandle, view: Option<&str>) {
    if let Some(w) = app.get_webview_window(MAIN) {
        let _ = w.show();
        let _ = w.unminimize();
        let _ = w.set_focus();
        if let Some(view) = view {
            let _ = app.emit_to(MAIN, "tether://navigate", view);
        }
        return;
    }
    let page = match view {
        Some(v) => format!("index.html#{v}"),
        None => "index.html".to_string(),
    };
    if let Err(e) = WebviewWindowBuilder::new(app, MAIN, WebviewUrl::App(page.into()))
        .title("Tether")
        .inner_size(440.0, 600.0)
        .min_inner_size(360.0, 420.0)
        .build()
    {
        tracing::error!(error = %e, "cannot open the window");
    }
}

/// After the last window is gone: WebKit keeps its network process (about 11 MB private,
/// 95 MB resident) for a next web view that an idle tray app may never open. Ends it (WebKit
/// starts a new one with the next window) and gives the app's freed heap back.
pub fn release_webkit(app: &AppHandle) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        // The window leaves the app's list after its Destroyed event.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        if !app.webview_windows().is_empty() {
            return;
        }
        #[cfg(target_os = "linux")]
        for pid in children_named(std::process::id(), "WebKitNetworkPr") {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
        }
        tether_core::memory::release_free_memory();
    });
}

/// The pids of this process's children whose name (as the kernel keeps it, 15 bytes) is `name`.
#[cfg(target_os = "linux")]
fn children_named(parent: u32, name: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let (comm, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
            let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == parent && comm == name).then_some(pid)
        })
        .collect()
}
