//! The real app on desktops with and without a tray host. A tray icon reaches a panel only
//! through a StatusNotifierWatcher on the session bus; stock GNOME has none. There the app's
//! window is its surface: it opens even when the app starts hidden, says why there is no tray
//! icon and how to get one, hides when closed, and comes back when Tether is started again
//! (single instance). A watcher that appears later gets the tray icon, and the notice goes.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;
use tether_e2e::desktop::{desktop_binary, Desktop};
use tether_e2e::webdriver::{click_later, WebDriver};
use tether_e2e::ChildGuard;

/// How long anything here may take to happen.
const WITHIN: Duration = Duration::from_secs(20);

/// Polls `probe` until it answers `Ok(value)`; past [`WITHIN`], fails with `what` and what the
/// probe last saw (its `Err`).
async fn until<T, F, Fut>(what: &str, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Result<T, String>>>,
{
    let start = Instant::now();
    loop {
        match probe().await? {
            Ok(value) => return Ok(value),
            Err(seen) if start.elapsed() > WITHIN => bail!("{what} after {WITHIN:?}: {seen}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

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

fn log(desktop: &Desktop) -> String {
    std::fs::read_to_string(desktop.log()).unwrap_or_default()
}

/// Waits until X shows the app's window (`true`) or none (`false`); the ids shown.
async fn wait_shown(desktop: &Desktop, shown: bool) -> Result<Vec<String>> {
    let what = format!(
        "the app's window is not {}",
        ["hidden", "shown"][shown as usize]
    );
    until(&what, || async {
        let found = std::process::Command::new("xdotool")
            .args(["search", "--onlyvisible", "--name", "^Tether$"])
            .env("DISPLAY", &desktop.display)
            .output()?;
        let windows: Vec<String> = String::from_utf8_lossy(&found.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        Ok(if windows.is_empty() != shown {
            Ok(windows)
        } else {
            Err(format!(
                "shown: {windows:?}; the app said: {}",
                log(desktop)
            ))
        })
    })
    .await
}

/// Reads `#id` in the window: whether it is shown, and its text.
async fn element(app: &WebDriver, id: &str) -> Result<(bool, String)> {
    let v = app
        .execute(
            "const e = document.getElementById(arguments[0]);\
             return e ? [!e.hidden, e.textContent] : [false, null];",
            json!([id]),
        )
        .await?;
    Ok((
        v[0] == json!(true),
        v[1].as_str().unwrap_or_default().to_string(),
    ))
}

/// Waits until the tray notice is shown (`true`) or hidden (`false`); its text.
async fn wait_notice(app: &WebDriver, shown: bool) -> Result<String> {
    let what = format!(
        "the tray notice is not {}",
        ["hidden", "shown"][shown as usize]
    );
    until(&what, || async {
        let (now, text) = element(app, "tray-notice").await?;
        Ok(if now == shown { Ok(text) } else { Err(text) })
    })
    .await
}

/// Waits for the footer's `Tether <version> (<commit>)` and checks that it names this
/// workspace's version and a commit (`unknown` outside a checkout).
async fn assert_build(app: &WebDriver) -> Result<()> {
    let about = until("the window shows no version", || async {
        let (_, text) = element(app, "about").await?;
        Ok(if text.is_empty() { Err(text) } else { Ok(text) })
    })
    .await?;
    let version = env!("CARGO_PKG_VERSION");
    let commit = about
        .strip_prefix(&format!("Tether {version} ("))
        .and_then(|r| r.strip_suffix(')'))
        .with_context(|| format!("the footer says {about:?}"))?;
    let hex = commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit());
    anyhow::ensure!(hex || commit == "unknown", "the footer says {about:?}");
    Ok(())
}

/// Waits until process `pid` has ended (a zombie has).
async fn wait_ended(pid: u32, what: &str) -> Result<()> {
    until(what, || async {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next());
        Ok(match state {
            None | Some('Z') => Ok(()),
            Some(s) => Err(format!("pid {pid} is in state {s}")),
        })
    })
    .await
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

/// Into `TETHER_SCREENSHOTS` (`make test` sets it), when set.
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
    assert_build(&app).await?;
    screenshot(&app, "no-tray-host").await?;
    let windows = wait_shown(&desktop, true).await?;
    let pid = window_pid(&desktop, &windows[0])?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))?;
    assert!(
        cmdline.split(|b| *b == 0).any(|a| a == b"--hidden"),
        "the app was not started hidden: {}",
        String::from_utf8_lossy(&cmdline)
    );
    let said = log(&desktop);
    assert!(
        said.contains("no StatusNotifierWatcher on the session bus"),
        "{said}"
    );

    desktop.close_window(&windows[0])?;
    wait_shown(&desktop, false).await?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    assert!(!stat.contains(") Z "), "closing the window ended the app");

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
    wait_ended(pid, "the app still runs after Quit").await?;
    let _ = app.quit().await;
    Ok(())
}

/// A watcher that comes after the app (a panel starting, the extension turned on): the tray
/// icon registers, its menu works, the notice goes, and a closed window is gone, not hidden.
/// When the watcher goes again, the notice comes back and closing only hides the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tray_host_that_appears_later_gets_the_icon_and_the_notice_goes_and_comes_back_with_it(
) -> Result<()> {
    let desktop = Desktop::start_without_tray_host().await?;
    let (_driver, app) = app_with(&desktop, &[]).await?;
    wait_notice(&app, true).await?;

    desktop.watcher.appear().await?;
    let item = desktop.tray_item().await?;
    let w = &desktop.watcher;
    w.wait_for_menu_entry(&item, "Open Tether…", WITHIN).await?;
    wait_notice(&app, false).await?;

    let windows = wait_shown(&desktop, true).await?;
    desktop.close_window(&windows[0])?;
    wait_shown(&desktop, false).await?;
    until(
        "with a tray, a closed window is destroyed, not kept hidden",
        || async {
            let handles = app.window_handles().await.unwrap_or_default();
            Ok(if handles.is_empty() {
                Ok(())
            } else {
                Err(format!("{handles:?}"))
            })
        },
    )
    .await?;
    w.click(&item, "Open Tether…").await?;
    wait_shown(&desktop, true).await?;

    // The panel goes away (the extension turned off): the notice is back, and a closed window
    // is only hidden again.
    let window = until("no window to drive", || async {
        let handles = app.window_handles().await.unwrap_or_default();
        Ok(handles.first().cloned().ok_or_else(|| "none".to_string()))
    })
    .await?;
    app.switch_to_window(&window).await?;
    w.vanish().await?;
    wait_notice(&app, true).await?;
    let windows = wait_shown(&desktop, true).await?;
    desktop.close_window(&windows[0])?;
    wait_shown(&desktop, false).await?;
    assert_eq!(
        app.window_handles().await?,
        [window],
        "the hidden window is kept"
    );
    w.click(&item, "Quit Tether").await?;
    let _ = app.quit().await;
    Ok(())
}

/// A desktop with a tray host from the start: the tray icon, and no notice in the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_tray_host_the_window_has_no_notice() -> Result<()> {
    let desktop = Desktop::start().await?;
    let (_driver, app) = app_with(&desktop, &[]).await?;
    assert_build(&app).await?;
    let item = desktop.tray_item().await?;
    // The bus has answered (the icon is there) and the window read what the app knew then.
    let (shown, text): (bool, String) = element(&app, "tray-notice").await?;
    assert!(!shown, "a notice with a tray host: {text:?}");
    desktop.watcher.click(&item, "Quit Tether").await?;
    let _ = app.quit().await;
    Ok(())
}
