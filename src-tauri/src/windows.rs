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
