//! Forwarding: a tunnel's listener accepts local connections and carries each one through a
//! `direct-tcpip` channel of its app's [`Link`], counting what passes. A listener stays bound
//! while the link is down: a new local connection waits for it to come back (up to
//! [`WAIT_FOR_LINK`]) instead of being refused, so a client that retries, or simply connects
//! during a short outage, gets through; its arrival is also what proves a link that went
//! silent dead ([`Carrier::probe`]). The bytes themselves are copied by [`super::copy`].
//!
//! Bytes through a tunnel are not a person's activity: a database client polling through a
//! tunnel must not keep a session alive for ever. Commands, the ssh hook and the desktop's
//! actions are, and they record it themselves.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info_span, warn, Instrument};

use super::cache::run_on;
use super::copy::pump;
use super::link::{Carrier, Link, LinkState};
use super::model::{AppKey, Counters, TunnelInfo, TunnelState};
use super::ports;
use super::{Endpoint, LocalPort};
use crate::access::Access;

/// How long a new local connection waits for the app's SSH connection to come (back) up.
pub const WAIT_FOR_LINK: Duration = Duration::from_secs(10);
/// After this many connections at once, the memory they used is given back to the system when
/// the last one ends (see [`crate::memory`]).
const BURST: usize = 32;
/// How long after a burst's last connection its memory is given back.
const RELEASE_DELAY: Duration = Duration::from_millis(500);
/// A channel that takes longer than this to open makes the connection prove that the gateway
/// still answers ([`Carrier::probe`]): the arrival of a local connection is when a network
/// that went silent is noticed.
const PROBE_AFTER: Duration = Duration::from_secs(1);

/// A tunnel's counters as its connections update them.
#[derive(Default)]
pub(super) struct LiveCounters {
    connections: AtomicU64,
    active: AtomicU64,
    failed: AtomicU64,
    pub(super) bytes_sent: AtomicU64,
    pub(super) bytes_received: AtomicU64,
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

/// One open tunnel: what it forwards where, and what its connections report.
pub(super) struct Tunnel {
    pub(super) id: u64,
    pub(super) app: AppKey,
    pub(super) endpoint: Endpoint,
    pub(super) local: SocketAddr,
    opened_at: u64,
    counters: LiveCounters,
    last_error: Mutex<Option<String>>,
    /// The state last published as an event.
    pub(super) announced: Mutex<TunnelState>,
    closed: watch::Sender<bool>,
    displaced: Option<ports::Displaced>,
}

impl Tunnel {
    pub(super) fn new(
        id: u64,
        app: AppKey,
        endpoint: Endpoint,
        local: SocketAddr,
        opened_at: u64,
        displaced: Option<ports::Displaced>,
    ) -> Arc<Tunnel> {
        Arc::new(Tunnel {
            id,
            app,
            endpoint,
            local,
            opened_at,
            counters: LiveCounters::default(),
            last_error: Mutex::new(None),
            announced: Mutex::new(TunnelState::Closed),
            closed: watch::channel(false).0,
            displaced,
        })
    }

    pub(super) fn info(&self, link: &LinkState) -> TunnelInfo {
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

/// A tunnel whose listener is served: it accepts until [`Listening::close`].
pub(super) struct Listening {
    pub(super) tunnel: Arc<Tunnel>,
    serving: JoinHandle<()>,
}

impl Listening {
    /// Serves `listener` for `tunnel` over `link` on a task of its own.
    pub(super) fn start(
        tunnel: Arc<Tunnel>,
        listener: TcpListener,
        link: Arc<Link>,
        access: Arc<Access>,
    ) -> Listening {
        let span = info_span!(
            "tunnel",
            app = %tunnel.app,
            relationship = %tunnel.endpoint.id(),
            port = tunnel.local.port()
        );
        let serving = tokio::spawn(serve(tunnel.clone(), listener, link, access).instrument(span));
        Listening { tunnel, serving }
    }

    /// Ends the tunnel's connections and frees its port; done when this returns.
    pub(super) async fn close(self) -> Arc<Tunnel> {
        self.tunnel.closed.send_replace(true);
        let _ = self.serving.await;
        self.tunnel
    }
}

/// Accepts local connections until the tunnel closes; each is carried on its own task.
async fn serve(tunnel: Arc<Tunnel>, listener: TcpListener, link: Arc<Link>, access: Arc<Access>) {
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
            access.clone(),
        ));
        peak = peak.max(connections.len());
    }
    // Dropping the listener frees the port; aborting the set ends every connection.
    drop(listener);
    connections.shutdown().await;
}

/// Whether the gateway refuses this connection's requests for want of a stronger sign-in:
/// a command on it is answered with the refusal's text, which says so. The text, when it does.
async fn demanded_sign_in(carrier: &Carrier, access: &Access) -> Option<String> {
    let refusal = run_on(&carrier.handle, "true").await.err()?;
    match access.after_refusal(&refusal, false) {
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
    access: Arc<Access>,
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
                        match demanded_sign_in(&handle, &access).await {
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

struct Decrement<'a>(&'a AtomicU64);

impl Drop for Decrement<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
