//! The certificate keeper against tether-sim with short certificates: renewals under an open
//! SSH session and an open forwarded connection (neither may drop), then sign-out after
//! inactivity, so that the next command asks to sign in again.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tether_core::cert::{CertEvent, CertKeeper, RenewalPolicy};
use tether_core::openssh::{self, SshFiles};
use tether_e2e::cli::User;
use tether_e2e::*;
use tether_sim::SimOptions;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast;

const APP_HOST: &str = "jyu7waly36ncj-main-7rqtwti--app@ssh.eu-3.tether.test";

async fn next_event(
    events: &mut broadcast::Receiver<CertEvent>,
    timeout: Duration,
) -> Result<CertEvent> {
    Ok(tokio::time::timeout(timeout, events.recv())
        .await
        .context("no certificate event in time")??)
}

async fn redis_ping(conn: &mut tokio::net::TcpStream) -> Result<String> {
    conn.write_all(b"PING\r\n").await?;
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf)).await??;
    Ok(String::from_utf8_lossy(&buf[..n]).trim().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewals_keep_open_connections_and_inactivity_ends_the_session() -> Result<()> {
    let redis = Redis::start()?;
    let mut options = SimOptions {
        certificate_lifetime: Duration::from_secs(4),
        ..SimOptions::default()
    };
    options
        .backends
        .insert("redis".into(), format!("127.0.0.1:{}", redis.port).parse()?);
    let sim = demo_sim(options).await?;
    let user = User::new(&sim.info, false)?;
    user.ok(&["auth:api-token-login"], Some(ALICE_TOKEN))
        .await?;
    user.ok(&["config:ssh", "--write"], None).await?;

    let session = user.core_session()?;
    let (paths, profile) = (
        tether_core::Paths::under_home(user.home(), None),
        session.profile.clone(),
    );
    let policy = RenewalPolicy {
        margin: Duration::from_secs(1),
        renew_at: 0.5,
        inactivity_limit: Duration::from_secs(8),
        retry: Duration::from_millis(200),
    };
    let keeper = CertKeeper::new(session, policy);
    let first = keeper.ensure(false).await?;
    openssh::write_session_files(
        &profile,
        keeper.files(),
        &SshFiles::new(&paths, &profile),
        None,
    )?;
    let mut events = keeper.subscribe();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(keeper.clone().run(stopped));

    // An interactive-length session and a forwarded connection, both opened with the first
    // certificate.
    let mut long = user.ssh(APP_HOST);
    long.arg("for i in $(seq 1 40); do echo tick $i; sleep 0.2; done");
    let mut long = tokio::process::Command::from(long);
    long.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut long = long.spawn()?;
    let mut ticks = tokio::io::BufReader::new(long.stdout.take().context("stdout")?).lines();
    let (_forward, local) = spawn_on_free_port("ssh -L", Duration::from_secs(15), |local| {
        let mut forward = user.ssh(APP_HOST);
        forward
            .args(["-N", "-o", "ExitOnForwardFailure=yes", "-L"])
            .arg(format!("127.0.0.1:{local}:rediscache.internal:6379"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Ok(forward)
    })?;
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", local)).await?;
    assert_eq!(redis_ping(&mut conn).await?, "+PONG");

    let mut serials = vec![first.cert.serial()];
    while serials.len() < 4 {
        match next_event(&mut events, Duration::from_secs(15)).await? {
            CertEvent::Renewed { .. } => {
                keeper.touch();
                let cert = keeper
                    .files()
                    .read_certificate()
                    .context("no certificate file")?;
                serials.push(cert.serial());
                // The connection opened before the renewal still carries traffic.
                assert_eq!(redis_ping(&mut conn).await?, "+PONG");
            }
            other => bail!("unexpected event while renewing: {other:?}"),
        }
    }
    serials.dedup();
    assert_eq!(
        serials.len(),
        4,
        "three renewals, each a new certificate: {serials:?}"
    );

    // A new connection uses the renewed certificate.
    let mut fresh = user.ssh(APP_HOST);
    fresh.arg("echo fresh");
    let out = run_async(fresh).await?;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "fresh");

    // The long session ran to its end across the renewals.
    let mut last = String::new();
    while let Some(line) =
        tokio::time::timeout(Duration::from_secs(20), ticks.next_line()).await??
    {
        last = line;
    }
    assert_eq!(last, "tick 40");
    assert!(long.wait().await?.success());

    // Nobody touches the session any more: the keeper signs it out.
    let expired = loop {
        match next_event(&mut events, Duration::from_secs(30)).await? {
            CertEvent::Renewed { .. } => continue,
            other => break other,
        }
    };
    let CertEvent::Expired { message } = expired else {
        bail!("expected Expired, got {expired:?}")
    };
    assert!(message.contains("sign in again"), "{message}");
    tokio::time::timeout(Duration::from_secs(5), running).await??;
    let _ = stop.send(true);

    let out = user.run(&["auth:info"], None).await?;
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("without activity") && stderr.contains("sign in again"),
        "{stderr}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_processes_refresh_one_at_a_time() -> Result<()> {
    // Access tokens shorter than the refresh margin: every command must refresh. Refresh
    // tokens rotate and a reused one ends the session, so a race would sign the user out.
    let sim = demo_sim(SimOptions {
        access_token_lifetime: Duration::from_secs(30),
        ..SimOptions::default()
    })
    .await?;
    let user = User::new(&sim.info, false)?;
    let browser = tether_e2e::webdriver::Chromium::start().await?;
    let out = user
        .browser_login(
            &browser.driver,
            "alice",
            ALICE_PASSWORD,
            Some(ALICE_TOTP),
            &[],
        )
        .await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    browser.driver.quit().await?;
    let stored = || -> Result<serde_json::Value> {
        Ok(serde_json::from_str(&std::fs::read_to_string(
            user.session_dir().join("tokens.json"),
        )?)?)
    };
    let before: serde_json::Value =
        serde_json::from_str(stored()?["session"].as_str().context("no session")?)?;

    let runs = (0..6).map(|_| user.run(&["auth:info", "-P", "username"], None));
    for out in futures::future::join_all(runs).await {
        let out = out?;
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "alice",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let after: serde_json::Value =
        serde_json::from_str(stored()?["session"].as_str().context("no session")?)?;
    assert_ne!(
        before["refresh_token"], after["refresh_token"],
        "the refresh token rotated"
    );

    // Logout revokes at the platform: the last refresh token no longer works there.
    user.ok(&["logout"], None).await?;
    let resp = http()
        .post(format!("{}/oauth2/token", sim.info.auth_url))
        .form(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                after["refresh_token"].as_str().unwrap_or_default(),
            ),
            ("client_id", "tether"),
        ])
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 400);
    Ok(())
}
