//! The tray icon and its menu, rebuilt from the agent's state after each of its events. Menu
//! item ids are [`TrayAction`], parsed once at the edge; the lines that only inform have ids
//! no action parses.

use std::sync::Arc;

use tauri::image::Image;
use tauri::menu::{IsMenuItem, Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, Wry};
use tether_core::agent::{SessionState, Status};
use tether_core::tunnel::TunnelInfo;

use crate::host::Agent;

pub const TRAY_ID: &str = "tether";

/// What a tray menu item does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrayAction {
    OpenWindow,
    CloseAllTunnels,
    Quit,
}

impl TrayAction {
    const ALL: [TrayAction; 3] = [
        TrayAction::OpenWindow,
        TrayAction::CloseAllTunnels,
        TrayAction::Quit,
    ];

    pub fn id(self) -> &'static str {
        match self {
            TrayAction::OpenWindow => "open-window",
            TrayAction::CloseAllTunnels => "close-all-tunnels",
            TrayAction::Quit => "quit",
        }
    }

    pub fn parse(id: &str) -> Option<TrayAction> {
        Self::ALL.into_iter().find(|a| a.id() == id)
    }
}

/// "HH:MM UTC" of a Unix time.
fn clock(unix: u64) -> String {
    let day = unix % 86_400;
    format!("{:02}:{:02} UTC", day / 3600, day % 3600 / 60)
}

/// The menu's lines: (id, label, enabled); a `None` label is a separator.
pub fn lines(
    profile: &str,
    hosted: bool,
    state: Option<&(Status, Vec<TunnelInfo>)>,
) -> Vec<(String, Option<String>, bool)> {
    let info = |id: &str, label: String| (id.to_string(), Some(label), false);
    let action = |a: TrayAction, label: &str, enabled: bool| {
        (a.id().to_string(), Some(label.to_string()), enabled)
    };
    let separator = |n: usize| (format!("separator-{n}"), None, false);
    let mut out = Vec::new();
    match state {
        None => out.push(info("info-agent", format!("{profile}: starting…"))),
        Some((status, tunnels)) => {
            let session = match status.session {
                SessionState::Active => format!("Signed in to {profile}"),
                SessionState::NeedsSignIn => format!("{profile}: sign in again"),
                SessionState::SignedOut => format!("Not signed in to {profile}"),
            };
            out.push(info("info-session", session));
            if !hosted {
                out.push(info(
                    "info-agent",
                    format!(
                        "Using the tether agent already running (pid {})",
                        status.pid
                    ),
                ));
            }
            if let Some(cert) = &status.certificate {
                out.push(info(
                    "info-certificate",
                    format!("Certificate valid until {}", clock(cert.valid_before)),
                ));
            }
            out.push(separator(1));
            if tunnels.is_empty() {
                out.push(info("info-no-tunnels", "No tunnels open".into()));
            } else {
                for t in tunnels {
                    out.push(info(
                        &format!("info-tunnel-{}", t.id),
                        format!(
                            "{} of {} — {} ({})",
                            t.endpoint_id(),
                            t.app,
                            t.local,
                            t.state
                        ),
                    ));
                }
                out.push(action(
                    TrayAction::CloseAllTunnels,
                    "Close all tunnels",
                    true,
                ));
            }
        }
    }
    out.push(separator(2));
    out.push(action(TrayAction::OpenWindow, "Open Tether…", true));
    out.push(action(TrayAction::Quit, "Quit Tether", true));
    out
}

fn build_menu(
    app: &AppHandle,
    lines: &[(String, Option<String>, bool)],
) -> tauri::Result<Menu<Wry>> {
    let mut items: Vec<Box<dyn IsMenuItem<Wry>>> = Vec::new();
    for (id, label, enabled) in lines {
        match label {
            Some(label) => items.push(Box::new(MenuItem::with_id(
                app,
                id.as_str(),
                label,
                *enabled,
                None::<&str>,
            )?)),
            None => items.push(Box::new(PredefinedMenuItem::separator(app)?)),
        }
    }
    let refs: Vec<&dyn IsMenuItem<Wry>> = items.iter().map(|i| i.as_ref()).collect();
    Menu::with_items(app, &refs)
}

pub fn install(app: &AppHandle, agent: Arc<Agent>) -> tauri::Result<()> {
    let menu = build_menu(app, &lines(&agent.profile_title, agent.hosted, None))?;
    let icon = Image::from_bytes(include_bytes!("../../icons/tray.png"))?;
    let on_menu = agent.clone();
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(icon)
        .tooltip("Tether")
        .menu(&menu)
        .on_menu_event(
            move |app, event| match TrayAction::parse(event.id().as_ref()) {
                Some(TrayAction::OpenWindow) => show_main_window(app),
                Some(TrayAction::CloseAllTunnels) => {
                    let agent = on_menu.clone();
                    tauri::async_runtime::spawn(async move { agent.close_all_tunnels().await });
                }
                Some(TrayAction::Quit) => app.exit(0),
                None => {}
            },
        )
        .build(app)?;
    // Rebuilt from the agent's state after each of its events.
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        let following = agent.clone();
        tauri::async_runtime::spawn(async move {
            following
                .follow(move || {
                    let _ = tx.try_send(());
                })
                .await
        });
        while rx.recv().await.is_some() {
            let state = agent.snapshot().await;
            let lines = lines(&agent.profile_title, agent.hosted, state.as_ref());
            let handle = app.clone();
            let _ = app.run_on_main_thread(move || {
                if let (Some(tray), Ok(menu)) =
                    (handle.tray_by_id(TRAY_ID), build_menu(&handle, &lines))
                {
                    let _ = tray.set_menu(Some(menu));
                }
            });
        }
    });
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
        assert_eq!(TrayAction::parse("info-session"), None);
    }

    #[test]
    fn clock_reads_hours_and_minutes_in_utc() {
        assert_eq!(clock(0), "00:00 UTC");
        assert_eq!(clock(86_400 + 13 * 3600 + 5 * 60 + 59), "13:05 UTC");
    }

    #[test]
    fn a_menu_before_the_agent_answers_still_opens_and_quits() {
        let l = lines("Platform.sh", true, None);
        let labels: Vec<_> = l.iter().filter_map(|(_, l, _)| l.clone()).collect();
        assert_eq!(
            labels,
            ["Platform.sh: starting…", "Open Tether…", "Quit Tether"]
        );
    }
}
