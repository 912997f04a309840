//! The SSH gateway: certificate-only authentication against the simulator's CA, then the app
//! container's side of a session: a shell with a PTY and a welcome message, commands with the
//! platform's environment variables, the `sftp` subsystem (the system's `sftp-server`), and
//! `direct-tcpip` to the app's relationships, forwarded to the services' local backends.
//!
//! russh checks only a certificate's signature and validity window; the CA, the certificate
//! type, the principals and what the user may reach are checked here. What happens after that
//! lives beside: [`session`] runs what a session channel asks for (shell, command, PTY, sftp),
//! [`container`] is the app container those processes see (its directory, environment, welcome,
//! what its login scripts print), and [`forward`] carries `direct-tcpip` channels to the
//! services' backends. [`serve`] accepts the connections, and stops and restarts the gateway
//! while the rest of the simulator runs.

mod container;
mod forward;
mod serve;
mod session;

pub use serve::Gateway;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use russh::keys::ssh_key::certificate::CertType;
use russh::keys::Certificate;
use russh::server::{Auth, ChannelOpenHandle, Msg, Session};
use russh::{Channel, ChannelId, ChannelOpenFailure, Pty};
use tokio::sync::watch;
use tracing::{debug, info};

use crate::certifier::PRINCIPAL_PREFIX;
use crate::model;
use crate::state::{now, State};
use session::{Program, PtyRequest, SessionChannel};

pub struct GatewayServer {
    pub state: Arc<State>,
    /// How many connections are alive (see [`Presence`]).
    pub tally: Arc<watch::Sender<usize>>,
}

impl russh::server::Server for GatewayServer {
    type Handler = Connection;

    fn new_client(&mut self, peer: Option<SocketAddr>) -> Connection {
        Connection {
            state: self.state.clone(),
            peer,
            login: None,
            channels: HashMap::new(),
            presence: Presence::new(self.tally.clone()),
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

pub struct Connection {
    state: Arc<State>,
    peer: Option<SocketAddr>,
    login: Option<Login>,
    channels: HashMap<ChannelId, SessionChannel>,
    presence: Presence,
}

/// A connection's being alive: it counts among the gateway's connections, and the tasks it
/// spawns (forwards, processes) learn when it is gone, whether the client left or the gateway
/// was stopped, since nothing else would end a forward to an idle backend or a shell on a PTY.
/// Until they have ended, they count with the connection, so that a stopped gateway has ended
/// them all once its count is zero.
struct Presence {
    alive: watch::Sender<()>,
    counted: Arc<Counted>,
}

/// One count in the gateway's tally of connections, for as long as it is held.
struct Counted(Arc<watch::Sender<usize>>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Presence {
    fn new(tally: Arc<watch::Sender<usize>>) -> Presence {
        tally.send_modify(|n| *n += 1);
        Presence {
            alive: watch::channel(()).0,
            counted: Arc::new(Counted(tally)),
        }
    }

    /// Resolves once the connection is gone; keeps the connection counted until dropped.
    fn gone(&self) -> Gone {
        let mut alive = self.alive.subscribe();
        Gone {
            signal: Box::pin(async move { while alive.changed().await.is_ok() {} }),
            _counted: self.counted.clone(),
        }
    }
}

/// A task's hold on its connection (see [`Presence`]): a future that resolves once the
/// connection is gone, and keeps it counted until dropped, which is best done last.
struct Gone {
    signal: Pin<Box<dyn Future<Output = ()> + Send>>,
    _counted: Arc<Counted>,
}

impl Future for Gone {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.signal.as_mut().poll(cx)
    }
}

/// The message an MFA-enforcing organization answers to a certificate without MFA, in the
/// form the reference documents: a greeting, `Error: Access denied` on a line, and the
/// demanded methods as JSON on a line of their own that starts with `Parameters:`. Clients
/// match on those two lines; the session then ends without an exit status, so that `ssh`
/// itself fails (255) as it does against the real gateway.
pub fn mfa_denial(user_name: &str, ssh_user: &str) -> String {
    format!(
        "Hello {user_name}, you successfully authenticated, but could not connect to service \
         {ssh_user}: this organization requires multi-factor authentication.\r\n\
         Error: Access denied\r\n\
         Parameters: {{\"amr\":[\"mfa\"]}}"
    )
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
            let name = format!("{} {}", account.first_name, account.last_name);
            let name = if name.trim().is_empty() {
                account.username.clone()
            } else {
                name.trim().to_string()
            };
            Some(mfa_denial(&name, user))
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
        self.open_forward(channel, host, port, reply).await
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
