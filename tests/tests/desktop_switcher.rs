//! The quick switcher in the real app on a private desktop (Xvfb + D-Bus session): its global
//! shortcut pressed as a keyboard would (xdotool's XTEST keys, which the app's key grab on the
//! root window receives), its palette driven through tauri-driver: it filters as one types and
//! opens a terminal (xterm, logging what it shows) on Enter; `tether-desktop --switcher`, a
//! second start, opens it in the running app; Escape closes it.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde_json::json;
use tether_e2e::cli::User;
use tether_e2e::desktop::{app_session, end_terminal, screenshot, wait_text, Desktop};
use tether_e2e::webdriver::WebDriver;
use tether_e2e::{demo_sim, ALICE_TOKEN};

const STOREFRONT: &str = "jyu7waly36ncj";
const MARKETING: &str = "rjify4yjcwxaa";

/// WebDriver's Enter and Escape keys.
const ENTER: &str = "\u{E007}";
const ESCAPE: &str = "\u{E00C}";

/// Presses `keys` (xdotool's names, such as `ctrl+alt+space`) on the desktop's keyboard.
fn press(desktop: &Desktop, keys: &str) -> Result<()> {
    let status = std::process::Command::new("xdotool")
        .args(["key", "--clearmodifiers", keys])
        .env("DISPLAY", &desktop.display)
        .status()?;
    ensure!(status.success(), "xdotool key {keys} failed: {status}");
    Ok(())
}

/// Waits until the switcher's window is there, switches the driver to it, and returns its
/// handle once its list shows the apps.
async fn switcher(app: &WebDriver, main: &str) -> Result<String> {
    let handle = app
        .switch_to_new_window(&[main.to_string()], Duration::from_secs(20))
        .await
        .context("the switcher did not open")?;
    app.find(".switcher-item", Duration::from_secs(30)).await?;
    Ok(handle)
}

/// The apps the switcher lists, top to bottom, as `project/environment/app`.
async fn listed(app: &WebDriver) -> Result<Vec<String>> {
    let v = app
        .execute(
            "return [...document.querySelectorAll('.switcher-item')].map(r => r.dataset.app)",
            json!([]),
        )
        .await?;
    Ok(serde_json::from_value(v)?)
}

/// Waits until only the main window is left (the switcher closed), and switches back to it.
async fn closed(app: &WebDriver, main: &str) -> Result<()> {
    let start = Instant::now();
    loop {
        let handles = app.window_handles().await?;
        if handles == [main.to_string()] {
            return app.switch_to_window(main).await;
        }
        ensure!(
            start.elapsed() < Duration::from_secs(10),
            "the switcher is still open: {handles:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Types `words` into the switcher's query and waits until it lists only `only`; returns the
/// query field.
async fn filter(app: &WebDriver, words: &str, only: &str) -> Result<String> {
    let query = app.find("#switcher-query", Duration::ZERO).await?;
    app.send_keys(&query, words).await?;
    let start = Instant::now();
    while listed(app).await? != [only] {
        ensure!(
            start.elapsed() < Duration::from_secs(10),
            "the switcher lists {:?} for {words:?}",
            listed(app).await?
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(query)
}

/// Escape in the switcher's query: the switcher closes.
async fn escape(app: &WebDriver, main: &str) -> Result<()> {
    let query = app.find("#switcher-query", Duration::ZERO).await?;
    let _ = app.send_keys(&query, ESCAPE).await;
    closed(app, main).await
}

/// The app's saved settings (`desktop.json` in its data directory `data`).
fn settings_saved(data: &std::path::Path) -> Result<serde_json::Value> {
    Ok(serde_json::from_slice(&std::fs::read(
        data.join("desktop.json"),
    )?)?)
}

/// Waits up to 20 s for a second start of the app, which hands its work over, to end.
async fn ends(second: &mut tether_e2e::ChildGuard) -> Result<()> {
    let start = Instant::now();
    while second.child.try_wait()?.is_none() {
        ensure!(
            start.elapsed() < Duration::from_secs(20),
            "the second start is still running"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_switcher_opens_on_its_shortcut_filters_and_opens_a_terminal() -> Result<()> {
    let sim = demo_sim(tether_sim::SimOptions::default()).await?;
    let user = User::new(&sim.info, false)?;
    user.ok(&["auth:api-token-login"], Some(ALICE_TOKEN))
        .await?;
    let terminal_log = user.home().join("xterm.log");
    let data = user.home().join(".local/share/tether");
    std::fs::create_dir_all(&data)?;
    std::fs::write(
        data.join("desktop.json"),
        serde_json::to_vec(&json!({
            "terminal": format!("xterm -l -lf {} -e {{}}", terminal_log.display()),
            "pinned": [format!("{STOREFRONT}/staging/app")],
            "recent": [format!("{MARKETING}/main/web")],
        }))?,
    )?;
    let desktop = Desktop::start().await?;
    let (_driver, url) = desktop.tauri_driver_for(&user)?;
    let app = app_session(&url).await?;
    let _stop = user.agent_stopper();
    let main = app.window_handle().await?;
    app.find("#open-switcher", Duration::from_secs(60)).await?;
    // The window is up: the app has registered its shortcut by now (at its start).
    wait_text(&app, "#account-state", "Signed in", Duration::from_secs(30)).await?;

    // The shortcut, pressed anywhere, opens the palette: pinned, then recent, then the rest,
    // production marked.
    press(&desktop, "ctrl+alt+space")?;
    switcher(&app, &main).await?;
    let apps = listed(&app).await?;
    assert_eq!(
        apps[..2],
        [
            format!("{STOREFRONT}/staging/app"),
            format!("{MARKETING}/main/web"),
        ],
        "pinned, then recent: {apps:?}"
    );
    // The rest in the catalog's order.
    let mut rest = apps[2..].to_vec();
    rest.sort();
    assert_eq!(
        rest,
        [
            format!("{STOREFRONT}/main/app"),
            format!("{MARKETING}/preview/web"),
        ],
        "{apps:?}"
    );
    wait_text(&app, "#switcher-item-1", "[PRODUCTION]", Duration::ZERO).await?;
    wait_text(&app, "#switcher-keys", "Ctrl+S SQL shell", Duration::ZERO).await?;
    screenshot(&app, "switcher").await?;

    // It filters as one types (fuzzy: "mrk" finds Marketing), and Enter opens a terminal.
    let query = filter(&app, "mrk prev", &format!("{MARKETING}/preview/web")).await?;
    screenshot(&app, "switcher-filtered").await?;
    // The window closes as the key is handled: the driver may find it gone before it answers.
    let _ = app.send_keys(&query, ENTER).await;
    closed(&app, &main).await?;
    desktop
        .terminal_shows(
            &terminal_log,
            &[
                "Welcome to Platform.sh",
                &format!("project Marketing site ({MARKETING}), app web"),
            ],
        )
        .await?;
    end_terminal(&terminal_log);
    // The app used is recent now: first after the pinned one.
    let saved = settings_saved(&data)?;
    assert_eq!(
        saved["recent"][0],
        format!("{MARKETING}/preview/web"),
        "{saved}"
    );

    // On production, Enter asks first, as the tray's Open terminal does; no answer, no terminal.
    let _ = std::fs::remove_file(&terminal_log);
    press(&desktop, "ctrl+alt+space")?;
    switcher(&app, &main).await?;
    let query = filter(&app, "store main", &format!("{STOREFRONT}/main/app")).await?;
    let _ = app.send_keys(&query, ENTER).await;
    closed(&app, &main).await?;
    let question = desktop
        .visible_window("^Tether: production$", Duration::from_secs(20))
        .await?;
    if let Some(dir) = tether_e2e::desktop::screenshot_dir() {
        let _ = std::process::Command::new("import")
            .args(["-window", "root"])
            .arg(dir.join("desktop-switcher-production-question.png"))
            .env("DISPLAY", &desktop.display)
            .status();
    }
    desktop.close_window(&question)?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    ensure!(
        !terminal_log.exists(),
        "a terminal opened on production without a yes: {:?}",
        std::fs::read_to_string(&terminal_log)
    );

    // second start hands it to the running app, and ends.
    let mut second = desktop.launch_for(&user, &["--switcher"])?;
    switcher(&app, &main).await?;
    ends(&mut second).await?;
    // A new search: the query is empty and the list whole.
    ensure!(
        app.execute(
            "return document.querySelector('#switcher-query').value",
            json!([])
        )
        .await?
            == json!(""),
        "the query was kept"
    );
    assert_eq!(listed(&app).await?.len(), 4);
    // Escape closes it.
    escape(&app, &main).await?;

    // The window's button opens it too; it goes away when another window takes the focus, as a
    // click elsewhere gives it on a desktop (Xvfb has no window manager: xdotool moves it).
    app.click_on("#open-switcher", Duration::ZERO).await?;
    switcher(&app, &main).await?;
    let palette = desktop
        .visible_window("^Tether switcher$", Duration::from_secs(20))
        .await?;
    focus(&desktop, &palette)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    ensure!(
        app.window_handles().await?.len() == 2,
        "the switcher closed when it got the focus"
    );
    focus(
        &desktop,
        &desktop
            .visible_window("^Tether$", Duration::from_secs(20))
            .await?,
    )?;
    closed(&app, &main).await?;

    // Settings: the shortcut works, and says so.
    app.click_on("#nav-settings", Duration::ZERO).await?;
    app.find("#check-list", Duration::from_secs(30)).await?;
    // Every check `tether doctor` makes, each with its status and what it means.
    let checks: Vec<(String, String, String)> = serde_json::from_value(
        app.execute(
            "return [...document.querySelectorAll('#check-list .check')].map(c => \
             [c.dataset.check, c.dataset.status, c.querySelector('.check-detail').textContent])",
            json!([]),
        )
        .await?,
    )?;
    // Problems and warnings are listed first; all ten are there.
    let mut ids: Vec<&str> = checks.iter().map(|(id, ..)| id.as_str()).collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "agent",
            "clock",
            "hook_binary",
            "keyring",
            "openssh_version",
            "ssh_config_block",
            "ssh_home",
            "ssh_resolution",
            "tray_host",
            "tunnel_ports",
        ],
        "{checks:?}"
    );
    for (id, status, detail) in &checks {
        ensure!(
            ["ok", "warning", "problem"].contains(&status.as_str()) && !detail.is_empty(),
            "check {id}: {status:?} {detail:?}"
        );
    }
    // The app hosts the agent and has a tray host: those are fine here.
    for id in ["agent", "tray_host"] {
        let (_, status, detail) = checks.iter().find(|(i, ..)| i == id).context(id)?;
        assert_eq!(status, "ok", "{id}: {detail}");
    }
    wait_text(
        &app,
        "#shortcut-status",
        "Press Ctrl+Alt+Space anywhere",
        Duration::from_secs(10),
    )
    .await?;
    show(&app, "#switcher-settings").await?;
    screenshot(&app, "settings-switcher").await?;

    // A clock 5 minutes off the platform's: "Run checks again" shows the problem and its fix,
    // and once the clocks agree again, the check is fine.
    sim.set_clock_skew(-300);
    app.click_on("#run-checks", Duration::ZERO).await?;
    wait_text(
        &app,
        "#check-list [data-check=clock]",
        "300 s ahead of the platform's",
        Duration::from_secs(30),
    )
    .await?;
    let clock = wait_text(
        &app,
        "#check-list [data-check=clock]",
        "Problem",
        Duration::ZERO,
    )
    .await?;
    assert!(
        clock.contains("Fix: Set the clock from the network")
            && clock.contains("sudo timedatectl set-ntp true"),
        "{clock}"
    );
    wait_text(&app, "#checks-summary", "1 problem", Duration::ZERO).await?;
    // What needs doing comes first.
    wait_text(
        &app,
        "#check-list .check:first-child",
        "300 s ahead",
        Duration::ZERO,
    )
    .await?;
    show(&app, "#checks").await?;
    screenshot(&app, "settings-checks-clock-problem").await?;
    sim.set_clock_skew(0);
    app.click_on("#run-checks", Duration::ZERO).await?;
    wait_text(
        &app,
        "#check-list [data-check=clock]",
        "within 60 s",
        Duration::from_secs(30),
    )
    .await?;
    show(&app, "#checks").await?;
    screenshot(&app, "settings-checks").await?;

    // A shortcut another program holds is refused, in words that say what to do.
    let mut grab = std::process::Command::new("python3");
    grab.arg(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/grab-key.py"))
        .args(["j", "control", "mod1"])
        .env("DISPLAY", &desktop.display)
        .stdout(std::process::Stdio::piped());
    let mut holder = tether_e2e::ChildGuard::spawn("grab-key.py", &mut grab)?;
    let mut said = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.child.stdout.take().context("no stdout")?),
        &mut said,
    )?;
    ensure!(said.trim() == "grabbed", "grab-key.py said {said:?}");
    save_shortcut(&app, "Ctrl+Alt+J").await?;
    wait_text(
        &app,
        "#shortcut-status",
        "Ctrl+Alt+J is held by another program: choose another shortcut",
        Duration::from_secs(10),
    )
    .await?;
    show(&app, "#switcher-settings").await?;
    screenshot(&app, "settings-shortcut-held").await?;
    holder.stop();

    // Another shortcut is registered in the old one's place.
    save_shortcut(&app, "Ctrl+Alt+K").await?;
    wait_text(
        &app,
        "#shortcut-status",
        "Press Ctrl+Alt+K anywhere",
        Duration::from_secs(10),
    )
    .await?;
    press(&desktop, "ctrl+alt+space")?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let handles = app.window_handles().await?;
    assert!(
        handles == std::slice::from_ref(&main),
        "the old shortcut still opens the switcher: {handles:?}"
    );
    press(&desktop, "ctrl+alt+k")?;
    switcher(&app, &main).await?;
    escape(&app, &main).await?;
    let saved = settings_saved(&data)?;
    assert_eq!(saved["switcher_shortcut"], "Ctrl+Alt+K", "{saved}");

    // Settings turn the question off for Storefront: its production terminal opens at once.
    let guard = app
        .find(&format!("#guard-{STOREFRONT}"), Duration::ZERO)
        .await?;
    app.click(&guard).await?;
    app.click_on("#save-settings", Duration::ZERO).await?;
    wait_text(
        &app,
        "[role=status].saved",
        "Saved",
        Duration::from_secs(10),
    )
    .await?;
    let saved = settings_saved(&data)?;
    assert_eq!(
        saved["production_unguarded"],
        json!([STOREFRONT]),
        "{saved}"
    );
    press(&desktop, "ctrl+alt+k")?;
    switcher(&app, &main).await?;
    let query = filter(&app, "store main", &format!("{STOREFRONT}/main/app")).await?;
    let _ = app.send_keys(&query, ENTER).await;
    closed(&app, &main).await?;
    desktop
        .terminal_shows_checking(
            &terminal_log,
            &[&format!("project Storefront ({STOREFRONT}), app app")],
            || {
                let asked = std::process::Command::new("xdotool")
                    .args(["search", "--onlyvisible", "--name", "^Tether: production$"])
                    .env("DISPLAY", &desktop.display)
                    .output()?;
                ensure!(
                    asked.stdout.is_empty(),
                    "asked about production although Settings turned it off"
                );
                Ok(())
            },
        )
        .await?;
    end_terminal(&terminal_log);
    Ok(())
}

/// Gives an X window the keyboard focus.
fn focus(desktop: &Desktop, window: &str) -> Result<()> {
    let status = std::process::Command::new("xdotool")
        .args(["windowfocus", "--sync", window])
        .env("DISPLAY", &desktop.display)
        .status()?;
    ensure!(status.success(), "xdotool windowfocus {window} failed");
    Ok(())
}

/// Scrolls the element `css` finds into view (for a screenshot of it).
async fn show(app: &WebDriver, css: &str) -> Result<()> {
    app.execute(
        "document.querySelector(arguments[0]).scrollIntoView({block: 'start'})",
        json!([css]),
    )
    .await?;
    Ok(())
}

/// Types `shortcut` into Settings' shortcut field, as a person would replace its text, and saves.
async fn save_shortcut(app: &WebDriver, shortcut: &str) -> Result<()> {
    app.execute(
        "const i = document.querySelector('#setting-switcher_shortcut'); i.value = ''; \
         i.dispatchEvent(new Event('input', {bubbles: true}));",
        json!([]),
    )
    .await?;
    let field = app
        .find("#setting-switcher_shortcut", Duration::ZERO)
        .await?;
    app.send_keys(&field, shortcut).await?;
    app.click_on("#save-settings", Duration::ZERO).await?;
    wait_text(app, "[role=status].saved", "Saved", Duration::from_secs(10)).await?;
    Ok(())
}

/// On Wayland (weston, no X display) the app registers no global shortcut and Settings says
/// so, pointing to `tether-desktop --switcher`, which opens the switcher there as anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_wayland_settings_point_to_the_switcher_command_which_opens_it() -> Result<()> {
    let Some(desktop) = Desktop::start_wayland_or_skip().await? else {
        return Ok(());
    };
    let (_driver, url) = desktop.tauri_driver()?;
    let app = app_session(&url).await?;
    let main = app.window_handle().await?;
    app.click_on("#nav-settings", Duration::from_secs(60))
        .await?;
    let said = wait_text(
        &app,
        "#shortcut-status",
        "On Wayland, global shortcuts may not reach Tether",
        Duration::from_secs(20),
    )
    .await?;
    assert!(
        said.contains(
            "Ctrl+Alt+Space cannot be registered: this desktop gives apps no global shortcuts"
        ) && said.contains("give the command tether-desktop --switcher a shortcut instead"),
        "{said}"
    );
    show(&app, "#switcher-settings").await?;
    screenshot(&app, "settings-switcher-wayland").await?;

    // The command a desktop shortcut would run: a second start that hands it over, and ends.
    let mut cmd = std::process::Command::new(tether_e2e::desktop::desktop_binary()?);
    cmd.arg("--switcher")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    desktop.env(&mut cmd);
    let mut second = tether_e2e::ChildGuard::spawn("tether-desktop --switcher", &mut cmd)?;
    let handle = app
        .switch_to_new_window(std::slice::from_ref(&main), Duration::from_secs(20))
        .await
        .context("the switcher did not open")?;
    // Nobody is signed in (and this desktop has no keyring): it says why it lists nothing.
    wait_text(
        &app,
        "#switcher-status",
        "No OS keyring is reachable",
        Duration::from_secs(20),
    )
    .await?;
    screenshot(&app, "switcher-wayland-signed-out").await?;
    ends(&mut second).await?;
    escape(&app, &main).await?;
    let _ = handle;
    Ok(())
}
