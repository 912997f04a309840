//! The agent's side of the control socket, and the task that keeps the session.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{watch, Notify, Semaphore};
use tracing::{info, info_span, warn, Instrument};

use super::protocol::{
    self, ProtocolError, Reply, Request, SessionState, Status, MAX_LINE, MAX_REPLY_LINE,
};
use super::{lock_path, socket_path, AgentError, MAX_SOCKET_PATH};
use crate::access::{Access, AccessError, SignOutScope};
use crate::cert::Event;
use crate::cert::Stopped;
use crate::private_files::create_private_dir;
use crate::problem::classify;
use crate::tunnel::{OpenReport, OpenRequest, TunnelHost, TunnelInfo};

/// Connections served at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 64;

/// How long a connection may stay silent while the agent waits for its next request; then it
/// is closed, so that idle connections cannot hold every slot. Clients send their request as
/// they connect; subscribers are not waited on (they only listen).
const IDLE_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A control socket bound for one profile, with the lock that makes its agent the only one.
pub struct Bound {
    listener: UnixListener,
    socket: PathBuf,
    uid: u32,
    /// Held (locked) while the agent runs; the kernel releases it if the agent is killed.
    _lock: File,
    /// The program the agent lives in, when it is not `tether agent` (the desktop app): a
    /// `stop` request is refused, as that program would only start it again.
    hosted_by: Option<String>,
}

impl Bound {
    /// Marks the agent as part of a program (the desktop app) that stops it by quitting.
    pub fn hosted_by(mut self, program: &str) -> Bound {
        self.hosted_by = Some(program.to_string());
        self
    }

    /// Takes the profile's agent lock and binds its socket, replacing a stale one left by an
    /// agent that was killed.
    pub fn bind(paths: &crate::Paths, profile: &crate::Profile) -> Result<Bound, AgentError> {
        let dir = &paths.runtime_dir;
        create_private_dir(dir).map_err(|e| AgentError::io(dir, e.source))?;
        let socket = socket_path(paths, profile);
        let len = socket.as_os_str().len();
        if len > MAX_SOCKET_PATH {
            return Err(AgentError::PathTooLong { path: socket, len });
        }
        let lock = lock_path(paths, profile);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock)
            .map_err(|e| AgentError::io(&lock, e))?;
        // One left by an older version may be readable by others.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| AgentError::io(&lock, e))?;
        if let Err(e) = file.try_lock() {
            return match e {
                std::fs::TryLockError::WouldBlock => {
                    let mut text = String::new();
                    let _ = file.read_to_string(&mut text);
                    Err(AgentError::AlreadyRunning {
                        profile: profile.title.clone(),
                        pid: text.trim().parse().ok(),
                    })
                }
                std::fs::TryLockError::Error(e) => Err(AgentError::io(&lock, e)),
            };
        }
        let record = |f: &mut File| -> std::io::Result<()> {
            f.set_len(0)?;
            f.rewind()?;
            writeln!(f, "{}", std::process::id())
        };
        record(&mut file).map_err(|e| AgentError::io(&lock, e))?;
        // Holding the lock, a socket file can only be a dead agent's.
        match std::fs::remove_file(&socket) {
            Ok(()) => info!(socket = %socket.display(), "replaced a stale socket"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(AgentError::io(&socket, e)),
        }
        let listener = UnixListener::bind(&socket).map_err(|e| AgentError::io(&socket, e))?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| AgentError::io(&socket, e))?;
        Ok(Bound {
            listener,
            socket,
            // The agent serves the user it runs as, whoever owns the directory.
            uid: rustix::process::geteuid().as_raw(),
            _lock: file,
            hosted_by: None,
        })
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for Bound {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
    }
}

struct Host {
    access: Arc<Access>,
    tunnels: TunnelHost,
    started_at: u64,
    state: Mutex<SessionState>,
    /// Wakes the keeping task after a sign-in or a sign-out.
    restart: Notify,
    /// Set by a `stop` request.
    stop: watch::Sender<bool>,
    hosted_by: Option<String>,
    /// The tunnels the end of the last session closed, to open again after the next sign-in.
    reopen: Mutex<Vec<OpenRequest>>,
}

impl Host {
    fn state(&self) -> SessionState {
        self.state
            .lock()
            .map(|s| *s)
            .unwrap_or(SessionState::SignedOut)
    }

    fn set_state(&self, s: SessionState) {
        if let Ok(mut state) = self.state.lock() {
            *state = s;
        }
    }

    fn status(&self) -> Status {
        let keeper = self.access.keeper();
        let tunnels = self.tunnels.list();
        Status {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            profile: self.access.profile().name.clone(),
            started_at: self.started_at,
            session: self.state(),
            certificate: self.access.certificate(),
            last_activity: keeper.last_activity(),
            inactivity_limit_secs: keeper.inactivity_limit().as_secs(),
            tunnels: tunnels.len(),
            tunnels_down: tunnels.iter().filter(|t| t.state.is_down()).count(),
            reopenable: self.reopen.lock().map(|r| r.len()).unwrap_or(0),
        }
    }

    async fn answer(&self, request: Request) -> Reply {
        let keeper = self.access.keeper();
        match request {
            Request::Status => Reply::Status(self.status()),
            Request::Touch => {
                keeper.touch();
                Reply::Done
            }
            Request::Ready { new } => match self.access.ready_here(new).await {
                Ok(ready) => {
                    if self.state() != SessionState::Active {
                        self.restart.notify_one();
                    }
                    Reply::Ready(ready)
                }
                Err(e) => error_reply(&e),
            },
            Request::SignedIn => {
                keeper.touch();
                // Said before the event, so a shell that asks on the event reads it.
                self.set_state(SessionState::Active);
                keeper.emit(Event::SignedIn);
                self.restart.notify_one();
                Reply::Done
            }
            Request::SignOut { all } => {
                let scope = if all {
                    SignOutScope::All
                } else {
                    SignOutScope::Profile
                };
                match self.access.sign_out_here(scope).await {
                    Ok(report) => {
                        self.close_tunnels_of_ended_session().await;
                        self.set_state(SessionState::SignedOut);
                        keeper.emit(Event::SignedOut {
                            by_user: true,
                            reason: "signed out by the user".into(),
                        });
                        self.restart.notify_one();
                        Reply::SignedOut(report)
                    }
                    Err(e) => error_reply(&e),
                }
            }
            // Handled by the connection, which streams.
            Request::Subscribe => Reply::Subscribed,
            Request::TunnelOpen(req) => {
                keeper.touch();
                match self.tunnels.open(&req).await {
                    Ok(report) => Reply::Opened(report),
                    Err(e) => error_reply(&e),
                }
            }
            // The connection stops the agent once this reply is sent.
            Request::Stop => match &self.hosted_by {
                Some(program) => Reply::Error {
                    code: crate::problem::Problem::Usage.code().to_string(),
                    message: format!(
                        "the agent runs inside {program}: quit {program} from its menu to stop it"
                    ),
                    step_up: None,
                },
                None => Reply::Done,
            },
            Request::TunnelList => Reply::Tunnels {
                tunnels: self.tunnels.list(),
            },
            Request::TunnelClose(req) => Reply::Tunnels {
                tunnels: self.tunnels.close(&req).await,
            },
            Request::TunnelReopen => {
                keeper.touch();
                self.reopen_tunnels().await
            }
            Request::Relationships(app) => {
                keeper.touch();
                match self.tunnels.relationships(&app).await {
                    Ok(r) => Reply::Relationships {
                        endpoints: r
                            .endpoints()
                            .map(|e| super::protocol::EndpointFields {
                                id: e.id().to_string(),
                                fields: e.fields().clone(),
                            })
                            .collect(),
                        problems: r.problems().map(|p| p.to_string()).collect(),
                    },
                    Err(e) => error_reply(&e),
                }
            }
        }
    }

    /// Keeps the session until shutdown: runs the keeper while there is a session, and waits
    /// for a sign-in when there is none.
    async fn keep(&self, mut shutdown: watch::Receiver<bool>) {
        loop {
            self.set_state(initial_state(&self.access).await);
            let keeper = self.access.keeper();
            let stopped = tokio::select! {
                s = keeper.run(shutdown.clone()) => s,
                _ = self.restart.notified() => continue,
            };
            let state = match stopped {
                Stopped::Shutdown => return,
                Stopped::NoSession => {
                    // Nothing outlives the session, whatever ended it (inactivity, a revoked
                    // token, a refused refresh, a sign-out in another process).
                    self.close_tunnels_of_ended_session().await;
                    SessionState::SignedOut
                }
                Stopped::NeedsSignIn => SessionState::NeedsSignIn,
            };
            info!(?state, "waiting for a sign-in");
            self.set_state(state);
            tokio::select! {
                _ = self.restart.notified() => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    }
}

impl Host {
    /// Closes every tunnel because the session ended, and remembers them for
    /// [`Request::TunnelReopen`] after the next sign-in.
    async fn close_tunnels_of_ended_session(&self) {
        let closed = self.tunnels.close_all_signed_out().await;
        if closed.is_empty() {
            return;
        }
        info!(
            count = closed.len(),
            "the session ended: closed its tunnels"
        );
        if let Ok(mut reopen) = self.reopen.lock() {
            *reopen = closed.iter().map(reopen_request).collect();
        }
    }

    /// Opens the remembered tunnels again, each on its old port; what cannot be opened is
    /// reported and forgotten.
    async fn reopen_tunnels(&self) -> Reply {
        let requests = self
            .reopen
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default();
        let mut all = OpenReport {
            tunnels: Vec::new(),
            failed: Vec::new(),
        };
        let mut pending = requests.into_iter();
        while let Some(req) = pending.next() {
            match self.tunnels.open(&req).await {
                Ok(report) => {
                    all.tunnels.extend(report.tunnels);
                    all.failed.extend(report.failed);
                }
                Err(e) => {
                    if all.tunnels.is_empty()
                        && matches!(
                            classify(&e),
                            Some(
                                crate::problem::Problem::SignIn
                                    | crate::problem::Problem::StepUp(_)
                            )
                        )
                    {
                        // Still signed out: keep them all for the sign-in that comes.
                        if let Ok(mut reopen) = self.reopen.lock() {
                            reopen.extend(std::iter::once(req).chain(pending));
                        }
                        return error_reply(&e);
                    }
                    all.failed.push(crate::tunnel::OpenFailure {
                        relationship: req.relationships.join(","),
                        message: e.to_string(),
                    });
                }
            }
        }
        Reply::Opened(all)
    }
}

/// What opens a closed tunnel again: the same endpoint, on the same port and address.
fn reopen_request(t: &TunnelInfo) -> OpenRequest {
    OpenRequest {
        app: t.app.clone(),
        relationships: vec![t.endpoint_id().to_string()],
        port: Some(t.local.port()),
        // The default (loopback) is asked for as the default, as the shells ask for it.
        bind: Some(t.local.ip()).filter(|ip| *ip != std::net::Ipv4Addr::LOCALHOST),
    }
}

/// Whether there is a session to keep, before the keeper has looked at it: a shell asking at
/// once must not read "active" for a machine that is signed out.
async fn initial_state(access: &Access) -> SessionState {
    match access.session().has_session().await {
        Ok(true) => SessionState::Active,
        _ => SessionState::SignedOut,
    }
}

fn error_reply(e: &(dyn std::error::Error + 'static)) -> Reply {
    let problem = classify(e).unwrap_or(crate::problem::Problem::Other);
    let access = e
        .downcast_ref::<AccessError>()
        .or_else(|| match e.downcast_ref() {
            Some(crate::tunnel::TunnelError::Access(a)) => Some(a),
            _ => None,
        });
    Reply::Error {
        code: problem.code().to_string(),
        message: e.to_string(),
        step_up: access.and_then(AccessError::step_up),
    }
}

fn protocol_error(e: &ProtocolError) -> Reply {
    Reply::Error {
        code: "protocol".into(),
        message: e.to_string(),
        step_up: None,
    }
}

/// Runs the agent on a bound socket until `shutdown` turns true, or a client asks it to stop.
pub async fn serve(bound: Bound, access: Arc<Access>, outer: watch::Receiver<bool>) {
    let now = access.session().clock().unix();
    access.keeper().touch();
    if let Some(limit) = super::raise_open_files_limit() {
        info!(open_files = limit, "file descriptor limit");
    }
    let (stop, mut shutdown) = watch::channel(false);
    let forward = {
        let stop = stop.clone();
        let mut outer = outer;
        tokio::spawn(async move {
            if outer.wait_for(|s| *s).await.is_ok() {
                stop.send_replace(true);
            }
        })
    };
    // Known before the socket answers, so that no shell reads a state the agent then changes
    // without an event.
    let initial = initial_state(&access).await;
    let host = Arc::new(Host {
        tunnels: TunnelHost::new(access.clone()),
        access,
        started_at: now,
        state: Mutex::new(initial),
        restart: Notify::new(),
        stop,
        hosted_by: bound.hosted_by.clone(),
        reopen: Mutex::new(Vec::new()),
    });
    info!(socket = %bound.socket.display(), pid = std::process::id(), "agent ready");
    let keeping = tokio::spawn({
        let host = host.clone();
        let shutdown = shutdown.clone();
        async move { host.keep(shutdown).await }
    });
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut next_id = 0u64;
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let accepted = tokio::select! {
            a = bound.listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                warn!(error = %e, "accept failed");
                continue;
            }
        };
        next_id += 1;
        let peer = stream.peer_cred().ok();
        let span = info_span!(
            "connection",
            id = next_id,
            peer_uid = peer.map(|c| c.uid()),
            peer_pid = peer.and_then(|c| c.pid())
        );
        let host = host.clone();
        let shutdown = shutdown.clone();
        let uid = bound.uid;
        tokio::spawn(
            async move {
                let _permit = permit;
                if peer.map(|c| c.uid()) != Some(uid) {
                    warn!("refused a connection from another user");
                    let (_, mut w) = stream.into_split();
                    let _ = send(
                        &mut w,
                        &Reply::Error {
                            code: "forbidden".into(),
                            message: format!("this agent serves only uid {uid}"),
                            step_up: None,
                        },
                    )
                    .await;
                    return;
                }
                connection(host, stream, shutdown).await;
            }
            .instrument(span),
        );
    }
    let closed = host.tunnels.close_all().await;
    if !closed.is_empty() {
        info!(count = closed.len(), "closed the tunnels");
    }
    let _ = keeping.await;
    forward.abort();
    info!("agent stopped");
}

async fn send(w: &mut OwnedWriteHalf, reply: &Reply) -> std::io::Result<()> {
    w.write_all(&protocol::encode(reply)).await
}

async fn connection(host: Arc<Host>, stream: UnixStream, shutdown: watch::Receiver<bool>) {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    loop {
        let read = tokio::time::timeout(IDLE_READ_TIMEOUT, read_line(&mut r, MAX_LINE));
        let Ok(read) = read.await else {
            info!("closing a connection that sent nothing");
            return;
        };
        let line = match read {
            Ok(Some(line)) => line,
            Ok(None) => return,
            Err(LineError::Io) => return,
            Err(e) => {
                let _ = send(&mut w, &protocol_error(&e.into())).await;
                return;
            }
        };
        let request = match protocol::decode_request(&line) {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "bad request");
                if send(&mut w, &protocol_error(&e)).await.is_err() {
                    return;
                }
                continue;
            }
        };
        let span = info_span!("request", op = ?request);
        if request == Request::Subscribe {
            subscribe(&host, r, w, shutdown).instrument(span).await;
            return;
        }
        let stop = request == Request::Stop && host.hosted_by.is_none();
        let reply = host.answer(request).instrument(span).await;
        let sent = send(&mut w, &reply).await;
        if stop {
            info!("stopping on request");
            host.stop.send_replace(true);
        }
        if sent.is_err() {
            return;
        }
    }
}

/// Streams events until the client goes away or the agent stops.
async fn subscribe<R: AsyncBufRead + Unpin>(
    host: &Host,
    mut r: R,
    mut w: OwnedWriteHalf,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut events = host.access.keeper().subscribe();
    if send(&mut w, &Reply::Subscribed).await.is_err() {
        return;
    }
    let mut sink = Vec::new();
    loop {
        let event = tokio::select! {
            e = events.recv() => e,
            // A subscriber says nothing more; end when it hangs up.
            n = tokio::io::AsyncReadExt::read_buf(&mut r, &mut sink) => {
                if !matches!(n, Ok(1..)) {
                    return;
                }
                sink.clear();
                continue;
            }
            _ = shutdown.wait_for(|s| *s) => return,
        };
        match event {
            Ok(event) => {
                if send(&mut w, &Reply::Event(event)).await.is_err() {
                    return;
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                warn!(missed = n, "a slow subscriber missed events");
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

#[derive(Debug)]
enum LineError {
    Io,
    TooLarge,
    Truncated,
}

impl From<LineError> for ProtocolError {
    fn from(e: LineError) -> ProtocolError {
        match e {
            LineError::TooLarge => ProtocolError::TooLarge,
            LineError::Truncated | LineError::Io => {
                ProtocolError::Malformed("the request ended before its newline".into())
            }
        }
    }
}

/// One line without its newline; `None` at a clean end. Never buffers more than `max`.
async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Option<Vec<u8>>, LineError> {
    let mut line = Vec::new();
    loop {
        let buf = r.fill_buf().await.map_err(|_| LineError::Io)?;
        if buf.is_empty() {
            return if line.is_empty() {
                Ok(None)
            } else {
                Err(LineError::Truncated)
            };
        }
        let (take, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i, true),
            None => (buf.len(), false),
        };
        if line.len() + take >= max {
            return Err(LineError::TooLarge);
        }
        line.extend_from_slice(&buf[..take]);
        r.consume(if done { take + 1 } else { take });
        if done {
            return Ok(Some(line));
        }
    }
}

pub(super) async fn read_reply<R: AsyncBufRead + Unpin>(
    r: &mut R,
) -> Result<Option<Reply>, AgentError> {
    match read_line(r, MAX_REPLY_LINE).await {
        Ok(Some(line)) => Ok(Some(protocol::decode_reply(&line)?)),
        Ok(None) => Ok(None),
        Err(LineError::Io) => Err(AgentError::Closed),
        Err(e) => Err(AgentError::Protocol(e.into())),
    }
}
