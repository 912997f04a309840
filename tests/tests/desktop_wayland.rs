//! The real app under a Wayland compositor (weston's headless backend, `GDK_BACKEND=wayland`,
//! no X display at all): its window renders, as WebKit draws it and as the compositor shows
//! it (`weston-screenshooter`), and its tray registers over D-Bus as on X11; copying, which a
//! compositor without the data-control protocol and without XWayland cannot offer, says why it
//! fails. Skipped only when weston itself cannot start on the machine (`make test` installs
//! it).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde_json::json;
use tether_e2e::desktop::{desktop_binary, Desktop};
use tether_e2e::webdriver::WebDriver;

/// The window's background (`--bg` in ui/src/style.css, light theme).
const WINDOW_BG: [u8; 3] = [0xf6, 0xf7, 0xf9];

/// Where the screenshots go: `TETHER_SCREENSHOTS` (`make test` sets it), else the desktop's
/// own directory.
fn screenshot_path(desktop: &Desktop, name: &str) -> Result<PathBuf> {
    let dir = std::env::var_os("TETHER_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| desktop.state.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    Ok(dir.join(format!("desktop-{name}.png")))
}

/// The compositor's whole output, through weston's screenshooter (allowed by `--debug`), which
/// writes `wayland-screenshot-<time>.png` in its working directory.
async fn compositor_screenshot(desktop: &Desktop, to: &Path) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new("weston-screenshooter")
            .current_dir(dir.path())
            .env("WAYLAND_DISPLAY", &desktop.display)
            .output(),
    )
    .await
    .context("weston-screenshooter did not finish in 20 s")??;
    ensure!(
        out.status.success(),
        "weston-screenshooter: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shot = std::fs::read_dir(dir.path())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "png"))
        .context("weston-screenshooter wrote no PNG")?;
    std::fs::copy(&shot, to)?;
    Ok(())
}

/// How many pixels of a PNG have the colour `rgb`.
fn pixels_of(png_path: &Path, rgb: [u8; 3]) -> Result<usize> {
    let file = std::fs::File::open(png_path)?;
    let mut reader = png::Decoder::new(std::io::BufReader::new(file)).read_info()?;
    let mut buf = vec![0; reader.output_buffer_size().context("PNG size")?];
    let frame = reader.next_frame(&mut buf)?;
    let step = match frame.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => anyhow::bail!("a {other:?} screenshot"),
    };
    Ok(buf[..frame.buffer_size()]
        .chunks_exact(step)
        .filter(|p| p[..3] == rgb)
        .count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_renders_and_registers_its_tray_under_wayland() -> Result<()> {
    let Some(desktop) = Desktop::start_wayland_or_skip().await? else {
        return Ok(());
    };
    let (_driver, url) = desktop.tauri_driver_with_env(&[("TETHER_LOG", "info")])?;
    let app = WebDriver::new_session(
        &url,
        json!({ "tauri:options": { "application": desktop_binary()? } }),
    )
    .await?;
    let said = || std::fs::read_to_string(desktop.log()).unwrap_or_default();

    // The page, as WebKit renders it on Wayland.
    let card = app.find(".signin", Duration::from_secs(60)).await?;
    let text = app.text(&card).await?;
    assert!(text.contains("Sign in to Platform.sh"), "{text}");
    let about = app
        .execute(
            "return document.querySelector('#about')?.textContent ?? ''",
            json!([]),
        )
        .await?;
    assert!(
        about.as_str().unwrap_or_default().starts_with("Tether "),
        "{about}"
    );

    // The tray, over D-Bus as on X11.
    let item = desktop.tray_item().await?;
    let menu = desktop
        .watcher
        .wait_for_menu_entry(&item, "Open Tether…", Duration::from_secs(20))
        .await?;
    assert!(menu.find("Quit Tether").is_some(), "{:?}", menu.labels());

    // Copying, as the window's copy buttons do: weston has no data-control protocol and this
    // desktop no XWayland, so there is no clipboard to lend, and the app says so.
    let copied = app
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             window.__TAURI_INTERNALS__.invoke('copy_text', { text: 'ssh x@y', label: 'SSH command', secret: false })\
               .then(() => done('copied'), e => done('refused: ' + e.message));",
            json!([]),
        )
        .await?;
    let copied = copied.as_str().unwrap_or_default();
    assert!(
        copied.contains("refused: cannot write the clipboard")
            && copied.contains("no data-control protocol, and no XWayland"),
        "{copied}"
    );

    // Let the page paint, then take it as WebKit draws it and as the compositor shows it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let webview = screenshot_path(&desktop, "wayland-webview")?;
    app.screenshot(&webview).await?;
    let output = screenshot_path(&desktop, "wayland-compositor")?;
    let start = Instant::now();
    loop {
        compositor_screenshot(&desktop, &output).await?;
        // The window's 440×600 less its header and the card: well over 50,000 pixels of its
        // background, which weston's own wallpaper and panel never have.
        let shown = pixels_of(&output, WINDOW_BG)?;
        if shown > 50_000 {
            break;
        }
        ensure!(
            start.elapsed() < Duration::from_secs(20),
            "the compositor shows {shown} pixels of the window's background after 20 s ({}); the app said: {}",
            output.display(),
            said()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "screenshots: {} and {}",
        webview.display(),
        output.display()
    );

    desktop.watcher.click(&item, "Quit Tether").await?;
    let _ = app.quit().await;
    Ok(())
}
