//! Serving the gateway: accepting SSH connections on its port, each run by russh, and stopping
//! it as a killed process would stop: the port closes and every live connection is cut at once,
//! so that tests can take the gateway away and bring it back on the same port while the rest
//! of the simulator (its grants, its tokens) keeps running. While it is stopped the port stays
//! bound, without listening, so that connecting is refused but nothing else can take it.
//!
//! russh runs a connection in a task of its own that it does not let us abort, so the stream it
//! is given is a [`Wire`]: the gateway keeps hold of every wire and cuts them by closing their
//! sockets and waking whoever waits on them; the session then fails on its next read or write,
//! ends, and drops its [`Connection`](super::Connection), whose forwards and processes end with
//! it (see [`Presence`](super::Presence)).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use russh::server::{run_stream, Config, Server as _};
use russh::Disconnect;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, error, warn};

use super::GatewayServer;
use crate::state::State;
use crate::SimError;

/// How long connections get to close after the simulator told them it is stopping.
const GRACE: Duration = Duration::from_secs(1);
/// How long stopping waits for cut sessions to drop their connections (a session is cut only
/// when it next touches its socket, which a handler it is awaiting can delay).
const SETTLE: Duration = Duration::from_secs(5);
/// The backlog tokio's `TcpListener::bind` uses.
const BACKLOG: u32 = 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The gateway of one simulator: its address, keys and state outlive any one run of it.
pub struct Gateway {
    addr: SocketAddr,
    config: Arc<Config>,
    state: Arc<State>,
    /// Set when the whole simulator stops: connections are then told so before being cut.
    stopping: watch::Receiver<bool>,
    /// How many connections are alive: their handlers, or tasks they spawned that have not
    /// ended yet (see `Presence`).
    tally: Arc<watch::Sender<usize>>,
    wires: Arc<Wires>,
    /// The accept loop of the current run.
    run: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    /// While stopped: the gateway's port, bound but not listening. Released, a port is free
    /// for any socket of the machine: a listener on port 0, or the source port of any
    /// outgoing connection (the kernel hands those out from the same range), and a busy
    /// machine took it often enough that starting again failed with "address in use". Bound,
    /// the kernel gives it to neither; only a socket that asks for this very port with
    /// `SO_REUSEADDR` could still share it, as two sockets that both allow it may until one
    /// listens.
    reserved: Mutex<Option<TcpSocket>>,
}

impl Gateway {
    /// A gateway serving `listener`, bound to `addr`, until stopped.
    pub(crate) fn new(
        listener: TcpListener,
        addr: SocketAddr,
        config: Arc<Config>,
        state: Arc<State>,
        stopping: watch::Receiver<bool>,
    ) -> Gateway {
        let mut gateway = Gateway {
            addr,
            config,
            state,
            stopping,
            tally: Arc::new(watch::channel(0).0),
            wires: Arc::new(Wires::default()),
            run: tokio::sync::Mutex::new(None),
            reserved: Mutex::new(None),
        };
        let run = gateway.spawn(listener);
        *gateway.run.get_mut() = Some(run);
        gateway
    }

    fn spawn(&self, listener: TcpListener) -> JoinHandle<()> {
        let server = GatewayServer {
            state: self.state.clone(),
            tally: self.tally.clone(),
        };
        tokio::spawn(accept_loop(
            listener,
            server,
            self.config.clone(),
            self.stopping.clone(),
            self.wires.clone(),
            self.tally.clone(),
        ))
    }

    /// How many SSH connections the gateway serves: accepted (before any SSH is spoken) and not
    /// yet ended, with their forwards and processes.
    pub fn connections(&self) -> usize {
        *self.tally.borrow()
    }

    /// Serves again on the same address; nothing to do when it serves already.
    pub async fn start(&self) -> Result<(), SimError> {
        let mut run = self.run.lock().await;
        if run.as_ref().is_some_and(|r| !r.is_finished()) {
            return Ok(());
        }
        let bind = |source| SimError::Bind {
            addr: self.addr,
            source,
        };
        let reserved = lock(&self.reserved).take();
        let socket = match reserved {
            Some(socket) => socket,
            None => self.bind().map_err(bind)?,
        };
        let listener = socket.listen(BACKLOG).map_err(bind)?;
        *run = Some(self.spawn(listener));
        debug!(addr = %self.addr, "gateway started again");
        Ok(())
    }

    /// Stops as a killed gateway would: the port is closed (connecting is refused) and every
    /// connection is cut, its forwards and processes with it. Returns once they are gone.
    pub async fn stop(&self) {
        let mut run = self.run.lock().await;
        if let Some(task) = run.take() {
            task.abort();
            // The loop owns the listener: once it is dropped, the port is closed.
            let _ = task.await;
            // And at once bound again, so that it stays the gateway's (see `reserved`).
            match self.bind() {
                Ok(socket) => *lock(&self.reserved) = Some(socket),
                Err(e) => warn!(addr = %self.addr, error = %e, "cannot keep the gateway's port"),
            }
        }
        self.wires.cut_all();
        if !settled(&self.tally, SETTLE).await {
            warn!(
                left = self.connections(),
                "gateway connections outlived the stop"
            );
        }
        debug!(addr = %self.addr, "gateway stopped");
    }

    /// A socket bound to the gateway's address, not yet listening: connecting to it is refused.
    fn bind(&self) -> io::Result<TcpSocket> {
        let socket = if self.addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }?;
        // As TcpListener::bind does: connections the last run closed may linger in TIME_WAIT.
        #[cfg(not(windows))]
        socket.set_reuseaddr(true)?;
        socket.bind(self.addr)?;
        Ok(socket)
    }

    /// Waits for the current run to end after the simulator's stop signal, then cuts whatever
    /// is left.
    pub(crate) async fn finish(&self) {
        let mut run = self.run.lock().await;
        if let Some(task) = run.take() {
            let _ = task.await;
        }
        self.wires.cut_all();
        let _ = settled(&self.tally, GRACE).await;
    }
}

/// Whether every connection is gone within `within`.
async fn settled(tally: &watch::Sender<usize>, within: Duration) -> bool {
    let mut rx = tally.subscribe();
    tokio::time::timeout(within, rx.wait_for(|n| *n == 0))
        .await
        .map(|r| r.is_ok())
        .unwrap_or(false)
}

/// Resolves once the simulator stops (or is gone).
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    let _ = stopping.wait_for(|s| *s).await;
}

/// What russh's `run_on_socket` does, with every connection's socket in a [`Wire`], and, when
/// the simulator stops, a grace period for connections to close after the disconnect message.
async fn accept_loop(
    listener: TcpListener,
    mut server: GatewayServer,
    config: Arc<Config>,
    mut stopping: watch::Receiver<bool>,
    wires: Arc<Wires>,
    tally: Arc<watch::Sender<usize>>,
) {
    let (error_tx, mut error_rx) = mpsc::unbounded_channel();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = stopped(&mut stopping) => {
                drop(listener);
                // Each connection sends its disconnect message; the clients close.
                let _ = settled(&tally, GRACE).await;
                wires.cut_all();
                return;
            }
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        error!(error = %e, "gateway failed");
                        // As run_on_socket: the connections already served go on.
                        connections.detach_all();
                        return;
                    }
                };
                if config.nodelay {
                    if let Err(e) = socket.set_nodelay(true) {
                        warn!("set_nodelay() failed: {e:?}");
                    }
                }
                let handler = server.new_client(Some(peer));
                let wire = wires.attach(socket);
                connections.spawn(connection(
                    config.clone(),
                    wire,
                    handler,
                    stopping.clone(),
                    error_tx.clone(),
                ));
            }
            Some(_) = connections.join_next() => {}
            Some(error) = error_rx.recv() => server.handle_session_error(error),
        }
    }
}

/// How much output a connection may queue: far more than any test sends, so that in effect
/// the session never waits to write.
const OUTBOX: usize = 1 << 30;

/// The wire with its writes queued and sent by a task of their own. russh's session loop stops
/// reading while it waits to write; when a client does the same (the thousand-connection load
/// test fills both directions at once), neither side would ever read again. OpenSSH's sshd
/// never stops reading, and neither does the simulated gateway now.
fn decouple(wire: Wire) -> impl AsyncRead + AsyncWrite + Unpin + Send + 'static {
    use tokio::io::AsyncWriteExt;
    let (read, mut write) = tokio::io::split(wire);
    let (session_side, pump_side) = tokio::io::duplex(OUTBOX);
    tokio::spawn(async move {
        let mut queued = tokio::io::BufReader::with_capacity(256 * 1024, pump_side);
        let _ = tokio::io::copy_buf(&mut queued, &mut write).await;
        let _ = write.shutdown().await;
    });
    tokio::io::join(read, session_side)
}

/// One connection, as `run_on_socket` runs it.
async fn connection(
    config: Arc<Config>,
    wire: Wire,
    handler: super::Connection,
    mut stopping: watch::Receiver<bool>,
    errors: mpsc::UnboundedSender<anyhow::Error>,
) {
    let session = tokio::select! {
        session = run_stream(config, decouple(wire), handler) => match session {
            Ok(s) => s,
            Err(e) => {
                debug!("Connection setup failed");
                let _ = errors.send(e);
                return;
            }
        },
        // No SSH yet to say goodbye in: the connection is closed.
        () = stopped(&mut stopping) => return,
    };
    let handle = session.handle();
    tokio::select! {
        () = stopped(&mut stopping) => {
            if handle
                .disconnect(
                    Disconnect::ByApplication,
                    "the simulator is stopping".into(),
                    String::new(),
                )
                .await
                .is_err()
            {
                debug!("Failed to send disconnect message");
            }
        }
        result = session => match result {
            Err(e) => {
                debug!("Connection closed with error");
                let _ = errors.send(e);
            }
            Ok(()) => debug!("Connection closed"),
        },
    }
}

/// The sockets of the live connections.
#[derive(Default)]
struct Wires {
    live: Mutex<Live>,
}

/// The lines of the live connections, by a number given at accept.
#[derive(Default)]
struct Live {
    next: u64,
    lines: HashMap<u64, Arc<Mutex<Line>>>,
}

/// A connection's socket, until it is cut, and the tasks waiting on it.
struct Line {
    socket: Option<TcpStream>,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

impl Wires {
    fn attach(self: &Arc<Self>, socket: TcpStream) -> Wire {
        let line = Arc::new(Mutex::new(Line {
            socket: Some(socket),
            reader: None,
            writer: None,
        }));
        let mut live = lock(&self.live);
        let id = live.next;
        live.next += 1;
        live.lines.insert(id, line.clone());
        Wire {
            id,
            line,
            wires: self.clone(),
        }
    }

    /// Closes every socket (the peer sees EOF) and wakes the sessions so that they end.
    fn cut_all(&self) {
        let lines: Vec<_> = lock(&self.live).lines.drain().map(|(_, l)| l).collect();
        for line in lines {
            let (socket, reader, writer) = {
                let mut l = lock(&line);
                (l.socket.take(), l.reader.take(), l.writer.take())
            };
            drop(socket);
            reader.into_iter().chain(writer).for_each(Waker::wake);
        }
    }
}

/// A connection's socket as its session sees it: a TCP stream that fails once cut.
struct Wire {
    id: u64,
    line: Arc<Mutex<Line>>,
    wires: Arc<Wires>,
}

impl Drop for Wire {
    fn drop(&mut self) {
        lock(&self.wires.live).lines.remove(&self.id);
    }
}

fn cut() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "the gateway was stopped")
}

fn remember(slot: &mut Option<Waker>, cx: &Context<'_>) {
    if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
        *slot = Some(cx.waker().clone());
    }
}

impl Wire {
    /// Polls the socket unless it was cut, noting who waits (`reading` or writing) to wake
    /// them on a cut.
    fn poll_with<T>(
        &self,
        cx: &mut Context<'_>,
        reading: bool,
        f: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let mut line = lock(&self.line);
        let Line {
            socket,
            reader,
            writer,
        } = &mut *line;
        let Some(socket) = socket.as_mut() else {
            return Poll::Ready(Err(cut()));
        };
        remember(if reading { reader } else { writer }, cx);
        f(Pin::new(socket), cx)
    }
}

impl AsyncRead for Wire {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.poll_with(cx, true, |s, cx| s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_with(cx, false, |s, cx| s.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_with(cx, false, |s, cx| s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_with(cx, false, |s, cx| s.poll_shutdown(cx))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_with(cx, false, |s, cx| s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;
    use std::net::SocketAddr;

    use crate::{Fixture, Sim, SimOptions};

    /// Regression: a stopped gateway released its port, and on a busy machine another socket
    /// (an outgoing connection's source port, often) took it before the gateway started again,
    /// which then failed with "address in use".
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopped_gateway_keeps_its_port_until_it_starts_again() {
        let sim = Sim::start(Fixture::demo().unwrap(), SimOptions::default())
            .await
            .unwrap();
        let addr = SocketAddr::new(sim.info.ssh_host.parse().unwrap(), sim.info.ssh_port);
        sim.stop_gateway().await;
        let refused = tokio::net::TcpStream::connect(addr).await;
        assert!(
            matches!(&refused, Err(e) if e.kind() == ErrorKind::ConnectionRefused),
            "{refused:?}"
        );
        // A socket that does not share its port (as an outgoing connection's is not) cannot
        // have it meanwhile.
        let other = tokio::net::TcpSocket::new_v4().unwrap();
        let bound = other.bind(addr);
        assert!(
            matches!(&bound, Err(e) if e.kind() == ErrorKind::AddrInUse),
            "{bound:?}"
        );
        sim.start_gateway().await.unwrap();
        tokio::net::TcpStream::connect(addr).await.unwrap();
    }
}
