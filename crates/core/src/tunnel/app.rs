//! One app's tunnels, kept by a task of their own that owns everything about them: the app's
//! [`Link`], the listeners, and the lookups (opens, relationships reads) asked for. Callers
//! reach it only through messages ([`Command`]), each answered on a oneshot channel, as
//! mini-redis's connection handlers answer theirs; what it holds is published after every
//! change ([`AppView`]), so that lists and events read it without waiting for the task.
//!
//! Lookups on one app run one after another, so two shells opening the same app at once do
//! not both bind it, and reading the relationships does not drop the connection an open is
//! about to use. The slow part of a lookup (the platform's API, the gateway) is a future the
//! task polls between messages: a close of this app is answered while its gateway keeps an
//! open waiting, and no app ever waits for another app's gateway.

use std::collections::VecDeque;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Weak};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{info, info_span, warn, Instrument};

use super::cache::{self, CacheKey};
use super::forward::{Listening, Tunnel};
use super::host::{Apps, Shared};
use super::link::{Link, LinkState};
use super::model::{
    AppKey, CloseRequest, OpenFailure, OpenReport, OpenRequest, TunnelInfo, TunnelState, SIGNED_OUT,
};
use super::ports::{self, PortChoice, PortError};
use super::{Endpoint, EndpointId, LocalPort, Relationships, TunnelError};
use crate::access::Access;
use crate::agent::protocol::TunnelEventState;
use crate::cert::Event;
use crate::ssh::{Selection, SshUrl};

/// What an app's task is asked to do.
pub(super) enum Command {
    /// Open tunnels to the app's relationships (all, or those the request names).
    Open {
        req: OpenRequest,
        reply: oneshot::Sender<Result<OpenReport, TunnelError>>,
    },
    /// The relationships of the app's current deployment.
    Relationships {
        reply: oneshot::Sender<Result<Relationships, TunnelError>>,
    },
    /// Close the tunnels `req` selects. Answered with the tunnels closed, once their ports
    /// are free.
    Close {
        req: CloseRequest,
        why: Closing,
        reply: oneshot::Sender<Vec<TunnelInfo>>,
    },
}

/// Why tunnels close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Closing {
    /// A shell asked, or the host stops.
    Asked,
    /// The session ended, whatever ended it: the opens in progress end too, since nothing
    /// outlives the session.
    SessionEnded,
}

impl Closing {
    /// What the tunnels' closed events say.
    fn why(self) -> Option<&'static str> {
        match self {
            Closing::Asked => None,
            Closing::SessionEnded => Some(SIGNED_OUT),
        }
    }
}

/// What an app's task holds, as it last published it.
#[derive(Clone, Default)]
pub(super) struct AppView {
    pub(super) link: Option<Arc<Link>>,
    pub(super) tunnels: Vec<Arc<Tunnel>>,
}

impl AppView {
    fn link_state(&self) -> LinkState {
        self.link
            .as_ref()
            .map_or(LinkState::Stopped, |link| link.state())
    }

    /// The app's tunnels, in the order they opened.
    pub(super) fn tunnels(&self) -> Vec<TunnelInfo> {
        let link = self.link_state();
        self.tunnels.iter().map(|t| t.info(&link)).collect()
    }
}

/// An app's entry in the host's table: how to reach its task, and what the task publishes.
pub(super) struct AppHandle {
    /// Tells this task from one started after it for the same app.
    pub(super) id: u64,
    commands: mpsc::UnboundedSender<Command>,
    pub(super) view: watch::Receiver<AppView>,
}

impl AppHandle {
    /// Starts the task of `app`. It ends by itself once it holds nothing, taking its entry
    /// out of `apps` ([`Apps::retire`]), or when the host goes.
    pub(super) fn spawn(app: AppKey, id: u64, shared: Arc<Shared>, apps: Weak<Apps>) -> AppHandle {
        // Unbounded, since a send must not wait (it is made under the table's lock), and
        // bounded all the same: every caller waits for its reply before asking again.
        let (commands, inbox) = mpsc::unbounded_channel();
        let (view, published) = watch::channel(AppView::default());
        // Its own span, not the one of the request that happened to start it: the task
        // outlives that request, and its log lines would all carry it.
        let span = info_span!(parent: None, "app_tunnels", app = %app);
        let task = AppTask {
            app,
            id,
            shared,
            apps,
            view,
            link: None,
            tunnels: Vec::new(),
            waiting: VecDeque::new(),
        };
        tokio::spawn(task.run(inbox).instrument(span));
        AppHandle {
            id,
            commands,
            view: published,
        }
    }

    /// Hands `command` to the task: `None`, or the command back when the task has ended.
    pub(super) fn send(&self, command: Command) -> Option<Command> {
        self.commands.send(command).err().map(|unsent| unsent.0)
    }
}

/// The app's connection and the task that keeps it up.
struct Supervised {
    link: Arc<Link>,
    supervisor: JoinHandle<()>,
}

impl Supervised {
    /// Stops the connection; done once its supervisor is.
    async fn stop(self) {
        self.link.stop();
        let _ = self.supervisor.await;
    }
}

/// An open or a relationships read, and who waits for its answer.
enum Lookup {
    Open(
        OpenRequest,
        oneshot::Sender<Result<OpenReport, TunnelError>>,
    ),
    Relationships(oneshot::Sender<Result<Relationships, TunnelError>>),
}

impl Lookup {
    fn opens(&self) -> bool {
        matches!(self, Lookup::Open(..))
    }

    fn fail(self, error: TunnelError) {
        match self {
            Lookup::Open(_, reply) => {
                let _ = reply.send(Err(error));
            }
            Lookup::Relationships(reply) => {
                let _ = reply.send(Err(error));
            }
        }
    }
}

/// The lookup in progress, and the future of its next step.
struct InFlight {
    lookup: Lookup,
    step: Pin<Box<dyn Future<Output = Step> + Send>>,
}

/// Where a lookup got to.
enum Step {
    /// The app's SSH address, from the platform's API.
    Addressed(SshUrl),
    /// The current deployment's relationships are not known yet: they are read over the
    /// app's connection, and cached under `key` when there is one.
    Unread {
        url: SshUrl,
        key: Option<CacheKey>,
    },
    /// The current deployment's relationships.
    Known(Relationships),
    Failed(TunnelError),
}

struct AppTask {
    app: AppKey,
    id: u64,
    shared: Arc<Shared>,
    apps: Weak<Apps>,
    view: watch::Sender<AppView>,
    /// The app's connection, while it has tunnels or a lookup uses it.
    link: Option<Supervised>,
    tunnels: Vec<Listening>,
    /// Lookups asked for while another was in progress, in order.
    waiting: VecDeque<Lookup>,
}

/// The next step of the lookup in progress; never, when there is none.
async fn next_step(current: &mut Option<InFlight>) -> Step {
    match current {
        Some(flight) => flight.step.as_mut().await,
        None => std::future::pending().await,
    }
}

impl AppTask {
    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Command>) {
        let mut current: Option<InFlight> = None;
        loop {
            if current.is_none() {
                current = self.waiting.pop_front().map(|lookup| self.begin(lookup));
            }
            if current.is_none() && self.holds_nothing() && self.retire(&inbox) {
                break;
            }
            tokio::select! {
                command = inbox.recv() => match command {
                    Some(Command::Open { req, reply }) => {
                        self.waiting.push_back(Lookup::Open(req, reply));
                    }
                    Some(Command::Relationships { reply }) => {
                        self.waiting.push_back(Lookup::Relationships(reply));
                    }
                    Some(Command::Close { req, why, reply }) => {
                        let closed = self.close(&req, why, &mut current).await;
                        let _ = reply.send(closed);
                    }
                    // The host is gone: nothing it started outlives it.
                    None => {
                        self.close(&CloseRequest::default(), Closing::Asked, &mut current)
                            .await;
                        break;
                    }
                },
                step = next_step(&mut current) => {
                    if let Some(flight) = current.take() {
                        current = self.advance(flight, step).await;
                    }
                }
            }
        }
    }

    fn holds_nothing(&self) -> bool {
        self.waiting.is_empty() && self.tunnels.is_empty() && self.link.is_none()
    }

    /// Takes this task out of the host's table unless a command waits for it: whether it
    /// may end.
    fn retire(&self, inbox: &mpsc::UnboundedReceiver<Command>) -> bool {
        match self.apps.upgrade() {
            Some(apps) => apps.retire(&self.app, self.id, || inbox.is_empty()),
            // The host is gone: the inbox says so once it is empty.
            None => false,
        }
    }

    /// Publishes what the task holds now.
    fn publish(&self) {
        self.view.send_replace(AppView {
            link: self.link.as_ref().map(|s| s.link.clone()),
            tunnels: self.tunnels.iter().map(|l| l.tunnel.clone()).collect(),
        });
    }

    fn begin(&self, lookup: Lookup) -> InFlight {
        let access = self.shared.access.clone();
        let app = self.app.clone();
        InFlight {
            lookup,
            step: Box::pin(async move {
                match address(&access, &app).await {
                    Ok(url) => Step::Addressed(url),
                    Err(e) => Step::Failed(e),
                }
            }),
        }
    }

    /// Takes the lookup in progress past `step`: its next step, or `None` once answered.
    async fn advance(&mut self, mut flight: InFlight, step: Step) -> Option<InFlight> {
        let shared = self.shared.clone();
        let app = self.app.clone();
        match step {
            Step::Addressed(url) => {
                // Tunnels need the connection whatever the relationships say: it is made while
                // the platform is asked for the deployment.
                if flight.lookup.opens() {
                    self.ensure_link(&url);
                }
                flight.step = Box::pin(async move {
                    let key = match cache::deployment(&shared.access, &app, &url).await {
                        Ok(key) => key,
                        Err(e) => return Step::Failed(e),
                    };
                    match key.as_ref().and_then(|key| shared.cache.get(key)) {
                        Some(known) => Step::Known(known),
                        None => Step::Unread { url, key },
                    }
                });
                Some(flight)
            }
            Step::Unread { url, key } => {
                // Over the app's tunnel connection, made for the purpose when it has none yet.
                let link = self.ensure_link(&url);
                flight.step = Box::pin(async move {
                    match cache::read(&shared.access, &app, &link).await {
                        Ok(read) => {
                            if let Some(key) = key {
                                shared.cache.put(key, read.clone());
                            }
                            Step::Known(read)
                        }
                        Err(e) => Step::Failed(e),
                    }
                });
                Some(flight)
            }
            Step::Known(relationships) => {
                self.answer(flight.lookup, Ok(relationships)).await;
                None
            }
            Step::Failed(e) => {
                self.answer(flight.lookup, Err(e)).await;
                None
            }
        }
    }

    /// Answers a lookup whose relationships were read (or not), opening its tunnels first
    /// when it is an open.
    async fn answer(&mut self, lookup: Lookup, read: Result<Relationships, TunnelError>) {
        match lookup {
            Lookup::Relationships(reply) => {
                self.drop_link_unless_needed().await;
                let _ = reply.send(read);
            }
            Lookup::Open(req, reply) => {
                let opened = read.and_then(|relationships| self.open(&req, &relationships));
                self.drop_link_unless_needed().await;
                let _ = reply.send(opened);
            }
        }
    }

    /// Ends the app's connection when no tunnel uses it and no lookup waits for it.
    async fn drop_link_unless_needed(&mut self) {
        if !self.tunnels.is_empty() || !self.waiting.is_empty() {
            return;
        }
        if let Some(link) = self.link.take() {
            self.publish();
            link.stop().await;
        }
    }

    /// Opens the tunnels `req` asks for among `relationships`. Endpoints that cannot be
    /// opened are reported; the others open.
    fn open(
        &mut self,
        req: &OpenRequest,
        relationships: &Relationships,
    ) -> Result<OpenReport, TunnelError> {
        let (wanted, mut failed) = wanted(req, relationships)?;
        let port = req.port.and_then(LocalPort::new);
        if port.is_some() && wanted.len() > 1 {
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
            if let Some(existing) = self.find(endpoint.id()) {
                match port {
                    Some(p) if p.get() != existing.local.port() => {
                        return Err(TunnelError::AlreadyOpen {
                            relationship: endpoint.id().to_string(),
                            port: existing.local.port(),
                        })
                    }
                    _ => {
                        tunnels.push(existing.info(&self.link_state()));
                        continue;
                    }
                }
            }
            match self.start_tunnel(endpoint, ip, port) {
                Ok(info) => tunnels.push(info),
                Err(e @ PortError::Busy { .. }) if port.is_some() => return Err(e.into()),
                Err(e) => failed.push(OpenFailure {
                    relationship: endpoint.id().to_string(),
                    message: e.to_string(),
                }),
            }
        }
        Ok(OpenReport { tunnels, failed })
    }

    fn find(&self, id: &EndpointId) -> Option<Arc<Tunnel>> {
        self.tunnels
            .iter()
            .find(|t| t.tunnel.endpoint.id() == id)
            .map(|t| t.tunnel.clone())
    }

    fn link_state(&self) -> LinkState {
        self.link
            .as_ref()
            .map_or(LinkState::Stopped, |s| s.link.state())
    }

    /// The app's connection, started when it has none.
    fn ensure_link(&mut self, url: &SshUrl) -> Arc<Link> {
        if let Some(supervised) = &self.link {
            return supervised.link.clone();
        }
        let access = &self.shared.access;
        let trust = crate::ssh::trust::HostKeyPolicy::for_profile(
            access.profile(),
            access.paths(),
            access.session().clock().clone(),
        );
        let gateway = crate::ssh::connect::Endpoint::for_profile(access.profile(), url, trust);
        let link = Link::new(url.clone(), gateway, self.shared.config.clone());
        let published = self.view.subscribe();
        let app = self.app.clone();
        let events = access.clone();
        let span = info_span!("tunnels", app = %self.app);
        let supervisor = tokio::spawn(
            link.clone()
                .supervise(access.clone(), move || {
                    let view = published.borrow().clone();
                    announce(&app, &view, &events);
                })
                .instrument(span),
        );
        self.link = Some(Supervised {
            link: link.clone(),
            supervisor,
        });
        self.publish();
        link
    }

    fn start_tunnel(
        &mut self,
        endpoint: &Endpoint,
        ip: IpAddr,
        port: Option<LocalPort>,
    ) -> Result<TunnelInfo, PortError> {
        let app = &self.app;
        let book = &self.shared.ports;
        let book_key = format!("{app}/{}", endpoint.id());
        let choice = match (port, book.get(&book_key)) {
            (Some(p), _) => PortChoice::Exact(p),
            (None, Some(p)) => PortChoice::Prefer(p),
            (None, None) => PortChoice::Any,
        };
        let ports::Bound {
            listener,
            port,
            displaced,
        } = ports::bind(ip, choice, &book.others(&book_key))?;
        if let Some(d) = &displaced {
            warn!(app = %app, relationship = %endpoint.id(), old = d.port, holder = ?d.holder, new = port.get(), "the tunnel's remembered port is held by another process");
        }
        book.remember(&book_key, port);
        let local = SocketAddr::new(ip, port.get());
        let Some(link) = self.link.as_ref().map(|s| s.link.clone()) else {
            return Err(PortError::Bind {
                addr: local,
                message: "the app's connection went away".into(),
            });
        };
        let tunnel = Tunnel::new(
            self.shared.next_tunnel_id(),
            app.clone(),
            endpoint.clone(),
            local,
            self.shared.access.session().clock().unix(),
            displaced,
        );
        let info = tunnel.info(&link.state());
        info!(app = %app, relationship = %endpoint.id(), local = %local, remote = %info.remote, "tunnel open");
        self.tunnels.push(Listening::start(
            tunnel,
            listener,
            link,
            self.shared.access.clone(),
        ));
        self.publish();
        announce(&self.app, &self.view.borrow(), &self.shared.access);
        Ok(info)
    }

    /// Closes the tunnels `req` selects: their connections end and their ports are free when
    /// this returns. An app left without tunnels loses its connection, unless a lookup still
    /// needs it.
    async fn close(
        &mut self,
        req: &CloseRequest,
        why: Closing,
        current: &mut Option<InFlight>,
    ) -> Vec<TunnelInfo> {
        let link = self.link_state();
        let (closing, kept): (Vec<Listening>, Vec<Listening>) = std::mem::take(&mut self.tunnels)
            .into_iter()
            .partition(|t| req.matches(&t.tunnel.info(&link)));
        self.tunnels = kept;
        if why == Closing::SessionEnded {
            let session_ended = || TunnelError::SessionEnded {
                app: self.app.clone(),
            };
            if current.as_ref().is_some_and(|f| f.lookup.opens()) {
                if let Some(flight) = current.take() {
                    flight.lookup.fail(session_ended());
                }
            }
            let (opens, reads): (VecDeque<Lookup>, VecDeque<Lookup>) =
                std::mem::take(&mut self.waiting)
                    .into_iter()
                    .partition(Lookup::opens);
            self.waiting = reads;
            for open in opens {
                open.fail(session_ended());
            }
        }
        let unused = self.tunnels.is_empty() && current.is_none() && self.waiting.is_empty();
        let idle = if unused { self.link.take() } else { None };
        self.publish();
        let mut closed = Vec::new();
        for t in closing {
            let t = t.close().await;
            let info = t.info(&LinkState::Stopped);
            info!(app = %t.app, relationship = %t.endpoint.id(), port = t.local.port(), "tunnel closed");
            self.shared.access.keeper().emit(Event::Tunnel {
                app: t.app.to_string(),
                relationship: t.endpoint.id().to_string(),
                port: t.local.port(),
                state: TunnelEventState::Closed {
                    why: why.why().map(str::to_string),
                },
                down: false,
                needs_sign_in: false,
            });
            closed.push(info);
        }
        if let Some(link) = idle {
            link.stop().await;
        }
        closed
    }
}

/// The endpoints `req` asks for among `relationships`, and those it names that cannot be
/// opened, with why. Asking for one relationship that cannot be opened is an error.
fn wanted<'r>(
    req: &OpenRequest,
    relationships: &'r Relationships,
) -> Result<(Vec<&'r Endpoint>, Vec<OpenFailure>), TunnelError> {
    let mut failed: Vec<OpenFailure> = Vec::new();
    let mut wanted: Vec<&Endpoint> = Vec::new();
    if req.relationships.is_empty() {
        if relationships.is_empty() {
            return Err(TunnelError::NoRelationships {
                app: req.app.clone(),
            });
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
                Err(e) if req.relationships.len() == 1 => return Err(e.into()),
                Err(e) => failed.push(OpenFailure {
                    relationship: name.clone(),
                    message: e.to_string(),
                }),
            }
        }
    }
    wanted.dedup_by(|a, b| a.id() == b.id());
    Ok((wanted, failed))
}

/// The SSH address of `app`.
async fn address(access: &Access, app: &AppKey) -> Result<SshUrl, TunnelError> {
    let selection = Selection {
        app: Some(app.app.clone()),
        ..Selection::default()
    };
    Ok(access
        .address(&app.project, &app.environment, &selection)
        .await?)
}

/// Publishes the tunnels of `app` whose state changed since they were last announced.
fn announce(app: &AppKey, view: &AppView, access: &Access) {
    let link = view.link_state();
    for t in &view.tunnels {
        let info = t.info(&link);
        let changed = t.announced.lock().is_ok_and(|mut last| {
            let changed = *last != info.state;
            *last = info.state.clone();
            changed
        });
        if changed && info.state != TunnelState::Closed {
            access.keeper().emit(Event::Tunnel {
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
