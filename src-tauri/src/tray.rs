//! The tray icon and its menu. Menu item ids are [`TrayAction`], parsed once at the edge.

use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager};

pub const TRAY_ID: &str = "tether";

/// What a tray menu item does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrayAction {
    OpenWindow,
    Quit,
}

impl TrayAction {
    const ALL: [TrayAction; 2] = [TrayAction::OpenWindow, TrayAction::Quit];

    pub fn id(self) -> &'static str {
        match self {
            TrayAction::OpenWindow => "open-window",
            TrayAction::Quit => "quit",
        }
    }

    pub fn parse(id: &str) -> Option<TrayAction> {
        Self::ALL.into_iter().find(|a| a.id() == id)
    }
}

pub fn install(app: &AppHandle) -> tauri::Result<()> {
    let open = MenuItem::with_id(
        app,
        TrayAction::OpenWindow.id(),
        "Open Tether…",
        true,
        None::<&str>,
    )?;
    let quit = MenuItem::with_id(
        app,
        TrayAction::Quit.id(),
        "Quit Tether",
        true,
        None::<&str>,
    )?;
    let menu = Menu::with_items(app, &[&open, &PredefinedMenuItem::separator(app)?, &quit])?;
    let icon = Image::from_bytes(include_bytes!("../../icons/tray.png"))?;
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(icon)
        .tooltip("Tether")
        .menu(&menu)
        .on_menu_event(|app, event| match TrayAction::parse(event.id().as_ref()) {
            Some(TrayAction::OpenWindow) => show_main_window(app),
            Some(TrayAction::Quit) => app.exit(0),
            None => {}
        })
        .build(app)?;
    Ok(())
}

fn show_main_window(app: &AppHandle) {
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.show();
        let _ = w.unminimize();
        let _ = w.set_focus();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_round_trips_through_its_menu_id() {
        for a in TrayAction::ALL {
            assert_eq!(TrayAction::parse(a.id()), Some(a));
        }
        assert_eq!(TrayAction::parse("nope"), None);
    }
}
