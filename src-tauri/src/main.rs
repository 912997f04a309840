//! Tether's desktop shell: a tray app whose windows observe tether-core. Thin by design: menu
//! ids are an enum, IPC commands are small adapters, and errors cross as `{code, message}`.
//! `--hidden` starts it in the tray without a window (start at login does); where the desktop
//! shows no tray icons, the window opens all the same (see [`tray_host`]).

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod actions;
mod autostart;
mod clipboard;
mod commands;
mod desktop;
mod doctor;
mod dump;
mod guards;
mod navigation;
mod notify;
mod shell;
mod signin;
mod switcher;
mod tray;
mod tray_host;
mod view;
mod welcome;
mod windows;
mod workflow;

use std::sync::Arc;

use tauri::{Manager, RunEvent};

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TETHER_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let hidden = std::env::args().any(|a| a == "--hidden");
    let open_switcher = std::env::args().any(|a| a == switcher::FLAG);
    let app = tauri::Builder::default()
        // First: a second launch only brings the first one's window forward.
        .plugin(tauri_plugin_single_instance::init(|app, args, _cwd| {
            // `tether-desktop --switcher` (a desktop's own keyboard shortcut) opens the switcher.
            if args.iter().any(|a| a == switcher::FLAG) {
                switcher::show(app);
            } else {
                windows::show(app, None);
            }
        }))
        .plugin(tauri_plugin_clipboard_manager::init())
        .plugin(tauri_plugin_dialog::init())
        .plugin(autostart::plugin())
        .plugin(switcher::plugin())
        .invoke_handler(tauri::generate_handler![
            commands::account,
            commands::sign_in,
            commands::sign_out,
            commands::catalog,
            commands::connection_details,
            commands::open_terminal,
            commands::open_tunnels,
            commands::sql_shell,
            commands::show_logs,
            commands::open_site,
            commands::database_clients,
            commands::open_in,
            commands::copy_as,
            commands::dump_database,
            commands::tunnels,
            commands::close_tunnel,
            commands::close_all_tunnels,
            commands::reopen_tunnels,
            commands::tunnel_export,
            commands::copy_text,
            commands::set_pinned,
            commands::settings,
            commands::save_settings,
            commands::use_token_store,
            commands::welcome,
            commands::welcome_step,
            shell::shell,
            shell::quit,
            switcher::switcher_items,
            switcher::switcher_run,
            switcher::close_switcher,
            switcher::open_switcher,
            switcher::switcher_shortcut,
            doctor::doctor,
            guards::production_projects_view,
        ])
        .setup(move |app| {
            // The agent's socket is a Tokio listener: bind it on the app's runtime.
            let desktop = tauri::async_runtime::block_on(async { desktop::start() })
                .map_err(|e| format!("cannot start the agent: {e}"))?;
            let desktop = Arc::new(desktop);
            // Off the start-up path: the session's store may be a keyring over D-Bus.
            let wiring = desktop.clone();
            tauri::async_runtime::spawn(async move {
                if wiring.access.session().uses_env_token()
                    || wiring.access.session().has_session().await.unwrap_or(false)
                {
                    wiring.wire_ssh_config().await;
                }
            });
            app.manage(desktop.clone());
            app.manage(clipboard::Clipboard::from_env());
            app.manage(switcher::Registration::default());
            notify::init(app.handle());
            switcher::apply(app.handle(), &desktop.settings().switcher_shortcut);
            tray::follow(app.handle(), desktop.clone());
            // The tray icon once a tray host is there; the window at once when there is none.
            tray_host::watch(app.handle(), desktop);
            if open_switcher {
                switcher::show(app.handle());
            } else if !hidden {
                windows::show(app.handle(), None);
            }
            Ok(())
        })
        .on_window_event(|window, event| match event {
            // With no tray, the window is the way back to the app: closing only hides it.
            tauri::WindowEvent::CloseRequested { api, .. }
                if window.label() == windows::MAIN
                    && tray_host::hides_on_close(window.app_handle()) =>
            {
                api.prevent_close();
                let _ = window.hide();
            }
            tauri::WindowEvent::Destroyed => windows::release_webkit(window.app_handle()),
            // The switcher goes away when another window takes the focus, as palettes do.
            tauri::WindowEvent::Focused(focused) if window.label() == switcher::SWITCHER => {
                switcher::focus_changed(window, *focused)
            }
            _ => {}
        })
        .build(tauri::generate_context!("../tauri.conf.json"));
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            eprintln!("tether: cannot start the desktop app: {e}");
            std::process::exit(1);
        }
    };
    app.run(|_handle, event| {
        if let RunEvent::ExitRequested {
            api, code: None, ..
        } = event
        {
            // A tray app keeps running when its last window closes; only Quit exits.
            api.prevent_exit();
        }
    });
}
