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
    let menu = w
        .wait_for_menu_entry(&item, "Quit Tether", Duration::from_secs(10))
        .await?;
    assert_eq!(menu.labels(), ["Open Tether…", "---", "Quit Tether"]);
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
