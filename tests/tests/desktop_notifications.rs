//! What the platform names reaches the real app's notifications as text. The test's
//! notification server advertises `body-markup`, as GNOME's and KDE's do, so a body is read as
//! markup there: a relationship the platform named `<b>cache&co` must arrive with `<`, `>` and
//! `&` escaped, or a server would show it bold (or, with `<a href>`, as a link).

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde_json::Value;
use tether_e2e::cli::User;
use tether_e2e::desktop::Desktop;
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
    let user = User::new(&sim.info, false)?;
    user.ok(&["auth:api-token-login"], Some(ALICE_TOKEN))
        .await?;
    let desktop = Desktop::start().await?;
    let notes = Notifications::start(&desktop.bus_address).await?;
    let _app = desktop.launch_for(&user, &["--hidden"])?;
    let item = desktop.tray_item().await?;
    // The app's agent opens it (the app hosts the agent from its start).
    user.ok(
        &["tunnel:open", "-p", MARKETING, "-e", "main", "-A", "web"],
        None,
    )
    .await?;
    let listed: Vec<Value> =
        serde_json::from_str(&user.ok(&["tunnel:list", "--format", "json"], None).await?)?;
    let local = listed
        .first()
        .and_then(|t| t["local"].as_str())
        .context("no tunnel listed")?
        .to_string();
    let port = local.rsplit(':').next().unwrap_or_default();

    // The gateway goes away for longer than the grace a blip gets: the tunnel is down.
    sim.stop_gateway().await;
    let start = Instant::now();
    while notes.with_summary("Tunnel down").is_empty() {
        ensure!(
            start.elapsed() < Duration::from_secs(30),
            "no Tunnel down notification in 30 s: {:?}",
            notes.received()
        );
        // A client arriving probes the link at once.
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            tokio::net::TcpStream::connect(local.as_str()),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
