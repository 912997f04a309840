//! Commands run in-process over russh with the session's certificate: output, errors and exit
//! status come back, and a gateway whose host key is not the published one is refused.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine;
use tether_core::auth::{Session, TokenStore};
use tether_core::cert::{CertKeeper, RenewalPolicy};
use tether_core::ssh::exec::{exec, Endpoint, ExecError};
use tether_core::ssh::trust::HostKeyPolicy;
use tether_core::ssh::SshUrl;
use tether_core::{Paths, Profile, Sensitive, SystemClock};
use tether_e2e::*;
use tether_sim::SimOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_run_over_russh_and_unknown_host_keys_are_refused() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let home = tempfile::tempdir()?;
    let profile = Profile::from_toml(&sim.info.profile_toml(), std::path::Path::new("sim.toml"))?;
    let paths = Paths::under_home(home.path(), None);
    let session = Session::new(
        profile.clone(),
        TokenStore::File {
            path: home.path().join("t.json"),
        },
        paths.clone(),
        Arc::new(SystemClock),
        reqwest::Client::new(),
        Some(Sensitive::new(ALICE_TOKEN.to_string())),
    );
    let keeper = CertKeeper::new(session, RenewalPolicy::default());
    let cert = keeper.ensure(false).await?.cert;
    let key = russh::keys::PrivateKey::from_openssh(std::fs::read(keeper.files().key())?)?;
    let url = SshUrl::parse("ssh://jyu7waly36ncj-main-7rqtwti--app--0@ssh.eu-3.tether.test")?;
    let trust = HostKeyPolicy::for_profile(&profile, &paths, Arc::new(SystemClock));
    let endpoint = Endpoint::for_profile(&profile, &url, trust);

    let out = exec(
        &endpoint,
        &url,
        key.clone(),
        cert.clone(),
        "echo $PLATFORM_APPLICATION_NAME; echo \"$PLATFORM_RELATIONSHIPS\"; echo oops >&2; exit 5",
        Duration::from_secs(20),
    )
    .await?;
    assert_eq!(out.status, Some(5));
    let stdout = String::from_utf8(out.stdout)?;
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("app"));
    let rels: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(lines.next().context("no relationships")?)?,
    )?;
    assert_eq!(rels["database"][0]["host"], "database.internal");
    assert_eq!(out.stderr, b"oops\n");

    // A gateway presenting another host key is never trusted: the profile's key for this host
    // is not the one presented, so the key changed.
    let mut impostor_profile = profile.clone();
    if let Some(ssh) = impostor_profile.ssh.as_mut() {
        ssh.host_keys = vec![russh::keys::PrivateKey::from(
            russh::keys::ssh_key::private::Ed25519Keypair::from_seed(&[3; 32]),
        )
        .public_key()
        .to_openssh()?];
    }
    let impostor = Endpoint::for_profile(
        &impostor_profile,
        &url,
        HostKeyPolicy::for_profile(&impostor_profile, &paths, Arc::new(SystemClock)),
    );
    let err = exec(&impostor, &url, key, cert, "true", Duration::from_secs(20))
        .await
        .expect_err("an unknown host key must be refused");
    let ExecError::HostKey(refused) = &err else {
        panic!("{err:?}")
    };
    assert!(refused.fingerprint.starts_with("SHA256:"), "{err}");
    assert_eq!(refused.host, "ssh.eu-3.tether.test");
    assert!(err.to_string().contains("ssh-ed25519"), "{err}");
    Ok(())
}

/// A certificate the gateway refused is replaced for the same key: the refusal says nothing
/// against the key, and rotating it on every refusal would churn the files plain ssh reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_certificate_is_renewed_without_rotating_the_key() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let home = tempfile::tempdir()?;
    let profile = Profile::from_toml(&sim.info.profile_toml(), std::path::Path::new("sim.toml"))?;
    let session = Session::new(
        profile,
        TokenStore::File {
            path: home.path().join("t.json"),
        },
        Paths::under_home(home.path(), None),
        Arc::new(SystemClock),
        reqwest::Client::new(),
        Some(Sensitive::new(ALICE_TOKEN.to_string())),
    );
    let keeper = CertKeeper::new(session, RenewalPolicy::default());
    let first = keeper.ensure(false).await?.cert;
    let key = std::fs::read(keeper.files().key())?;
    let renewed = keeper.renew_certificate().await?;
    assert!(renewed.renewed, "a new certificate was asked for");
    assert_ne!(
        renewed.cert.nonce(),
        first.nonce(),
        "the certificate is new"
    );
    assert_eq!(
        std::fs::read(keeper.files().key())?,
        key,
        "the key was kept"
    );
    assert_eq!(renewed.cert.public_key(), first.public_key());
    // Asking for a new certificate and key still rotates the key.
    keeper.ensure(true).await?;
    assert_ne!(std::fs::read(keeper.files().key())?, key);
    Ok(())
}
