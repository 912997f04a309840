//! The tunnel host: local listeners for an app's relationships, all carried by one SSH
//! connection per app (a [`Link`]) as `direct-tcpip` channels. The agent runs one host for the
//! profile (so every shell sees the same tunnels); `tunnel:single` runs its own for one
//! tunnel in the foreground.
//!
//! A listener stays bound while its connection is down (see [`super::forward`]). Closing a
//! tunnel ends its connections and frees its port before [`TunnelHost::close`] returns.
//!
//! Each app has a lock of its own: opening an app's tunnels (or reading its relationships)
//! waits only for other work on the same app, never for another app's gateway, and closing
//! takes no lock at all, so it answers at once whatever a gateway does.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use russh::client;
use tokio::task::JoinHandle;
use tracing::{info, info_span, warn, Instrument};

use super::cache::{self, RelationshipsCache};
pub use super::forward::WAIT_FOR_LINK;
use super::forward::{Listening, Tunnel};
use super::link::{Link, LinkState};
use super::model::{
    AppKey, CloseRequest, OpenFailure, OpenReport, OpenRequest, TunnelInfo, TunnelState, SIGNED_OUT,
};
use super::ports::{self, PortBook, PortChoice, PortError};
use super::{Endpoint, EndpointId, LocalPort, Relationships, TunnelError};
use crate::access::Access;
use crate::agent::protocol::TunnelEventState;
use crate::cert::Event;
use crate::ssh::connect::tunnel_config;
use crate::ssh::Selection;

/// An app's connection and its tunnels.
struct AppTunnels {
    link: Arc<Link>,
    supervisor: JoinHandle<()>,
    tunnels: Vec<Listening>,
}

struct Inner {
    access: Arc<Access>,
    apps: Mutex<BTreeMap<AppKey, AppTunnels>>,
    cache: RelationshipsCache,
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
            cache: RelationshipsCache::default(),
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
                    .map(move |t| t.tunnel.info(&link))
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
        let access = &self.inner.access;
        let key = cache::deployment(access, app, &url).await?;
        if let Some(cached) = key.as_ref().and_then(|key| self.inner.cache.get(key)) {
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
        let relationships = cache::read(access, app, &link).await?;
        if let Some(key) = key {
            self.inner.cache.put(key, relationships.clone());
        }
        Ok(relationships)
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
            .find(|t| t.tunnel.endpoint.id() == id)
            .map(|t| t.tunnel.clone())
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
        let tunnel = Tunnel::new(
            self.inner.next_id.fetch_add(1, Ordering::Relaxed),
            app.clone(),
            endpoint.clone(),
            SocketAddr::new(ip, port.get()),
            self.inner.access.session().clock().unix(),
            displaced,
        );
        let mut apps = self.inner.lock_apps();
        let Some(entry) = apps.get_mut(app) else {
            return Err(PortError::Bind {
                addr: tunnel.local,
                message: "the app's connection went away".into(),
            });
        };
        let info = tunnel.info(&entry.link.state());
        entry.tunnels.push(Listening::start(
            tunnel.clone(),
            listener,
            entry.link.clone(),
            self.inner.access.clone(),
        ));
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
        let mut closing: Vec<Listening> = Vec::new();
        let mut idle_links = Vec::new();
        {
            let mut apps = self.inner.lock_apps();
            let mut emptied = Vec::new();
            let everything = *req == CloseRequest::default();
            for (key, app) in apps.iter_mut() {
                let link = app.link.state();
                let before = app.tunnels.len();
                let (closed, kept) = std::mem::take(&mut app.tunnels)
                    .into_iter()
                    .partition(|t| req.matches(&t.tunnel.info(&link)));
                closing.extend::<Vec<_>>(closed);
                app.tunnels = kept;
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
            let t = t.close().await;
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
            let t = &t.tunnel;
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
