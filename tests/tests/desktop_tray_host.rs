//! The real app on desktops with and without a tray host. A tray icon reaches a panel only
//! through a StatusNotifierWatcher on the session bus; stock GNOME has none. There the app's
//! window is its surface: it opens even when the app starts hidden, says why there is no tray
//! icon and how to get one, hides when closed, and comes back when Tether is started again
//! (single instance). A watcher that appears later gets the tray icon, and the notice goes.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};
use tether_e2e::desktop::{desktop_binary, Desktop};
use tether_e2e::webdriver::{click_later, WebDriver};
use tether_e2e::ChildGuard;

/// The app's window title.
const TITLE: &str = "^Tether$";

/// A WebDriver session on the app, started with `args`; its output goes to the desktop's log,
/// at info level so that what it decides about the tray is there.
async fn app_with(desktop: &Desktop, args: &[&str]) -> Result<(ChildGuard, WebDriver)> {
    let (driver, url) = desktop.tauri_driver_with_env(&[("TETHER_LOG", "info")])?;
    let app = WebDriver::new_session(
        &url,
        json!({ "tauri:options": { "application": desktop_binary()?, "args": args } }),
    )
    .await?;
    Ok((driver, app))
}

/// The ids of the windows titled Tether that X shows.
fn shown_windows(desktop: &Desktop) -> Result<Vec<String>> {
    let found = std::process::Command::new("xdotool")
        .args(["search", "--onlyvisible", "--name", TITLE])
        .env("DISPLAY", &desktop.display)
        .output()?;
    Ok(String::from_utf8_lossy(&found.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect())
}

/// Waits until X shows the app's window (`true`) or shows none (`false`); returns the ids
/// shown.
async fn wait_shown(desktop: &Desktop, shown: bool) -> Result<Vec<String>> {
    let start = Instant::now();
    loop {
        let windows = shown_windows(desktop)?;
        if windows.is_empty() != shown {
            return Ok(windows);
        }
        ensure!(
            start.elapsed() < Duration::from_secs(20),
            "after 20 s the app's window is {} (shown: {windows:?}); the app said: {}",
            if shown {
                "still not shown"
            } else {
                "still shown"
            },
            log(desktop)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn log(desktop: &Desktop) -> String {
    std::fs::read_to_string(desktop.log()).unwrap_or_default()
}

/// Asks the window to close as a window manager would (`scripts/close-window.py`).
fn close(desktop: &Desktop, window: &str) -> Result<()> {
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/close-window.py");
    let closed = std::process::Command::new("python3")
        .arg(script)
        .arg(window)
        .env("DISPLAY", &desktop.display)
        .status()?;
    ensure!(closed.success(), "close-window.py failed");
    Ok(())
}

/// What the window's notice says and whether it is shown.
async fn notice(app: &WebDriver) -> Result<(bool, String)> {
    let v = app
        .execute(
            "const n = document.querySelector('#tray-notice');\
             return n ? [!n.hidden, n.textContent] : null;",
            json!([]),
        )
        .await?;
    match v {
        Value::Array(a) => Ok((a[0] == json!(true), a[1].as_str().unwrap_or("").to_string())),
        other => bail!("the window has no #tray-notice: {other}"),
    }
}

async fn wait_notice(app: &WebDriver, shown: bool) -> Result<String> {
    let start = Instant::now();
    loop {
        let (now, text) = notice(app).await.unwrap_or((!shown, String::new()));
        if now == shown {
            return Ok(text);
        }
        ensure!(
            start.elapsed() < Duration::from_secs(20),
            "the tray notice is {} after 20 s: {text:?}",
            if shown { "still hidden" } else { "still shown" }
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The footer's `Tether <version> (<commit>)`, once the window has read it.
async fn about(app: &WebDriver) -> Result<String> {
    let start = Instant::now();
    loop {
        let text = app
            .execute(
                "return document.querySelector('#about')?.textContent ?? ''",
                json!([]),
            )
            .await?;
        let text = text.as_str().unwrap_or_default().to_string();
        if !text.is_empty() {
            return Ok(text);
        }
        ensure!(
            start.elapsed() < Duration::from_secs(20),
            "the window shows no version"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The footer names this workspace's version and a commit (`unknown` outside a checkout).
fn assert_build(about: &str) {
    let version = env!("CARGO_PKG_VERSION");
    let commit = about
        .strip_prefix(&format!("Tether {version} ("))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("the footer says {about:?}"));
    assert!(
        commit == "unknown" || (commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{about:?}"
    );
}

fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| Some(stat.rsplit_once(") ")?.1.chars().next()? != 'Z'))
        .unwrap_or(false)
}

fn window_pid(desktop: &Desktop, window: &str) -> Result<u32> {
    let out = std::process::Command::new("xdotool")
        .args(["getwindowpid", window])
        .env("DISPLAY", &desktop.display)
        .output()?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("the window names no pid")
}

/// Where the run's screenshots go (`make test` sets it), if anywhere.
async fn screenshot(app: &WebDriver, name: &str) -> Result<()> {
    if let Some(dir) = std::env::var_os("TETHER_SCREENSHOTS").map(std::path::PathBuf::from) {
        std::fs::create_dir_all(&dir)?;
        // Let the last change paint.
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.screenshot(&dir.join(format!("desktop-{name}.png")))
            .await?;
    }
    Ok(())
}

/// Stock GNOME: no watcher on the bus. The app started hidden (as at login) opens its window
/// all the same, with the notice and the build; closing hides it; a second launch shows it
/// again; the notice's Quit ends the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_tray_host_the_window_is_the_app_and_says_how_to_get_a_tray() -> Result<()> {
    let desktop = Desktop::start_without_tray_host().await?;
    let (_driver, app) = app_with(&desktop, &["--hidden"]).await?;
    let text = wait_notice(&app, true).await?;
    for said in [
        "No tray icon on this desktop",
        "closing it only hides it",
        "AppIndicator and KStatusNotifierItem Support",
    ] {
        assert!(text.contains(said), "the notice says {text:?}");
    }
    assert_build(&about(&app).await?);
    screenshot(&app, "no-tray-host").await?;
    let windows = wait_shown(&desktop, true).await?;
    let pid = window_pid(&desktop, &windows[0])?;
    assert!(
        log(&desktop).contains("no StatusNotifierWatcher on the session bus"),
        "{}",
        log(&desktop)
    );

    close(&desktop, &windows[0])?;
    wait_shown(&desktop, false).await?;
    assert!(is_running(pid), "closing the window ended the app");

    // Started again from the menu: the running app shows its window, the same page as before.
    let mut again = std::process::Command::new(desktop_binary()?);
    desktop.env(&mut again);
    let second = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::from(again).status(),
    )
    .await
    .context("the second launch did not hand over to the first in 30 s")??;
    assert!(second.success(), "{second}");
    let shown = wait_shown(&desktop, true).await?;
    assert_eq!(shown, windows, "the same window comes back");
    assert!(wait_notice(&app, true).await?.contains("No tray icon"));

    // The app ends under the click: clicked from a script, after it returns.
    click_later(&app, &app.find("#quit", Duration::from_secs(5)).await?).await?;
    let start = Instant::now();
    while is_running(pid) {
        ensure!(
            start.elapsed() < Duration::from_secs(15),
            "the app still runs 15 s after Quit"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = app.quit().await;
    Ok(())
}

/// A watcher that comes after the app (a panel starting, the extension turned on): the tray
/// icon registers, its menu works, the notice goes, and a closed window is gone, not hidden.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tray_host_that_appears_later_gets_the_icon_and_the_notice_goes() -> Result<()> {
    let desktop = Desktop::start_without_tray_host().await?;
    let (_driver, app) = app_with(&desktop, &[]).await?;
    wait_notice(&app, true).await?;

    desktop.watcher.appear().await?;
    let item = desktop.tray_item().await?;
    let w = &desktop.watcher;
    w.wait_for_menu_entry(&item, "Open Tether…", Duration::from_secs(20))
        .await?;
    wait_notice(&app, false).await?;

    let windows = wait_shown(&desktop, true).await?;
    close(&desktop, &windows[0])?;
    wait_shown(&desktop, false).await?;
    let start = Instant::now();
    while !app.window_handles().await.unwrap_or_default().is_empty() {
        ensure!(
            start.elapsed() < Duration::from_secs(20),
            "with a tray, a closed window is destroyed, not kept hidden"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    w.click(&item, "Open Tether…").await?;
    wait_shown(&desktop, true).await?;
    w.click(&item, "Quit Tether").await?;
    let _ = app.quit().await;
    Ok(())
}

/// A desktop with a tray host from the start: the tray icon, and no notice in the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_tray_host_the_window_has_no_notice() -> Result<()> {
    let desktop = Desktop::start().await?;
    let (_driver, app) = app_with(&desktop, &[]).await?;
    assert_build(&about(&app).await?);
    let item = desktop.tray_item().await?;
    // The bus has answered (the icon is there) and the window read what the app knew then.
    assert!(!notice(&app).await?.0, "a notice with a tray host");
    desktop.watcher.click(&item, "Quit Tether").await?;
    let _ = app.quit().await;
    Ok(())
}
