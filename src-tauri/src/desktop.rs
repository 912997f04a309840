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

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tether_core::access::Access;
use tether_core::agent::{self, AgentClient, AgentError, Bound, Reply, Request, SessionState};
use tether_core::api::{AppName, EnvironmentId, ProjectId};
use tether_core::settings::DesktopSettings;
use tether_core::setup::{self, ShellChoices};
use tether_core::ssh::{Selection, SshUrl};
use tether_core::tunnel::{AppKey, CloseRequest, OpenRequest, TunnelInfo, TunnelState};

use crate::view::*;

/// How long the catalog (projects, environments) is kept before the tray asks again.
const CATALOG_TTL: Duration = Duration::from_secs(300);

/// The profile the app serves: `--profile X`, else `TETHER_PROFILE`, else the settings, else
/// Platform.sh.
fn profile_selector(settings: &DesktopSettings) -> String {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--profile" {
            if let Some(p) = args.next() {
                return p;
            }
        } else if let Some(p) = arg.strip_prefix("--profile=") {
            return p.to_string();
        }
    }
    setup::env_nonempty("TETHER_PROFILE")
        .or_else(|| Some(settings.profile.trim().to_string()).filter(|p| !p.is_empty()))
        .unwrap_or_else(|| "platformsh".to_string())
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
}

pub struct Desktop {
    /// The app's own access: catalog, terminals, sign-in. It tells the agent about sign-ins.
    pub access: Arc<Access>,
    /// How the profile was chosen (`platformsh`, or a profile file's path).
    pub profile_selector: String,
    pub socket: PathBuf,
    /// The headless agent in use (with its pid when known), when the app does not host its own.
    headless_agent: Mutex<Option<Option<u32>>>,
    settings: Mutex<DesktopSettings>,
    user: Mutex<Option<UserView>>,
    catalog: Mutex<Option<(std::time::Instant, Vec<ProjectView>)>>,
    /// What the tray shows now.
    shown: Mutex<Snapshot>,
    /// One sign-in at a time.
    pub signing_in: tokio::sync::Mutex<()>,
    /// Dropped to cancel the sign-in waiting for the browser.
    browser_sign_in: Mutex<Option<tokio::sync::mpsc::UnboundedSender<tauri::Url>>>,
    /// Counts session changes, so a catalog loaded for an earlier session is not kept.
    generation: std::sync::atomic::AtomicU64,
    /// Asks the tray to rebuild from the agent's state (one rebuild at a time, in its loop).
    pub refresh_wanted: tokio::sync::Notify,
}

/// Starts the agent in this process, or finds the one already running for the profile.
/// Runs on the app's async runtime (the agent's socket is a Tokio listener).
pub fn start() -> Result<Desktop, String> {
    let paths = setup::paths().map_err(|e| e.to_string())?;
    let settings = DesktopSettings::load(&paths);
    let selector = profile_selector(&settings);
    let own = access_for(&selector, &settings, false)?;
    let socket = agent::socket_path(own.paths(), own.profile());
    let headless_agent = match host(own) {
        Ok(()) => None,
        Err(AgentError::AlreadyRunning { pid, .. }) => Some(pid),
        Err(e) => return Err(e.to_string()),
    };
    Ok(Desktop {
        access: Arc::new(access_for(&selector, &settings, true)?),
        profile_selector: selector,
        socket,
        headless_agent: Mutex::new(headless_agent),
        settings: Mutex::new(settings),
        user: Mutex::new(None),
        catalog: Mutex::new(None),
        shown: Mutex::new(Snapshot::default()),
        signing_in: tokio::sync::Mutex::new(()),
        browser_sign_in: Mutex::new(None),
        generation: std::sync::atomic::AtomicU64::new(0),
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

    pub fn settings(&self) -> DesktopSettings {
        lock(&self.settings).clone()
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
        if let Some(u) = lock(&self.user).clone() {
            return Some(u);
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
        *lock(&self.user) = Some(view.clone());
        Some(view)
    }

    /// Puts Tether's block in `~/.ssh/config` when the settings say to manage it and it is not
    /// there, so that plain `ssh`, `scp`, `rsync` and `git` work (after a sign-in, at start).
    pub fn wire_ssh_config(&self) {
        if self.settings().manage_ssh_config && !self.access.ssh_config_installed() {
            if let Err(e) = self.access.install_ssh_config() {
                tracing::warn!(error = %e, "cannot add Tether's block to ~/.ssh/config");
            }
        }
    }

    /// Forgets what belongs to the last session (after a sign-in or a sign-out).
    /// A load that started before is not kept (see [`Desktop::catalog`]).
    pub async fn session_changed(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        *lock(&self.user) = None;
        *lock(&self.catalog) = None;
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
            SessionView::SignedOut => None,
            _ => self.user().await,
        };
        let headless = *lock(&self.headless_agent);
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
            headless_agent: headless.flatten(),
            using_headless_agent: headless.is_some(),
            reopenable_tunnels: status.reopenable,
        })
    }

    pub async fn tunnel_infos(&self) -> Result<Vec<TunnelInfo>, IpcError> {
        match self.request(&Request::TunnelList).await? {
            Reply::Tunnels { tunnels } => Ok(tunnels),
            other => Err(IpcError::other(format!("unexpected reply {other:?}"))),
        }
    }

    pub async fn tunnels(&self) -> Result<Vec<TunnelView>, IpcError> {
        Ok(self.tunnel_infos().await?.iter().map(tunnel_view).collect())
    }

    /// What the tray and the window show now (whether renewal is failing is known from the
    /// agent's events, which the tray follows).
    pub async fn snapshot(&self, renewal_failing: bool) -> Snapshot {
        let account = self.account().await.ok();
        let infos = self.tunnel_infos().await.unwrap_or_default();
        let signed_in = account
            .as_ref()
            .is_some_and(|a| a.session == SessionView::Active);
        let catalog = if signed_in {
            self.cached_catalog().await
        } else {
            None
        };
        Snapshot {
            account,
            tunnels_down: infos.iter().filter(|t| t.state.is_down()).count(),
            tunnels: infos.iter().map(tunnel_view).collect(),
            renewal_failing,
            catalog,
        }
    }

    /// The catalog as last loaded, loaded when older than [`CATALOG_TTL`]; `None` when it
    /// cannot be loaded (the tray then offers Browse… only).
    async fn cached_catalog(&self) -> Option<Vec<ProjectView>> {
        let stale = match lock(&self.catalog).as_ref() {
            Some((at, c)) if at.elapsed() < CATALOG_TTL => return Some(c.clone()),
            Some((_, c)) => Some(c.clone()),
            None => None,
        };
        match self.catalog(false).await {
            Ok(c) => Some(c),
            // Offline: the last listing stays, and is tried again after the TTL.
            Err(_) => {
                let stale = stale?;
                *lock(&self.catalog) = Some((std::time::Instant::now(), stale.clone()));
                Some(stale)
            }
        }
    }

    /// Projects, their environments and each running environment's apps.
    pub async fn catalog(&self, refresh: bool) -> Result<Vec<ProjectView>, IpcError> {
        let generation = self.generation.load(std::sync::atomic::Ordering::SeqCst);
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
        if self.generation.load(std::sync::atomic::Ordering::SeqCst) == generation {
            *lock(&self.catalog) = Some((std::time::Instant::now(), out.clone()));
        }
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
    pub fn used(&self, key: &AppKey) {
        let mut s = lock(&self.settings);
        s.used(key);
        if let Err(e) = s.save(self.access.paths()) {
            tracing::warn!(error = %e, "cannot remember the recent app");
        }
    }

    pub fn set_pinned(&self, key: &AppKey, pinned: bool) -> Result<(), IpcError> {
        let mut s = lock(&self.settings);
        s.set_pinned(key, pinned);
        s.save(self.access.paths()).map_err(|e| IpcError::of(&e))?;
        drop(s);
        *lock(&self.catalog) = None;
        Ok(())
    }

    /// Checks and saves settings, and applies what applies now (the `~/.ssh/config` block, then
    /// `apply` for the rest, such as start at login) before saving, so the file never says what
    /// did not happen; the profile, terminal, bind address and inactivity limit are read where
    /// they are used or at the next start.
    pub fn save_settings(
        &self,
        mut new: DesktopSettings,
        apply: impl FnOnce(&DesktopSettings) -> Result<(), IpcError>,
    ) -> Result<DesktopSettings, IpcError> {
        let mut current = lock(&self.settings);
        // Pins and recent apps are not the settings page's to change.
        new.pinned = current.pinned.clone();
        new.recent = current.recent.clone();
        new.terminal = new.terminal.trim().to_string();
        new.bind_address = new.bind_address.trim().to_string();
        new.check().map_err(|e| IpcError::of(&e))?;
        if new.manage_ssh_config != current.manage_ssh_config {
            let edit = if new.manage_ssh_config {
                self.access.install_ssh_config()
            } else {
                self.access.remove_ssh_config()
            };
            edit.map_err(|e| IpcError::of(&e))?;
        }
        apply(&new)?;
        new.save(self.access.paths())
            .map_err(|e| IpcError::of(&e))?;
        *current = new.clone();
        Ok(new)
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
        &self,
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
                self.used(key);
                Ok(OpenedView {
                    tunnels: report.tunnels.iter().map(tunnel_view).collect(),
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
                tunnels: report.tunnels.iter().map(tunnel_view).collect(),
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

    pub async fn open_terminal(&self, key: &AppKey) -> Result<(), IpcError> {
        let url = self.address(key).await?;
        let configured = self.settings().terminal;
        let terminal = tether_core::ssh::terminal::TerminalSettings {
            configured: Some(configured).filter(|c| !c.is_empty()),
            env_terminal: std::env::var("TERMINAL").ok(),
        };
        let path = std::env::var_os("PATH");
        // A usable certificate first, so the terminal does not open on a refusal.
        self.request(&Request::Ready { new: false }).await?;
        self.access
            .open_terminal(&url, None, &terminal, path.as_deref())
            .map_err(|e| IpcError::of(&e))?;
        self.used(key);
        Ok(())
    }

    /// The terminal the settings page offers when none is set.
    pub fn detected_terminal(&self) -> String {
        let settings = tether_core::ssh::terminal::TerminalSettings {
            configured: None,
            env_terminal: std::env::var("TERMINAL").ok(),
        };
        let path = std::env::var_os("PATH");
        tether_core::ssh::terminal::launch_for(&settings, &["ssh".into()], |n| {
            tether_core::ssh::terminal::find_on_path(path.as_deref(), n)
        })
        .map(|l| l.program)
        .unwrap_or_else(|_| "none found".into())
    }

    /// Records the handle that cancels a sign-in waiting for the browser.
    pub fn set_browser_sign_in(&self, cancel: tokio::sync::mpsc::UnboundedSender<tauri::Url>) {
        *lock(&self.browser_sign_in) = Some(cancel);
    }

    /// Cancels the sign-in waiting for the browser, if there is one; says whether there was.
    pub fn take_browser_sign_in(&self) -> bool {
        lock(&self.browser_sign_in).take().is_some()
    }

    pub fn set_snapshot(&self, snapshot: Snapshot) {
        *lock(&self.shown) = snapshot;
    }

    /// What the tray shows now.
    pub fn shown(&self) -> Snapshot {
        lock(&self.shown).clone()
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
                *lock(&self.headless_agent) = None;
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
}
