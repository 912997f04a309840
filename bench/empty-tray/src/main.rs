//! The empty Tauri 2 tray app that scripts/bench-desktop.sh measures Tether's desktop app
//! against: one tray icon with a one-item menu ("Quit"), and no window.

use tauri::image::Image;
use tauri::menu::{Menu, MenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::RunEvent;

fn main() {
    let app = tauri::Builder::default()
        .setup(|app| {
            let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
            let menu = Menu::with_items(app, &[&quit])?;
            TrayIconBuilder::with_id("empty-tray")
                .icon(Image::from_bytes(include_bytes!(
                    "../../../icons/tray.png"
                ))?)
                .menu(&menu)
                .on_menu_event(|app, event| {
                    if event.id() == "quit" {
                        app.exit(0);
                    }
                })
                .build(app)?;
            Ok(())
        })
        .build(tauri::generate_context!());
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            eprintln!("empty-tray: {e}");
            std::process::exit(1);
        }
    };
    app.run(|_, event| {
        // A tray app with no window: only Quit exits.
        if let RunEvent::ExitRequested {
            api, code: None, ..
        } = event
        {
            api.prevent_exit();
        }
    });
}
