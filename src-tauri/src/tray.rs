//! The tray icon and its menu, rebuilt from the agent's state after each of its events. The
//! menu is first built as plain [`Line`]s (tested without a desktop), then as Tauri menus.
//! Item ids are [`TrayAction`]s, parsed once at the edge; the lines that only inform have ids
//! no action parses.

use std::sync::Arc;

use tauri::image::Image;
use tauri::menu::{IsMenuItem, Menu, MenuItem, PredefinedMenuItem, Submenu};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Emitter, Manager, Wry};
use tether_core::clients::Client;
use tether_core::guard::{self, EnvironmentType};
use tether_core::settings::DesktopSettings;
use tether_core::tunnel::AppKey;

use crate::desktop::{app_key, Desktop, Snapshot};
use crate::view::{AppView, CopyForm, ProjectView, SessionView, TunnelStateView, TunnelView};

pub const TRAY_ID: &str = "tether";
/// Beyond this many projects the tray lists only pinned and recent apps, and Browse… opens the
/// window's search.
const MAX_PROJECTS: usize = 8;
/// Beyond this many running environments in a project, its submenu says Browse… instead.
const MAX_ENVIRONMENTS: usize = 12;

/// What one of an app's items does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppAction {
    Terminal,
    SqlShell,
    Logs,
    OpenSite,
    OpenTunnels,
    OpenIn(Client),
    CopyAs(CopyForm),
    Dump,
    CopySsh,
    CopyAddress,
    Details,
}

/// The app's plain items: action, id, label, in menu order ("Open in…" and "Copy as…" are
/// submenus after "Open tunnels").
const APP_ACTIONS: [(AppAction, &str, &str); 9] = [
    (AppAction::Terminal, "terminal", "Open terminal"),
    (AppAction::SqlShell, "sql-shell", "SQL shell"),
    (AppAction::Logs, "logs", "Logs"),
    (AppAction::OpenSite, "open-site", "Open site"),
    (AppAction::OpenTunnels, "tunnels", "Open tunnels"),
    (AppAction::Dump, "dump", "Download a database dump…"),
    (AppAction::CopySsh, "copy-ssh", "Copy SSH command"),
    (AppAction::CopyAddress, "copy-address", "Copy user@host"),
    (AppAction::Details, "details", "Connection details…"),
];

/// "Copy as…"'s items.
pub const COPY_FORMS: [(CopyForm, &str, &str); 4] = [
    (CopyForm::Url, "url", "URL"),
    (
        CopyForm::Command,
        "command",
        "Command line (psql, mysql, redis-cli)",
    ),
    (CopyForm::Jdbc, "jdbc", "JDBC URL"),
    (CopyForm::Env, "env", "Environment variables"),
];

impl AppAction {
    fn name(self) -> String {
        match self {
            AppAction::OpenIn(c) => format!("open-in:{}", c.id()),
            AppAction::CopyAs(form) => format!(
                "copy-as:{}",
                COPY_FORMS
                    .iter()
                    .find(|(f, ..)| *f == form)
                    .map_or("", |(_, n, _)| n)
            ),
            plain => APP_ACTIONS
                .iter()
                .find(|(a, ..)| *a == plain)
                .map(|(_, n, _)| n.to_string())
                .unwrap_or_default(),
        }
    }

    fn parse(name: &str) -> Option<AppAction> {
        if let Some(client) = name.strip_prefix("open-in:") {
            return Client::parse(client).map(AppAction::OpenIn);
        }
        if let Some(form) = name.strip_prefix("copy-as:") {
            return COPY_FORMS
                .iter()
                .find(|(_, n, _)| *n == form)
                .map(|(f, ..)| AppAction::CopyAs(*f));
        }
        APP_ACTIONS
            .iter()
            .find(|(_, n, _)| *n == name)
            .map(|(a, ..)| *a)
    }
}

/// What one of a tunnel's items does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelAction {
    CopyAddress,
    CopyUrl,
    CopyExport,
    Close,
}

/// What a tray menu item does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrayAction {
    OpenWindow,
    Settings,
    Browse,
    SignIn,
    SignInMfa,
    SignOut,
    ReopenTunnels,
    CloseAllTunnels,
    Quit,
    App(AppAction, AppKey),
    Tunnel(TunnelAction, u32),
}

const TUNNEL_ACTIONS: [(TunnelAction, &str); 4] = [
    (TunnelAction::CopyAddress, "copy-address"),
    (TunnelAction::CopyUrl, "copy-url"),
    (TunnelAction::CopyExport, "copy-export"),
    (TunnelAction::Close, "close"),
];

const PLAIN: [(TrayAction, &str); 9] = [
    (TrayAction::OpenWindow, "open-window"),
    (TrayAction::Settings, "settings"),
    (TrayAction::Browse, "browse"),
    (TrayAction::SignIn, "sign-in"),
    (TrayAction::SignInMfa, "sign-in-mfa"),
    (TrayAction::SignOut, "sign-out"),
    (TrayAction::ReopenTunnels, "reopen-tunnels"),
    (TrayAction::CloseAllTunnels, "close-all-tunnels"),
    (TrayAction::Quit, "quit"),
];

impl TrayAction {
    pub fn id(&self) -> String {
        match self {
            TrayAction::App(action, key) => format!("app/{}/{key}", action.name()),
            TrayAction::Tunnel(action, id) => {
                let name = TUNNEL_ACTIONS
                    .iter()
                    .find(|(a, _)| a == action)
                    .map(|(_, n)| *n);
                format!("tunnel/{}/{id}", name.unwrap_or_default())
            }
            plain => PLAIN
                .iter()
                .find(|(a, _)| a == plain)
                .map(|(_, id)| id.to_string())
                .unwrap_or_default(),
        }
    }

    pub fn parse(id: &str) -> Option<TrayAction> {
        if let Some(rest) = id.strip_prefix("app/") {
            let (name, key) = rest.split_once('/')?;
            return Some(TrayAction::App(
                AppAction::parse(name)?,
                AppKey::parse(key).ok()?,
            ));
        }
        if let Some(rest) = id.strip_prefix("tunnel/") {
            let (name, tunnel) = rest.split_once('/')?;
            let action = TUNNEL_ACTIONS.iter().find(|(_, n)| *n == name)?.0;
            return Some(TrayAction::Tunnel(action, tunnel.parse().ok()?));
        }
        PLAIN.iter().find(|(_, p)| *p == id).map(|(a, _)| a.clone())
    }
}

/// One line of the menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Item {
        id: String,
        label: String,
        enabled: bool,
    },
    Separator,
    Submenu {
        label: String,
        children: Vec<Line>,
    },
}

impl Line {
    fn info(id: &str, label: impl Into<String>) -> Line {
        Line::Item {
            id: id.to_string(),
            label: label.into(),
            enabled: false,
        }
    }

    fn action(action: TrayAction, label: impl Into<String>) -> Line {
        Line::Item {
            id: action.id(),
            label: label.into(),
            enabled: true,
        }
    }

    #[cfg(test)]
    fn label(&self) -> Option<&str> {
        match self {
            Line::Item { label, .. } | Line::Submenu { label, .. } => Some(label),
            Line::Separator => None,
        }
    }
}

/// "HH:MM UTC" of a Unix time.
fn clock(unix: u64) -> String {
    let day = unix % 86_400;
    format!("{:02}:{:02} UTC", day / 3600, day % 3600 / 60)
}

fn app_menu(label: String, app: &AppView, clients: &[Client]) -> Option<Line> {
    let key = app_key(&app.app).ok()?;
    let item = |a: AppAction, text: &str| Line::action(TrayAction::App(a, key.clone()), text);
    let mut children = Vec::new();
    for (a, _, text) in APP_ACTIONS {
        if a == AppAction::Dump {
            let open_in = if clients.is_empty() {
                vec![Line::info(
                    &format!("info-clients-{key}"),
                    "No database client found",
                )]
            } else {
                clients
                    .iter()
                    .map(|c| item(AppAction::OpenIn(*c), &c.label_for(None)))
                    .collect()
            };
            children.push(Line::Submenu {
                label: "Open in…".into(),
                children: open_in,
            });
            children.push(Line::Submenu {
                label: "Copy as…".into(),
                children: COPY_FORMS
                    .iter()
                    .map(|(f, _, text)| item(AppAction::CopyAs(*f), text))
                    .collect(),
            });
        }
        children.push(item(a, text));
    }
    Some(Line::Submenu { label, children })
}

/// An environment as labels show it: `main [PRODUCTION]`, `staging (staging)`,
/// `feature-x (development)`.
pub fn environment_label(id: &str, kind: &str) -> String {
    let t = EnvironmentType::from_api(kind);
    match t.word() {
        _ if t.is_production() => guard::environment_label(id, kind),
        Some(word) => format!("{id} ({word})"),
        None => id.to_string(),
    }
}

/// The environment's type in the catalog (for labels that only know its id).
fn kind_of<'a>(catalog: &'a [ProjectView], project: &str, environment: &str) -> &'a str {
    catalog
        .iter()
        .find(|p| p.id == project)
        .and_then(|p| p.environments.iter().find(|e| e.id == environment))
        .map_or("", |e| e.kind.as_str())
}

/// Pinned and recent apps, found in the catalog.
fn shortcuts(settings: &DesktopSettings, catalog: &[ProjectView], clients: &[Client]) -> Vec<Line> {
    let mut out = Vec::new();
    for (key, pinned) in settings.shortcuts() {
        let found = catalog
            .iter()
            .find(|p| p.id == key.project.as_str())
            .and_then(|p| {
                let env = p
                    .environments
                    .iter()
                    .find(|e| e.id == key.environment.as_str())?;
                let app = env.apps.iter().find(|a| a.app.app == key.app.as_str())?;
                Some((p, env, app))
            });
        if let Some((project, env, app)) = found {
            let mark = if pinned { "★ " } else { "" };
            let label = format!(
                "{mark}{} — {} / {}",
                app.app.app,
                project.title,
                environment_label(&env.id, &env.kind)
            );
            out.extend(app_menu(label, app, clients));
        }
    }
    out
}

/// Projects → "environment › app" → the app's actions: three levels at most.
fn projects(catalog: &[ProjectView], clients: &[Client]) -> Vec<Line> {
    if catalog.len() > MAX_PROJECTS {
        return Vec::new();
    }
    catalog
        .iter()
        .map(|p| {
            let mut children = Vec::new();
            let running: Vec<_> = p
                .environments
                .iter()
                .filter(|e| !e.apps.is_empty())
                .collect();
            if let Some(problem) = &p.problem {
                children.push(Line::info(
                    &format!("info-project-{}", p.id),
                    problem.message.clone(),
                ));
                if problem.code == "step_up_mfa" {
                    children.push(Line::action(TrayAction::SignInMfa, "Sign in with MFA…"));
                }
            } else if running.len() > MAX_ENVIRONMENTS {
                children.push(Line::action(TrayAction::Browse, "Browse…"));
            } else {
                for e in &p.environments {
                    if e.apps.is_empty() {
                        children.push(Line::info(
                            &format!("info-env-{}-{}", p.id, e.id),
                            match EnvironmentType::from_api(&e.kind) {
                                t if t.is_production() => {
                                    format!("{} ({})", environment_label(&e.id, &e.kind), e.status)
                                }
                                t => match t.word() {
                                    Some(word) => format!("{} ({word}, {})", e.id, e.status),
                                    None => format!("{} ({})", e.id, e.status),
                                },
                            },
                        ));
                    }
                    let env = environment_label(&e.id, &e.kind);
                    for a in &e.apps {
                        children.extend(app_menu(format!("{env} › {}", a.app.app), a, clients));
                    }
                }
            }
            Line::Submenu {
                label: p.title.clone(),
                children,
            }
        })
        .collect()
}

fn tunnel_menu(t: &TunnelView, catalog: &[ProjectView]) -> Line {
    let production =
        EnvironmentType::from_api(kind_of(catalog, &t.app.project, &t.app.environment))
            .is_production();
    let app = format!(
        "{}/{}/{}{}",
        t.app.project,
        t.app.environment,
        t.app.app,
        if production {
            format!(" [{}]", guard::PRODUCTION_MARK)
        } else {
            String::new()
        }
    );
    let state = match t.state {
        TunnelStateView::Opening => "opening",
        TunnelStateView::Open => "open",
        TunnelStateView::Reconnecting => "reconnecting",
        TunnelStateView::Failed => "failed",
        TunnelStateView::Closed => "closed",
    };
    let item = |a: TunnelAction, label: String| Line::action(TrayAction::Tunnel(a, t.id), label);
    Line::Submenu {
        label: format!("{} of {app} — {} ({state})", t.relationship, t.address),
        children: vec![
            item(TunnelAction::CopyAddress, format!("Copy {}", t.address)),
            item(TunnelAction::CopyUrl, "Copy URL".into()),
            item(
                TunnelAction::CopyExport,
                "Copy export PLATFORM_RELATIONSHIPS=…".into(),
            ),
            item(TunnelAction::Close, "Close".into()),
        ],
    }
}

/// The menu's lines for what the agent reports (`None` before it first answers).
pub fn lines(profile: &str, snapshot: Option<&Snapshot>, settings: &DesktopSettings) -> Vec<Line> {
    let mut out = Vec::new();
    let Some(account) = snapshot.and_then(|s| s.account.as_ref()) else {
        out.push(Line::info("info-agent", format!("{profile}: starting…")));
        out.push(Line::Separator);
        out.push(Line::action(TrayAction::OpenWindow, "Open Tether…"));
        out.push(Line::action(TrayAction::Quit, "Quit Tether"));
        return out;
    };
    let snapshot = snapshot.cloned().unwrap_or_default();
    let who = account
        .user
        .as_ref()
        .map(|u| format!(" as {}", u.username))
        .unwrap_or_default();
    match account.session {
        SessionView::Active => out.push(Line::info(
            "info-session",
            format!("Signed in to {profile}{who}"),
        )),
        SessionView::NeedsSignIn => out.push(Line::info(
            "info-session",
            format!("{profile}: sign in again{who}"),
        )),
        SessionView::SignedOut => out.push(Line::info(
            "info-session",
            format!("Not signed in to {profile}"),
        )),
    }
    if account.using_headless_agent {
        let pid = account
            .headless_agent
            .map(|p| format!(" (pid {p})"))
            .unwrap_or_default();
        out.push(Line::info(
            "info-agent",
            format!("Using the tether agent already running{pid}"),
        ));
    }
    if let Some(cert) = &account.certificate {
        out.push(Line::info(
            "info-certificate",
            format!("Certificate valid until {}", clock(cert.valid_before)),
        ));
    }
    if snapshot.renewal_failing && account.session == SessionView::Active {
        out.push(Line::info(
            "info-renewal",
            "Certificate renewal is failing; retrying",
        ));
    }
    if account.can_sign_in {
        if account.session != SessionView::Active {
            out.push(Line::action(TrayAction::SignIn, "Sign in…"));
        }
        let mfa = account.certificate.as_ref().is_some_and(|c| c.has_mfa);
        if !(account.session == SessionView::Active && mfa) {
            out.push(Line::action(TrayAction::SignInMfa, "Sign in with MFA…"));
        }
    }
    if account.session != SessionView::SignedOut {
        out.push(Line::action(TrayAction::SignOut, "Sign out"));
    }

    if account.session == SessionView::Active {
        out.push(Line::Separator);
        let catalog = snapshot.catalog.as_deref().unwrap_or_default();
        out.extend(shortcuts(settings, catalog, &snapshot.clients));
        out.extend(projects(catalog, &snapshot.clients));
        out.push(Line::action(TrayAction::Browse, "Browse…"));
    }

    out.push(Line::Separator);
    if account.session == SessionView::Active && account.reopenable_tunnels > 0 {
        let n = account.reopenable_tunnels;
        out.push(Line::action(
            TrayAction::ReopenTunnels,
            format!(
                "Reopen {n} tunnel{} closed at sign-out",
                if n == 1 { "" } else { "s" }
            ),
        ));
    }
    if snapshot.tunnels.is_empty() {
        out.push(Line::info("info-no-tunnels", "No tunnels open"));
    } else {
        let catalog = snapshot.catalog.as_deref().unwrap_or_default();
        out.extend(snapshot.tunnels.iter().map(|t| tunnel_menu(t, catalog)));
        out.push(Line::action(
            TrayAction::CloseAllTunnels,
            "Close all tunnels",
        ));
    }
    out.push(Line::Separator);
    out.push(Line::action(TrayAction::OpenWindow, "Open Tether…"));
    out.push(Line::action(TrayAction::Settings, "Settings…"));
    out.push(Line::action(TrayAction::Quit, "Quit Tether"));
    out
}

/// Which icon: signed out, ready, or attention (sign in again, renewal failing, a tunnel down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IconState {
    SignedOut,
    Ready,
    Attention,
}

pub fn icon_state(snapshot: &Snapshot) -> IconState {
    match snapshot.account.as_ref().map(|a| a.session) {
        None | Some(SessionView::SignedOut) => IconState::SignedOut,
        Some(SessionView::NeedsSignIn) => IconState::Attention,
        Some(SessionView::Active) if snapshot.renewal_failing || snapshot.tunnels_down > 0 => {
            IconState::Attention
        }
        Some(SessionView::Active) => IconState::Ready,
    }
}

fn icon(state: IconState) -> tauri::Result<Image<'static>> {
    Image::from_bytes(match state {
        IconState::SignedOut => include_bytes!("../../icons/tray-signed-out.png").as_slice(),
        IconState::Ready => include_bytes!("../../icons/tray.png").as_slice(),
        IconState::Attention => include_bytes!("../../icons/tray-attention.png").as_slice(),
    })
}

fn tooltip(state: IconState) -> &'static str {
    match state {
        IconState::SignedOut => "Tether: not signed in",
        IconState::Ready => "Tether: ready",
        IconState::Attention => "Tether: needs attention",
    }
}

fn build_items(app: &AppHandle, lines: &[Line]) -> tauri::Result<Vec<Box<dyn IsMenuItem<Wry>>>> {
    let mut items: Vec<Box<dyn IsMenuItem<Wry>>> = Vec::new();
    for line in lines {
        match line {
            Line::Item { id, label, enabled } => items.push(Box::new(MenuItem::with_id(
                app,
                id.as_str(),
                label,
                *enabled,
                None::<&str>,
            )?)),
            Line::Separator => items.push(Box::new(PredefinedMenuItem::separator(app)?)),
            Line::Submenu { label, children } => {
                let children = build_items(app, children)?;
                let refs: Vec<&dyn IsMenuItem<Wry>> = children.iter().map(|i| i.as_ref()).collect();
                items.push(Box::new(Submenu::with_items(app, label, true, &refs)?));
            }
        }
    }
    Ok(items)
}

fn build_menu(app: &AppHandle, lines: &[Line]) -> tauri::Result<Menu<Wry>> {
    let items = build_items(app, lines)?;
    let refs: Vec<&dyn IsMenuItem<Wry>> = items.iter().map(|i| i.as_ref()).collect();
    Menu::with_items(app, &refs)
}

/// Adds the tray icon, showing what the agent last reported (once: the icon stays for the app's
/// life). Only when a tray host is there ([`crate::tray_host`]): without one, libappindicator
/// would fall back to an X11 tray that nothing shows either.
pub fn add_icon(app: &AppHandle, desktop: Arc<Desktop>) -> tauri::Result<()> {
    if app.tray_by_id(TRAY_ID).is_some() {
        return Ok(());
    }
    let shown = desktop.shown();
    let known = shown.account.is_some().then_some(&shown);
    let menu = build_menu(
        app,
        &lines(desktop.profile_title(), known, &desktop.settings()),
    )?;
    let state = icon_state(&shown);
    let on_menu = desktop.clone();
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(icon(state)?)
        .tooltip(tooltip(state))
        .menu(&menu)
        .on_menu_event(move |app, event| {
            if let Some(action) = TrayAction::parse(event.id().as_ref()) {
                crate::actions::run(app, on_menu.clone(), action);
            }
        })
        .build(app)?;
    tracing::info!("tray icon added");
    Ok(())
}

/// Follows the agent for as long as the app runs: after each of its events the tray (when
/// there is one) and the window are brought up to date, and what needs telling is notified.
pub fn follow(app: &AppHandle, desktop: Arc<Desktop>) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let following = desktop.clone();
        tauri::async_runtime::spawn(async move {
            following
                .follow(move |event| {
                    let _ = tx.send(event);
                })
                .await
        });
        let mut notifier = crate::notify::Notifier::default();
        let host = app.clone();
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        // Tells what an event needs told; says whether the session changed.
        let handle = |event: &tether_core::cert::Event, notifier: &mut crate::notify::Notifier| {
            notifier.without_tray = host
                .try_state::<Arc<crate::tray_host::TrayHost>>()
                .is_some_and(|h| !h.present());
            if let Some(note) = notifier.on(event, std::time::Instant::now()) {
                crate::notify::show(note);
            }
            matches!(
                event,
                tether_core::cert::Event::SignedIn | tether_core::cert::Event::SignedOut { .. }
            )
        };
        // Every rebuild happens here, one at a time, so an older state never replaces a newer.
        loop {
            tokio::select! {
                event = rx.recv() => {
                    // Events come in bursts (a tunnel per relationship): take them all, then
                    // rebuild once.
                    let Some(first) = event else { break };
                    let mut session_changed = false;
                    let mut next = Some(first);
                    while let Some(event) = next {
                        if let Some(event) = &event {
                            session_changed |= handle(event, &mut notifier);
                        }
                        next = rx.try_recv().ok();
                    }
                    if session_changed {
                        desktop.session_changed().await;
                    }
                    refresh(&app, &desktop, notifier.renewal_failing()).await;
                }
                _ = desktop.refresh_wanted.notified() => {
                    refresh(&app, &desktop, notifier.renewal_failing()).await;
                }
                // A tunnel still down after its grace is told now.
                _ = tick.tick() => {
                    for note in notifier.due(std::time::Instant::now()) {
                        crate::notify::show(note);
                    }
                }
            }
        }
    });
}

/// Rebuilds the menu and the icon from the agent's state, and tells the window. Only the
/// loop in [`follow`] calls it; others ask through `Desktop::refresh_wanted`.
async fn refresh(app: &AppHandle, desktop: &Desktop, renewal_failing: bool) {
    let (snapshot, stale) = desktop.snapshot(renewal_failing).await;
    if stale {
        // Asked again in a moment, through the loop in `follow` (one rebuild at a time).
        let again = app.clone();
        tauri::async_runtime::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            if let Some(desktop) = again.try_state::<Arc<Desktop>>() {
                desktop.refresh_wanted.notify_one();
            }
        });
    }
    let lines = lines(
        desktop.profile_title(),
        Some(&snapshot),
        &desktop.settings(),
    );
    let state = icon_state(&snapshot);
    desktop.set_snapshot(snapshot);
    let handle = app.clone();
    let _ = app.run_on_main_thread(move || {
        if let Some(tray) = handle.tray_by_id(TRAY_ID) {
            if let Ok(menu) = build_menu(&handle, &lines) {
                let _ = tray.set_menu(Some(menu));
            }
            if let Ok(image) = icon(state) {
                let _ = tray.set_icon(Some(image));
            }
            let _ = tray.set_tooltip(Some(tooltip(state)));
        }
    });
    let _ = app.emit_to(crate::windows::MAIN, crate::shell::CHANGED, ());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::*;

    fn key(s: &str) -> AppKey {
        AppKey::parse(s).unwrap()
    }

    #[test]
    fn every_action_round_trips_through_its_menu_id() {
        let mut all: Vec<TrayAction> = PLAIN.iter().map(|(a, _)| a.clone()).collect();
        let mut apps: Vec<AppAction> = APP_ACTIONS.iter().map(|(a, ..)| *a).collect();
        apps.extend(
            tether_core::clients::CLIENTS
                .iter()
                .map(|(c, ..)| AppAction::OpenIn(*c)),
        );
        apps.extend(COPY_FORMS.iter().map(|(f, ..)| AppAction::CopyAs(*f)));
        for a in apps {
            all.push(TrayAction::App(a, key("jyu7waly36ncj/main/app")));
        }
        for (a, _) in TUNNEL_ACTIONS {
            all.push(TrayAction::Tunnel(a, 7));
        }
        for a in all {
            assert_eq!(TrayAction::parse(&a.id()), Some(a.clone()), "{}", a.id());
        }
        for id in [
            "nope",
            "info-session",
            "app/terminal/../x",
            "app/nope/p/e/a",
            "app/open-in:nope/p/e/a",
            "app/copy-as:nope/p/e/a",
            "tunnel/close/x",
        ] {
            assert_eq!(TrayAction::parse(id), None, "{id}");
        }
    }

    #[test]
    fn every_environment_says_its_type_and_production_is_marked() {
        assert_eq!(environment_label("main", "production"), "main [PRODUCTION]");
        assert_eq!(environment_label("staging", "staging"), "staging (staging)");
        assert_eq!(
            environment_label("feat", "development"),
            "feat (development)"
        );
        assert_eq!(environment_label("x", ""), "x");
    }

    #[test]
    fn clock_reads_hours_and_minutes_in_utc() {
        assert_eq!(clock(0), "00:00 UTC");
        assert_eq!(clock(86_400 + 13 * 3600 + 5 * 60 + 59), "13:05 UTC");
    }

    fn labels(lines: &[Line]) -> Vec<String> {
        lines
            .iter()
            .map(|l| l.label().unwrap_or("---").to_string())
            .collect()
    }

    #[test]
    fn a_menu_before_the_agent_answers_still_opens_and_quits() {
        let l = lines("Platform.sh", None, &DesktopSettings::default());
        assert_eq!(
            labels(&l),
            [
                "Platform.sh: starting…",
                "---",
                "Open Tether…",
                "Quit Tether"
            ]
        );
    }

    fn signed_in(tunnels: Vec<TunnelView>) -> Snapshot {
        let app = |p: &str, e: &str, a: &str| AppView {
            app: AppRef {
                project: p.into(),
                environment: e.into(),
                app: a.into(),
            },
            ssh_address: format!("{p}-{e}--{a}@ssh.example"),
            ssh_command: format!("ssh {p}-{e}--{a}@ssh.example"),
            pinned: false,
        };
        Snapshot {
            account: Some(Account {
                profile: "Local".into(),
                session: SessionView::Active,
                user: Some(UserView {
                    username: "alice".into(),
                    display_name: "Alice".into(),
                    email: "a@example.com".into(),
                }),
                certificate: Some(CertificateView {
                    valid_before: 3600,
                    has_mfa: false,
                    path: "/c".into(),
                }),
                now: 0,
                can_sign_in: true,
                using_headless_agent: false,
                headless_agent: None,
                reopenable_tunnels: 0,
            }),
            tunnels_down: 0,
            tunnels,
            renewal_failing: false,
            clients: vec![Client::Dbeaver, Client::Terminal],
            catalog: Some(vec![ProjectView {
                id: "p1".into(),
                title: "Storefront".into(),
                region: "eu".into(),
                problem: None,
                environments: vec![
                    EnvironmentView {
                        id: "main".into(),
                        title: "Main".into(),
                        status: "active".into(),
                        kind: "production".into(),
                        apps: vec![app("p1", "main", "app")],
                    },
                    EnvironmentView {
                        id: "old".into(),
                        title: "old".into(),
                        status: "inactive".into(),
                        kind: "development".into(),
                        apps: vec![],
                    },
                ],
            }]),
        }
    }

    #[test]
    fn a_signed_in_menu_has_the_account_the_apps_and_the_tunnels() {
        let tunnel = TunnelView {
            id: 3,
            app: AppRef {
                project: "p1".into(),
                environment: "main".into(),
                app: "app".into(),
            },
            relationship: "database".into(),
            service: "db".into(),
            state: TunnelStateView::Open,
            detail: String::new(),
            address: "127.0.0.1:30000".into(),
            production: true,
            url: "pgsql://u:p@127.0.0.1:30000/main".into(),
            connections: 0,
            active: 0,
            bytes_in: 0,
            bytes_out: 0,
        };
        let mut settings = DesktopSettings::default();
        settings.used(&key("p1/main/app"));
        let snap = signed_in(vec![tunnel]);
        let l = lines("Local", Some(&snap), &settings);
        assert_eq!(
            labels(&l),
            [
                "Signed in to Local as alice",
                "Certificate valid until 01:00 UTC",
                "Sign in with MFA…",
                "Sign out",
                "---",
                "app — Storefront / main [PRODUCTION]",
                "Storefront",
                "Browse…",
                "---",
                "database of p1/main/app [PRODUCTION] — 127.0.0.1:30000 (open)",
                "Close all tunnels",
                "---",
                "Open Tether…",
                "Settings…",
                "Quit Tether"
            ]
        );
        let Line::Submenu { children, .. } = &l[6] else {
            panic!("{:?}", l[6])
        };
        assert_eq!(
            labels(children),
            ["main [PRODUCTION] › app", "old (development, inactive)"]
        );
        let Line::Submenu { children, .. } = &children[0] else {
            panic!()
        };
        assert_eq!(
            labels(children),
            [
                "Open terminal",
                "SQL shell",
                "Logs",
                "Open site",
                "Open tunnels",
                "Open in…",
                "Copy as…",
                "Download a database dump…",
                "Copy SSH command",
                "Copy user@host",
                "Connection details…"
            ]
        );
        let Line::Submenu {
            children: open_in, ..
        } = &children[5]
        else {
            panic!()
        };
        assert_eq!(
            labels(open_in),
            ["DBeaver", "Terminal (psql, mysql, redis-cli)"]
        );
        let Line::Submenu {
            children: copy_as, ..
        } = &children[6]
        else {
            panic!()
        };
        assert_eq!(
            labels(copy_as),
            [
                "URL",
                "Command line (psql, mysql, redis-cli)",
                "JDBC URL",
                "Environment variables"
            ]
        );
        let Line::Submenu { children, .. } = &l[9] else {
            panic!()
        };
        assert_eq!(labels(children)[0], "Copy 127.0.0.1:30000");
        assert_eq!(icon_state(&snap), IconState::Ready);
    }

    #[test]
    fn tunnels_closed_at_sign_out_can_be_reopened_once_signed_in_again() {
        let mut snap = signed_in(vec![]);
        let settings = DesktopSettings::default();
        let reopen = TrayAction::ReopenTunnels.id();
        let has_reopen = |snap: &Snapshot| {
            lines("Local", Some(snap), &settings)
                .iter()
                .any(|l| matches!(l, Line::Item { id, .. } if *id == reopen))
        };
        assert!(!has_reopen(&snap));
        if let Some(a) = snap.account.as_mut() {
            a.reopenable_tunnels = 2;
            a.session = SessionView::SignedOut;
        }
        // Not while signed out: they would only fail again.
        assert!(!has_reopen(&snap));
        if let Some(a) = snap.account.as_mut() {
            a.session = SessionView::Active;
        }
        assert!(has_reopen(&snap));
        let l = lines("Local", Some(&snap), &settings);
        assert!(labels(&l).contains(&"Reopen 2 tunnels closed at sign-out".to_string()));
        assert_eq!(TrayAction::parse(&reopen), Some(TrayAction::ReopenTunnels));
    }

    #[test]
    fn the_icon_asks_for_attention_when_something_is_wrong() {
        let mut snap = signed_in(vec![]);
        snap.tunnels_down = 1;
        assert_eq!(icon_state(&snap), IconState::Attention);
        snap.tunnels_down = 0;
        snap.renewal_failing = true;
        assert_eq!(icon_state(&snap), IconState::Attention);
        snap.renewal_failing = false;
        if let Some(a) = snap.account.as_mut() {
            a.session = SessionView::NeedsSignIn;
        }
        assert_eq!(icon_state(&snap), IconState::Attention);
        assert_eq!(icon_state(&Snapshot::default()), IconState::SignedOut);
    }
}
