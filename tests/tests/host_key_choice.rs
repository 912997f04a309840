//! Tether's own SSH connections (tunnels, relationships, connection details) against OpenSSH's
//! real `sshd` holding several host keys, as the platform's gateways do. The keys Tether bundles
//! are RSA; a client that asks for Ed25519 first is shown the Ed25519 key, which it does not
//! know, and refuses the gateway as "changed". So, as OpenSSH does, the key types the trust
//! policy knows for the host are asked for first.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tether_core::profile::SshEndpoint;
use tether_core::ssh::exec::{exec, Endpoint, ExecError};
use tether_core::ssh::trust::{HostKeyPolicy, Refusal};
use tether_core::ssh::SshUrl;
use tether_core::{Paths, Profile, SystemClock};
use tether_e2e::*;

struct Gateway {
    _dir: tempfile::TempDir,
    sshd: Sshd,
    paths: Paths,
    key: russh::keys::PrivateKey,
    cert: russh::keys::Certificate,
    url: SshUrl,
}

fn gateway() -> Result<Gateway> {
    let dir = tempfile::Builder::new()
        .prefix("tether-hostkeys-")
        .tempdir()?;
    let ca = ssh_keygen(dir.path(), "ca")?;
    let ca_public = std::fs::read_to_string(&ca.public)?;
    let sshd = Sshd::start_with_host_keys(
        dir.path(),
        ca_public.trim(),
        &["tether-user"],
        &["ed25519", "rsa", "ecdsa"],
    )?;
    let user_key = ssh_keygen(dir.path(), "id_ed25519")?;
    sign_with_ssh_keygen(&ca.private, &user_key, "u-1", "tether-user", "-5m:+1h")?;
    let key = russh::keys::PrivateKey::read_openssh_file(&user_key.private)?;
    let cert = russh::keys::Certificate::read_file(&user_key.cert)?;
    let url = SshUrl::parse(&format!("ssh://{}@ssh.xx-1.example.test", current_user()))?;
    let paths = Paths::under_home(&dir.path().join("home"), None);
    std::fs::create_dir_all(&paths.ssh_dir)?;
    Ok(Gateway {
        _dir: dir,
        sshd,
        paths,
        key,
        cert,
        url,
    })
}

impl Gateway {
    /// A profile file whose gateway is this sshd and whose only known key is `known`.
    fn endpoint(&self, known: &str) -> Result<Endpoint> {
        let profile = Profile {
            name: "hostkeys".into(),
            title: "Host keys test".into(),
            api_url: url::Url::parse("http://127.0.0.1:9")?,
            auth_url: url::Url::parse("http://127.0.0.1:9")?,
            client_id: "tether".into(),
            token_env_var: "HOSTKEYS_TOKEN".into(),
            ssh_host_patterns: vec!["*.example.test".into()],
            gateway_host_keys: Vec::new(),
            ssh_ca_keys: Vec::new(),
            ssh: Some(SshEndpoint {
                hostname: "127.0.0.1".into(),
                port: self.sshd.port,
                host_keys: vec![known.to_string()],
            }),
        };
        profile.validate()?;
        let trust = HostKeyPolicy::for_profile(&profile, &self.paths, Arc::new(SystemClock));
        Ok(Endpoint::for_profile(&profile, &self.url, trust))
    }

    async fn run(&self, endpoint: &Endpoint) -> Result<String, ExecError> {
        let out = exec(
            endpoint,
            &self.url,
            self.key.clone(),
            self.cert.clone(),
            "echo in",
            Duration::from_secs(20),
        )
        .await?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

#[tokio::test]
async fn a_gateway_is_reached_whichever_of_its_key_types_is_the_known_one() -> Result<()> {
    let g = gateway()?;
    for (i, known) in g.sshd.host_keys.iter().enumerate() {
        let kind = known.split_whitespace().next().unwrap_or_default();
        let said = g
            .run(&g.endpoint(known)?)
            .await
            .map_err(|e| anyhow::anyhow!("known key {i} ({kind}) refused: {e}"))?;
        assert_eq!(said, "in", "{kind}");
    }
    Ok(())
}

#[tokio::test]
async fn a_gateway_none_of_whose_keys_is_known_is_refused_as_changed() -> Result<()> {
    let g = gateway()?;
    let stranger = ssh_keygen(g.paths.ssh_dir.as_path(), "stranger")?;
    let stranger = std::fs::read_to_string(stranger.public)?;
    let err = g
        .run(&g.endpoint(stranger.trim())?)
        .await
        .expect_err("an unknown gateway key must be refused");
    let ExecError::HostKey(refused) = &err else {
        panic!("{err:?}")
    };
    assert!(matches!(refused.refusal, Refusal::Changed { .. }), "{err}");
    Ok(())
}
