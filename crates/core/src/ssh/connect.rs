//! One authenticated SSH connection to the platform's gateway over russh, with the session's
//! certificate. Shared by commands run in-process ([`super::exec`]) and by the tunnel host,
//! which keeps one such connection per app. The server's host key must pass the profile's
//! [`HostKeyPolicy`] (the same one the system `ssh` gets through the session's config); an
//! unknown, changed or revoked key is refused, never accepted.

use std::sync::Arc;
use std::time::Duration;

use russh::client;
use russh::keys::PublicKeyOrCertificate;
use ssh_key::{Certificate, PrivateKey};
use tokio::sync::watch;

use super::trust::{lookup_name, HostKeyPolicy, HostKeyRefused, Presented};
use super::url::SshUrl;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect to {addr}: {message}")]
    Connect { addr: String, message: String },
    #[error(transparent)]
    HostKey(#[from] HostKeyRefused),
    #[error("the SSH server refused the certificate: load a new certificate, or sign in again")]
    AuthFailed,
    #[error("SSH failed: {0}")]
    Ssh(String),
    #[error("the command did not finish within {} s", .0.as_secs())]
    Timeout(Duration),
}

impl From<russh::Error> for ConnectError {
    fn from(e: russh::Error) -> Self {
        ConnectError::Ssh(e.to_string())
    }
}

/// Where to connect and whom to trust.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub address: String,
    pub port: u16,
    /// The names the gateway's host key is looked up under: the SSH URL's host, and the
    /// address dialled when a profile file sends the connection elsewhere.
    pub names: Vec<String>,
    pub trust: HostKeyPolicy,
}

impl Endpoint {
    /// The gateway for `url` under a profile: the URL's host on port 22, resolved by the
    /// system (the built-in profiles), or a profile file's local address; trusted as
    /// `trust` says.
    pub fn for_profile(
        profile: &crate::profile::Profile,
        url: &SshUrl,
        trust: HostKeyPolicy,
    ) -> Endpoint {
        let (address, port) = match &profile.ssh {
            Some(s) => (s.hostname.clone(), s.port),
            None => (url.host().to_string(), 22),
        };
        let mut names = vec![lookup_name(url.host(), 22)];
        let dialled = lookup_name(&address, port);
        if !names.contains(&dialled) {
            names.push(dialled);
        }
        Endpoint {
            address,
            port,
            names,
            trust,
        }
    }

    fn addr(&self) -> String {
        format!("{}:{}", self.address, self.port)
    }
}

/// The client side of a connection: checks the host key, and reports when the connection
/// ends (for the tunnel host, which reconnects).
pub struct Client {
    names: Vec<String>,
    trust: HostKeyPolicy,
    /// Why the host key was refused, for the error.
    rejected: Arc<std::sync::Mutex<Option<HostKeyRefused>>>,
    closed: watch::Sender<Option<String>>,
}

impl Client {
    fn reject(&self, what: HostKeyRefused) {
        if let Ok(mut r) = self.rejected.lock() {
            *r = Some(what);
        }
    }
}

impl client::Handler for Client {
    type Error = ConnectError;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let presented = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => Presented::Key(key),
            PublicKeyOrCertificate::Certificate(cert) => Presented::Certificate(cert),
        };
        match self.trust.check(&self.names, presented) {
            Ok(()) => Ok(true),
            Err(refused) => {
                tracing::warn!(host = %refused.host, fingerprint = %refused.fingerprint, "host key refused");
                self.reject(refused);
                Ok(false)
            }
        }
    }

    async fn disconnected(
        &mut self,
        reason: client::DisconnectReason<Self::Error>,
    ) -> Result<(), Self::Error> {
        let why = match &reason {
            client::DisconnectReason::ReceivedDisconnect(info) => {
                if info.message.is_empty() {
                    "the gateway closed the connection".to_string()
                } else {
                    format!("the gateway closed the connection: {}", info.message)
                }
            }
            client::DisconnectReason::Error(e) => format!("the connection failed: {e}"),
        };
        self.closed.send_replace(Some(why));
        match reason {
            client::DisconnectReason::ReceivedDisconnect(_) => Ok(()),
            client::DisconnectReason::Error(e) => Err(e),
        }
    }
}

/// An authenticated connection.
pub struct Connection {
    pub handle: client::Handle<Client>,
    /// Turns `Some(reason)` when the connection ends.
    pub closed: watch::Receiver<Option<String>>,
}

impl Connection {
    /// Waits until the connection ends, and says why.
    pub async fn ended(&mut self) -> String {
        match self.closed.wait_for(|c| c.is_some()).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            Err(_) => "the connection ended".to_string(),
        }
    }
}

/// The client settings for commands: small and quick to set up.
pub fn command_config(timeout: Duration) -> client::Config {
    client::Config {
        inactivity_timeout: Some(timeout),
        nodelay: true,
        ..Default::default()
    }
}

/// How often an idle tunnel connection asks the gateway whether it is still there.
const TUNNEL_KEEPALIVE: Duration = Duration::from_secs(5);
/// Unanswered keepalives in a row before the connection counts as dead.
const TUNNEL_KEEPALIVE_MAX: usize = 2;
/// How long a tunnel connection can hear nothing from the gateway before it is dropped (and
/// made again): a laptop that lost its network notices within this, with no traffic at all.
pub const TUNNEL_DEAD_AFTER: Duration =
    TUNNEL_KEEPALIVE.saturating_mul(TUNNEL_KEEPALIVE_MAX as u32 + 1);

/// How long the TCP connect to a gateway may take. A silent network (a dropped SYN) gets no
/// answer at all, and the kernel's own retries would wait minutes; giving up early and
/// starting a fresh attempt means a network that comes back is used within about a second.
pub const TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the whole connection may take: TCP, the SSH handshake and authentication. A
/// gateway that accepts TCP and then says nothing must not hold a tunnel (or anything
/// waiting on it) forever.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The client settings for tunnels, tuned for throughput: wide channel windows so that a
/// stream is never stalled waiting for window adjustments on a fast link, a deep per-channel
/// queue, AES-GCM first (hardware AES makes it the fastest cipher a server
/// offers) then chacha20-poly1305, and keepalives so that a dead network is noticed within
/// [`TUNNEL_DEAD_AFTER`] even when no data flows (russh gives up once `keepalive_max`
/// keepalives in a row went unanswered, one interval after the last).
pub fn tunnel_config() -> client::Config {
    use russh::cipher;
    let preferred = russh::Preferred {
        cipher: std::borrow::Cow::Borrowed(&[
            cipher::AES_128_GCM,
            cipher::AES_256_GCM,
            cipher::CHACHA20_POLY1305,
            cipher::AES_256_CTR,
            cipher::AES_128_CTR,
        ]),
        ..russh::Preferred::DEFAULT
    };
    client::Config {
        window_size: 16 * 1024 * 1024,
        maximum_packet_size: 32 * 1024,
        // russh's session loop waits when a channel's queue is full (and replenishes windows
        // on receipt, not consumption), so one local client that stops reading could stall
        // every tunnel of its app; a deep queue, drained by each tunnel's copy task, keeps a
        // momentarily slow client from getting there. The queue allocates as it fills.
        channel_buffer_size: 1024,
        preferred,
        inactivity_timeout: None,
        keepalive_interval: Some(TUNNEL_KEEPALIVE),
        keepalive_max: TUNNEL_KEEPALIVE_MAX,
        nodelay: true,
        ..Default::default()
    }
}

/// How much the SSH session reads from the socket at once.
const INBOX: usize = 256 * 1024;

/// The TCP connection to the gateway, its writes decoupled from the SSH session (see
/// [`super::outbox`]) and its reads buffered.
///
/// russh reads each packet with two exact reads (its length, then the rest), which unbuffered
/// is two system calls per packet, however many packets the socket holds. A gateway that
/// sends small packets (tether-sim's are 8 KiB) made that most of a busy tunnel's system calls.
async fn open_socket(
    endpoint: &Endpoint,
) -> Result<impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static, ConnectError>
{
    let tcp = tokio::time::timeout(
        TCP_CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((endpoint.address.as_str(), endpoint.port)),
    )
    .await
    .map_err(|_| ConnectError::Connect {
        addr: endpoint.addr(),
        message: no_answer(TCP_CONNECT_TIMEOUT),
    })?
    .map_err(|e| ConnectError::Connect {
        addr: endpoint.addr(),
        message: e.to_string(),
    })?;
    let _ = tcp.set_nodelay(true);
    let (read, write) = tcp.into_split();
    Ok(tokio::io::join(
        tokio::io::BufReader::with_capacity(INBOX, read),
        super::outbox::Outbox::new(write),
    ))
}

/// `base` for one endpoint: the host-key algorithms the trust policy knows for it offered
/// first (certificate variants too when a `@cert-authority` line covers it), then the rest.
/// Every field is listed, so a field russh adds is a compile error here rather than a
/// setting silently lost.
fn for_endpoint(base: &client::Config, endpoint: &Endpoint) -> client::Config {
    let (known, certificates) = endpoint.trust.known_algorithms(&endpoint.names);
    let mut preferred = base.preferred.clone();
    if !known.is_empty() {
        let mut order = known;
        for a in base.preferred.key.iter() {
            if !order.contains(a) {
                order.push(a.clone());
            }
        }
        preferred.key = order.into();
    }
    if certificates {
        preferred.host_key_certificates = preferred.key.clone();
    }
    client::Config {
        client_id: match &base.client_id {
            russh::SshId::Standard(id) => russh::SshId::Standard(id.clone()),
            russh::SshId::Raw(id) => russh::SshId::Raw(id.clone()),
        },
        limits: base.limits.clone(),
        window_size: base.window_size,
        maximum_packet_size: base.maximum_packet_size,
        channel_buffer_size: base.channel_buffer_size,
        preferred,
        inactivity_timeout: base.inactivity_timeout,
        keepalive_interval: base.keepalive_interval,
        keepalive_max: base.keepalive_max,
        anonymous: base.anonymous,
        gex: base.gex.clone(),
        nodelay: base.nodelay,
    }
}

fn no_answer(after: Duration) -> String {
    format!("no answer within {} s", after.as_secs())
}

/// Connects to `endpoint` and authenticates as `url`'s user with the certificate, giving up
/// after [`CONNECT_TIMEOUT`].
pub async fn connect(
    config: Arc<client::Config>,
    endpoint: &Endpoint,
    url: &SshUrl,
    key: PrivateKey,
    cert: Certificate,
) -> Result<Connection, ConnectError> {
    tokio::time::timeout(
        CONNECT_TIMEOUT,
        connect_unbounded(config, endpoint, url, key, cert),
    )
    .await
    .unwrap_or_else(|_| {
        Err(ConnectError::Connect {
            addr: endpoint.addr(),
            message: no_answer(CONNECT_TIMEOUT),
        })
    })
}

async fn connect_unbounded(
    config: Arc<client::Config>,
    endpoint: &Endpoint,
    url: &SshUrl,
    key: PrivateKey,
    cert: Certificate,
) -> Result<Connection, ConnectError> {
    let rejected = Arc::new(std::sync::Mutex::new(None));
    let (closed_tx, closed) = watch::channel(None);
    let client = Client {
        names: endpoint.names.clone(),
        trust: endpoint.trust.clone(),
        rejected: rejected.clone(),
        closed: closed_tx,
    };
    let config = Arc::new(for_endpoint(&config, endpoint));
    let socket = open_socket(endpoint).await?;
    let mut handle = match client::connect_stream(config, socket, client).await {
        Ok(h) => h,
        Err(e) => {
            if let Some(refused) = rejected.lock().ok().and_then(|r| r.clone()) {
                return Err(ConnectError::HostKey(refused));
            }
            return Err(match e {
                ConnectError::Ssh(message) => ConnectError::Connect {
                    addr: endpoint.addr(),
                    message,
                },
                other => other,
            });
        }
    };
    let auth = handle
        .authenticate_openssh_cert(url.user(), Arc::new(key), cert)
        .await?;
    if !auth.success() {
        return Err(ConnectError::AuthFailed);
    }
    Ok(Connection { handle, closed })
}
