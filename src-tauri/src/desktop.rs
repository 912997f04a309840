//! The app's side of Tether: the agent it hosts (or the headless one it found), and every user
//! intent the tray and the window offer, each a few lines over tether-core. Inputs arrive as
//! [`AppRef`] strings and are parsed into core's types here, once; results leave as the plain
//! values of [`crate::view`].
//!
//! The agent: the app runs the same code as `tether agent` in-process, so `tether` commands see
//! the app's session and tunnels and the other way round. When a headless agent already runs
//! for the profile, the app uses that one instead of starting a second (they would fight over
//! the socket and the certificate); either way the app talks to its agent over the control
//! socket, the one way every shell does.
//!
//! The state: what the app knows that changes while it runs (which agent it uses, the settings,
//! the session's user and catalog, what the tray shows, a browser sign-in under way) is one
//! [`DesktopState`] behind one lock, changed only through its methods, so that what belongs
//! together (a session change and the user and catalog loaded for it) changes together. No
//! await and no file write happens under that lock; writes to `desktop.json` are serialised by
//! a lock of their own and run on Tokio's blocking threads, never on the main thread.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tether_core::access::{Access, AccessError};
use tether_core::agent::{self, AgentClient, AgentError, Bound, Reply, Request, SessionState};
use tether_core::api::{AppName, EnvironmentId, ProjectId};
use tether_core::auth::{AuthError, StoreError};
use tether_core::settings::DesktopSettings;
use tether_core::setup::{self, ShellChoices};
use tether_core::ssh::{Selection, SshUrl};
use tether_core::tunnel::{AppKey, CloseRequest, OpenRequest, TunnelInfo, TunnelState};

use crate::view::*;

/// How long the catalog (projects, environments) is kept before the tray asks again.
const CATALOG_TTL: Duration = Duration::from_secs(300);

/// How the app's profile was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileOrigin {
    /// `--profile X` on the command line.
    Argument,
    /// `TETHER_PROFILE` (the demo's and the tests' profile file).
    Environment,
    /// The settings, or Platform.sh when they name none.
    Settings,
}

impl ProfileOrigin {
    /// How a person would say where the profile came from, when it was given at start.
    pub fn given_by(self) -> Option<&'static str> {
        match self {
            ProfileOrigin::Argument => Some("--profile"),
            ProfileOrigin::Environment => Some("TETHER_PROFILE"),
            ProfileOrigin::Settings => None,
        }
    }
}

/// The profile the app serves: `--profile X`, else `TETHER_PROFILE`, else the settings, else
/// Platform.sh.
fn profile_selector(settings: &DesktopSettings) -> (String, ProfileOrigin) {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--profile" {
            if let Some(p) = args.next() {
                return (p, ProfileOrigin::Argument);
            }
        } else if let Some(p) = arg.strip_prefix("--profile=") {
            return (p.to_string(), ProfileOrigin::Argument);
        }
    }
    if let Some(p) = setup::env_nonempty("TETHER_PROFILE") {
        return (p, ProfileOrigin::Environment);
    }
    let chosen = Some(settings.profile.trim().to_string()).filter(|p| !p.is_empty());
    (
        chosen.unwrap_or_else(|| "platformsh".to_string()),
        ProfileOrigin::Settings,
    )
}

/// The `tether` command beside the app (the session's SSH config runs it before each plain
/// `ssh`), when it is there.
fn tether_program() -> Option<PathBuf> {
    let beside = std::env::current_exe().ok()?.with_file_name("tether");
    beside.exists().then_some(beside)
}

fn access_for(
    selector: &str,
    settings: &DesktopSettings,
    use_agent: bool,
) -> Result<Access, String> {
    let surroundings = setup::surroundings(ShellChoices {
        profile: selector,
        inactivity_limit: settings.inactivity_limit(),
        use_agent,
        tether_program: tether_program(),
    })
    .map_err(|e| e.to_string())?;
    // The session's ssh hook follows the `tether` beside this app (moved, upgraded, removed).
    let s = &surroundings;
    tether_core::openssh::repoint_hook(&s.paths, &s.profile, s.refresh_hook.as_ref());
    Ok(Access::new(surroundings))
}

/// What the tray and the window show, rebuilt after each event of the agent.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub account: Option<Account>,
    pub tunnels: Vec<TunnelView>,
    pub tunnels_down: usize,
    /// Renewal failing (until the next renewal).
    pub renewal_failing: bool,
    pub catalog: Option<Vec<ProjectView>>,
    /// The database clients found on this machine ("Open in…").
    pub clients: Vec<tether_core::clients::Client>,
}

/// Which agent the app talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentHost {
    /// This process hosts it: from the start, or since the headless one it used stopped.
    InProcess,
    /// A headless `tether agent` already ran for the profile when the app started (its pid when
    /// its lock file says).
    Headless { pid: Option<u32> },
}

/// What the app remembers of the session it last saw: who is signed in and the catalog, each
/// asked of the platform once, and forgotten together when the session changes.
#[derive(Debug, Default)]
struct SessionMemo {
    /// Counts session changes: what was loaded for an earlier session is not kept.
    generation: u64,
    user: Option<UserView>,
    /// The catalog and when it was loaded.
    catalog: Option<(Instant, Vec<ProjectView>)>,
}

/// Everything of the app that changes while it runs, as one value. [`Desktop`] reads it with
/// [`Desktop::read`] and changes it only through [`Desktop::update`] with the methods here.
struct DesktopState {
    agent: AgentHost,
    settings: DesktopSettings,
    session: SessionMemo,
    /// What the tray shows now.
    shown: Snapshot,
    /// Dropped to cancel the sign-in waiting for the browser.
    browser_sign_in: Option<tokio::sync::mpsc::UnboundedSender<tauri::Url>>,
}

impl DesktopState {
    fn new(agent: AgentHost, settings: DesktopSettings) -> DesktopState {
        DesktopState {
            agent,
            settings,
            session: SessionMemo::default(),
            shown: Snapshot::default(),
            browser_sign_in: None,
        }
    }

    /// A sign-in or a sign-out: the user and the catalog belonged to the last session, and a
    /// load that started before is not kept.
    fn session_changed(&mut self) {
        self.session = SessionMemo {
            generation: self.session.generation.wrapping_add(1),
            ..SessionMemo::default()
        };
    }

    /// The agent says there is no session: nothing of one is kept (whether or not the event
    /// that ended it was seen).
    fn seen_signed_out(&mut self) {
        if self.session.user.is_some() || self.session.catalog.is_some() {
            self.session_changed();
        }
    }

    /// Keeps what was loaded for session `generation`, if that is still the session.
    fn remember_user(&mut self, generation: u64, user: UserView) {
        if self.session.generation == generation {
            self.session.user = Some(user);
        }
    }

    fn remember_catalog(&mut self, generation: u64, catalog: Vec<ProjectView>) {
        if self.session.generation == generation {
            self.session.catalog = Some((Instant::now(), catalog));
        }
    }

    /// Settings as saved; the catalog's views carry the pins, so it is loaded again when they
    /// changed.
    fn settings_saved(&mut self, settings: DesktopSettings) {
        if settings.pinned != self.settings.pinned {
            self.session.catalog = None;
        }
        self.settings = settings;
    }
}

pub struct Desktop {
    /// The app's own access: catalog, terminals, sign-in. It tells the agent about sign-ins.
    pub access: Arc<Access>,
    /// How the profile was chosen (`platformsh`, or a profile file's path).
    pub profile_selector: String,
    /// Where that came from (the welcome asks for the platform only when nothing gave it).
    pub profile_origin: ProfileOrigin,
    pub socket: PathBuf,
    state: Mutex<DesktopState>,
    /// Held while `desktop.json` and what it governs (the `~/.ssh/config` block, start at
    /// login) are written, so that two changes never interleave; the state's lock is taken
    /// only for the moment the new settings are kept.
    settings_file: Mutex<()>,
    /// One sign-in at a time (held across the sign-in's awaits, so not part of the state).
    pub signing_in: tokio::sync::Mutex<()>,
    /// Asks the tray to rebuild from the agent's state (one rebuild at a time, in its loop).
    pub refresh_wanted: tokio::sync::Notify,
}

/// Starts the agent in this process, or finds the one already running for the profile.
/// Runs on the app's async runtime (the agent's socket is a Tokio listener).
pub fn start() -> Result<Desktop, String> {
    let paths = setup::paths().map_err(|e| e.to_string())?;
    let mut settings = DesktopSettings::load(&paths);
    if !DesktopSettings::saved(&paths) {
        // The first start: the welcome asks before Tether's block goes into ~/.ssh/config
        // (what is there already is managed) and before Tether starts at login.
        settings.welcome_under_way = true;
        settings.manage_ssh_config = tether_core::openssh::block_installed(&paths);
        settings.start_at_login = false;
    }
    let (selector, profile_origin) = profile_selector(&settings);
    let own = access_for(&selector, &settings, false)?;
    let socket = agent::socket_path(own.paths(), own.profile());
    let agent = match host(own) {
        Ok(()) => AgentHost::InProcess,
        Err(AgentError::AlreadyRunning { pid, .. }) => AgentHost::Headless { pid },
        Err(e) => return Err(e.to_string()),
    };
    Ok(Desktop {
        access: Arc::new(access_for(&selector, &settings, true)?),
        profile_selector: selector,
        profile_origin,
        socket,
        state: Mutex::new(DesktopState::new(agent, settings)),
        settings_file: Mutex::new(()),
        signing_in: tokio::sync::Mutex::new(()),
        refresh_wanted: tokio::sync::Notify::new(),
    })
}

/// Runs the agent in this process until the app exits, unless one already runs for the
/// profile.
fn host(own: Access) -> Result<(), AgentError> {
    let bound = Bound::bind(own.paths(), own.profile())?.hosted_by("the Tether app");
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    tauri::async_runtime::spawn(async move {
        agent::serve(bound, Arc::new(own), shutdown).await;
        drop(stop);
    });
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs file work on Tokio's blocking threads (a command's task must not wait on the disk, and
/// the main thread never does).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, IpcError> + Send + 'static,
) -> Result<T, IpcError> {
    tauri::async_runtime::spawn_blocking(work)
        .await
        .map_err(|e| IpcError::other(format!("the app's file work failed: {e}")))?
}

pub fn app_key(app: &AppRef) -> Result<AppKey, IpcError> {
    let bad = |e: tether_core::api::IdError| IpcError::usage(e.to_string());
    Ok(AppKey {
        project: ProjectId::parse(&app.project).map_err(bad)?,
        environment: EnvironmentId::parse(&app.environment).map_err(bad)?,
        app: AppName::parse(&app.app).map_err(bad)?,
    })
}

pub fn app_ref(key: &AppKey) -> AppRef {
    AppRef {
        project: key.project.to_string(),
        environment: key.environment.to_string(),
        app: key.app.to_string(),
    }
}

/// A name to show: the title, or the id when there is none.
fn titled(title: &str, id: &str) -> String {
    if title.is_empty() { id } else { title }.to_string()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

pub fn tunnel_view(t: &TunnelInfo) -> TunnelView {
    let (state, detail) = match &t.state {
        TunnelState::Opening => (TunnelStateView::Opening, String::new()),
        TunnelState::Open => (
            TunnelStateView::Open,
            t.last_error.clone().unwrap_or_default(),
        ),
        TunnelState::Reconnecting { attempt, error } => (
            TunnelStateView::Reconnecting,
            format!("attempt {attempt}: {error}"),
        ),
        TunnelState::Failed { reason } => (TunnelStateView::Failed, reason.clone()),
        TunnelState::Closed => (TunnelStateView::Closed, String::new()),
    };
    TunnelView {
        id: u32::try_from(t.id).unwrap_or(u32::MAX),
        app: app_ref(&t.app),
        relationship: t.endpoint_id().to_string(),
        service: t.service.clone().unwrap_or_default(),
        state,
        detail,
        address: t.local.to_string(),
        production: false,
        url: t.url.clone(),
        connections: t.counters.connections,
        active: t.counters.active,
        bytes_in: t.counters.bytes_received,
        bytes_out: t.counters.bytes_sent,
    }
}

impl Desktop {
    pub fn profile_title(&self) -> &str {
        &self.access.profile().title
    }

    /// Reads the state.
    fn read<R>(&self, f: impl FnOnce(&DesktopState) -> R) -> R {
        f(&lock(&self.state))
    }

    /// Changes the state: the one way it changes.
    fn update<R>(&self, f: impl FnOnce(&mut DesktopState) -> R) -> R {
        f(&mut lock(&self.state))
    }

    pub fn settings(&self) -> DesktopSettings {
        self.read(|s| s.settings.clone())
    }

    pub fn agent_host(&self) -> AgentHost {
        self.read(|s| s.agent)
    }

    /// Sends one request to the agent; an agent that is not there reads as such.
    pub async fn request(&self, request: &Request) -> Result<Reply, IpcError> {
        self.request_with_step_up(request).await.map_err(|(e, _)| e)
    }

    /// The request, and when the platform wants a stronger sign-in for it and one can help:
    /// the error keeps the step-up so the caller can sign in and retry.
    pub async fn request_with_step_up(
        &self,
        request: &Request,
    ) -> Result<Reply, (IpcError, Option<tether_core::api::StepUp>)> {
        let mut client = match AgentClient::connect(&self.socket).await {
            Ok(Some(c)) => c,
            Ok(None) => {
                let e = IpcError::other(
                    "Tether's agent is not answering (the headless one it used stopped, and the app is taking over): try again in a moment",
                );
                return Err((e, None));
            }
            Err(e) => return Err((IpcError::of(&e), None)),
        };
        match client.request(request).await {
            Ok(reply) => Ok(reply),
            Err(AgentError::Remote {
                code,
                message,
                step_up,
            }) => Err((IpcError { code, message }, step_up)),
            Err(e) => Err((IpcError::of(&e), None)),
        }
    }

    async fn status(&self) -> Result<agent::Status, IpcError> {
        match self.request(&Request::Status).await? {
            Reply::Status(s) => Ok(s),
            other => Err(IpcError::other(format!("unexpected reply {other:?}"))),
        }
    }

    /// Who is signed in (asked once per session, not counted as activity).
    async fn user(&self) -> Option<UserView> {
        let (generation, known) = self.read(|s| (s.session.generation, s.session.user.clone()));
        if known.is_some() {
            return known;
        }
        let u = self.access.catalog().user().await.ok()?;
        let display_name = format!("{} {}", u.first_name, u.last_name)
            .trim()
            .to_string();
        let view = UserView {
            display_name: titled(&display_name, &u.username),
            username: u.username,
            email: u.email,
        };
        self.update(|s| s.remember_user(generation, view.clone()));
        Some(view)
    }

    /// Puts Tether's block in `~/.ssh/config` when the settings say to manage it and it is not
    /// there, so that plain `ssh`, `scp`, `rsync` and `git` work (after a sign-in, at start).
    pub async fn wire_ssh_config(self: &Arc<Self>) {
        let this = self.clone();
        let wired = blocking(move || {
            let _writing = lock(&this.settings_file);
            if this.settings().manage_ssh_config && !this.access.ssh_config_installed() {
                this.access
                    .install_ssh_config()
                    .map_err(|e| IpcError::of(&e))?;
            }
            Ok(())
        })
        .await;
        if let Err(e) = wired {
            tracing::warn!(error = %e.message, "cannot add Tether's block to ~/.ssh/config");
        }
    }

    /// Forgets what belongs to the last session (after a sign-in or a sign-out).
    /// A load that started before is not kept.
    pub async fn session_changed(&self) {
        self.update(DesktopState::session_changed);
        self.access.catalog().refresh().await;
    }

    pub async fn account(&self) -> Result<Account, IpcError> {
        let status = self.status().await?;
        let session = match status.session {
            SessionState::Active => SessionView::Active,
            SessionState::NeedsSignIn => SessionView::NeedsSignIn,
            SessionState::SignedOut => SessionView::SignedOut,
        };
        let user = match session {
            SessionView::SignedOut => {
                self.update(DesktopState::seen_signed_out);
                None
            }
            _ => self.user().await,
        };
        let (using_headless_agent, headless_agent) = match self.agent_host() {
            AgentHost::InProcess => (false, None),
            AgentHost::Headless { pid } => (true, pid),
        };
        Ok(Account {
            profile: self.profile_title().to_string(),
            session,
            user,
            certificate: status.certificate.map(|c| CertificateView {
                valid_before: c.valid_before,
                has_mfa: c.has_mfa,
                path: c.path.display().to_string(),
            }),
            now: now(),
            can_sign_in: self.access.can_sign_in(),
            headless_agent,
            using_headless_agent,
            reopenable_tunnels: status.reopenable,
        })
    }

    pub async fn tunnel_infos(&self) -> Result<Vec<TunnelInfo>, IpcError> {
        match self.request(&Request::TunnelList).await? {
            Reply::Tunnels { tunnels } => Ok(tunnels),
            other => Err(IpcError::other(format!("unexpected reply {other:?}"))),
        }
    }

    /// Marks the tunnels to production environments, as the catalog last loaded says them.
    fn marked(&self, mut views: Vec<TunnelView>) -> Vec<TunnelView> {
        self.read(|s| {
            let Some((_, catalog)) = &s.session.catalog else {
                return;
            };
            for v in &mut views {
                v.production = catalog.iter().any(|p| {
                    p.id == v.app.project
                        && p.environments.iter().any(|e| {
                            e.id == v.app.environment
                                && tether_core::guard::EnvironmentType::from_api(&e.kind)
                                    .is_production()
                        })
                });
            }
        });
        views
    }

    pub async fn tunnels(&self) -> Result<Vec<TunnelView>, IpcError> {
        let views = self.tunnel_infos().await?.iter().map(tunnel_view).collect();
        Ok(self.marked(views))
    }

    /// What the tray and the window show now (whether renewal is failing is known from the
    /// agent's events, which the tray follows).
    ///
    /// When the agent does not answer for its tunnels, the tunnels last shown stay (an empty
    /// list would turn a tunnel that is down into "No tunnels open" and the icon back to ready,
    /// with no later event to correct it) and `stale` says to ask again.
    pub async fn snapshot(&self, renewal_failing: bool) -> (Snapshot, bool) {
        let account = self.account().await.ok();
        let infos = self.tunnel_infos().await;
        let signed_in = account
            .as_ref()
            .is_some_and(|a| a.session == SessionView::Active);
        let catalog = if signed_in {
            self.cached_catalog().await
        } else {
            None
        };
        let clients = tauri::async_runtime::spawn_blocking(Desktop::database_clients)
            .await
            .unwrap_or_default();
        let (tunnels_down, tunnels, stale) = match infos {
            Ok(infos) => (
                infos.iter().filter(|t| t.state.is_down()).count(),
                self.marked(infos.iter().map(tunnel_view).collect()),
                false,
            ),
            Err(e) if account.is_some() => {
                tracing::warn!(
                    "the agent did not list its tunnels ({}); showing the last list",
                    e.message
                );
                let shown = self.shown();
                (shown.tunnels_down, shown.tunnels, true)
            }
            // No agent at all: nothing is open.
            Err(_) => (0, Vec::new(), false),
        };
        let snapshot = Snapshot {
            account,
            tunnels_down,
            tunnels,
            renewal_failing,
            catalog,
            clients,
        };
        (snapshot, stale)
    }

    /// The catalog as last loaded, loaded when older than [`CATALOG_TTL`]; `None` when it
    /// cannot be loaded (the tray then offers Browse… only).
    async fn cached_catalog(&self) -> Option<Vec<ProjectView>> {
        let (generation, cached) = self.read(|s| (s.session.generation, s.session.catalog.clone()));
        if let Some((at, fresh)) = &cached {
            if at.elapsed() < CATALOG_TTL {
                return Some(fresh.clone());
            }
        }
        match self.catalog(false).await {
            Ok(c) => Some(c),
            // Offline: the last listing stays, and is tried again after the TTL.
            Err(_) => {
                let (_, stale) = cached?;
                self.update(|s| s.remember_catalog(generation, stale.clone()));
                Some(stale)
            }
        }
    }

    /// Projects, their environments and each running environment's apps.
    pub async fn catalog(&self, refresh: bool) -> Result<Vec<ProjectView>, IpcError> {
        let generation = self.read(|s| s.session.generation);
        let catalog = self.access.catalog();
        if refresh {
            catalog.refresh().await;
        }
        let settings = self.settings();
        let projects = catalog.projects().await.map_err(|e| IpcError::of(&e))?;
        let mut out = Vec::with_capacity(projects.len());
        for p in projects {
            // A project that refuses (an organization that demands MFA) is listed with why.
            let (envs, problem) = match catalog.environments(&p.id).await {
                Ok(envs) => (envs, None),
                Err(e) => (Vec::new(), Some(IpcError::of(&e))),
            };
            let environments = envs
                .iter()
                .map(|e| EnvironmentView {
                    id: e.id.to_string(),
                    title: titled(&e.name, e.id.as_str()),
                    status: e.status.clone(),
                    kind: e.kind.clone(),
                    apps: self.app_views(&p.id, e, &settings),
                })
                .collect();
            out.push(ProjectView {
                id: p.id.to_string(),
                title: titled(&p.title, p.id.as_str()),
                region: p.region.clone(),
                environments,
                problem,
            });
        }
        // Kept only if the session is the one it was loaded for.
        self.update(|s| s.remember_catalog(generation, out.clone()));
        Ok(out)
    }

    /// A running environment's apps, each with its SSH address: the app's own address only;
    /// instances (`app:1`) and workers (`app--queue`) are reached from the command line.
    fn app_views(
        &self,
        project: &ProjectId,
        env: &tether_core::api::Environment,
        settings: &DesktopSettings,
    ) -> Vec<AppView> {
        tether_core::ssh::resolve::all_urls(env, self.access.profile())
            .unwrap_or_default()
            .into_iter()
            .filter(|(name, _)| !name.contains(':') && !name.contains("--"))
            .filter_map(|(name, url)| {
                let key = AppKey {
                    project: project.clone(),
                    environment: env.id.clone(),
                    app: AppName::parse(&name).ok()?,
                };
                Some(AppView {
                    app: app_ref(&key),
                    ssh_address: url.to_string(),
                    ssh_command: format!("ssh {url}"),
                    pinned: settings.is_pinned(&key),
                })
            })
            .collect()
    }

    /// The SSH address of an app.
    pub async fn address(&self, key: &AppKey) -> Result<SshUrl, IpcError> {
        let selection = Selection {
            app: Some(key.app.clone()),
            ..Selection::default()
        };
        self.access
            .address(&key.project, &key.environment, &selection)
            .await
            .map_err(|e| IpcError::of(&e))
    }

    /// Records that the user used an app (the tray lists recent apps).
    pub async fn used(self: &Arc<Self>, key: &AppKey) {
        let (this, key) = (self.clone(), key.clone());
        if let Err(e) = blocking(move || this.change_settings(|s| s.used(&key))).await {
            tracing::warn!(error = %e.message, "cannot remember the recent app");
        }
    }

    pub async fn set_pinned(self: &Arc<Self>, key: &AppKey, pinned: bool) -> Result<(), IpcError> {
        let (this, key) = (self.clone(), key.clone());
        blocking(move || this.change_settings(|s| s.set_pinned(&key, pinned))).await
    }

    /// Saves the settings changed by `change`, then keeps them (blocking: call it off the
    /// runtime's workers).
    fn change_settings(&self, change: impl FnOnce(&mut DesktopSettings)) -> Result<(), IpcError> {
        let _writing = lock(&self.settings_file);
        let mut new = self.settings();
        change(&mut new);
        new.save(self.access.paths())
            .map_err(|e| IpcError::of(&e))?;
        self.update(|s| s.settings_saved(new));
        Ok(())
    }

    /// Checks and saves settings, and applies what applies now (the `~/.ssh/config` block, then
    /// `apply` for the rest, such as start at login) before saving, so the file never says what
    /// did not happen; the profile, terminal, bind address and inactivity limit are read where
    /// they are used or at the next start. Tunnels listening on every address (`0.0.0.0`, `::`)
    /// need the person's `confirmed` yes first, as `--bind` does at a terminal: without it the
    /// answer is a [`CONFIRM`] error whose message is the question.
    pub async fn save_settings(
        self: &Arc<Self>,
        mut new: DesktopSettings,
        confirmed: bool,
        apply: impl FnOnce(&DesktopSettings) -> Result<(), IpcError> + Send + 'static,
    ) -> Result<DesktopSettings, IpcError> {
        let this = self.clone();
        blocking(move || {
            let _writing = lock(&this.settings_file);
            let current = this.settings();
            // Pins, recent apps and the welcome are not the settings page's to change.
            new.pinned = current.pinned.clone();
            new.recent = current.recent.clone();
            new.welcome_under_way = current.welcome_under_way;
            new.terminal = new.terminal.trim().to_string();
            new.bind_address = new.bind_address.trim().to_string();
            new.check().map_err(|e| IpcError::of(&e))?;
            if let Some(question) = question_before_saving(&current, &new).filter(|_| !confirmed) {
                return Err(IpcError {
                    code: CONFIRM.into(),
                    message: question,
                });
            }
            if new.manage_ssh_config != current.manage_ssh_config {
                let edit = if new.manage_ssh_config {
                    this.access.install_ssh_config()
                } else {
                    this.access.remove_ssh_config()
                };
                edit.map_err(|e| IpcError::of(&e))?;
            }
            apply(&new)?;
            new.save(this.access.paths())
                .map_err(|e| IpcError::of(&e))?;
            this.update(|s| s.settings_saved(new.clone()));
            Ok(new)
        })
        .await
    }

    pub async fn connection_details(
        &self,
        key: &AppKey,
    ) -> Result<ConnectionDetails, (IpcError, Option<tether_core::api::StepUp>)> {
        let url = self.address(key).await.map_err(|e| (e, None))?;
        let reply = self
            .request_with_step_up(&Request::Relationships(key.clone()))
            .await?;
        let Reply::Relationships { endpoints, .. } = reply else {
            return Err((IpcError::other("unexpected reply from the agent"), None));
        };
        let text = |f: &serde_json::Map<String, serde_json::Value>, k: &str| match f.get(k) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        let files = self.access.keeper().files();
        Ok(ConnectionDetails {
            app: app_ref(key),
            ssh_host: url.host().to_string(),
            ssh_port: self.access.profile().ssh.as_ref().map_or(22, |s| s.port),
            ssh_user: url.user().to_string(),
            key_file: files.key().display().to_string(),
            certificate_file: files.certificate().display().to_string(),
            services: endpoints
                .iter()
                .map(|e| ServiceDetails {
                    relationship: e.id.clone(),
                    service: text(&e.fields, "service"),
                    service_type: text(&e.fields, "type"),
                    host: text(&e.fields, "host"),
                    port: e
                        .fields
                        .get("port")
                        .and_then(serde_json::Value::as_u64)
                        .and_then(|p| u16::try_from(p).ok())
                        .unwrap_or_default(),
                    username: text(&e.fields, "username"),
                    password: text(&e.fields, "password"),
                    path: text(&e.fields, "path"),
                    scheme: text(&e.fields, "scheme"),
                })
                .collect(),
        })
    }

    pub async fn open_tunnels(
        self: &Arc<Self>,
        key: &AppKey,
    ) -> Result<OpenedView, (IpcError, Option<tether_core::api::StepUp>)> {
        let bind = self.settings().bind_ip();
        let request = Request::TunnelOpen(OpenRequest {
            app: key.clone(),
            relationships: Vec::new(),
            port: None,
            bind: (!bind.is_loopback() || bind.is_ipv6()).then_some(bind),
        });
        match self.request_with_step_up(&request).await? {
            Reply::Opened(report) => {
                self.used(key).await;
                Ok(OpenedView {
                    tunnels: self.marked(report.tunnels.iter().map(tunnel_view).collect()),
                    failed: report
                        .failed
                        .into_iter()
                        .map(|f| OpenFailureView {
                            relationship: f.relationship,
                            message: f.message,
                        })
                        .collect(),
                })
            }
            other => Err((IpcError::other(format!("unexpected reply {other:?}")), None)),
        }
    }

    pub async fn close_tunnels(
        &self,
        filter: impl Fn(&TunnelInfo) -> bool,
    ) -> Result<(), IpcError> {
        let infos = self.tunnel_infos().await?;
        for t in infos.iter().filter(|t| filter(t)) {
            let request = CloseRequest {
                project: Some(t.app.project.clone()),
                environment: Some(t.app.environment.clone()),
                app: Some(t.app.app.clone()),
                relationships: vec![t.endpoint_id().to_string()],
            };
            self.request(&Request::TunnelClose(request)).await?;
        }
        Ok(())
    }

    /// Opens again, on their old ports, the tunnels the end of the last session closed.
    pub async fn reopen_tunnels(&self) -> Result<OpenedView, IpcError> {
        match self.request(&Request::TunnelReopen).await? {
            Reply::Opened(report) => Ok(OpenedView {
                tunnels: self.marked(report.tunnels.iter().map(tunnel_view).collect()),
                failed: report
                    .failed
                    .into_iter()
                    .map(|f| OpenFailureView {
                        relationship: f.relationship,
                        message: f.message,
                    })
                    .collect(),
            }),
            other => Err(IpcError::other(format!("unexpected reply {other:?}"))),
        }
    }

    pub async fn close_all_tunnels(&self) -> Result<(), IpcError> {
        self.request(&Request::TunnelClose(CloseRequest::default()))
            .await
            .map(|_| ())
    }

    /// `export PLATFORM_RELATIONSHIPS=…` for the tunnels of an app (all tunnels without one).
    pub async fn tunnel_export(&self, key: Option<&AppKey>) -> Result<String, IpcError> {
        let infos = self.tunnel_infos().await?;
        let chosen: Vec<&TunnelInfo> = infos
            .iter()
            .filter(|t| key.is_none_or(|k| t.app == *k))
            .collect();
        if chosen.is_empty() {
            return Err(IpcError::usage(
                "no tunnels are open: open tunnels to an app first",
            ));
        }
        let encoded = tether_core::tunnel::local_relationships(chosen).encode();
        Ok(format!(
            "export PLATFORM_RELATIONSHIPS={}",
            encoded.expose()
        ))
    }

    pub async fn open_terminal(self: &Arc<Self>, key: &AppKey) -> Result<(), IpcError> {
        let url = self.address(key).await?;
        let configured = self.settings().terminal;
        let terminal = tether_core::ssh::terminal::TerminalSettings {
            configured: Some(configured).filter(|c| !c.is_empty()),
            env_terminal: std::env::var("TERMINAL").ok(),
        };
        let path = std::env::var_os("PATH");
        // A usable certificate first, so the terminal does not open on a refusal.
        self.request(&Request::Ready { new: false }).await?;
        // Searching PATH and recording the activity touch the disk.
        let access = self.access.clone();
        blocking(move || {
            access
                .open_terminal(&url, None, &terminal, path.as_deref())
                .map(|_| ())
                .map_err(|e| IpcError::of(&e))
        })
        .await?;
        self.used(key).await;
        Ok(())
    }

    /// The terminal the settings page offers when none is set (found on PATH, off the
    /// runtime's workers).
    pub async fn detected_terminal(&self) -> String {
        let settings = tether_core::ssh::terminal::TerminalSettings {
            configured: None,
            env_terminal: std::env::var("TERMINAL").ok(),
        };
        let path = std::env::var_os("PATH");
        blocking(move || {
            tether_core::ssh::terminal::launch_for(&settings, &["ssh".into()], |n| {
                tether_core::ssh::terminal::find_on_path(path.as_deref(), n)
            })
            .map(|l| l.program)
            .map_err(|e| IpcError::of(&e))
        })
        .await
        .unwrap_or_else(|_| "none found".into())
    }

    /// Records the handle that cancels a sign-in waiting for the browser.
    pub fn set_browser_sign_in(&self, cancel: tokio::sync::mpsc::UnboundedSender<tauri::Url>) {
        self.update(|s| s.browser_sign_in = Some(cancel));
    }

    /// Cancels the sign-in waiting for the browser, if there is one; says whether there was.
    pub fn take_browser_sign_in(&self) -> bool {
        self.update(|s| s.browser_sign_in.take()).is_some()
    }

    pub fn set_snapshot(&self, snapshot: Snapshot) {
        self.update(|s| s.shown = snapshot);
    }

    /// What the tray shows now.
    pub fn shown(&self) -> Snapshot {
        self.read(|s| s.shown.clone())
    }

    /// Calls `changed(None)` when the agent answers and when it goes away, and
    /// `changed(Some(e))` for each of its events, until the app exits. When the headless agent
    /// the app used stops, the app hosts the agent itself.
    pub async fn follow(&self, changed: impl Fn(Option<tether_core::cert::Event>)) {
        loop {
            if let Ok(Some(mut c)) = AgentClient::connect(&self.socket).await {
                if matches!(c.request(&Request::Subscribe).await, Ok(Reply::Subscribed)) {
                    changed(None);
                    while let Ok(Some(reply)) = c.next().await {
                        if let Reply::Event(e) = reply {
                            changed(Some(e));
                        }
                    }
                    changed(None);
                }
            }
            if self.take_over() {
                continue;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Hosts the agent in this process when none runs (the headless one stopped); says
    /// whether it does now.
    fn take_over(&self) -> bool {
        let own = match access_for(&self.profile_selector, &self.settings(), false) {
            Ok(own) => own,
            Err(e) => {
                tracing::warn!(error = %e, "cannot host the agent");
                return false;
            }
        };
        match host(own) {
            Ok(()) => {
                tracing::info!("the headless agent stopped; the app hosts the agent now");
                self.update(|s| s.agent = AgentHost::InProcess);
                true
            }
            Err(_) => false,
        }
    }

    pub async fn sign_out(&self) -> Result<(), IpcError> {
        self.request(&Request::SignOut { all: false }).await?;
        self.session_changed().await;
        Ok(())
    }

    /// Where the sign-in is kept.
    pub fn token_store(&self) -> TokenStoreView {
        let store = &self.access.session().store;
        TokenStoreView {
            in_file: store.in_file(),
            location: store.describe(),
            choosable: store.choosable(),
        }
    }

    /// Whether the token store can keep a sign-in: asked before a sign-in starts, so that
    /// nobody signs in for nothing (a locked keyring may show its unlock prompt now).
    pub async fn check_token_store(&self) -> Result<(), IpcError> {
        self.access
            .session()
            .check_store()
            .await
            .map_err(|e| token_store_error(TOKEN_STORE, &e))
    }

    /// Keeps the sign-in in a private file (`file`) or in the keyring from now on, as the
    /// person chose (the stored session moves there), then stores a finished sign-in the
    /// keyring refused, if one is held.
    pub async fn use_token_store(self: &Arc<Self>, file: bool) -> Result<(), IpcError> {
        let session = self.access.session();
        session
            .keep_tokens_in(file)
            .await
            .map_err(|e| IpcError::of(&e))?;
        if session.holds_sign_in() {
            self.keep_held_sign_in().await?;
        }
        Ok(())
    }

    /// Stores the sign-in the token store refused, and goes on as a sign-in does.
    pub async fn keep_held_sign_in(self: &Arc<Self>) -> Result<(), IpcError> {
        self.access
            .keep_held_sign_in()
            .await
            .map_err(|e| self.sign_in_failed(&e))?;
        self.session_changed().await;
        self.wire_ssh_config().await;
        Ok(())
    }

    /// What the end of a sign-in that failed says: when the token store refused it, that the
    /// sign-in is held ([`SIGN_IN_HELD`]).
    pub fn sign_in_failed(&self, e: &AccessError) -> IpcError {
        match e {
            AccessError::Auth(a) if self.access.session().holds_sign_in() => {
                token_store_error(SIGN_IN_HELD, a)
            }
            e => IpcError::of(e),
        }
    }

    /// Saves the platform the welcome's first step chose (used from the next start).
    pub async fn set_profile(self: &Arc<Self>, profile: String) -> Result<(), IpcError> {
        let this = self.clone();
        blocking(move || this.change_settings(|s| s.profile = profile)).await
    }

    /// The welcome is done: later starts go to the tray.
    pub async fn welcome_done(self: &Arc<Self>) -> Result<(), IpcError> {
        let this = self.clone();
        blocking(move || this.change_settings(|s| s.welcome_under_way = false)).await
    }
}

/// What to ask the person before `new` replaces `current`, if anything: tunnels that would
/// listen on every address (`0.0.0.0`, `::`), where every machine on the network reaches them.
fn question_before_saving(current: &DesktopSettings, new: &DesktopSettings) -> Option<String> {
    let wildcard = new.bind_ip();
    (wildcard.is_unspecified() && !current.bind_ip().is_unspecified()).then(|| {
        format!(
            "Listen on every address ({wildcard})? Every machine on every network this computer \
             is on could then reach your tunnels, and through them your services, with their \
             credentials."
        )
    })
}

/// A token store that cannot keep a sign-in, said to a person: what the keyring answered is
/// the detail; the window offers what to do (keep the sign-in in a private file, or try again
/// once the keyring is unlocked).
fn token_store_error(code: &str, e: &AuthError) -> IpcError {
    let reason = match e {
        AuthError::Store(StoreError::Unavailable(r) | StoreError::Keyring(r)) => r.clone(),
        e => e.to_string(),
    };
    let message = if code == SIGN_IN_HELD {
        format!(
            "You signed in, but your keyring did not take the sign-in ({reason}). Tether holds \
             it until you choose where to keep it."
        )
    } else {
        format!(
            "Tether keeps your sign-in in your desktop's keyring, and it is missing or locked \
             ({reason})."
        )
    };
    IpcError {
        code: code.into(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> UserView {
        UserView {
            username: "alice".into(),
            display_name: "Alice".into(),
            email: "alice@example.com".into(),
        }
    }

    fn project() -> ProjectView {
        ProjectView {
            id: "p1".into(),
            title: "Storefront".into(),
            region: "eu".into(),
            environments: Vec::new(),
            problem: None,
        }
    }

    #[test]
    fn what_was_loaded_for_an_earlier_session_is_not_kept() {
        let mut s = DesktopState::new(AgentHost::InProcess, DesktopSettings::default());
        let before = s.session.generation;
        s.session_changed();
        s.remember_user(before, user());
        s.remember_catalog(before, vec![project()]);
        assert!(s.session.user.is_none() && s.session.catalog.is_none());
        let now = s.session.generation;
        s.remember_user(now, user());
        s.remember_catalog(now, vec![project()]);
        assert_eq!(s.session.user, Some(user()));
        assert!(s.session.catalog.is_some());
    }

    #[test]
    fn signed_out_forgets_the_user_and_the_catalog_and_loads_under_way() {
        let mut s = DesktopState::new(AgentHost::InProcess, DesktopSettings::default());
        let generation = s.session.generation;
        s.remember_user(generation, user());
        s.remember_catalog(generation, vec![project()]);
        s.seen_signed_out();
        assert!(s.session.user.is_none() && s.session.catalog.is_none());
        // A catalog that was loading for the session that ended is not kept either.
        s.remember_catalog(generation, vec![project()]);
        assert!(s.session.catalog.is_none());
    }

    #[test]
    fn only_a_move_to_every_address_is_asked_about() {
        let with = |bind: &str| DesktopSettings {
            bind_address: bind.into(),
            ..DesktopSettings::default()
        };
        let asked = question_before_saving(&with("127.0.0.1"), &with("0.0.0.0"));
        assert!(asked.is_some_and(|q| q.contains("(0.0.0.0)") && q.contains("Every machine")));
        assert!(question_before_saving(&with("127.0.0.1"), &with("::")).is_some());
        assert!(question_before_saving(&with("::1"), &with("::")).is_some());
        // Already there, an address of this machine, or back to loopback: nothing to ask.
        assert!(question_before_saving(&with("0.0.0.0"), &with("::")).is_none());
        assert!(question_before_saving(&with("127.0.0.1"), &with("192.168.1.5")).is_none());
        assert!(question_before_saving(&with("0.0.0.0"), &with("127.0.0.1")).is_none());
    }

    #[test]
    fn a_keyring_that_cannot_keep_a_sign_in_is_said_with_its_reason() {
        let missing = AuthError::Store(StoreError::Unavailable(
            "The name org.freedesktop.secrets was not provided".into(),
        ));
        let before = token_store_error(TOKEN_STORE, &missing);
        assert_eq!(before.code, TOKEN_STORE);
        assert!(
            before
                .message
                .contains("missing or locked (The name org.freedesktop.secrets")
                && !before.message.contains("TETHER_TOKEN_STORE"),
            "{}",
            before.message
        );
        let after = token_store_error(SIGN_IN_HELD, &missing);
        assert!(
            after.message.starts_with("You signed in"),
            "{}",
            after.message
        );
    }

    #[test]
    fn a_changed_pin_reloads_the_catalog_and_other_settings_keep_it() {
        let mut s = DesktopState::new(AgentHost::InProcess, DesktopSettings::default());
        let generation = s.session.generation;
        s.remember_catalog(generation, vec![project()]);
        let mut settings = s.settings.clone();
        settings.terminal = "xterm".into();
        s.settings_saved(settings.clone());
        assert!(s.session.catalog.is_some(), "not a pin: kept");
        let key = AppKey::parse("p1/main/app").unwrap();
        settings.set_pinned(&key, true);
        s.settings_saved(settings);
        assert!(s.session.catalog.is_none(), "its views carry the pins");
        assert!(s.settings.is_pinned(&key));
    }
}
