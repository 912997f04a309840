//! tether-sim: a local stand-in for the Platform.sh / Upsun platform, built only from the
//! platform's public interface (`shared/platform-reference.md`) and sharing no code with Tether.
//!
//! [`Sim::start`] serves, on loopback, the authorization server (OAuth2 with PKCE, MFA, step-up,
//! the SSH certifier), the API, and an SSH gateway that trusts the certifier's CA. Tests start
//! one per suite; the `tether-sim` binary serves the demo.

pub mod api;
pub mod certifier;
pub mod fixture;
pub mod gateway;
pub mod model;
pub mod oauth;
pub mod pages;
pub mod probes;
pub mod shim;
pub mod state;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use rand::RngCore;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::PrivateKey;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

pub use fixture::{EnvStatus, Fixture};
use state::{Lifetimes, State};

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot create the scratch directory: {0}")]
    Scratch(std::io::Error),
    #[error("backend {name}: {value:?} is not HOST:PORT")]
    Backend { name: String, value: String },
    #[error("the override names backend {0:?}, which the fixture does not declare")]
    UnknownBackend(String),
    #[error("cannot encode a key: {0}")]
    Key(String),
}

/// What a caller may choose about a simulator run.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Lifetime of access tokens (the real platform's default is 15 minutes).
    pub access_token_lifetime: Duration,
    /// Validity of SSH certificates (one hour on the real platform).
    pub certificate_lifetime: Duration,
    /// Overrides of the fixture's named backends.
    pub backends: BTreeMap<String, SocketAddr>,
    /// The CA key; a new one per run when absent.
    pub ca_key: Option<PrivateKey>,
    /// The gateway's host key; a new one per run when absent.
    pub host_key: Option<PrivateKey>,
    /// Where the apps' commands run; a temporary directory when absent.
    pub scratch_dir: Option<PathBuf>,
    /// The loopback address to serve on.
    pub bind: IpAddr,
    /// Ports (0 picks a free one).
    pub auth_port: u16,
    pub api_port: u16,
    pub ssh_port: u16,
    /// Seconds the API's and sign-in server's `Date` header is ahead (negative: behind) of
    /// this machine's clock, as a platform whose clock differs would answer;
    /// [`SimHandle::set_clock_skew`] changes it while the simulator runs.
    pub clock_skew: i64,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            access_token_lifetime: Duration::from_secs(15 * 60),
            certificate_lifetime: Duration::from_secs(60 * 60),
            backends: BTreeMap::new(),
            ca_key: None,
            host_key: None,
            scratch_dir: None,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            auth_port: 0,
            api_port: 0,
            ssh_port: 0,
            clock_skew: 0,
        }
    }
}

/// The line the binary prints when it is ready, and what tests need to reach the simulator.
#[derive(Debug, Clone, Serialize)]
pub struct ReadyInfo {
    pub api_url: String,
    pub auth_url: String,
    pub ssh_host: String,
    pub ssh_port: u16,
    /// The gateway's host key, `ssh-ed25519 AAAA…`.
    pub ssh_host_key: String,
    /// Host patterns the platform's SSH hosts match (`*.tether.test`).
    pub ssh_host_patterns: Vec<String>,
    /// The gateways' names, `ssh.<region>.<domain>` and `git.<region>.<domain>` of every
    /// region, as the real platform names them.
    pub gateway_hosts: Vec<String>,
    /// The CA that signs user certificates, `ssh-ed25519 AAAA…`.
    pub ca_public_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub demo: Option<DemoInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DemoInfo {
    pub username: String,
    pub password: String,
    pub totp_secret: Option<String>,
    pub api_token: String,
}

impl ReadyInfo {
    /// A `known_hosts` line for the gateway: under its address, and under the platform's host
    /// names so that configurations that alias them to the gateway verify too.
    pub fn known_hosts_line(&self) -> String {
        let mut names = vec![format!("[{}]:{}", self.ssh_host, self.ssh_port)];
        names.extend(self.ssh_host_patterns.iter().cloned());
        format!("{} {}", names.join(","), self.ssh_host_key)
    }
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl ReadyInfo {
    /// What every profile of this simulator says: its name, URLs, client and host patterns.
    fn profile_head(&self, comment: &str) -> String {
        let patterns: Vec<String> = self
            .ssh_host_patterns
            .iter()
            .map(|s| toml_string(s))
            .collect();
        format!(
            "# Written by tether-sim: {comment}.\n\
             name = \"tether-sim\"\n\
             title = \"Local platform (tether-sim)\"\n\
             api_url = {api}\n\
             auth_url = {auth}\n\
             client_id = \"tether\"\n\
             token_env_var = \"TETHER_SIM_TOKEN\"\n\
             ssh_host_patterns = [{patterns}]\n",
            api = toml_string(&self.api_url),
            auth = toml_string(&self.auth_url),
            patterns = patterns.join(", "),
        )
    }

    /// The profile `tether --profile FILE` reads to reach this simulator (`--profile-out`).
    pub fn profile_toml(&self) -> String {
        format!(
            "{head}ssh_ca_keys = [{ca}]\n\n\
             [ssh]\n\
             hostname = {host}\n\
             port = {port}\n\
             host_keys = [{key}]\n",
            head = self.profile_head("a local platform for development and tests"),
            ca = toml_string(&self.ca_public_key),
            host = toml_string(&self.ssh_host),
            port = self.ssh_port,
            key = toml_string(&self.ssh_host_key),
        )
    }

    /// A profile shaped like the built-in ones (`--profile-out` with `--builtin-shaped`): no
    /// `[ssh]` block, so `tether` reaches the gateways at their names through the system
    /// resolver on port 22, and trusts the gateway's key as bundled `gateway_host_keys` for
    /// those names. For a simulator serving on port 22 where those names resolve to it (a
    /// network namespace with its own `/etc/hosts`).
    pub fn builtin_shaped_profile_toml(&self, with_host_keys: bool) -> String {
        let mut out = self.profile_head("a local platform at the real gateway names");
        if with_host_keys {
            let line = format!("{} {}", self.gateway_hosts.join(","), self.ssh_host_key);
            out.push_str(&format!("gateway_host_keys = [{}]\n", toml_string(&line)));
        }
        out
    }
}

/// `ssh.<region>.<domain>` and `git.<region>.<domain>` for every region of the fixture.
fn gateway_hosts(fixture: &Fixture) -> Vec<String> {
    let regions: std::collections::BTreeSet<&str> =
        fixture.projects.iter().map(|p| p.region.as_str()).collect();
    regions
        .iter()
        .flat_map(|r| ["ssh", "git"].map(|kind| format!("{kind}.{r}.{}", fixture.ssh_domain)))
        .collect()
}

pub struct Sim;

/// A running simulator. Dropping it stops the servers; [`SimHandle::shutdown`] waits for them.
pub struct SimHandle {
    pub info: ReadyInfo,
    state: Arc<State>,
    gateway: gateway::Gateway,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    clock_skew: Arc<std::sync::atomic::AtomicI64>,
    _scratch: Option<tempfile::TempDir>,
}

fn random_ed25519() -> PrivateKey {
    let mut seed = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut seed);
    PrivateKey::from(Ed25519Keypair::from_seed(&seed))
}

async fn bind(ip: IpAddr, port: u16) -> Result<TcpListener, SimError> {
    let addr = SocketAddr::new(ip, port);
    TcpListener::bind(addr)
        .await
        .map_err(|source| SimError::Bind { addr, source })
}

/// Where a gateway asked to pick its own port looks first: below the kernel's default range
/// for ephemeral ports (32768 and up) and below the 30000 where tunnels start. The gateway
/// can be stopped and started again on its port; a port from the ephemeral range may be taken
/// in between by the source port of any outgoing connection of a busy machine, and starting
/// again then fails with "address in use".
const GATEWAY_PORTS: std::ops::Range<u16> = 20000..30000;

/// The gateway's listener: on `port`, or when it is 0 on a free port of [`GATEWAY_PORTS`]
/// (any free port if none of a few tries is).
async fn bind_gateway(ip: IpAddr, port: u16) -> Result<TcpListener, SimError> {
    if port == 0 {
        for _ in 0..32 {
            let width = u32::from(GATEWAY_PORTS.end - GATEWAY_PORTS.start);
            let offset = u16::try_from(rand::thread_rng().next_u32() % width).unwrap_or(0);
            if let Ok(l) =
                TcpListener::bind(SocketAddr::new(ip, GATEWAY_PORTS.start + offset)).await
            {
                return Ok(l);
            }
        }
    }
    bind(ip, port).await
}

impl Sim {
    /// Starts the authorization server, the API and the SSH gateway on loopback.
    pub async fn start(fixture: Fixture, options: SimOptions) -> Result<SimHandle, SimError> {
        let mut backends = BTreeMap::new();
        for (name, value) in &fixture.backends {
            let addr = value.parse().map_err(|_| SimError::Backend {
                name: name.clone(),
                value: value.clone(),
            })?;
            backends.insert(name.clone(), addr);
        }
        for (name, addr) in &options.backends {
            if !backends.contains_key(name) {
                return Err(SimError::UnknownBackend(name.clone()));
            }
            backends.insert(name.clone(), *addr);
        }
        let (scratch_dir, scratch_guard) = match &options.scratch_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(SimError::Scratch)?;
                (dir.clone(), None)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("tether-sim-apps-")
                    .tempdir()
                    .map_err(SimError::Scratch)?;
                (t.path().to_path_buf(), Some(t))
            }
        };

        let auth_listener = bind(options.bind, options.auth_port).await?;
        let api_listener = bind(options.bind, options.api_port).await?;
        let ssh_listener = bind_gateway(options.bind, options.ssh_port).await?;
        let url = |l: &TcpListener| -> String {
            match l.local_addr() {
                Ok(SocketAddr::V6(a)) => format!("http://[{}]:{}", a.ip(), a.port()),
                Ok(a) => format!("http://{a}"),
                Err(_) => String::new(),
            }
        };
        let auth_url = url(&auth_listener);
        let api_url = url(&api_listener);
        let ssh_addr = ssh_listener.local_addr().map_err(|source| SimError::Bind {
            addr: SocketAddr::new(options.bind, options.ssh_port),
            source,
        })?;

        let ca = options.ca_key.clone().unwrap_or_else(random_ed25519);
        let host_key = options.host_key.clone().unwrap_or_else(random_ed25519);
        let openssh = |k: &PrivateKey| {
            k.public_key()
                .to_openssh()
                .map_err(|e| SimError::Key(e.to_string()))
        };
        let demo = fixture.demo.as_ref().map(|d| DemoInfo {
            username: d.username.clone(),
            password: d.password.clone(),
            totp_secret: fixture
                .user_by_name(&d.username)
                .and_then(|u| u.totp_secret.clone()),
            api_token: d.api_token.clone(),
        });
        let info = ReadyInfo {
            api_url: api_url.clone(),
            auth_url: auth_url.clone(),
            ssh_host: ssh_addr.ip().to_string(),
            ssh_port: ssh_addr.port(),
            ssh_host_key: openssh(&host_key)?,
            ssh_host_patterns: vec![format!("*.{}", fixture.ssh_domain)],
            gateway_hosts: gateway_hosts(&fixture),
            ca_public_key: openssh(&ca)?,
            demo,
        };

        let state = Arc::new(State::new(
            fixture,
            Lifetimes {
                access_token: options.access_token_lifetime,
                certificate: options.certificate_lifetime,
                code: Duration::from_secs(120),
            },
            auth_url,
            api_url,
            backends,
            ca,
            host_key.clone(),
            scratch_dir,
        ));

        let (shutdown, rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };

        let auth_router = Router::new()
            .route(
                "/oauth2/authorize",
                get(oauth::authorize).post(oauth::authorize_step),
            )
            .route("/oauth2/token", post(oauth::token))
            .route("/oauth2/revoke", post(oauth::revoke))
            .route("/ssh", post(certifier::sign))
            .with_state(state.clone());
        let api_router = api::router(state.clone()).merge(probes::router(state.clone()));

        // Every answer's `Date` is this machine's time shifted by the skew.
        let clock_skew = Arc::new(std::sync::atomic::AtomicI64::new(options.clock_skew));
        let skew = clock_skew.clone();
        let dated = axum::middleware::map_response(move |mut resp: axum::response::Response| {
            let skew = skew.load(std::sync::atomic::Ordering::SeqCst);
            async move {
                let now = std::time::SystemTime::now();
                let shift = Duration::from_secs(skew.unsigned_abs());
                let then = if skew >= 0 { now + shift } else { now - shift };
                if let Ok(v) = httpdate::fmt_http_date(then).parse() {
                    resp.headers_mut().insert(axum::http::header::DATE, v);
                }
                resp
            }
        });
        let auth_router = auth_router.layer(dated.clone());
        let api_router = api_router.layer(dated);
        let mut tasks = Vec::new();
        for (listener, router, name) in [
            (auth_listener, auth_router, "auth"),
            (api_listener, api_router, "api"),
        ] {
            let signal = stopped(rx.clone());
            tasks.push(tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router)
                    .with_graceful_shutdown(signal)
                    .await
                {
                    tracing::error!(server = name, error = %e, "server failed");
                }
            }));
        }

        let config = Arc::new(russh::server::Config {
            keys: vec![host_key],
            methods: russh::MethodSet::from(&[russh::MethodKind::PublicKey][..]),
            auth_rejection_time: Duration::from_millis(100),
            auth_rejection_time_initial: Some(Duration::ZERO),
            keepalive_interval: Some(Duration::from_secs(30)),
            nodelay: true,
            // russh's session loop waits when one channel's queue is full, and replenishes
            // windows on receipt rather than consumption, so a forward whose backend is slow
            // can stall the whole connection; a deep queue keeps many busy forwards (a
            // thousand at once in the tests) from ever getting there.
            channel_buffer_size: 8192,
            // What OpenSSH's sshd offers: AES-GCM besides chacha20-poly1305 (russh's server
            // leaves aes128-gcm out by default).
            preferred: russh::Preferred {
                cipher: std::borrow::Cow::Borrowed(&[
                    russh::cipher::CHACHA20_POLY1305,
                    russh::cipher::AES_128_GCM,
                    russh::cipher::AES_256_GCM,
                    russh::cipher::AES_256_CTR,
                    russh::cipher::AES_192_CTR,
                    russh::cipher::AES_128_CTR,
                ]),
                ..russh::Preferred::DEFAULT
            },
            ..Default::default()
        });
        let gateway = gateway::Gateway::new(ssh_listener, ssh_addr, config, state.clone(), rx);
        info!(api = %info.api_url, auth = %info.auth_url, ssh = %ssh_addr, "tether-sim ready");
        Ok(SimHandle {
            info,
            state,
            gateway,
            shutdown,
            tasks,
            clock_skew,
            _scratch: scratch_guard,
        })
    }
}

impl SimHandle {
    /// Sets how many seconds ahead (negative: behind) the platform's clock is, as its `Date`
    /// headers show it.
    pub fn set_clock_skew(&self, secs: i64) {
        self.clock_skew
            .store(secs, std::sync::atomic::Ordering::SeqCst);
    }

    /// Pauses, resumes or deactivates an environment while the simulator runs.
    pub fn set_environment_status(&self, project: &str, env: &str, status: EnvStatus) -> bool {
        self.state.set_environment_status(project, env, status)
    }

    /// Redeploys an environment while the simulator runs: a new head commit, and with
    /// `relationships`, new relationships (name → `service:endpoint`) for the app named. Returns
    /// the new head commit, `None` when nothing by those names exists.
    pub fn redeploy(
        &self,
        project: &str,
        env: &str,
        relationships: Option<(&str, std::collections::BTreeMap<String, String>)>,
    ) -> Option<String> {
        self.state.redeploy(project, env, relationships)
    }

    /// Revokes an API token while the simulator runs: it can no longer be exchanged, and the
    /// sessions it opened end. Says whether it existed.
    pub fn revoke_api_token(&self, token: &str) -> bool {
        self.state.revoke_api_token(token)
    }

    /// Takes the SSH certificate service down (it answers 503) or brings it back, while the
    /// sign-in server and the API carry on.
    pub fn set_certifier_down(&self, down: bool) {
        self.state
            .certifier_down
            .store(down, std::sync::atomic::Ordering::SeqCst);
    }

    /// Puts the desktop tests' navigation probes on the sign-in page, or takes them off (see
    /// [`probes`]).
    pub fn set_navigation_probes(&self, on: bool) {
        self.state
            .navigation_probes
            .store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Makes renewals at the token endpoint (refresh and API-token exchanges) fail this way,
    /// or answer again with `None`, while everything else carries on.
    pub fn set_renewal_failure(&self, failure: Option<state::RenewalFailure>) {
        *self
            .state
            .renewal_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = failure;
    }

    /// Ends one access token early (the API and the certifier refuse it), while its session
    /// goes on: a refresh gets a new one. Says whether the token was the simulator's.
    pub fn end_access_token(&self, token: &str) -> bool {
        self.state.end_access_token(token)
    }

    /// The authorization codes exchanged so far, each with the PKCE verifier that redeemed it.
    pub fn redeemed_codes(&self) -> Vec<state::RedeemedCode> {
        self.state.lock().redeemed_codes.clone()
    }

    /// Where the apps' commands run.
    pub fn scratch_dir(&self) -> &std::path::Path {
        &self.state.scratch_dir
    }

    /// Stops the SSH gateway as if its process were killed: the port is closed, so that
    /// connecting is refused, and every connection is cut (the client sees its TCP connection
    /// end without an SSH disconnect), with its forwards and the processes it runs. The
    /// authorization server, the API and their state (grants, tokens) carry on. Returns once
    /// the port is free and the connections are gone; [`SimHandle::start_gateway`] brings the
    /// gateway back.
    pub async fn stop_gateway(&self) {
        self.gateway.stop().await;
    }

    /// Serves the SSH gateway again on the same address and port, with the same host key, CA
    /// and state, after [`SimHandle::stop_gateway`]. Does nothing when it serves already.
    pub async fn start_gateway(&self) -> Result<(), SimError> {
        self.gateway.start().await
    }

    /// How many SSH connections the gateway serves: accepted (any TCP connection to its port
    /// counts from then, before the SSH handshake) and not yet ended.
    pub fn gateway_connections(&self) -> usize {
        self.gateway.connections()
    }

    /// Stops every server and waits for them. Gateway connections are told that the
    /// simulator is stopping and get a moment to close before they are cut.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        self.gateway.finish().await;
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
