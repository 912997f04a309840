//! The real desktop app on a private desktop (Xvfb + D-Bus session): its window is driven
//! through tauri-driver and WebKitWebDriver, and its tray is read over D-Bus
//! (StatusNotifierItem + com.canonical.dbusmenu) the way a desktop shell reads it.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::json;
use tether_e2e::desktop::{desktop_binary, Desktop};
use tether_e2e::webdriver::WebDriver;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_shows_its_window_and_a_tray_menu_that_quits_it() -> Result<()> {
    let desktop = Desktop::start().await?;
    let (_driver, url) = desktop.tauri_driver()?;
    let app = WebDriver::new_session(
        &url,
        json!({ "tauri:options": { "application": desktop_binary()? } }),
    )
    .await?;

    // The window renders what the app's core reports over IPC.
    let card = app
        .find("[data-profile=platformsh]", Duration::from_secs(60))
        .await?;
    let text = app.text(&card).await?;
    assert!(
        text.contains("Platform.sh") && text.contains("*.platform.sh"),
        "{text}"
    );
    let upsun = app
        .find("[data-profile=upsun]", Duration::from_secs(5))
        .await?;
    assert!(app.text(&upsun).await?.contains("Upsun"));
    if let Some(dir) = std::env::var_os("TETHER_SCREENSHOTS") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir)?;
        app.screenshot(&dir.join("desktop-main-window.png")).await?;
    }

    // The tray registers with the watcher and publishes its menu.
    let w = &desktop.watcher;
    let item = w.wait_for_item(Duration::from_secs(30)).await?;
    // Rebuilt once the app's agent answers: no session here, and no tunnels.
    let menu = w
        .wait_for_menu_entry(&item, "No tunnels open", Duration::from_secs(20))
        .await?;
    assert_eq!(
        menu.labels(),
        [
            "Not signed in to Platform.sh",
            "---",
            "No tunnels open",
            "---",
            "Open Tether…",
            "Quit Tether"
        ]
    );
    assert!(menu.find("Open Tether…").is_some_and(|n| n.enabled));
    assert_eq!(w.item_property(&item, "Status").await?, "Active");

    // Quit from the tray ends the app: its tray item leaves the bus.
    w.click(&item, "Quit Tether").await?;
    let start = Instant::now();
    while w.item_property(&item, "Status").await.is_ok() {
        if start.elapsed() > Duration::from_secs(15) {
            bail!("the app is still running 15 s after Quit");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = app.quit().await;
    Ok(())
}

/// The app hosts the agent: `tether` commands use it, and its tray shows what they did. Its
/// "Close all tunnels" closes them for `tether tunnel:list` too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tray_shows_the_session_and_tunnels_of_the_agent_it_hosts() -> Result<()> {
    use tether_e2e::cli::User;
    use tether_e2e::{backend, demo_sim, ChildGuard, Redis, ALICE_TOKEN};

    let redis = Redis::start()?;
    let mut options = tether_sim::SimOptions::default();
    backend(&mut options, "redis", redis.port);
    let sim = demo_sim(options).await?;
    let user = User::new(&sim.info, false)?;
    user.ok(&["auth:api-token-login"], Some(ALICE_TOKEN))
        .await?;

    let desktop = Desktop::start().await?;
    let mut cmd = std::process::Command::new(desktop_binary()?);
    user.environment(&mut cmd);
    desktop.display_env(&mut cmd);
    let log = desktop.state.path().join("app.log");
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log)?);
    let _app = ChildGuard::spawn("tether-desktop", &mut cmd)?;
    let w = &desktop.watcher;
    let item = match w.wait_for_item(Duration::from_secs(60)).await {
        Ok(item) => item,
        Err(e) => bail!("{e}; the app said: {}", std::fs::read_to_string(&log)?),
    };
    let menu = w
        .wait_for_menu_entry(&item, "No tunnels open", Duration::from_secs(30))
        .await?;
    let labels = menu.labels();
    assert_eq!(
        labels[0], "Signed in to Local platform (tether-sim)",
        "{labels:?}"
    );
    assert!(
        labels[1].starts_with("Certificate valid until ") && labels[1].ends_with(" UTC"),
        "{labels:?}"
    );

    // `tether tunnel:open` finds the app's agent (it starts none of its own).
    let said = user
        .ok(&["tunnel:open", "-p", "rjify4yjcwxaa", "-e", "main"], None)
        .await?;
    assert!(said.contains("SSH tunnel opened to redis"), "{said}");
    let listed: serde_json::Value =
        serde_json::from_str(&user.ok(&["tunnel:list", "--format", "json"], None).await?)?;
    let local = listed[0]["local"].as_str().unwrap_or_default().to_string();
    let label = format!("redis of rjify4yjcwxaa/main/web — {local} (open)");
    w.wait_for_menu_entry(&item, &label, Duration::from_secs(10))
        .await?;

    // "Close all tunnels" in the tray closes them for the command line too.
    w.click(&item, "Close all tunnels").await?;
    let start = Instant::now();
    loop {
        let listed = user.ok(&["tunnel:list", "--format", "json"], None).await?;
        if listed.trim() == "[]" {
            break;
        }
        if start.elapsed() > Duration::from_secs(10) {
            bail!("still open after the tray's Close all tunnels: {listed}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    w.wait_for_menu_entry(&item, "No tunnels open", Duration::from_secs(10))
        .await?;
    w.click(&item, "Quit Tether").await?;
    Ok(())
}
