//! What the real desktop app puts on the X clipboard, read as another program would (xclip):
//! a secret (a tunnel URL carrying the relationship's credentials) is marked for clipboard
//! managers and cleared after a while if it is still there; what the user copied since, and
//! what is not a secret, are left alone. The delay is shortened with
//! `TETHER_CLIPBOARD_CLEAR_SECS`. The app logs what each clearing found (cleared, or left
//! alone), and the test waits for those lines rather than for time.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use tether_e2e::cli::User;
use tether_e2e::desktop::Desktop;
use tether_e2e::notifications::Notifications;
use tether_e2e::{backend, demo_sim, Redis, ALICE_TOKEN};

const MARKETING: &str = "rjify4yjcwxaa";
const CLEAR_SECS: u64 = 3;
/// What `exclude_from_history` offers beside the text (KDE's and GNOME's managers honour it).
const PASSWORD_HINT: &str = "x-kde-passwordManagerHint";

const CLEARED: &str = "cleared a secret from the clipboard";
const LEFT_ALONE: &str = "left the clipboard alone";

/// How many times the app's log says `line`.
fn said(desktop: &Desktop, line: &str) -> usize {
    std::fs::read_to_string(desktop.log())
        .unwrap_or_default()
        .matches(line)
        .count()
}

/// Waits until the app's log says `line` `n` times (a secret's clearing, done).
async fn wait_said(desktop: &Desktop, line: &str, n: usize) -> Result<()> {
    let start = Instant::now();
    while said(desktop, line) < n {
        ensure!(
            start.elapsed() < Duration::from_secs(CLEAR_SECS + 15),
            "the app did not say {line:?} {n} times in {:?}: {}",
            start.elapsed(),
            std::fs::read_to_string(desktop.log()).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Watches for `during` that the clipboard keeps holding `text`, failing at the first change
/// with what it held and when: for a clearing that must not come, which only time can show.
async fn clipboard_holds(desktop: &Desktop, text: &str, during: Duration) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < during {
        let held = desktop.clipboard(None).await?;
        ensure!(
            held.as_deref() == Some(text),
            "the clipboard held {held:?} instead of {text:?} {:?} into a {during:?} watch",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

async fn targets(desktop: &Desktop) -> Result<String> {
    Ok(desktop
        .clipboard(Some("TARGETS"))
        .await?
        .unwrap_or_default())
}

/// The user copies something of their own (xclip serves it until it loses the clipboard).
async fn user_copies(desktop: &Desktop, text: &str) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("xclip")
        .args(["-i", "-selection", "clipboard"])
        .env("DISPLAY", &desktop.display)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let mut stdin = child.stdin.take().context("xclip's stdin")?;
    stdin.write_all(text.as_bytes()).await?;
    drop(stdin);
    child.wait().await?;
    ensure!(
        desktop.clipboard(None).await?.as_deref() == Some(text),
        "xclip did not take the clipboard"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_tunnel_url_is_cleared_from_the_clipboard_unless_the_user_copied_since(
) -> Result<()> {
    let redis = Redis::start()?;
    let mut options = tether_sim::SimOptions::default();
    backend(&mut options, "redis", redis.port);
    let sim = demo_sim(options).await?;
    let user = User::new(&sim.info, false)?;
    user.ok(&["auth:api-token-login"], Some(ALICE_TOKEN))
        .await?;
    let settings_file = user.home().join(".local/share/tether/desktop.json");
    std::fs::write(
        &settings_file,
        // Its production opens without a question (the project's switch).
        serde_json::to_vec(&json!({
            "pinned": [format!("{MARKETING}/main/web")],
            "production_unguarded": [MARKETING],
        }))?,
    )?;
    // Read once by the app at start; this test is alone in its binary.
    std::env::set_var("TETHER_CLIPBOARD_CLEAR_SECS", CLEAR_SECS.to_string());
    std::env::set_var("TETHER_LOG", "warn,tether_desktop::clipboard=info");

    let desktop = Desktop::start().await?;
    let notes = Notifications::start(&desktop.bus_address).await?;
    let _app = desktop.launch_for(&user, &["--hidden"])?;
    let w = &desktop.watcher;
    let item = desktop.tray_item().await?;
    let pinned = "★ web — Marketing site / main [PRODUCTION]";
    w.wait_for_menu_entry(&item, pinned, Duration::from_secs(30))
        .await?;
    w.click_path(&item, &[pinned, "Open tunnels"]).await?;
    let start = Instant::now();
    let local = loop {
        let listed = user.ok(&["tunnel:list", "--format", "json"], None).await?;
        let listed: Vec<Value> = serde_json::from_str(&listed)?;
        if let Some(t) = listed.first() {
            break t["local"].as_str().unwrap_or_default().to_string();
        }
        ensure!(
            start.elapsed() < Duration::from_secs(30),
            "no tunnel opened"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let label = format!("redis of {MARKETING}/main/web [PRODUCTION] — {local} (open)");
    w.wait_for_menu_entry(&item, &label, Duration::from_secs(10))
        .await?;

    // A secret, then something the user copies: theirs stays past the delay.
    w.click_path(&item, &[&label, "Copy URL"]).await?;
    let note = notes
        .wait_for("Copied tunnel URL", Duration::from_secs(10))
        .await?;
    assert!(
        note.body
            .contains(&format!("clears it from the clipboard in {CLEAR_SECS} s")),
        "{}",
        note.body
    );
    let url = desktop.clipboard(None).await?.unwrap_or_default();
    assert!(url.starts_with("redis://") && url.contains(&local), "{url}");
    let offered = targets(&desktop).await?;
    assert!(offered.contains(PASSWORD_HINT), "{offered}");
    user_copies(&desktop, "the user's own text").await?;
    // The secret's clearing comes, finds the user's text, and leaves it.
    wait_said(&desktop, LEFT_ALONE, 1).await?;
    assert_eq!(
        desktop.clipboard(None).await?.as_deref(),
        Some("the user's own text"),
        "Tether cleared what the user copied"
    );

    // The secret left alone is cleared after the delay, not before.
    w.click_path(&item, &[&label, "Copy URL"]).await?;
    let copied = Instant::now();
    let start = Instant::now();
    loop {
        let held = desktop.clipboard(None).await?;
        if held.is_none() || held.as_deref() == Some("") {
            break;
        }
        if copied.elapsed() < Duration::from_secs(CLEAR_SECS - 1) {
            // Still there early on, as it should be (it may take a moment to arrive).
        } else {
            ensure!(
                start.elapsed() < Duration::from_secs(CLEAR_SECS + 10),
                "the tunnel URL is still on the clipboard after {:?}: {held:?}",
                start.elapsed()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cleared_after = copied.elapsed();
    assert!(
        cleared_after >= Duration::from_secs(CLEAR_SECS - 1),
        "cleared after only {cleared_after:?}"
    );
    wait_said(&desktop, CLEARED, 1).await?;

    // Not a secret: not marked, and not cleared.
    w.click_path(&item, &[&label, &format!("Copy {local}")])
        .await?;
    notes
        .wait_for("Copied tunnel address", Duration::from_secs(10))
        .await?;
    let start = Instant::now();
    while desktop.clipboard(None).await?.as_deref() != Some(local.as_str()) {
        ensure!(
            start.elapsed() < Duration::from_secs(10),
            "the address never reached the clipboard"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let offered = targets(&desktop).await?;
    assert!(!offered.contains(PASSWORD_HINT), "{offered}");
    // Past the delay a secret would have: still there, and no clearing came for it.
    clipboard_holds(&desktop, &local, Duration::from_secs(CLEAR_SECS + 2)).await?;
    assert_eq!(
        (said(&desktop, CLEARED), said(&desktop, LEFT_ALONE)),
        (1, 1),
        "a clearing came for what is not a secret"
    );
    Ok(())
}
