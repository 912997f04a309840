//! What the platform names reaches the real app's notifications as text. The test's
//! notification server advertises `body-markup`, as GNOME's and KDE's do, so a body is read as
//! markup there: a relationship the platform named `<b>cache&co` must arrive with `<`, `>` and
//! `&` escaped, or a server would show it bold (or, with `<a href>`, as a link).

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde_json::Value;
use tether_e2e::cli::User;
use tether_e2e::desktop::hidden_app;
use tether_e2e::notifications::Notifications;
use tether_e2e::{backend, Redis, ALICE_TOKEN};
use tether_sim::fixture::{Fixture, DEMO_FIXTURE};
use tether_sim::{Sim, SimOptions};

const MARKETING: &str = "rjify4yjcwxaa";
const PLAIN: &str = r#"relationships = { redis = "cache:redis" }"#;
const MARKED: &str = r#"relationships = { "<b>cache&co" = "cache:redis" }"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relationship_named_with_markup_reaches_notifications_escaped() -> Result<()> {
    let redis = Redis::start()?;
    let mut options = SimOptions::default();
    backend(&mut options, "redis", redis.port);
    ensure!(
        DEMO_FIXTURE.contains(PLAIN),
        "the demo fixture's Marketing site changed"
    );
    let sim = Sim::start(
        Fixture::from_toml(&DEMO_FIXTURE.replace(PLAIN, MARKED))?,
        options,
    )
    .await?;
    let (user, desktop, notes, _app, item) = hidden_app(&sim.info).await?;
    // The app's agent opens it (the app hosts the agent from its start).
    user.ok(
        &["tunnel:open", "-p", MARKETING, "-e", "main", "-A", "web"],
        None,
    )
    .await?;
    let local = first_tunnel_local(&user).await?;
    let port = local.rsplit(':').next().unwrap_or_default();

    // The gateway goes away for longer than the grace a blip gets: the tunnel is down.
    sim.stop_gateway().await;
    until_tunnel_down(&notes, &local).await?;
    let down = notes.wait_for("Tunnel down", Duration::ZERO).await?;
    // The summary is plain text for every server; the body is markup for this one.
    assert_eq!(down.summary, "Tunnel down: <b>cache&co");
    assert!(
        down.body.starts_with(&format!(
            "&lt;b&gt;cache&amp;co of {MARKETING}/main/web (port {port}) is "
        )),
        "{down:?}"
    );

    sim.start_gateway().await?;
    let back = notes
        .wait_for("Tunnel back", Duration::from_secs(30))
        .await?;
    assert_eq!(
        back.body,
        format!("&lt;b&gt;cache&amp;co of {MARKETING}/main/web works again on port {port}."),
        "{back:?}"
    );
    for note in notes.received() {
        assert!(!note.body.contains("<b>"), "unescaped: {note:?}");
    }
    desktop.watcher.click(&item, "Quit Tether").await?;
    Ok(())
}

/// The local address of the first tunnel `tunnel:list` shows.
async fn first_tunnel_local(user: &User) -> Result<String> {
    let listed: Vec<Value> =
        serde_json::from_str(&user.ok(&["tunnel:list", "--format", "json"], None).await?)?;
    Ok(listed
        .first()
        .and_then(|t| t["local"].as_str())
        .context("no tunnel listed")?
        .to_string())
}

/// Waits up to 30 s for a "Tunnel down" notification once the gateway is gone, a client
/// knocking at `local` meanwhile (a client arriving probes the link at once).
async fn until_tunnel_down(notes: &Notifications, local: &str) -> Result<()> {
    let start = Instant::now();
    while notes.with_summary("Tunnel down").is_empty() {
        ensure!(
            start.elapsed() < Duration::from_secs(30),
            "no Tunnel down notification in 30 s: {:?}",
            notes.received()
        );
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            tokio::net::TcpStream::connect(local),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// `redis-cli PING` through a tunnel's local address: whether the tunnel carries.
async fn pings(local: &str) -> bool {
    let (host, port) = local.rsplit_once(':').unwrap_or((local, ""));
    let out = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::process::Command::new("redis-cli")
            .args(["-h", host, "-p", port, "PING"])
            .output(),
    )
    .await;
    matches!(out, Ok(Ok(o)) if String::from_utf8_lossy(&o.stdout).trim() == "PONG")
}

/// The desktop's notification server supports actions: "Tunnel down" comes with a Reconnect
/// button, and clicking it reconnects there and then: the app gets a new certificate (the
/// agent wakes every waiting connection on one) and the tunnel carries again on its port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_down_offers_reconnect_and_the_click_reconnects() -> Result<()> {
    let redis = Redis::start()?;
    let mut options = SimOptions::default();
    backend(&mut options, "redis", redis.port);
    let sim = tether_e2e::demo_sim(options).await?;
    let (user, desktop, notes, _app, item) = hidden_app(&sim.info).await?;
    let mut open = vec!["tunnel:open"];
    open.extend(tether_e2e::DEMO_REDIS);
    user.ok(&open, None).await?;
    let local = first_tunnel_local(&user).await?;
    ensure!(
        pings(&local).await,
        "the tunnel does not carry to begin with"
    );

    sim.stop_gateway().await;
    until_tunnel_down(&notes, &local).await?;
    let down = notes.wait_for("Tunnel down", Duration::ZERO).await?;
    assert_eq!(
        down.actions,
        [("reconnect".to_string(), "Reconnect".to_string())],
        "{down:?}"
    );
    // Notifications that need no doing carry no button.
    for note in notes.received() {
        if !note.summary.starts_with("Tunnel down") {
            assert!(note.actions.is_empty(), "{note:?}");
        }
    }

    let before = user.certificate_serial()?;
    sim.start_gateway().await?;
    notes.click(&down, "reconnect").await?;
    let start = Instant::now();
    loop {
        let serial = user.certificate_serial().unwrap_or(before);
        let listed: Vec<Value> =
            serde_json::from_str(&user.ok(&["tunnel:list", "--format", "json"], None).await?)?;
        let state = listed
            .first()
            .and_then(|t| t["state"].as_str())
            .unwrap_or_default()
            .to_string();
        if serial != before && state == "open" && pings(&local).await {
            break;
        }
        ensure!(
            start.elapsed() < Duration::from_secs(30),
            "after Reconnect: certificate {serial} (was {before}), tunnel {state:?}; the app said: {}",
            std::fs::read_to_string(desktop.log()).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    desktop.watcher.click(&item, "Quit Tether").await?;
    Ok(())
}

/// The session ends at the platform: "Sign in to Tether again" comes with a Sign in button,
/// and clicking it opens the sign-in window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_again_offers_sign_in_and_the_click_opens_the_sign_in_window() -> Result<()> {
    let options = SimOptions {
        certificate_lifetime: Duration::from_secs(8),
        ..SimOptions::default()
    };
    let sim = tether_e2e::demo_sim(options).await?;
    let (_user, desktop, notes, _app, item) = hidden_app(&sim.info).await?;
    desktop
        .watcher
        .wait_for_menu_entry(&item, "Storefront", Duration::from_secs(30))
        .await?;

    assert!(sim.revoke_api_token(ALICE_TOKEN));
    let note = notes
        .wait_for("Sign in to Tether again", Duration::from_secs(30))
        .await?;
    assert_eq!(
        note.actions,
        [("sign-in".to_string(), "Sign in".to_string())],
        "{note:?}"
    );
    // No sign-in window before the click.
    let none = std::process::Command::new("xdotool")
        .args(["search", "--onlyvisible", "--name", "^Sign in to "])
        .env("DISPLAY", &desktop.display)
        .output()?;
    ensure!(none.stdout.is_empty(), "a sign-in window before the click");
    notes.click(&note, "sign-in").await?;
    desktop
        .visible_window("^Sign in to Local platform", Duration::from_secs(20))
        .await?;
    desktop.watcher.click(&item, "Quit Tether").await?;
    Ok(())
}
