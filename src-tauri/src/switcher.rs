//! The quick switcher: a small palette window, opened by a global shortcut (the settings'
//! `switcher_shortcut`, Ctrl+Alt+Space unless changed), by `tether-desktop --switcher` (a second
//! start forwards it to the running app) or by the main window's button. It lists the apps,
//! pinned and recent first; the page filters them as the user types, and each key runs the
//! tray's own action on the chosen app (Enter opens a terminal), so the switcher asks what the
//! tray asks (production) and reports failures the same way.
//!
//! Global shortcuts are X11 key grabs (tauri-plugin-global-shortcut): a desktop that gives
//! apps none (Wayland) is told in Settings, which points to `tether-desktop --switcher` for a
//! shortcut of the desktop's own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tauri::plugin::TauriPlugin;
use tauri::{AppHandle, Emitter, Manager, State, WebviewUrl, WebviewWindowBuilder, Wry};
use tauri_plugin_global_shortcut::{GlobalShortcutExt, Shortcut, ShortcutState};
use tether_core::guard::{environment_label, EnvironmentType};
use ts_rs::TS;

use crate::desktop::{app_key, Desktop};
use crate::tray::{AppAction, TrayAction};
use crate::view::{AppRef, IpcError};

/// The switcher window's label (its capability names it: `capabilities/switcher.json`).
pub const SWITCHER: &str = "switcher";
/// Tells an open switcher to start again (empty query, list reloaded).
pub const RESET: &str = "tether://switcher-reset";
/// The command-line flag that opens the switcher (in a running app, through a second start).
pub const FLAG: &str = "--switcher";

/// One app as the switcher lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct SwitcherItem {
    pub app: AppRef,
    /// The project's title.
    pub project: String,
    /// The environment as every label shows it: `main [PRODUCTION]` for production.
    pub environment: String,
    pub production: bool,
    pub pinned: bool,
    pub recent: bool,
}

/// What a key in the switcher does to the chosen app: the tray's item of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export)]
pub enum SwitcherAction {
    /// Enter: "Open terminal".
    Terminal,
    /// Ctrl+T: "Open tunnels".
    Tunnels,
    /// Ctrl+S: "SQL shell".
    SqlShell,
    /// Ctrl+C: "Copy SSH command".
    CopySsh,
}

impl SwitcherAction {
    fn tray(self) -> AppAction {
        match self {
            SwitcherAction::Terminal => AppAction::Terminal,
            SwitcherAction::Tunnels => AppAction::OpenTunnels,
            SwitcherAction::SqlShell => AppAction::SqlShell,
            SwitcherAction::CopySsh => AppAction::CopySsh,
        }
    }
}

/// The switcher's global shortcut as it stands, for Settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct ShortcutView {
    /// The shortcut the settings ask for; empty: none.
    pub shortcut: String,
    /// Whether it is registered, so that pressing it anywhere opens the switcher.
    pub registered: bool,
    /// Why it is not, in words that say what to do.
    pub problem: Option<String>,
    /// The desktop is a Wayland session: global shortcuts may not reach the app.
    pub wayland: bool,
}

/// The shortcut registered now, and what the last try to register one said.
#[derive(Default)]
pub struct Registration {
    state: Mutex<RegState>,
}

#[derive(Default)]
struct RegState {
    /// The settings' text and the shortcut registered for it.
    registered: Option<(String, Shortcut)>,
    /// The text last tried, and why it failed.
    failed: Option<(String, String)>,
}

/// The global-shortcut plugin: any registered shortcut (there is only the switcher's) opens
/// the switcher when pressed.
pub fn plugin() -> TauriPlugin<Wry> {
    tauri_plugin_global_shortcut::Builder::new()
        .with_handler(|app, _shortcut, event| {
            if event.state() == ShortcutState::Pressed {
                show(app);
            }
        })
        .build()
}

/// Whether this is a Wayland session (the app may still run through XWayland, where a key
/// grab only sees keys pressed in X windows).
pub fn wayland_session() -> bool {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    var("XDG_SESSION_TYPE").eq_ignore_ascii_case("wayland") || !var("WAYLAND_DISPLAY").is_empty()
}

/// Whether global shortcuts can be registered at all: they are X11 key grabs.
fn x11_available() -> bool {
    !std::env::var("DISPLAY").unwrap_or_default().is_empty()
        && std::env::var("GDK_BACKEND").map_or(true, |b| !b.starts_with("wayland"))
}

/// Why a shortcut could not be registered, in words that say what to do.
fn registration_problem(shortcut: &str, error: &str) -> String {
    if error.contains("already registered") {
        format!(
            "{shortcut} is held by another program: choose another shortcut here, or free it in that program."
        )
    } else {
        format!("{shortcut} cannot be used as a global shortcut ({error}): choose another, such as Ctrl+Alt+Space.")
    }
}

/// Registers the settings' shortcut, in place of the one registered before (none when it is
/// empty), unless it is the one registered already; says how it stands.
pub fn apply(app: &AppHandle, wanted: &str) -> ShortcutView {
    let wanted = wanted.trim().to_string();
    let wayland = wayland_session();
    let Some(registration) = app.try_state::<Registration>() else {
        return ShortcutView {
            shortcut: wanted,
            registered: false,
            problem: Some("the app has no global shortcuts".into()),
            wayland,
        };
    };
    let mut state = registration.state.lock().unwrap_or_else(|p| p.into_inner());
    let already = state.registered.as_ref().is_some_and(|(s, _)| *s == wanted);
    let retried = state.failed.as_ref().is_some_and(|(s, _)| *s == wanted);
    if !already && !retried {
        state.failed = None;
        if let Some((_, old)) = state.registered.take() {
            if let Err(e) = app.global_shortcut().unregister(old) {
                tracing::warn!(error = %e, "cannot unregister the old switcher shortcut");
            }
        }
        if !wanted.is_empty() {
            let result = if x11_available() {
                wanted
                    .parse::<Shortcut>()
                    .map_err(|e| e.to_string())
                    .and_then(|shortcut| {
                        app.global_shortcut()
                            .register(shortcut)
                            .map(|()| shortcut)
                            .map_err(|e| e.to_string())
                    })
            } else {
                Err("this desktop gives apps no global shortcuts".to_string())
            };
            match result {
                Ok(shortcut) => state.registered = Some((wanted.clone(), shortcut)),
                Err(e) => {
                    let problem = if x11_available() {
                        registration_problem(&wanted, &e)
                    } else {
                        format!(
                            "{wanted} cannot be registered: this desktop gives apps no global shortcuts (no X11 display)."
                        )
                    };
                    tracing::warn!(shortcut = %wanted, error = %e, "cannot register the switcher's shortcut");
                    state.failed = Some((wanted.clone(), problem));
                }
            }
        }
    }
    ShortcutView {
        registered: state.registered.as_ref().is_some_and(|(s, _)| *s == wanted),
        problem: state
            .failed
            .as_ref()
            .filter(|(s, _)| *s == wanted)
            .map(|(_, p)| p.clone()),
        shortcut: wanted,
        wayland,
    }
}

/// Shows the switcher (making it if it is not there), ready for a new search.
pub fn show(app: &AppHandle) {
    HAD_FOCUS.store(false, Ordering::SeqCst);
    if let Some(w) = app.get_webview_window(SWITCHER) {
        let _ = app.emit_to(SWITCHER, RESET, ());
        let _ = w.show();
        let _ = w.unminimize();
        let _ = w.set_focus();
        return;
    }
    let built = WebviewWindowBuilder::new(app, SWITCHER, WebviewUrl::App("index.html".into()))
        .title("Tether switcher")
        .inner_size(560.0, 380.0)
        .resizable(false)
        .maximizable(false)
        .minimizable(false)
        .skip_taskbar(true)
        .always_on_top(true)
        .center()
        .focused(true)
        .build();
    match built {
        Ok(w) => {
            let _ = w.set_focus();
        }
        Err(e) => tracing::error!(error = %e, "cannot open the switcher"),
    }
}

/// How long a lost focus must stay lost before the switcher closes: a flicker (the window
/// manager settling, a dialog of its own) is not the person turning to another window.
const BLUR_CLOSE: std::time::Duration = std::time::Duration::from_millis(200);

/// Whether the switcher shown now has had the focus.
static HAD_FOCUS: AtomicBool = AtomicBool::new(false);

/// The switcher's window gained or lost the focus: once it has had it, losing it for longer
/// than [`BLUR_CLOSE`] closes it (a desktop may open it without the focus; then it stays until
/// used or closed).
pub fn focus_changed(window: &tauri::Window, focused: bool) {
    if focused {
        HAD_FOCUS.store(true, Ordering::SeqCst);
        return;
    }
    if !HAD_FOCUS.load(Ordering::SeqCst) {
        return;
    }
    let window = window.clone();
    tauri::async_runtime::spawn(async move {
        tokio::time::sleep(BLUR_CLOSE).await;
        if !window.is_focused().unwrap_or(true) && HAD_FOCUS.swap(false, Ordering::SeqCst) {
            let _ = window.close();
        }
    });
}

/// Every app, pinned first (in the order pinned), then recent (newest first), then the rest
/// in the catalog's order, each environment labelled as everywhere (production marked).
pub fn items(
    projects: &[crate::view::ProjectView],
    settings: &tether_core::settings::DesktopSettings,
) -> Vec<SwitcherItem> {
    let mut all = Vec::new();
    for p in projects {
        for e in &p.environments {
            for a in &e.apps {
                let key = a.app.project.clone() + "/" + &a.app.environment + "/" + &a.app.app;
                all.push((
                    key,
                    SwitcherItem {
                        app: a.app.clone(),
                        project: p.title.clone(),
                        environment: environment_label(&e.title, &e.kind),
                        production: EnvironmentType::from_api(&e.kind).is_production(),
                        pinned: false,
                        recent: false,
                    },
                ));
            }
        }
    }
    let rank = |key: &str| -> (usize, usize) {
        if let Some(i) = settings.pinned.iter().position(|p| p == key) {
            (0, i)
        } else if let Some(i) = settings.recent.iter().position(|r| r == key) {
            (1, i)
        } else {
            (2, 0)
        }
    };
    // A stable sort keeps the catalog's order within the rest.
    all.sort_by_key(|(key, _)| rank(key));
    all.into_iter()
        .map(|(key, mut item)| {
            let (group, _) = rank(&key);
            item.pinned = group == 0;
            item.recent = group == 1;
            item
        })
        .collect()
}

type Shared<'a> = State<'a, Arc<Desktop>>;

/// The apps the switcher lists (the catalog as last loaded, or loaded now).
#[tauri::command]
pub async fn switcher_items(desktop: Shared<'_>) -> Result<Vec<SwitcherItem>, IpcError> {
    let projects = desktop.catalog(false).await?;
    Ok(items(&projects, &desktop.settings()))
}

/// Runs a key's action on the chosen app: the switcher closes, and the tray's action runs
/// (its questions and its notifications included).
#[tauri::command]
pub async fn switcher_run(
    handle: AppHandle,
    desktop: Shared<'_>,
    app: AppRef,
    action: SwitcherAction,
) -> Result<(), IpcError> {
    let key = app_key(&app)?;
    close(&handle);
    crate::actions::run(
        &handle,
        desktop.inner().clone(),
        TrayAction::App(action.tray(), key),
    );
    Ok(())
}

/// Closes the switcher (Escape).
#[tauri::command]
pub async fn close_switcher(handle: AppHandle) -> Result<(), IpcError> {
    close(&handle);
    Ok(())
}

/// Opens the switcher (the main window's button).
#[tauri::command]
pub async fn open_switcher(handle: AppHandle) -> Result<(), IpcError> {
    let app = handle.clone();
    handle
        .run_on_main_thread(move || show(&app))
        .map_err(|e| IpcError::other(format!("cannot open the switcher: {e}")))
}

/// The switcher's shortcut as the settings now ask for it, registered again if it changed.
#[tauri::command]
pub async fn switcher_shortcut(
    handle: AppHandle,
    desktop: Shared<'_>,
) -> Result<ShortcutView, IpcError> {
    let wanted = desktop.settings().switcher_shortcut;
    Ok(apply(&handle, &wanted))
}

fn close(app: &AppHandle) {
    if let Some(w) = app.get_webview_window(SWITCHER) {
        let _ = w.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::{AppView, EnvironmentView, ProjectView};

    fn env(id: &str, kind: &str, apps: &[&str]) -> EnvironmentView {
        EnvironmentView {
            id: id.into(),
            title: id.into(),
            status: "active".into(),
            kind: kind.into(),
            apps: apps
                .iter()
                .map(|a| AppView {
                    app: AppRef {
                        project: "p1".into(),
                        environment: id.into(),
                        app: (*a).into(),
                    },
                    ssh_address: String::new(),
                    ssh_command: String::new(),
                    pinned: false,
                })
                .collect(),
        }
    }

    #[test]
    fn pinned_then_recent_then_the_rest_with_production_marked() {
        let projects = vec![ProjectView {
            id: "p1".into(),
            title: "Shop".into(),
            region: "eu".into(),
            environments: vec![
                env("main", "production", &["web", "admin"]),
                env("staging", "staging", &["web"]),
            ],
            problem: None,
        }];
        let settings = tether_core::settings::DesktopSettings {
            pinned: vec!["p1/staging/web".into()],
            recent: vec!["p1/main/admin".into(), "p1/staging/web".into()],
            ..Default::default()
        };
        let listed = items(&projects, &settings);
        let order: Vec<String> = listed
            .iter()
            .map(|i| format!("{}/{}", i.environment, i.app.app))
            .collect();
        assert_eq!(
            order,
            [
                "staging/web",
                "main [PRODUCTION]/admin",
                "main [PRODUCTION]/web"
            ]
        );
        assert!(listed[0].pinned && !listed[0].recent);
        assert!(listed[1].recent && listed[1].production);
        assert!(!listed[2].pinned && !listed[2].recent);
    }

    #[test]
    fn a_shortcut_held_elsewhere_says_so_and_what_to_do() {
        let p = registration_problem("Ctrl+Alt+Space", "HotKey already registered: HotKey { .. }");
        assert!(p.contains("held by another program"), "{p}");
        assert!(p.contains("choose another"), "{p}");
    }
}
