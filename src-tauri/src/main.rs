//! Tether's desktop shell: a tray app whose windows observe tether-core. Thin by design: menu
//! ids are an enum, IPC commands are small adapters, and errors cross as `{code, message}`.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod commands;
mod host;
mod tray;

use tauri::{Manager, RunEvent};

fn main() {
    let app = tauri::Builder::default()
        .invoke_handler(tauri::generate_handler![commands::profiles])
        .setup(|app| {
            // The agent's socket is a Tokio listener: bind it on the app's runtime.
            let agent = tauri::async_runtime::block_on(async { host::start() })
                .map_err(|e| format!("cannot start the agent: {e}"))?;
            tray::install(app.handle(), std::sync::Arc::new(agent))?;
            Ok(())
        })
        .on_window_event(|window, event| {
            // Closing the window hides it: Tether lives in the tray.
            if let tauri::WindowEvent::CloseRequested { api, .. } = event {
                if window.label() == "main" {
                    api.prevent_close();
                    let _ = window.hide();
                }
            }
        })
        .build(tauri::generate_context!("../tauri.conf.json"));
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            eprintln!("tether: cannot start the desktop app: {e}");
            std::process::exit(1);
        }
    };
    app.run(|handle, event| {
        if let RunEvent::ExitRequested {
            api, code: None, ..
        } = event
        {
            // A tray app keeps running when its last window closes; only Quit exits.
            api.prevent_exit();
            let _ = handle.get_webview_window("main");
        }
    });
}
