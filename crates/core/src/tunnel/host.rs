//! The tunnel host: local listeners for an app's relationships, all carried by one SSH
//! connection per app (a [`Link`]) as `direct-tcpip` channels. The agent runs one host for the
//! profile (so every shell sees the same tunnels); `tunnel:single` runs its own for one
//! tunnel in the foreground.
//!
//! A listener stays bound while its connection is down: a new local connection waits for the
//! link to come back (up to [`WAIT_FOR_LINK`]) instead of being refused, so a client that
//! retries, or simply connects during a short outage, gets through. Closing a tunnel ends its
//! connections and frees its port before [`TunnelHost::close`] returns.
//!
//! Each app has a lock of its own: opening an app's tunnels (or reading its relationships)
//! waits only for other work on the same app, never for another app's gateway, and closing
//! takes no lock at all, so it answers at once whatever a gateway does.
//!
//! Bytes through a tunnel are not a person's activity: a database client polling through a
//! tunnel must not keep a session alive for ever. Commands, the ssh hook and the desktop's
//! actions are, and they record it themselves.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, info_span, warn, Instrument};

use super::link::{Carrier, Link, LinkState};
use super::ports::{self, PortBook, PortChoice, PortError};
use super::{
    Endpoint, EndpointId, LocalPort, LocalRelationships, Relationships, RelationshipsError,
};
use crate::access::{Access, AccessError};
use crate::agent::protocol::TunnelEventState;
use crate::api::{AppName, EnvironmentId, ProjectId};
use crate::cert::Event;
use crate::problem::{Classify, Problem};
use crate::ssh::connect::{tunnel_config, Client};
use crate::ssh::Selection;

/// How long a new local connection waits for the app's SSH connection to come (back) up.
pub const WAIT_FOR_LINK: Duration = Duration::from_secs(10);
/// The buffer a tunnelled connection reads its local side into.
const COPY_BUFFER: usize = 16 * 1024;
/// How long reading the relationships may take.
const RELATIONSHIPS_TIMEOUT: Duration = Duration::from_secs(30);
/// After this many connections at once, the memory they used is given back to the system when
/// the last one ends (see [`crate::memory`]).
const BURST: usize = 32;
/// How long after a burst's last connection its memory is given back.
const RELEASE_DELAY: Duration = Duration::from_millis(500);
/// A channel that takes longer than this to open makes the connection prove that the gateway
/// still answers ([`Carrier::probe`]): the arrival of a local connection is when a network
/// that went silent is noticed.
const PROBE_AFTER: Duration = Duration::from_secs(1);

/// The app a tunnel belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AppKey {
    pub project: ProjectId,
    pub environment: EnvironmentId,
    pub app: AppName,
}

impl AppKey {
    /// Reads `project/environment/app`.
    pub fn parse(s: &str) -> Result<AppKey, crate::api::IdError> {
        let bad = || crate::api::IdError {
            what: "app",
            value: s.chars().take(80).collect(),
            rule: "write it as project/environment/app",
        };
        let (project, rest) = s.split_once('/').ok_or_else(bad)?;
        let (environment, app) = rest.split_once('/').ok_or_else(bad)?;
        Ok(AppKey {
            project: ProjectId::parse(project)?,
            environment: EnvironmentId::parse(environment)?,
            app: AppName::parse(app)?,
        })
    }
}

impl std::fmt::Display for AppKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.project, self.environment, self.app)
    }
}

/// Why tunnels close when the session ends, as their closed state says it.
pub const SIGNED_OUT: &str = "signed out";

/// Where a tunnel stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TunnelState {
    /// Listening; the app's connection is being made for the first time.
    Opening,
    Open,
    /// Listening; the app's connection dropped and is being made again.
    Reconnecting {
        attempt: u32,
        error: String,
    },
    /// Listening, but the platform wants a new sign-in (MFA, SSO…) before it lets us in.
    Failed {
        reason: String,
    },
    Closed,
}

impl std::fmt::Display for TunnelState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TunnelState::Opening => f.write_str("opening"),
            TunnelState::Open => f.write_str("open"),
            TunnelState::Reconnecting { attempt, error } => {
                write!(f, "reconnecting (attempt {attempt}: {error})")
            }
            TunnelState::Failed { reason } => write!(f, "failed: {reason}"),
            TunnelState::Closed => f.write_str("closed"),
        }
    }
}

impl TunnelState {
    fn of(link: &LinkState) -> TunnelState {
        match link {
            LinkState::Connecting {
                attempt: 0,
                error: None,
                ..
            } => TunnelState::Opening,
            LinkState::Connecting { attempt, error, .. } => TunnelState::Reconnecting {
                attempt: *attempt,
                error: error.clone().unwrap_or_default(),
            },
            LinkState::Up(_) => TunnelState::Open,
            LinkState::NeedsSignIn { reason } => TunnelState::Failed {
                reason: reason.clone(),
            },
            LinkState::Stopped => TunnelState::Closed,
        }
    }

    /// Whether the tunnel is not doing its job (for the tray's attention icon).
    pub fn is_down(&self) -> bool {
        matches!(
            self,
            TunnelState::Reconnecting { .. } | TunnelState::Failed { .. }
        )
    }
}

/// A tunnel's counters since it opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Local connections accepted.
    pub connections: u64,
    /// Of which still open.
    pub active: u64,
    /// Of which could not be carried (the service refused, the link stayed down).
    pub failed: u64,
    /// Bytes from local clients to the service.
    pub bytes_sent: u64,
    /// Bytes from the service to local clients.
    pub bytes_received: u64,
}

#[derive(Default)]
struct LiveCounters {
    connections: AtomicU64,
    active: AtomicU64,
    failed: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
}

impl LiveCounters {
    fn snapshot(&self) -> Counters {
        Counters {
            connections: self.connections.load(Ordering::Relaxed),
            active: self.active.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
        }
    }
}

/// What a shell sees of a tunnel. The URL and fields carry the service's credentials (as
/// the platform gives them to the app); `Debug` leaves them out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelInfo {
    pub id: u64,
    #[serde(flatten)]
    pub app: AppKey,
    pub relationship: String,
    pub index: usize,
    pub service: Option<String>,
    pub service_type: Option<String>,
    /// What the tunnel reaches, as seen from the app (`database.internal:5432`).
    pub remote: String,
    pub local: SocketAddr,
    /// The URL to reach the service through the tunnel.
    pub url: String,
    /// The endpoint as seen through the tunnel (`tunnel:info`).
    pub fields: Map<String, Value>,
    #[serde(flatten)]
    pub state: TunnelState,
    pub counters: Counters,
    /// Unix seconds.
    pub opened_at: u64,
    /// Why the last local connection could not be carried, if one could not.
    pub last_error: Option<String>,
    /// The port this tunnel had last time, when another process held it as it opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub displaced: Option<ports::Displaced>,
}

impl std::fmt::Debug for TunnelInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunnelInfo")
            .field("id", &self.id)
            .field("app", &self.app)
            .field("relationship", &self.relationship)
            .field("index", &self.index)
            .field("remote", &self.remote)
            .field("local", &self.local)
            .field("state", &self.state)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl TunnelInfo {
    /// The endpoint's id (`database`, `database.1`).
    pub fn endpoint_id(&self) -> EndpointId {
        EndpointId::new(self.relationship.clone(), self.index)
    }
}

/// The `PLATFORM_RELATIONSHIPS` of these tunnels, for local use (`tunnel:info`), whatever
/// apps they belong to, merged into one object as the official client merges them
/// (`legacy/src/Command/Tunnel/TunnelInfoCommand.php`, `execute`). Its tunnels are listed in
/// the order they were opened (its `tunnel-info.json` appends each new one); ids here are
/// given in that order, so that is the order used.
pub fn local_relationships<'a>(
    tunnels: impl IntoIterator<Item = &'a TunnelInfo>,
) -> LocalRelationships {
    let mut sorted: Vec<&TunnelInfo> = tunnels.into_iter().collect();
    sorted.sort_by_key(|t| t.id);
    LocalRelationships::from_endpoints(
        sorted
            .into_iter()
            .map(|t| (t.endpoint_id(), t.fields.clone())),
    )
}

/// What to open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenRequest {
    #[serde(flatten)]
    pub app: AppKey,
    /// Relationship names (all of them when empty); `name.N` picks one endpoint.
    #[serde(default)]
    pub relationships: Vec<String>,
    /// The local port, for a single tunnel.
    #[serde(default)]
    pub port: Option<u16>,
    /// The local address to listen on (loopback when absent).
    #[serde(default)]
    pub bind: Option<IpAddr>,
}

/// What `open` did: the tunnels now open for the request (new or already open), and the
/// endpoints that could not be opened with the reason (the others are unaffected).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenReport {
    pub tunnels: Vec<TunnelInfo>,
    pub failed: Vec<OpenFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenFailure {
    pub relationship: String,
    pub message: String,
}

/// Which tunnels to close.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseRequest {
    /// Only tunnels of this project / environment / app (each optional).
    #[serde(default)]
    pub project: Option<ProjectId>,
    #[serde(default)]
    pub environment: Option<EnvironmentId>,
    #[serde(default)]
    pub app: Option<AppName>,
    /// Only these relationships (`name` or `name.N`).
    #[serde(default)]
    pub relationships: Vec<String>,
}

impl CloseRequest {
    pub fn matches(&self, t: &TunnelInfo) -> bool {
        self.project.as_ref().is_none_or(|p| *p == t.app.project)
            && self
                .environment
                .as_ref()
                .is_none_or(|e| *e == t.app.environment)
            && self.app.as_ref().is_none_or(|a| *a == t.app.app)
            && (self.relationships.is_empty()
                || self
                    .relationships
                    .iter()
                    .any(|r| names_endpoint(r, &t.relationship, t.index)))
    }
}

/// Whether `wanted` (`name` or `name.N`) names this endpoint.
fn names_endpoint(wanted: &str, relationship: &str, index: usize) -> bool {
    wanted == relationship || EndpointId::parse(wanted) == EndpointId::new(relationship, index)
}

#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    Relationships(#[from] RelationshipsError),
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("cannot read the relationships of {app}: {message}")]
    Read { app: AppKey, message: String },
    #[error("cannot reach {app}: {reason}")]
    Unreachable { app: AppKey, reason: String },
    #[error("{app} asks for a stronger sign-in before its tunnels can open: {message}")]
    StepUp {
        app: AppKey,
        step_up: crate::api::StepUp,
        message: String,
    },
    #[error("{app} needs a new sign-in before its tunnels can open: {reason}")]
    NeedsSignIn { app: AppKey, reason: String },
    #[error("--port chooses the port of one tunnel, but {count} would open: name one relationship with -r")]
    PortForMany { count: usize },
    #[error("{relationship} is already open on port {port}: close it first to move it")]
    AlreadyOpen { relationship: String, port: u16 },
    #[error("{app} has no relationships: there is nothing to tunnel to")]
    NoRelationships { app: AppKey },
}

impl TunnelError {
    /// The stronger authentication the platform asked for, when that is the problem.
    pub fn step_up(&self) -> Option<crate::api::StepUp> {
        match self {
            TunnelError::StepUp { step_up, .. } => Some(step_up.clone()),
            TunnelError::Access(e) => e.step_up(),
            _ => None,
        }
    }
}

impl Classify for TunnelError {
    fn problem(&self) -> Problem {
        match self {
            TunnelError::Access(e) => e.problem(),
            TunnelError::Relationships(e) => e.problem(),
            TunnelError::Port(e) => e.problem(),
            TunnelError::Read { .. } => Problem::Other,
            TunnelError::Unreachable { .. } => Problem::Unreachable,
            TunnelError::NeedsSignIn { .. } => Problem::SignIn,
            TunnelError::StepUp { step_up, .. } => Problem::StepUp((&step_up.kind).into()),
            TunnelError::PortForMany { .. }
            | TunnelError::AlreadyOpen { .. }
            | TunnelError::NoRelationships { .. } => Problem::Usage,
        }
    }
}

/// One open tunnel.
struct Tunnel {
    id: u64,
    app: AppKey,
    endpoint: Endpoint,
    local: SocketAddr,
    opened_at: u64,
    counters: LiveCounters,
    last_error: Mutex<Option<String>>,
    /// The state last published as an event.
    announced: Mutex<TunnelState>,
    closed: watch::Sender<bool>,
    serving: Mutex<Option<JoinHandle<()>>>,
    displaced: Option<ports::Displaced>,
}

impl Tunnel {
    fn info(&self, link: &LinkState) -> TunnelInfo {
        let port = LocalPort::new(self.local.port());
        let state = if *self.closed.borrow() {
            TunnelState::Closed
        } else {
            TunnelState::of(link)
        };
        TunnelInfo {
            id: self.id,
            app: self.app.clone(),
            relationship: self.endpoint.relationship().to_string(),
            index: self.endpoint.index(),
            service: self.endpoint.service().map(str::to_string),
            service_type: self.endpoint.service_type().map(str::to_string),
            remote: format!("{}:{}", self.endpoint.host(), self.endpoint.port()),
            local: self.local,
            url: port
                .map(|p| {
                    self.endpoint
                        .local_url_at(self.local.ip(), p)
                        .expose()
                        .to_string()
                })
                .unwrap_or_default(),
            fields: port
                .map(|p| self.endpoint.local_fields_at(self.local.ip(), p))
                .unwrap_or_default(),
            state,
            counters: self.counters.snapshot(),
            opened_at: self.opened_at,
            last_error: self.last_error.lock().ok().and_then(|e| e.clone()),
            displaced: self.displaced.clone(),
        }
    }

    fn note_error(&self, message: String) {
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some(message);
        }
    }
}

/// An app's connection and its tunnels.
struct AppTunnels {
    link: Arc<Link>,
    supervisor: JoinHandle<()>,
    tunnels: Vec<Arc<Tunnel>>,
}

/// What the relationships cache is keyed by, as the official client keys it
/// (`legacy/src/Model/Host/RemoteHost.php`, `getCacheKey`: the SSH URL and the environment's
/// head commit): a redeploy gives a new head commit, so the next read asks the app again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    url: crate::ssh::SshUrl,
    head: String,
}

struct Inner {
    access: Arc<Access>,
    apps: Mutex<BTreeMap<AppKey, AppTunnels>>,
    cache: Mutex<HashMap<CacheKey, Relationships>>,
    ports: PortBook,
    config: Arc<client::Config>,
    next_id: AtomicU64,
    /// One lock per app, held while its tunnels open or its relationships are read, so that
    /// two shells opening the same app at once do not both bind it, and a read does not drop
    /// the connection an open is about to use.
    app_locks: Mutex<HashMap<AppKey, Arc<tokio::sync::Mutex<()>>>>,
}

/// The tunnels of one profile. Cheap to clone; every clone is the same host.
#[derive(Clone)]
pub struct TunnelHost {
    inner: Arc<Inner>,
}

impl TunnelHost {
    /// A host for `access`'s profile. Must be called within a Tokio runtime: it follows the
    /// session's events to retry tunnels that waited for a sign-in.
    pub fn new(access: Arc<Access>) -> TunnelHost {
        let ports = PortBook::with_clock(
            access
                .paths()
                .data_dir
                .join("tunnels")
                .join(format!("{}.ports.json", access.profile().name)),
            access.session().clock().clone(),
        );
        let inner = Arc::new(Inner {
            access,
            apps: Mutex::new(BTreeMap::new()),
            cache: Mutex::new(HashMap::new()),
            ports,
            config: Arc::new(tunnel_config()),
            next_id: AtomicU64::new(1),
            app_locks: Mutex::new(HashMap::new()),
        });
        let mut events = inner.access.keeper().subscribe();
        let weak = Arc::downgrade(&inner);
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(Event::SignedIn | Event::Renewed { .. }) => {}
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
                let Some(inner) = weak.upgrade() else { break };
                for app in inner.lock_apps().values() {
                    app.link.wake();
                }
            }
        });
        TunnelHost { inner }
    }

    /// Every tunnel, by app then relationship.
    pub fn list(&self) -> Vec<TunnelInfo> {
        let apps = self.inner.lock_apps();
        apps.values()
            .flat_map(|a| {
                let link = a.link.state();
                a.tunnels
                    .iter()
                    .map(move |t| t.info(&link))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The relationships of an app's current deployment, read over SSH once per deployment.
    pub async fn relationships(&self, app: &AppKey) -> Result<Relationships, TunnelError> {
        let _serial = self.inner.lock_app(app).await;
        let url = self.url(app).await?;
        let read = self.read_relationships(app, url).await;
        self.drop_link_if_unused(app).await;
        read
    }

    /// [`TunnelHost::relationships`], leaving the connection that read them for tunnels to use.
    async fn read_relationships(
        &self,
        app: &AppKey,
        url: crate::ssh::SshUrl,
    ) -> Result<Relationships, TunnelError> {
        // The head commit must be the platform's current one, not one the catalog kept for
        // a minute: a redeploy in that minute would go unnoticed. The SSH read it can save
        // costs more than the API call.
        self.inner.access.catalog().refresh().await;
        let env = self
            .inner
            .access
            .catalog()
            .environment(&app.project, &app.environment)
            .await
            .map_err(AccessError::from)?;
        // Without a head commit there is no telling a redeploy apart: read every time.
        let key = env.head_commit.clone().map(|head| CacheKey {
            url: url.clone(),
            head,
        });
        if let Some(cached) = key.as_ref().and_then(|key| {
            self.inner
                .cache
                .lock()
                .ok()
                .and_then(|c| c.get(key).cloned())
        }) {
            return Ok(cached);
        }
        // Over the app's tunnel connection, made for the purpose when it has none yet.
        self.ensure_link(app, url);
        let link = self
            .inner
            .lock_apps()
            .get(app)
            .map(|a| a.link.clone())
            .ok_or_else(|| TunnelError::Unreachable {
                app: app.clone(),
                reason: "its connection went away".into(),
            })?;
        let carrier = tokio::time::timeout(WAIT_FOR_LINK, link.up())
            .await
            .ok()
            .flatten()
            .ok_or_else(|| match link.state() {
                LinkState::NeedsSignIn { reason } => TunnelError::NeedsSignIn {
                    app: app.clone(),
                    reason,
                },
                state => TunnelError::Unreachable {
                    app: app.clone(),
                    reason: state.why_down(),
                },
            })?;
        // A connection that looks up may have gone silent: ask before waiting on a command.
        if !carrier.probe().await {
            link.lost(&carrier);
            return Err(TunnelError::Unreachable {
                app: app.clone(),
                reason: "the gateway stopped answering".into(),
            });
        }
        let output = run_on(&carrier.handle, READ_RELATIONSHIPS)
            .await
            .map_err(|message| self.refused(app, message))?;
        let value = between_markers(&output).ok_or_else(|| TunnelError::Read {
            app: app.clone(),
            message: "the app's answer has no relationships between the markers (its login \
                      scripts may have exited early, or its shell is not POSIX): check that \
                      `echo -n` works in the app's shell, and report it if it does"
                .into(),
        })?;
        let relationships = Relationships::decode(value)?;
        if let (Some(key), Ok(mut cache)) = (key, self.inner.cache.lock()) {
            // Older deployments of this app are of no more use.
            cache.retain(|k, _| k.url != key.url);
            cache.insert(key, relationships.clone());
        }
        Ok(relationships)
    }

    /// Why reading the relationships failed: the gateway's refusal when it wants a stronger
    /// sign-in (an MFA-enforcing organization), as the step-up it names.
    fn refused(&self, app: &AppKey, message: String) -> TunnelError {
        match self.inner.access.after_refusal(&message, false) {
            crate::access::AfterRefusal::SignIn(step_up) => TunnelError::StepUp {
                app: app.clone(),
                step_up,
                message,
            },
            _ => TunnelError::Read {
                app: app.clone(),
                message,
            },
        }
    }

    async fn url(&self, app: &AppKey) -> Result<crate::ssh::SshUrl, TunnelError> {
        let selection = Selection {
            app: Some(app.app.clone()),
            ..Selection::default()
        };
        Ok(self
            .inner
            .access
            .address(&app.project, &app.environment, &selection)
            .await?)
    }

    /// Opens tunnels to an app's relationships (all, or those named). Returns once every
    /// listener accepts. Endpoints that cannot be opened are reported; the others open.
    pub async fn open(&self, req: &OpenRequest) -> Result<OpenReport, TunnelError> {
        let app = &req.app;
        let _serial = self.inner.lock_app(app).await;
        let url = self.url(app).await?;
        self.ensure_link(app, url.clone());
        let relationships = match self.read_relationships(app, url).await {
            Ok(r) => r,
            Err(e) => {
                self.drop_link_if_unused(app).await;
                return Err(e);
            }
        };
        let mut failed: Vec<OpenFailure> = Vec::new();
        let mut wanted: Vec<&Endpoint> = Vec::new();
        if req.relationships.is_empty() {
            if relationships.is_empty() {
                self.drop_link_if_unused(app).await;
                return Err(TunnelError::NoRelationships { app: app.clone() });
            }
            wanted.extend(relationships.endpoints());
            failed.extend(relationships.problems().map(|p| OpenFailure {
                relationship: p.id(),
                message: p.to_string(),
            }));
        } else {
            for name in &req.relationships {
                let id = EndpointId::parse(name);
                let found = if name.contains('.') && relationships.get(name).is_err() {
                    relationships.endpoint(&id).map(|e| vec![e])
                } else {
                    relationships.get(name).and_then(|r| {
                        failed.extend(r.problems().iter().map(|p| OpenFailure {
                            relationship: p.id(),
                            message: p.to_string(),
                        }));
                        if r.endpoints().is_empty() {
                            // No endpoint decoded: say why.
                            r.endpoint(0).map(|e| vec![e])
                        } else {
                            Ok(r.endpoints().iter().collect())
                        }
                    })
                };
                match found {
                    Ok(endpoints) => wanted.extend(endpoints),
                    Err(e) if req.relationships.len() == 1 => {
                        self.drop_link_if_unused(app).await;
                        return Err(e.into());
                    }
                    Err(e) => failed.push(OpenFailure {
                        relationship: name.clone(),
                        message: e.to_string(),
                    }),
                }
            }
        }
        wanted.dedup_by(|a, b| a.id() == b.id());
        let port = req.port.and_then(LocalPort::new);
        if port.is_some() && wanted.len() > 1 {
            self.drop_link_if_unused(app).await;
            return Err(TunnelError::PortForMany {
                count: wanted.len(),
            });
        }
        let ip = req.bind.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        if !ip.is_loopback() {
            warn!(%ip, "tunnels listen beyond this machine: anyone who can reach {ip} can use them");
        }
        let mut tunnels = Vec::new();
        for endpoint in wanted {
            if let Some(existing) = self.find(app, endpoint.id()) {
                match port {
                    Some(p) if p.get() != existing.local.port() => {
                        return Err(TunnelError::AlreadyOpen {
                            relationship: endpoint.id().to_string(),
                            port: existing.local.port(),
                        })
                    }
                    _ => {
                        tunnels.push(existing.info(&self.link_state(app)));
                        continue;
                    }
                }
            }
            match self.start_tunnel(app, endpoint, ip, port) {
                Ok(info) => tunnels.push(info),
                Err(e @ PortError::Busy { .. }) if port.is_some() => {
                    self.drop_link_if_unused(app).await;
                    return Err(e.into());
                }
                Err(e) => failed.push(OpenFailure {
                    relationship: endpoint.id().to_string(),
                    message: e.to_string(),
                }),
            }
        }
        self.drop_link_if_unused(app).await;
        Ok(OpenReport { tunnels, failed })
    }

    fn find(&self, app: &AppKey, id: &EndpointId) -> Option<Arc<Tunnel>> {
        self.inner
            .lock_apps()
            .get(app)?
            .tunnels
            .iter()
            .find(|t| t.endpoint.id() == id)
            .cloned()
    }

    fn link_state(&self, app: &AppKey) -> LinkState {
        self.inner
            .lock_apps()
            .get(app)
            .map(|a| a.link.state())
            .unwrap_or(LinkState::Stopped)
    }

    /// Starts the app's connection if it has none.
    fn ensure_link(&self, app: &AppKey, url: crate::ssh::SshUrl) {
        let mut apps = self.inner.lock_apps();
        if apps.contains_key(app) {
            return;
        }
        let access = &self.inner.access;
        let trust = crate::ssh::trust::HostKeyPolicy::for_profile(
            access.profile(),
            access.paths(),
            access.session().clock().clone(),
        );
        let gateway = crate::ssh::connect::Endpoint::for_profile(access.profile(), &url, trust);
        let link = Link::new(url, gateway, self.inner.config.clone());
        let weak = Arc::downgrade(&self.inner);
        let key = app.clone();
        let span = info_span!("tunnels", app = %app);
        let supervisor = tokio::spawn(
            link.clone()
                .supervise(self.inner.access.clone(), move || {
                    if let Some(inner) = weak.upgrade() {
                        inner.announce(&key);
                    }
                })
                .instrument(span),
        );
        apps.insert(
            app.clone(),
            AppTunnels {
                link,
                supervisor,
                tunnels: Vec::new(),
            },
        );
    }

    /// Ends an app's connection when it carries no tunnel (after a failed open).
    async fn drop_link_if_unused(&self, app: &AppKey) {
        let removed = {
            let mut apps = self.inner.lock_apps();
            match apps.get(app) {
                Some(a) if a.tunnels.is_empty() => apps.remove(app),
                _ => None,
            }
        };
        if let Some(a) = removed {
            a.link.stop();
            let _ = a.supervisor.await;
        }
    }

    fn start_tunnel(
        &self,
        app: &AppKey,
        endpoint: &Endpoint,
        ip: IpAddr,
        port: Option<LocalPort>,
    ) -> Result<TunnelInfo, PortError> {
        let book_key = format!("{app}/{}", endpoint.id());
        let choice = match (port, self.inner.ports.get(&book_key)) {
            (Some(p), _) => PortChoice::Exact(p),
            (None, Some(p)) => PortChoice::Prefer(p),
            (None, None) => PortChoice::Any,
        };
        let ports::Bound {
            listener,
            port,
            displaced,
        } = ports::bind(ip, choice, &self.inner.ports.others(&book_key))?;
        if let Some(d) = &displaced {
            warn!(app = %app, relationship = %endpoint.id(), old = d.port, holder = ?d.holder, new = port.get(), "the tunnel's remembered port is held by another process");
        }
        self.inner.ports.remember(&book_key, port);
        let tunnel = Arc::new(Tunnel {
            id: self.inner.next_id.fetch_add(1, Ordering::Relaxed),
            app: app.clone(),
            endpoint: endpoint.clone(),
            local: SocketAddr::new(ip, port.get()),
            opened_at: self.inner.access.session().clock().unix(),
            counters: LiveCounters::default(),
            last_error: Mutex::new(None),
            announced: Mutex::new(TunnelState::Closed),
            closed: watch::channel(false).0,
            serving: Mutex::new(None),
            displaced,
        });
        let mut apps = self.inner.lock_apps();
        let Some(entry) = apps.get_mut(app) else {
            return Err(PortError::Bind {
                addr: tunnel.local,
                message: "the app's connection went away".into(),
            });
        };
        let span =
            info_span!("tunnel", app = %app, relationship = %endpoint.id(), port = port.get());
        let serving = tokio::spawn(
            serve(
                tunnel.clone(),
                listener,
                entry.link.clone(),
                Arc::downgrade(&self.inner),
            )
            .instrument(span),
        );
        if let Ok(mut s) = tunnel.serving.lock() {
            *s = Some(serving);
        }
        entry.tunnels.push(tunnel.clone());
        let info = tunnel.info(&entry.link.state());
        drop(apps);
        info!(app = %app, relationship = %endpoint.id(), local = %tunnel.local, remote = %info.remote, "tunnel open");
        self.inner.announce(app);
        Ok(info)
    }

    /// Closes the tunnels `req` selects: their connections end and their ports are free when
    /// this returns. An app left without tunnels loses its SSH connection.
    pub async fn close(&self, req: &CloseRequest) -> Vec<TunnelInfo> {
        self.close_because(req, None).await
    }

    /// Closes every tunnel because the session ended (whatever ended it): the ports are freed,
    /// the links dropped, and each tunnel is announced `closed (signed out)`.
    pub async fn close_all_signed_out(&self) -> Vec<TunnelInfo> {
        self.close_because(&CloseRequest::default(), Some(SIGNED_OUT))
            .await
    }

    async fn close_because(&self, req: &CloseRequest, why: Option<&str>) -> Vec<TunnelInfo> {
        // No lock: an open in progress for an app finds its connection gone if this closes
        // it, and says so; closing never waits for a gateway.
        let mut closing: Vec<Arc<Tunnel>> = Vec::new();
        let mut idle_links = Vec::new();
        {
            let mut apps = self.inner.lock_apps();
            let mut emptied = Vec::new();
            let everything = *req == CloseRequest::default();
            for (key, app) in apps.iter_mut() {
                let link = app.link.state();
                let before = app.tunnels.len();
                app.tunnels.retain(|t| {
                    if req.matches(&t.info(&link)) {
                        closing.push(t.clone());
                        false
                    } else {
                        true
                    }
                });
                // An app whose tunnels are being opened has none yet: its connection is left
                // to that open unless this closes everything.
                let touched = app.tunnels.len() < before;
                if app.tunnels.is_empty() && (touched || everything) {
                    emptied.push(key.clone());
                }
            }
            for key in emptied {
                if let Some(a) = apps.remove(&key) {
                    idle_links.push(a);
                }
            }
        }
        let mut closed = Vec::new();
        for t in closing {
            t.closed.send_replace(true);
            let serving = t.serving.lock().ok().and_then(|mut s| s.take());
            if let Some(serving) = serving {
                let _ = serving.await;
            }
            let info = t.info(&LinkState::Stopped);
            info!(app = %t.app, relationship = %t.endpoint.id(), port = t.local.port(), "tunnel closed");
            self.inner.access.keeper().emit(Event::Tunnel {
                app: t.app.to_string(),
                relationship: t.endpoint.id().to_string(),
                port: t.local.port(),
                state: TunnelEventState::Closed {
                    why: why.map(str::to_string),
                },
                down: false,
                needs_sign_in: false,
            });
            closed.push(info);
        }
        for a in idle_links {
            a.link.stop();
            let _ = a.supervisor.await;
        }
        if !closed.is_empty() {
            crate::memory::release_free_memory();
        }
        closed
    }

    /// Closes every tunnel (sign-out, shutdown).
    pub async fn close_all(&self) -> Vec<TunnelInfo> {
        self.close(&CloseRequest::default()).await
    }
}

impl Inner {
    fn lock_apps(&self) -> std::sync::MutexGuard<'_, BTreeMap<AppKey, AppTunnels>> {
        self.apps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for, and holds, `app`'s own lock.
    async fn lock_app(&self, app: &AppKey) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .app_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(app.clone())
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    /// Publishes the tunnels of `app` whose state changed.
    fn announce(&self, app: &AppKey) {
        let apps = self.lock_apps();
        let Some(entry) = apps.get(app) else { return };
        let link = entry.link.state();
        for t in &entry.tunnels {
            let info = t.info(&link);
            let changed = t.announced.lock().is_ok_and(|mut last| {
                let changed = *last != info.state;
                *last = info.state.clone();
                changed
            });
            if changed && info.state != TunnelState::Closed {
                self.access.keeper().emit(Event::Tunnel {
                    app: app.to_string(),
                    relationship: info.endpoint_id().to_string(),
                    port: info.local.port(),
                    down: info.state.is_down(),
                    needs_sign_in: matches!(info.state, TunnelState::Failed { .. }),
                    state: (&info.state).into(),
                });
            }
        }
    }
}

/// Where the value starts and ends in the app's answer, and the command that prints it so:
/// the official client's (`legacy/src/Service/RemoteEnvVars.php`, `getEnvVar`), so that
/// whatever the app's login scripts print around it is ignored.
const BEGIN_MARKER: &str = "_BEGIN_ENV_VAR_";
const END_MARKER: &str = "_END_ENV_VAR_";
const READ_RELATIONSHIPS: &str =
    "echo -n '_BEGIN_ENV_VAR_'\"$PLATFORM_RELATIONSHIPS\"'_END_ENV_VAR_'";

/// The text between the first begin marker and the first end marker after it; `None` when
/// either is missing.
fn between_markers(output: &[u8]) -> Option<&[u8]> {
    let find = |hay: &[u8], needle: &str| {
        hay.windows(needle.len())
            .position(|w| w == needle.as_bytes())
    };
    let start = find(output, BEGIN_MARKER)? + BEGIN_MARKER.len();
    let rest = &output[start..];
    let end = find(rest, END_MARKER)?;
    Some(&rest[..end])
}

/// Runs a command on an open connection: its standard output, or why it failed (the
/// refusal's text when the gateway refused it).
async fn run_on(handle: &client::Handle<Client>, command: &str) -> Result<Vec<u8>, String> {
    match tokio::time::timeout(
        RELATIONSHIPS_TIMEOUT,
        crate::ssh::exec::run_on(handle, command),
    )
    .await
    {
        Err(_) => Err(format!(
            "no answer within {} s",
            RELATIONSHIPS_TIMEOUT.as_secs()
        )),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(out)) if out.status == Some(0) => Ok(out.stdout),
        Ok(Ok(out)) => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
    }
}

/// Accepts local connections until the tunnel closes; each is carried on its own task.
async fn serve(
    tunnel: Arc<Tunnel>,
    listener: TcpListener,
    link: Arc<Link>,
    host: std::sync::Weak<Inner>,
) {
    let mut closed = tunnel.closed.subscribe();
    let mut connections = tokio::task::JoinSet::new();
    // The most connections carried at once since the memory they used was last given back,
    // and when to give it back: a moment after the last one ended, once the SSH session has
    // dropped their channels too.
    let mut peak = 0;
    let mut release_at: Option<tokio::time::Instant> = None;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = closed.wait_for(|c| *c) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {
                if connections.is_empty() && peak >= BURST {
                    release_at = Some(tokio::time::Instant::now() + RELEASE_DELAY);
                }
                continue;
            }
            _ = sleep_until(release_at) => {
                release_at = None;
                if connections.is_empty() {
                    debug!(peak, "giving back the memory of a burst of connections");
                    peak = 0;
                    crate::memory::release_free_memory();
                    link.renew();
                }
                continue;
            }
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors, most likely: give the system a moment.
                warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Not the session's activity: see the module's doc.
        connections.spawn(carry(
            tunnel.clone(),
            stream,
            peer,
            link.clone(),
            host.clone(),
        ));
        peak = peak.max(connections.len());
    }
    // Dropping the listener frees the port; aborting the set ends every connection.
    drop(listener);
    connections.shutdown().await;
}

/// Whether the gateway refuses this connection's requests for want of a stronger sign-in:
/// a command on it is answered with the refusal's text, which says so. The text, when it does.
async fn demanded_sign_in(carrier: &Carrier, host: Option<Arc<Inner>>) -> Option<String> {
    let host = host?;
    let refusal = run_on(&carrier.handle, "true").await.err()?;
    match host.access.after_refusal(&refusal, false) {
        crate::access::AfterRefusal::SignIn(_) => Some(refusal),
        _ => None,
    }
}

/// What became of a request on a connection that may have gone silent.
enum Answer<T> {
    Done(T),
    /// The gateway does not answer a probe: the connection is dead.
    Silent,
    /// The gateway answers probes but not this request, and the deadline passed.
    Late,
}

/// Waits for `request` until `deadline`; when it takes longer than [`PROBE_AFTER`], probes the
/// connection meanwhile, so that a dead one is found within seconds.
async fn answered<T>(
    carrier: &Carrier,
    request: impl std::future::Future<Output = T>,
    deadline: tokio::time::Instant,
) -> Answer<T> {
    tokio::pin!(request);
    tokio::select! {
        done = &mut request => return Answer::Done(done),
        _ = tokio::time::sleep(PROBE_AFTER) => {}
    }
    let probe = carrier.probe();
    tokio::pin!(probe);
    let mut probing = true;
    loop {
        tokio::select! {
            done = &mut request => return Answer::Done(done),
            alive = &mut probe, if probing => {
                if !alive {
                    return Answer::Silent;
                }
                probing = false;
            }
            _ = tokio::time::sleep_until(deadline) => return Answer::Late,
        }
    }
}

/// Sleeps until `at`, or forever when there is no `at`.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Carries one local connection through a `direct-tcpip` channel.
async fn carry(
    tunnel: Arc<Tunnel>,
    stream: TcpStream,
    peer: SocketAddr,
    link: Arc<Link>,
    host_state: std::sync::Weak<Inner>,
) {
    let counters = &tunnel.counters;
    counters.connections.fetch_add(1, Ordering::Relaxed);
    counters.active.fetch_add(1, Ordering::Relaxed);
    let _active = Decrement(&counters.active);
    let _ = stream.set_nodelay(true);
    let host = tunnel.endpoint.host().to_string();
    let port = u32::from(tunnel.endpoint.port().get());
    // However the link fares, the local client hears within WAIT_FOR_LINK: carried, or closed.
    let deadline = tokio::time::Instant::now() + WAIT_FOR_LINK;
    let mut tries = 0;
    let channel = loop {
        tries += 1;
        let Ok(Some(handle)) = tokio::time::timeout_at(deadline, link.up()).await else {
            let why = match link.state() {
                LinkState::NeedsSignIn { reason } => reason,
                state => state.why_down(),
            };
            debug!(%peer, %why, "local connection dropped");
            tunnel.note_error(why);
            break None;
        };
        let opening = handle.handle.channel_open_direct_tcpip(
            host.clone(),
            port,
            peer.ip().to_string(),
            u32::from(peer.port()),
        );
        let opened = match answered(&handle, opening, deadline).await {
            Answer::Done(opened) => opened,
            Answer::Silent => {
                debug!(%peer, "the gateway stopped answering; waiting for a new connection");
                link.lost(&handle);
                let mut state = link.watch();
                let _ = tokio::time::timeout_at(
                    deadline,
                    state.wait_for(|s| !matches!(s, LinkState::Up(h) if Arc::ptr_eq(h, &handle))),
                )
                .await;
                continue;
            }
            Answer::Late => {
                let why = format!(
                    "the gateway did not open the tunnel to {host}:{port} within {} s",
                    WAIT_FOR_LINK.as_secs()
                );
                debug!(%peer, %why, "local connection dropped");
                tunnel.note_error(why);
                break None;
            }
        };
        match opened {
            Ok(c) => break Some((c, handle.hold())),
            Err(russh::Error::ChannelOpenFailure(failure)) => {
                let message = match failure {
                    russh::ChannelOpenFailure::ConnectFailed => {
                        format!("the service at {host}:{port} refused the connection")
                    }
                    // russh passes on the refusal's code but not its text, and a gateway that
                    // wants MFA says so only in the text: ask the connection for it.
                    russh::ChannelOpenFailure::AdministrativelyProhibited => {
                        match demanded_sign_in(&handle, host_state.upgrade()).await {
                            Some(reason) => {
                                link.deny(reason.clone(), &handle.handle).await;
                                reason
                            }
                            None => format!("the gateway does not allow a tunnel to {host}:{port}"),
                        }
                    }
                    russh::ChannelOpenFailure::Other { reason, .. } => {
                        format!("the gateway refused the tunnel to {host}:{port}: {reason}")
                    }
                    other => format!("the gateway refused the tunnel to {host}:{port}: {other:?}"),
                };
                debug!(%peer, %message, "local connection dropped");
                tunnel.note_error(message);
                break None;
            }
            // The connection died under us; the supervisor is already reconnecting.
            Err(e) if tries < 3 => {
                debug!(error = %e, "channel open failed; waiting for the connection");
                let mut state = link.watch();
                let _ = tokio::time::timeout_at(
                    deadline,
                    state.wait_for(|s| !matches!(s, LinkState::Up(h) if Arc::ptr_eq(h, &handle))),
                )
                .await;
            }
            Err(e) => {
                tunnel.note_error(format!("cannot open a channel: {e}"));
                break None;
            }
        }
    };
    let Some((channel, _held)) = channel else {
        close_quietly(stream).await;
        return;
    };
    let (rx, tx) = channel.split();
    match pump(stream, rx, tx, counters).await {
        Ok(()) => debug!(%peer, "connection closed"),
        Err(e) => debug!(%peer, error = %e, "connection ended"),
    }
}

/// Ends a local connection that could not be carried with a plain end of stream: what it
/// sent is read and dropped first, since closing a socket with unread data makes the kernel
/// answer with a reset, which a client reports as an error rather than a closed connection.
async fn close_quietly(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt;
    let mut sink = [0u8; 4096];
    while matches!(stream.try_read(&mut sink), Ok(n) if n > 0) {}
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
    while matches!(stream.try_read(&mut sink), Ok(n) if n > 0) {}
}

/// Copies a local connection to its channel and back until both sides are done. Reading
/// into one buffer and sending what was read as a shared slice of it keeps the copy free of
/// per-chunk allocations (the buffer's memory is reused once russh has sent a slice).
///
/// The channel is left open until the gateway closes it (it does once both sides said EOF):
/// russh forgets a channel only when the close it receives is the first one, so closing from
/// this side first would leave the channel's state behind in the session for as long as the
/// connection lives.
async fn pump(
    stream: TcpStream,
    mut rx: russh::ChannelReadHalf,
    tx: russh::ChannelWriteHalf<client::Msg>,
    counters: &LiveCounters,
) -> io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut local_read, mut local_write) = stream.into_split();
    let to_io = |e: russh::Error| io::Error::other(e.to_string());
    let up = async {
        let mut buf = bytes::BytesMut::with_capacity(COPY_BUFFER);
        loop {
            if buf.capacity() < COPY_BUFFER / 4 {
                buf.reserve(COPY_BUFFER);
            }
            let n = local_read.read_buf(&mut buf).await?;
            if n == 0 {
                break;
            }
            counters.bytes_sent.fetch_add(n as u64, Ordering::Relaxed);
            tx.data_bytes(buf.split().freeze()).await.map_err(to_io)?;
        }
        tx.eof().await.map_err(to_io)
    };
    let down = async {
        while let Some(msg) = rx.wait().await {
            match msg {
                russh::ChannelMsg::Data { data } => {
                    local_write.write_all(&data).await?;
                    counters
                        .bytes_received
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                russh::ChannelMsg::Eof => local_write.shutdown().await?,
                russh::ChannelMsg::Close => break,
                _ => {}
            }
        }
        Ok::<_, io::Error>(())
    };
    let copied = tokio::try_join!(up, down).map(|_| ());
    if copied.is_err() {
        // The local side failed: end the channel from here.
        let _ = tx.close().await;
    }
    copied
}

struct Decrement<'a>(&'a AtomicU64);

impl Drop for Decrement<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relationships_are_read_between_the_markers_whatever_login_scripts_print_around_them() {
        // The official client's command and extraction: legacy/src/Service/RemoteEnvVars.php
        // (`getEnvVar`, then `StringUtil::between`).
        assert_eq!(
            READ_RELATIONSHIPS,
            r#"echo -n '_BEGIN_ENV_VAR_'"$PLATFORM_RELATIONSHIPS"'_END_ENV_VAR_'"#
        );
        for (output, value) in [
            (&b"_BEGIN_ENV_VAR_e30=_END_ENV_VAR_"[..], Some(&b"e30="[..])),
            (
                b"Welcome!\nnvm: using node 20\n_BEGIN_ENV_VAR_e30=_END_ENV_VAR_bye\n",
                Some(b"e30="),
            ),
            (b"_BEGIN_ENV_VAR__END_ENV_VAR_", Some(b"")),
            (
                b"_END_ENV_VAR__BEGIN_ENV_VAR_abc_END_ENV_VAR_",
                Some(b"abc"),
            ),
            (b"e30=\n", None),
            (b"_BEGIN_ENV_VAR_e30=", None),
            (b"", None),
        ] {
            assert_eq!(between_markers(output), value, "{output:?}");
        }
    }

    #[test]
    fn endpoints_are_named_by_relationship_or_index() {
        assert!(names_endpoint("database", "database", 0));
        assert!(names_endpoint("database", "database", 1));
        assert!(names_endpoint("database.1", "database", 1));
        assert!(!names_endpoint("database.1", "database", 0));
        assert!(!names_endpoint("cache", "database", 0));
    }

    #[test]
    fn states_read_as_words() {
        assert_eq!(TunnelState::Open.to_string(), "open");
        let r = TunnelState::Reconnecting {
            attempt: 2,
            error: "connection refused".into(),
        };
        assert_eq!(
            r.to_string(),
            "reconnecting (attempt 2: connection refused)"
        );
        assert!(r.is_down());
        assert!(!TunnelState::Opening.is_down());
    }
}
