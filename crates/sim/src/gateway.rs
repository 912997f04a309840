//! The SSH gateway: certificate-only authentication against the simulator's CA, then the app
//! container's side of a session: a shell with a PTY and a welcome message, commands with the
//! platform's environment variables, the `sftp` subsystem (the system's `sftp-server`), and
//! `direct-tcpip` to the app's relationships, forwarded to the services' local backends.
//!
//! russh checks only a certificate's signature and validity window; the CA, the certificate
//! type, the principals and what the user may reach are checked here.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use russh::keys::ssh_key::certificate::CertType;
use russh::keys::Certificate;
use russh::server::{Auth, ChannelOpenHandle, Msg, Session};
use russh::{
    Channel, ChannelId, ChannelMsg, ChannelOpenFailure, ChannelReadHalf, ChannelWriteHalf, Pty,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::certifier::PRINCIPAL_PREFIX;
use crate::model::{self, Container};
use crate::state::{now, State};

/// How long a forward waits for a service's backend to accept.
const BACKEND_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct GatewayServer {
    pub state: Arc<State>,
}

impl russh::server::Server for GatewayServer {
    type Handler = Connection;

    fn new_client(&mut self, peer: Option<SocketAddr>) -> Connection {
        Connection {
            state: self.state.clone(),
            peer,
            login: None,
            channels: HashMap::new(),
        }
    }

    fn handle_session_error(&mut self, error: anyhow::Error) {
        debug!(%error, "gateway connection ended with an error");
    }
}

/// What an accepted certificate may do on this connection.
#[derive(Debug, Clone)]
struct Login {
    user_id: String,
    ssh_user: String,
    /// Set when the user may reach the container but not with this certificate (MFA, paused
    /// environment): every request is answered with this message.
    denial: Option<String>,
    permit_pty: bool,
    permit_port_forwarding: bool,
}

#[derive(Default)]
struct SessionChannel {
    channel: Option<Channel<Msg>>,
    pty: Option<PtyRequest>,
    env: Vec<(String, String)>,
    resize: Option<Arc<Mutex<Box<dyn portable_pty::MasterPty + Send>>>>,
}

#[derive(Debug, Clone)]
struct PtyRequest {
    term: String,
    cols: u16,
    rows: u16,
}

pub struct Connection {
    state: Arc<State>,
    peer: Option<SocketAddr>,
    login: Option<Login>,
    channels: HashMap<ChannelId, SessionChannel>,
}

/// A session channel at the moment it asks to run something.
struct Requested {
    channel: Channel<Msg>,
    pty: Option<PtyRequest>,
    env: Vec<(String, String)>,
}

/// What a session channel runs.
enum Program {
    Shell,
    Command(String),
    Sftp,
}

/// The message an MFA-enforcing organization answers to a certificate without MFA, in the
/// form the reference documents (clients match on `Access denied` and the parameters).
pub fn mfa_denial() -> String {
    "Error: Access denied: this organization requires multi-factor authentication. \
     Log in again with MFA and load a new certificate. Parameters: {\"amr\":[\"mfa\"]}"
        .to_string()
}

impl Connection {
    fn check_certificate(&self, user: &str, cert: &Certificate) -> Result<Login, String> {
        if cert.signature_key() != self.state.ca.public_key().key_data() {
            return Err("certificate is not signed by the platform CA".into());
        }
        if cert.cert_type() != CertType::User {
            return Err("not a user certificate".into());
        }
        let t = now();
        if t < cert.valid_after() || t >= cert.valid_before() {
            return Err("certificate is not valid now".into());
        }
        let user_id = cert.key_id();
        let principal = format!("{PRINCIPAL_PREFIX}{user_id}");
        if !cert.valid_principals().contains(&principal) {
            return Err(format!("certificate lacks principal {principal}"));
        }
        let fixture = self.state.fixture();
        let account = fixture
            .user_by_id(user_id)
            .ok_or_else(|| format!("unknown user {user_id}"))?;
        let container = model::resolve_user(&fixture, user)
            .ok_or_else(|| format!("no app container named {user}"))?;
        if !container.project.members.contains(&account.username) {
            return Err(format!(
                "{} may not reach project {}",
                account.username, container.project.id
            ));
        }
        let extensions = cert.extensions();
        let mfa_required = fixture
            .organization(&container.project.organization)
            .is_some_and(|o| o.mfa_required);
        let denial = if mfa_required && !extensions.contains_key("has-mfa@platform.sh") {
            Some(mfa_denial())
        } else if !container.env.status.is_running() {
            Some(format!(
                "Error: environment {} of project {} is {}: it has no running containers. Resume or activate it first.",
                container.env.id,
                container.project.id,
                container.env.status.as_str()
            ))
        } else {
            None
        };
        Ok(Login {
            user_id: user_id.to_string(),
            ssh_user: user.to_string(),
            denial,
            permit_pty: extensions.contains_key("permit-pty"),
            permit_port_forwarding: extensions.contains_key("permit-port-forwarding"),
        })
    }

    /// The channel of a session request, with the PTY and environment asked for before it.
    fn take_channel(&mut self, id: ChannelId) -> Option<Requested> {
        let slot = self.channels.get_mut(&id)?;
        Some(Requested {
            channel: slot.channel.take()?,
            pty: slot.pty.clone(),
            env: std::mem::take(&mut slot.env),
        })
    }

    /// Starts what a session channel asked for, or answers with the login's denial.
    async fn start(
        &mut self,
        id: ChannelId,
        program: Program,
        session: &mut Session,
    ) -> anyhow::Result<()> {
        let Some(login) = self.login.clone() else {
            session.channel_failure(id)?;
            return Ok(());
        };
        let Some(Requested {
            channel,
            pty,
            env: client_env,
        }) = self.take_channel(id)
        else {
            session.channel_failure(id)?;
            return Ok(());
        };
        session.channel_success(id)?;
        let (read, write) = channel.split();
        if let Some(message) = login.denial {
            info!(user = %login.ssh_user, "refusing session: {message}");
            tokio::spawn(async move {
                let _ = write
                    .extended_data_bytes(1, format!("{message}\r\n").into_bytes())
                    .await;
                finish(&write, 1).await;
            });
            return Ok(());
        }
        let fixture = self.state.fixture();
        let Some(container) = model::resolve_user(&fixture, &login.ssh_user) else {
            finish(&write, 255).await;
            return Ok(());
        };
        let dir = scratch_dir(&self.state.scratch_dir, &container);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            warn!(dir = %dir.display(), error = %e, "cannot create the app's scratch directory");
            finish(&write, 255).await;
            return Ok(());
        }
        let mut env = container_env(&container, &dir);
        env.extend(client_env);
        let welcome = matches!(program, Program::Shell).then(|| welcome(&container));
        let span = info_span!("ssh_session", user = %login.ssh_user, user_id = %login.user_id);
        match (pty.filter(|_| login.permit_pty), program) {
            (Some(pty), Program::Shell) => {
                self.spawn_pty(id, read, write, pty, None, env, dir, welcome, span)
            }
            (Some(pty), Program::Command(cmd)) => {
                self.spawn_pty(id, read, write, pty, Some(cmd), env, dir, None, span)
            }
            (_, program) => {
                let mut command = match program {
                    Program::Sftp => match sftp_server() {
                        Some(path) => Command::new(path),
                        None => {
                            let _ = write
                                .extended_data_bytes(
                                    1,
                                    b"sftp-server is not installed on this machine\r\n".to_vec(),
                                )
                                .await;
                            finish(&write, 127).await;
                            return Ok(());
                        }
                    },
                    Program::Command(cmd) => {
                        let mut c = Command::new(shell());
                        c.arg("-c").arg(cmd);
                        c
                    }
                    Program::Shell => Command::new(shell()),
                };
                command.current_dir(&dir).env_clear().envs(env);
                tokio::spawn(run_piped(command, read, write, welcome).instrument(span));
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn spawn_pty(
        &mut self,
        id: ChannelId,
        read: ChannelReadHalf,
        write: ChannelWriteHalf<Msg>,
        pty: PtyRequest,
        command: Option<String>,
        env: Vec<(String, String)>,
        dir: PathBuf,
        welcome: Option<String>,
        span: tracing::Span,
    ) {
        let system = portable_pty::native_pty_system();
        let pair = match system.openpty(portable_pty::PtySize {
            rows: pty.rows.max(1),
            cols: pty.cols.max(1),
            pixel_width: 0,
            pixel_height: 0,
        }) {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "cannot open a pty");
                tokio::spawn(async move { finish(&write, 255).await });
                return;
            }
        };
        let mut builder = portable_pty::CommandBuilder::new(shell());
        match command {
            Some(cmd) => {
                builder.arg("-c");
                builder.arg(cmd);
            }
            None => {
                builder.args(["--noprofile", "--norc", "-i"]);
            }
        }
        builder.cwd(&dir);
        builder.env_clear();
        for (k, v) in env {
            builder.env(k, v);
        }
        builder.env("TERM", &pty.term);
        let spawned = pair.slave.spawn_command(builder);
        drop(pair.slave);
        let (mut child, reader, writer) = match (
            spawned,
            pair.master.try_clone_reader(),
            pair.master.take_writer(),
        ) {
            (Ok(c), Ok(r), Ok(w)) => (c, r, w),
            _ => {
                warn!("cannot start a shell on the pty");
                tokio::spawn(async move { finish(&write, 255).await });
                return;
            }
        };
        let master = Arc::new(Mutex::new(pair.master));
        if let Some(slot) = self.channels.get_mut(&id) {
            slot.resize = Some(master.clone());
        }
        // Output: a blocking reader thread feeds an async writer.
        let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(32);
        std::thread::spawn(move || {
            let mut reader = reader;
            let mut buf = [0u8; 8192];
            loop {
                match std::io::Read::read(&mut reader, &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if out_tx.blocking_send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        // Input: channel data goes to the pty from a blocking writer thread.
        let (in_tx, in_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            let mut writer = writer;
            while let Ok(data) = in_rx.recv() {
                if std::io::Write::write_all(&mut writer, &data).is_err() {
                    break;
                }
                let _ = std::io::Write::flush(&mut writer);
            }
        });
        let (exit_tx, exit_rx) = tokio::sync::oneshot::channel::<u32>();
        std::thread::spawn(move || {
            let code = child.wait().map(|s| s.exit_code()).unwrap_or(255);
            let _ = exit_tx.send(code);
        });
        tokio::spawn(
            async move {
                if let Some(w) = welcome {
                    let _ = write.data_bytes(w.into_bytes()).await;
                }
                let input = forward_input(read, move |data| in_tx.send(data).is_ok());
                let output = async {
                    while let Some(chunk) = out_rx.recv().await {
                        if write.data_bytes(chunk).await.is_err() {
                            break;
                        }
                    }
                };
                // Output flows while the shell runs; the reader ends once the last process
                // holding the pty closes it.
                let exit = async {
                    let (code, ()) = tokio::join!(exit_rx, output);
                    code.unwrap_or(255)
                };
                let code = tokio::select! {
                    code = exit => code,
                    _ = input => 255,
                };
                drop(master);
                finish(&write, code).await;
            }
            .instrument(span),
        );
    }
}

/// Copies channel input into `sink` until the client closes the channel; returns on close
/// (EOF on a pty is kept as Ctrl-D would be, so closing input does not end the session).
async fn forward_input(mut read: ChannelReadHalf, sink: impl Fn(Vec<u8>) -> bool) {
    while let Some(msg) = read.wait().await {
        match msg {
            ChannelMsg::Data { data } if !sink(data.to_vec()) => break,
            ChannelMsg::Close => return,
            _ => {}
        }
    }
    // The channel is gone: wait forever so that the caller's exit branch wins if it can.
    std::future::pending::<()>().await
}

async fn finish(write: &ChannelWriteHalf<Msg>, code: u32) {
    let _ = write.exit_status(code).await;
    let _ = write.eof().await;
    let _ = write.close().await;
}

/// Runs a program with pipes: stdin from the channel, stdout as data, stderr as extended data.
async fn run_piped(
    mut command: Command,
    mut read: ChannelReadHalf,
    write: ChannelWriteHalf<Msg>,
    welcome: Option<String>,
) {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = write
                .extended_data_bytes(1, format!("cannot start the command: {e}\r\n").into_bytes())
                .await;
            finish(&write, 127).await;
            return;
        }
    };
    if let Some(w) = welcome {
        let _ = write.data_bytes(w.into_bytes()).await;
    }
    let mut stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let input = async {
        while let Some(msg) = read.wait().await {
            match msg {
                ChannelMsg::Data { data } => {
                    if let Some(s) = stdin.as_mut() {
                        if s.write_all(&data).await.is_err() {
                            stdin = None;
                        }
                    }
                }
                ChannelMsg::Eof => stdin = None,
                ChannelMsg::Close => break,
                _ => {}
            }
        }
    };
    let outputs = async {
        tokio::join!(pump(stdout, &write, None), pump(stderr, &write, Some(1)));
    };
    let status = async {
        outputs.await;
        child.wait().await
    };
    tokio::pin!(status);
    let status = tokio::select! {
        s = &mut status => s,
        _ = input => {
            // The client closed the channel: stop the command.
            return;
        }
    };
    let code = match status {
        Ok(s) => s.code().map(|c| c as u32).unwrap_or(255),
        Err(_) => 255,
    };
    finish(&write, code).await;
}

async fn pump(
    stream: Option<impl AsyncRead + Unpin>,
    write: &ChannelWriteHalf<Msg>,
    ext: Option<u32>,
) {
    let Some(mut stream) = stream else { return };
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let chunk = buf[..n].to_vec();
                let sent = match ext {
                    Some(code) => write.extended_data_bytes(code, chunk).await,
                    None => write.data_bytes(chunk).await,
                };
                if sent.is_err() {
                    return;
                }
            }
        }
    }
}

fn shell() -> &'static str {
    if Path::new("/bin/bash").exists() {
        "/bin/bash"
    } else {
        "/bin/sh"
    }
}

/// The system's sftp server, which speaks the protocol for `sftp` and modern `scp`.
fn sftp_server() -> Option<&'static str> {
    [
        "/usr/lib/openssh/sftp-server",
        "/usr/libexec/openssh/sftp-server",
        "/usr/libexec/sftp-server",
        "/usr/lib/ssh/sftp-server",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
}

fn scratch_dir(root: &Path, c: &Container<'_>) -> PathBuf {
    let mut name = c.application_name();
    if let Some(i) = c.instance {
        name.push_str(&format!(".{i}"));
    }
    root.join(&c.project.id).join(&c.env.id).join(name)
}

/// The environment an app's processes see, as on the platform.
fn container_env(c: &Container<'_>, dir: &Path) -> Vec<(String, String)> {
    let relationships = model::relationships_json(c.project, c.env, c.app).to_string();
    let mut env = vec![
        ("HOME".to_string(), dir.display().to_string()),
        (
            "PATH".to_string(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
        ),
        ("SHELL".to_string(), shell().to_string()),
        (
            "PS1".to_string(),
            format!(
                "web@{}.{}:\\w$ ",
                c.application_name(),
                c.instance.unwrap_or(0)
            ),
        ),
        (
            "PLATFORM_APPLICATION_NAME".to_string(),
            c.application_name(),
        ),
        ("PLATFORM_APP_DIR".to_string(), dir.display().to_string()),
        (
            "PLATFORM_ENVIRONMENT".to_string(),
            c.env.machine_name.clone(),
        ),
        ("PLATFORM_BRANCH".to_string(), c.env.id.clone()),
        (
            "PLATFORM_ENVIRONMENT_TYPE".to_string(),
            format!("{:?}", c.env.kind).to_lowercase(),
        ),
        ("PLATFORM_PROJECT".to_string(), c.project.id.clone()),
        (
            "PLATFORM_TREE_ID".to_string(),
            model::head_commit(c.project, c.env),
        ),
        (
            "PLATFORM_RELATIONSHIPS".to_string(),
            STANDARD.encode(relationships),
        ),
        ("PLATFORM_SMTP_HOST".to_string(), String::new()),
        ("TETHER_SIM".to_string(), "1".to_string()),
    ];
    if let Some(w) = c.worker {
        env.push(("PLATFORM_WORKER".to_string(), w.to_string()));
    }
    if let Ok(lang) = std::env::var("LANG") {
        env.push(("LANG".to_string(), lang));
    }
    env
}

fn welcome(c: &Container<'_>) -> String {
    let instance = c
        .instance
        .map(|i| format!(", instance {i}"))
        .unwrap_or_default();
    format!(
        "\r\n   ___ _      _    __                    \r\n  | _ \\ |__ _| |_ / _|___ _ _ _ __    ___ _ _ \r\n  |  _/ / _` |  _|  _/ _ \\ '_| '  \\ _(_-< ' \\\r\n  |_| |_\\__,_|\\__|_| \\___/_| |_|_|_(_)__/_||_|\r\n\r\n \
         Welcome to Platform.sh (simulated by tether-sim, a development tool).\r\n\r\n \
         This is environment {env} ({machine}) of project {title} ({project}), app {app}{instance}.\r\n \
         The app's files are in the home directory.\r\n\r\n",
        env = c.env.id,
        machine = c.env.machine_name,
        title = c.project.title,
        project = c.project.id,
        app = c.application_name(),
    )
}

impl russh::server::Handler for Connection {
    type Error = anyhow::Error;

    async fn auth_publickey(
        &mut self,
        user: &str,
        _key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        info!(%user, peer = ?self.peer, "refused a plain public key: only platform certificates are accepted");
        Ok(Auth::reject())
    }

    async fn auth_openssh_certificate(
        &mut self,
        user: &str,
        cert: &Certificate,
    ) -> Result<Auth, Self::Error> {
        match self.check_certificate(user, cert) {
            Ok(login) => {
                info!(%user, user_id = %login.user_id, denied = login.denial.is_some(), "certificate accepted");
                self.login = Some(login);
                Ok(Auth::Accept)
            }
            Err(reason) => {
                info!(%user, peer = ?self.peer, %reason, "certificate refused");
                Ok(Auth::reject())
            }
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.login.is_none() {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        self.channels.insert(
            channel.id(),
            SessionChannel {
                channel: Some(channel),
                ..Default::default()
            },
        );
        reply.accept().await;
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host: &str,
        port: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(login) = self.login.clone() else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        if let Some(message) = login.denial {
            reply
                .reject(ChannelOpenFailure::Other {
                    code: 1,
                    reason: message,
                })
                .await;
            return Ok(());
        }
        if !login.permit_port_forwarding {
            reply
                .reject(ChannelOpenFailure::Other {
                    code: 1,
                    reason: "the certificate does not permit port forwarding".into(),
                })
                .await;
            return Ok(());
        }
        let fixture = self.state.fixture();
        let backend = model::resolve_user(&fixture, &login.ssh_user).and_then(|c| {
            model::endpoints(c.project, c.env, c.app)
                .into_iter()
                .find(|e| {
                    u32::from(e.port) == port
                        && (e.host == host || e.ip == host || e.hostname == host)
                })
                .and_then(|e| self.state.backends.get(&e.service.backend).copied())
        });
        let Some(backend) = backend else {
            info!(user = %login.ssh_user, %host, port, "refused a forward to something that is no relationship");
            reply
                .reject(ChannelOpenFailure::Other {
                    code: 1,
                    reason: format!("{host}:{port} is not a relationship of this app"),
                })
                .await;
            return Ok(());
        };
        let stream = match tokio::time::timeout(
            BACKEND_CONNECT_TIMEOUT,
            TcpStream::connect(backend),
        )
        .await
        {
            Ok(Ok(s)) => s,
            _ => {
                warn!(%host, port, %backend, "the service's backend does not answer");
                reply.reject(ChannelOpenFailure::ConnectFailed).await;
                return Ok(());
            }
        };
        reply.accept().await;
        let span = info_span!("forward", user = %login.ssh_user, %host, port);
        tokio::spawn(
            async move {
                let mut tcp = stream;
                let mut chan = channel.into_stream();
                let copied = tokio::io::copy_bidirectional(&mut chan, &mut tcp).await;
                debug!(?copied, "forward closed");
                let _ = chan.shutdown().await;
            }
            .instrument(span),
        );
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let permitted = self.login.as_ref().is_some_and(|l| l.permit_pty);
        match self.channels.get_mut(&channel) {
            Some(slot) if permitted => {
                slot.pty = Some(PtyRequest {
                    term: term.to_string(),
                    cols: u16::try_from(col_width).unwrap_or(80),
                    rows: u16::try_from(row_height).unwrap_or(24),
                });
                session.channel_success(channel)?;
            }
            _ => session.channel_failure(channel)?,
        }
        Ok(())
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Like sshd's default AcceptEnv: only the locale.
        let accepted = name == "LANG" || name.starts_with("LC_");
        match self.channels.get_mut(&channel) {
            Some(slot) if accepted => {
                slot.env.push((name.to_string(), value.to_string()));
                session.channel_success(channel)?;
            }
            _ => session.channel_failure(channel)?,
        }
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start(channel, Program::Shell, session).await
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let command = String::from_utf8_lossy(data).into_owned();
        debug!(%command, "exec");
        self.start(channel, Program::Command(command), session)
            .await
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if name != "sftp" {
            session.channel_failure(channel)?;
            return Ok(());
        }
        self.start(channel, Program::Sftp, session).await
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(master) = self.channels.get(&channel).and_then(|s| s.resize.clone()) {
            if let Ok(m) = master.lock() {
                let _ = m.resize(portable_pty::PtySize {
                    rows: u16::try_from(row_height).unwrap_or(24),
                    cols: u16::try_from(col_width).unwrap_or(80),
                    pixel_width: 0,
                    pixel_height: 0,
                });
            }
        }
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        Ok(())
    }
}
