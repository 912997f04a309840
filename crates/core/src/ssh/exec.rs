//! Running a command on an app in-process over russh (for reading relationships and quick
//! actions), authenticated with the session's certificate. The server's host key must be one
//! the platform published; an unknown key is refused, never accepted.

use std::sync::Arc;
use std::time::Duration;

use russh::client;
use russh::keys::PublicKeyOrCertificate;
use russh::ChannelMsg;
use ssh_key::{Certificate, HashAlg, PrivateKey, PublicKey};

use super::url::SshUrl;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot connect to {addr}: {message}")]
    Connect { addr: String, message: String },
    #[error("the SSH server's host key {fingerprint} is not one the platform published; refusing to connect (if the platform changed its keys, sign in again to fetch them)")]
    UnknownHostKey { fingerprint: String },
    #[error("the SSH server refused the certificate: load a new certificate, or sign in again")]
    AuthFailed,
    #[error("SSH failed: {0}")]
    Ssh(String),
    #[error("the command did not finish within {} s", .0.as_secs())]
    Timeout(Duration),
}

impl From<russh::Error> for ExecError {
    fn from(e: russh::Error) -> Self {
        ExecError::Ssh(e.to_string())
    }
}

/// The output of a remote command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub status: Option<u32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

struct Verifier {
    known: Vec<PublicKey>,
    /// The fingerprint of a refused host key, for the error message.
    rejected: Arc<std::sync::Mutex<Option<String>>>,
}

impl Verifier {
    fn reject(&self, what: String) {
        if let Ok(mut r) = self.rejected.lock() {
            *r = Some(what);
        }
    }
}

impl client::Handler for Verifier {
    type Error = ExecError;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            self.reject("(a host certificate)".into());
            return Ok(false);
        };
        if self.known.iter().any(|k| k.key_data() == key.key_data()) {
            return Ok(true);
        }
        self.reject(key.fingerprint(HashAlg::Sha256).to_string());
        Ok(false)
    }
}

/// Where to connect and whom to trust.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub address: String,
    pub port: u16,
    pub host_keys: Vec<PublicKey>,
}

impl Endpoint {
    /// The gateway for `url` under a profile: its local address when the profile has one, and
    /// the host keys the profile publishes (none means every connection is refused).
    pub fn for_profile(profile: &crate::profile::Profile, url: &SshUrl) -> Endpoint {
        let host_keys = profile
            .ssh
            .as_ref()
            .map(|s| {
                s.host_keys
                    .iter()
                    .filter_map(|k| PublicKey::from_openssh(k).ok())
                    .collect()
            })
            .unwrap_or_default();
        match &profile.ssh {
            Some(s) => Endpoint {
                address: s.hostname.clone(),
                port: s.port,
                host_keys,
            },
            None => Endpoint {
                address: url.host().to_string(),
                port: 22,
                host_keys,
            },
        }
    }
}

pub async fn exec(
    endpoint: &Endpoint,
    url: &SshUrl,
    key: PrivateKey,
    cert: Certificate,
    command: &str,
    timeout: Duration,
) -> Result<ExecOutput, ExecError> {
    let config = Arc::new(client::Config {
        inactivity_timeout: Some(timeout),
        nodelay: true,
        ..Default::default()
    });
    let addr = format!("{}:{}", endpoint.address, endpoint.port);
    let rejected = Arc::new(std::sync::Mutex::new(None));
    let verifier = Verifier {
        known: endpoint.host_keys.clone(),
        rejected: rejected.clone(),
    };
    let run = async {
        let mut handle =
            match client::connect(config, (endpoint.address.as_str(), endpoint.port), verifier)
                .await
            {
                Ok(h) => h,
                Err(e) => {
                    if let Some(fingerprint) = rejected.lock().ok().and_then(|r| r.clone()) {
                        return Err(ExecError::UnknownHostKey { fingerprint });
                    }
                    return Err(match e {
                        ExecError::Ssh(message) => ExecError::Connect {
                            addr: addr.clone(),
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
            return Err(ExecError::AuthFailed);
        }
        let mut channel = handle.channel_open_session().await?;
        channel.exec(true, command.as_bytes()).await?;
        let mut out = ExecOutput {
            status: None,
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => out.stdout.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, ext: 1 } => out.stderr.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => out.status = Some(exit_status),
                _ => {}
            }
        }
        let _ = handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
        Ok(out)
    };
    tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| ExecError::Timeout(timeout))?
}
