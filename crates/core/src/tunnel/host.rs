//! The tunnel host: local listeners for an app's relationships, all carried by one SSH
//! connection per app (a [`Link`](super::link::Link)) as `direct-tcpip` channels. The agent
//! runs one host for the profile (so every shell sees the same tunnels); `tunnel:single` runs
//! its own for one tunnel in the foreground.
//!
//! Each app's tunnels are kept by a task of its own (see [`super::app`]); the host is the
//! table of those tasks. The table's lock is held only to find or start an app's task and
//! hand it a message, never across a wait: one app's slow gateway never holds up another
//! app's open, close or list, and a list reads what each task last published without asking
//! it. Closing a tunnel ends its connections and frees its port before [`TunnelHost::close`]
//! returns.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use russh::client;
use tokio::sync::oneshot;

use super::app::{AppHandle, AppView, Closing, Command};
use super::cache::RelationshipsCache;
pub use super::forward::WAIT_FOR_LINK;
use super::model::{AppKey, CloseRequest, OpenReport, OpenRequest, TunnelInfo};
use super::ports::PortBook;
use super::{Relationships, TunnelError};
use crate::access::Access;
use crate::cert::Event;
use crate::ssh::connect::tunnel_config;

/// What every app's task of a host uses.
pub(super) struct Shared {
    pub(super) access: Arc<Access>,
    pub(super) ports: PortBook,
    pub(super) cache: RelationshipsCache,
    pub(super) config: Arc<client::Config>,
    next_id: AtomicU64,
}

impl Shared {
    /// Tunnels are numbered in the order they open, whatever their app.
    pub(super) fn next_tunnel_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// The apps that have a task, by app.
#[derive(Default)]
pub(super) struct Apps {
    table: Mutex<BTreeMap<AppKey, AppHandle>>,
    next_task: AtomicU64,
}

impl Apps {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<AppKey, AppHandle>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands `command` to `app`'s task, starting one when it has none. Done under the
    /// table's lock, so that a task retiring ([`Apps::retire`]) never leaves a command behind.
    fn send(self: &Arc<Self>, shared: &Arc<Shared>, app: &AppKey, command: Command) {
        let mut table = self.lock();
        let command = match table.get(app) {
            Some(task) => match task.send(command) {
                None => return,
                // Its task ended unexpectedly: a new one takes over.
                Some(unsent) => unsent,
            },
            None => command,
        };
        let id = self.next_task.fetch_add(1, Ordering::Relaxed);
        let task = AppHandle::spawn(app.clone(), id, shared.clone(), Arc::downgrade(self));
        // A task just started takes it: its inbox is open.
        let _ = task.send(command);
        table.insert(app.clone(), task);
    }

    /// Takes task `id` of `app` out of the table when `idle` still holds under the lock (no
    /// command waits for it): whether it may end.
    pub(super) fn retire(&self, app: &AppKey, id: u64, idle: impl FnOnce() -> bool) -> bool {
        let mut table = self.lock();
        match table.get(app) {
            Some(task) if task.id == id => {
                if !idle() {
                    return false;
                }
                table.remove(app);
                true
            }
            // Another task took over: nobody can send to this one any more.
            _ => true,
        }
    }

    /// What every task published last, by app.
    fn views(&self) -> Vec<AppView> {
        self.lock()
            .values()
            .map(|task| task.view.borrow().clone())
            .collect()
    }
}

/// The tunnels of one profile. Cheap to clone; every clone is the same host.
#[derive(Clone)]
pub struct TunnelHost {
    shared: Arc<Shared>,
    apps: Arc<Apps>,
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
        let shared = Arc::new(Shared {
            access,
            ports,
            cache: RelationshipsCache::default(),
            config: Arc::new(tunnel_config()),
            next_id: AtomicU64::new(1),
        });
        let apps = Arc::new(Apps::default());
        let mut events = shared.access.keeper().subscribe();
        let weak = Arc::downgrade(&apps);
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(Event::SignedIn | Event::Renewed { .. }) => {}
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
                let Some(apps) = weak.upgrade() else { break };
                for view in apps.views() {
                    if let Some(link) = &view.link {
                        link.wake();
                    }
                }
            }
        });
        TunnelHost { shared, apps }
    }

    /// Every tunnel, by app then in the order they opened.
    pub fn list(&self) -> Vec<TunnelInfo> {
        self.apps
            .views()
            .iter()
            .flat_map(AppView::tunnels)
            .collect()
    }

    /// The relationships of an app's current deployment, read over SSH once per deployment.
    pub async fn relationships(&self, app: &AppKey) -> Result<Relationships, TunnelError> {
        self.ask(app, |reply| Command::Relationships { reply })
            .await
    }

    /// Opens tunnels to an app's relationships (all, or those named). Returns once every
    /// listener accepts. Endpoints that cannot be opened are reported; the others open.
    pub async fn open(&self, req: &OpenRequest) -> Result<OpenReport, TunnelError> {
        self.ask(&req.app, |reply| Command::Open {
            req: req.clone(),
            reply,
        })
        .await
    }

    /// Asks `app`'s task, and waits for its answer.
    async fn ask<T>(
        &self,
        app: &AppKey,
        command: impl FnOnce(oneshot::Sender<Result<T, TunnelError>>) -> Command,
    ) -> Result<T, TunnelError> {
        let (reply, answer) = oneshot::channel();
        self.apps.send(&self.shared, app, command(reply));
        answer.await.unwrap_or_else(|_| {
            Err(TunnelError::Unreachable {
                app: app.clone(),
                reason: "the task keeping its tunnels ended".into(),
            })
        })
    }

    /// Closes the tunnels `req` selects: their connections end and their ports are free when
    /// this returns. An app left without tunnels loses its SSH connection.
    pub async fn close(&self, req: &CloseRequest) -> Vec<TunnelInfo> {
        self.close_because(req, Closing::Asked).await
    }

    /// Closes every tunnel because the session ended (whatever ended it): the ports are freed,
    /// the links dropped, and each tunnel is announced `closed (signed out)`.
    pub async fn close_all_signed_out(&self) -> Vec<TunnelInfo> {
        self.close_because(&CloseRequest::default(), Closing::SessionEnded)
            .await
    }

    /// Closes every tunnel (sign-out, shutdown).
    pub async fn close_all(&self) -> Vec<TunnelInfo> {
        self.close(&CloseRequest::default()).await
    }

    async fn close_because(&self, req: &CloseRequest, why: Closing) -> Vec<TunnelInfo> {
        // Every app concerned is asked at once; each answers for itself, whatever another's
        // gateway does.
        let answers: Vec<_> = self
            .apps
            .lock()
            .iter()
            .filter(|(app, _)| req.covers(app))
            .filter_map(|(_, task)| {
                let (reply, answer) = oneshot::channel();
                let command = Command::Close {
                    req: req.clone(),
                    why,
                    reply,
                };
                task.send(command).is_none().then_some(answer)
            })
            .collect();
        let mut closed = Vec::new();
        for answer in answers {
            closed.extend(answer.await.unwrap_or_default());
        }
        if !closed.is_empty() {
            crate::memory::release_free_memory();
        }
        closed
    }
}
