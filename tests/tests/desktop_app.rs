//! The real desktop app on a private desktop (Xvfb + D-Bus session): its window is driven
//! through tauri-driver and WebKitWebDriver, its tray is read over D-Bus
//! (StatusNotifierItem + com.canonical.dbusmenu) the way a desktop shell reads it, and its
//! notifications go to a notification server on the same bus.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};
use tether_e2e::cli::{BrowserStub, User, KEYRING_SERVICE};
use tether_e2e::desktop::{
    app_session, end_terminal, hidden_app, screenshot, screenshot_dir, sign_in_through_the_window,
    wait_text, Desktop,
};
use tether_e2e::notifications::Notifications;
use tether_e2e::tray::{TrayItem, TrayWatcher};
use tether_e2e::webdriver::WebDriver;
use tether_e2e::{
    backend, demo_sim, psql_command, run_async, Postgres, Redis, ALICE_MFA_TOKEN, ALICE_TOKEN,
    DEMO_PROJECT,
};

const STOREFRONT: &str = "jyu7waly36ncj";
const MARKETING: &str = "rjify4yjcwxaa";

/// Calls the app's IPC (`account`) from the current window's page: "ok:…" when allowed.
async fn try_ipc(app: &WebDriver) -> Result<String> {
    let v = app
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             try {\
               window.__TAURI_INTERNALS__.invoke('account', {})\
                 .then(v => done('ok:' + JSON.stringify(v)), e => done('refused:' + JSON.stringify(e)));\
             } catch (e) { done('threw:' + e); }",
            json!([]),
        )
        .await?;
    Ok(v.as_str().unwrap_or_default().to_string())
}

async fn tunnel_list(user: &User) -> Result<Vec<Value>> {
    let listed = user.ok(&["tunnel:list", "--format", "json"], None).await?;
    Ok(serde_json::from_str(&listed)?)
}

/// What the X clipboard holds, read as another program would.
async fn clipboard(desktop: &Desktop) -> Result<String> {
    desktop
        .clipboard(None)
        .await?
        .context("nobody holds the clipboard")
}

async fn psql(port: u16, sql: &str) -> Result<String> {
    let mut c = psql_command(port, "main");
    c.args(["-tAc", sql]);
    let out = run_async(c).await?;
    ensure!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A fresh app session shows its sign-in screen (here in the dark theme) and a tray whose
/// Quit ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_app_asks_to_sign_in_in_a_dark_window_and_its_tray_quits_it() -> Result<()> {
    let desktop = Desktop::start().await?;
    let (_driver, url) = desktop.tauri_driver_with_env(&[("GTK_THEME", "Adwaita:dark")])?;
    let app = app_session(&url).await?;

    let card = app.find(".signin", Duration::from_secs(60)).await?;
    let text = app.text(&card).await?;
    assert!(text.contains("Sign in to Platform.sh"), "{text}");
    app.find("#sign-in-mfa", Duration::from_secs(5)).await?;
    app.find("#sign-in-browser", Duration::from_secs(5)).await?;
    let dark = app
        .execute(
            "return matchMedia('(prefers-color-scheme: dark)').matches",
            json!([]),
        )
        .await?;
    assert_eq!(dark, json!(true), "GTK's dark theme reaches the page");
    screenshot(&app, "signed-out-dark").await?;

    // The tray registers with the watcher and publishes its menu.
    let w = &desktop.watcher;
    let item = w.wait_for_item(Duration::from_secs(30)).await?;
    let menu = w
        .wait_for_menu_entry(&item, "No tunnels open", Duration::from_secs(20))
        .await?;
    assert_eq!(
        menu.labels(),
        [
            "Not signed in to Platform.sh",
            "Sign in…",
            "Sign in with MFA…",
            "---",
            "No tunnels open",
            "---",
            "Open Tether…",
            "Settings…",
            "Quit Tether"
        ]
    );
    assert_eq!(w.item_property(&item, "Status").await?, "Active");
    wait_for_icon(w, &item, include_bytes!("../../icons/tray-signed-out.png")).await?;

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

/// The pixels of a PNG (tray-icon re-encodes the icon it publishes, so bytes differ).
fn pixels(png_bytes: &[u8]) -> Result<Vec<u8>> {
    let mut reader = png::Decoder::new(std::io::Cursor::new(png_bytes)).read_info()?;
    let mut buf = vec![0; reader.output_buffer_size().context("PNG size")?];
    let frame = reader.next_frame(&mut buf)?;
    buf.truncate(frame.buffer_size());
    Ok(buf)
}

/// The pixels the tray item shows now (libappindicator publishes the icon as a file:
/// IconThemePath and IconName).
async fn icon_of(w: &TrayWatcher, item: &TrayItem) -> Result<Vec<u8>> {
    let dir = w.item_property(item, "IconThemePath").await?;
    let name = w.item_property(item, "IconName").await?;
    let mut path = PathBuf::from(&dir).join(&name);
    if path.extension().is_none() {
        path.set_extension("png");
    }
    let bytes =
        std::fs::read(&path).with_context(|| format!("the tray icon {}", path.display()))?;
    pixels(&bytes)
}

async fn wait_for_icon(w: &TrayWatcher, item: &TrayItem, want: &[u8]) -> Result<()> {
    let want = pixels(want)?;
    let start = Instant::now();
    while icon_of(w, item).await.ok().as_deref() != Some(want.as_slice()) {
        if start.elapsed() > Duration::from_secs(15) {
            let shown = icon_of(w, item).await?;
            let known = [
                ("ready", include_bytes!("../../icons/tray.png").as_slice()),
                (
                    "attention",
                    include_bytes!("../../icons/tray-attention.png").as_slice(),
                ),
                (
                    "signed out",
                    include_bytes!("../../icons/tray-signed-out.png").as_slice(),
                ),
            ];
            let now = known
                .iter()
                .find(|(_, png)| pixels(png).ok().as_deref() == Some(shown.as_slice()))
                .map(|(name, _)| *name);
            bail!(
                "the tray icon did not change in 15 s: it is {:?}/{:?} (the {now:?} icon, {} bytes wanted)",
                w.item_property(item, "IconThemePath").await,
                w.item_property(item, "IconName").await,
                want.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The window as a person uses it: sign in with the platform's page (password, then TOTP)
/// in the app's own window, find an environment by typing, read its connection details,
/// open its tunnels, copy one's address, connect psql to it, close it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_finds_an_app_and_uses_its_tunnels_in_the_window() -> Result<()> {
    let postgres = Postgres::start()?;
    let redis = Redis::start()?;
    let mut options = tether_sim::SimOptions::default();
    backend(&mut options, "postgresql", postgres.port);
    backend(&mut options, "redis", redis.port);
    let sim = demo_sim(options).await?;
    let fixture = tether_sim::fixture::Fixture::demo()?;
    let alice = fixture.user_by_name("alice").context("alice")?;
    let user = User::new(&sim.info, false)?;

    let desktop = Desktop::start().await?;
    let notes = Notifications::start(&desktop.bus_address).await?;
    let (_driver, url) = desktop.tauri_driver_for(&user)?;
    let app = app_session(&url).await?;
    let _stop = user.agent_stopper();

    // Signed out: sign in with MFA in the app's window.
    app.find("#sign-in-mfa", Duration::from_secs(60)).await?;
    screenshot(&app, "signed-out").await?;
    let main = app.window_handle().await?;
    assert!(
        try_ipc(&app).await?.starts_with("ok:"),
        "the main window may call the app"
    );
    let click = app.find("#sign-in-mfa", Duration::ZERO).await?;
    app.click(&click).await?;
    app.switch_to_new_window(std::slice::from_ref(&main), Duration::from_secs(20))
        .await?;
    let username = app.find("#username", Duration::from_secs(20)).await?;
    assert!(app.current_url().await?.starts_with(&sim.info.auth_url));
    // The window that shows the platform's page has no IPC at all.
    let ipc = try_ipc(&app).await?;
    assert!(
        !ipc.starts_with("ok:"),
        "the sign-in window called the app: {ipc}"
    );
    // Nor can the page take the window to the app's own origin (or anywhere else).
    app.execute(
        "location.assign('tauri://localhost/index.html'); return true;",
        json!([]),
    )
    .await?;
    // Watched for a while: the window never leaves the sign-in page.
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_millis(1500) {
        let url = app.current_url().await?;
        assert!(
            url.starts_with(&sim.info.auth_url),
            "the sign-in window went to {url} {:?} after the page asked",
            watch.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ipc = try_ipc(&app).await?;
    assert!(!ipc.starts_with("ok:"), "after a navigation: {ipc}");
    app.send_keys(&username, &alice.username).await?;
    app.send_keys(
        &app.find("#password", Duration::ZERO).await?,
        &alice.password,
    )
    .await?;
    app.click_on("#submit", Duration::ZERO).await?;
    let totp = app.find("#totp", Duration::from_secs(15)).await?;
    screenshot(&app, "sign-in-totp").await?;
    let secret = alice.totp_secret.as_deref().context("alice's TOTP")?;
    app.send_keys(&totp, &tether_e2e::totp_now(secret)?).await?;
    app.click_on("#submit", Duration::ZERO).await?;
    let allow = app.find("#allow", Duration::from_secs(15)).await?;
    // The app closes this window on the redirect.
    tether_e2e::webdriver::click_later(&app, &allow).await?;
    // The redirect is intercepted: the window closes and the main window shows the account.
    app.switch_to_window(&main).await?;
    wait_text(&app, "#account", "Alice", Duration::from_secs(30)).await?;
    let start = Instant::now();
    while app.window_handles().await?.len() > 1 {
        ensure!(
            start.elapsed() < Duration::from_secs(10),
            "the sign-in window stayed open"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let said = user.ok(&["ssh-cert:info"], None).await?;
    assert!(
        said.contains("MFA:         yes"),
        "the certificate carries MFA: {said}"
    );
    // Plain ssh is wired: Tether's block is in ~/.ssh/config (the settings manage it).
    let config = std::fs::read_to_string(user.ssh_config())?;
    assert!(
        config.contains("# BEGIN: Tether certificate configuration"),
        "{config}"
    );

    // Find the Storefront's main environment by typing.
    let search = app.find("#search", Duration::from_secs(30)).await?;
    app.send_keys(&search, "storefront main").await?;
    let row = format!("[data-app=\"{STOREFRONT}/main/app\"]");
    app.find(&row, Duration::from_secs(30)).await?;
    ensure!(
        app.find(&format!("[data-app^=\"{MARKETING}/\"]"), Duration::ZERO)
            .await
            .is_err(),
        "the search kept another project"
    );
    screenshot(&app, "browsing").await?;

    // Its connection details, checked against the simulator's data.
    app.click_on(&format!("{row} [data-action=details]"), Duration::ZERO)
        .await?;
    let env = fixture
        .project(STOREFRONT)
        .and_then(|p| p.environments.iter().find(|e| e.id == "main"))
        .context("the storefront's main environment")?;
    let ssh_user = tether_e2e::app_user(STOREFRONT, &env.machine_name, "app");
    wait_text(
        &app,
        "#details [data-field=ssh_user]",
        &ssh_user,
        Duration::from_secs(30),
    )
    .await?;
    let db_password = fixture
        .project(STOREFRONT)
        .and_then(|p| p.services.iter().find(|s| s.name == "db"))
        .and_then(|s| s.password.clone())
        .context("the database's password")?;
    let password = "#details [data-service=database] [data-field=password]";
    let masked = app.text(&app.find(password, Duration::ZERO).await?).await?;
    assert_ne!(masked, db_password, "the password shows only when asked");
    app.click_on(
        "#details [data-service=database] [data-action=reveal]",
        Duration::ZERO,
    )
    .await?;
    wait_text(&app, password, &db_password, Duration::from_secs(5)).await?;
    screenshot(&app, "connection-details").await?;
    // Scrolled to its end, the panel still shows its close button.
    app.execute(
        "const p = document.getElementById('details'); p.scrollTop = p.scrollHeight; return p.scrollTop;",
        serde_json::json!([]),
    )
    .await?;
    screenshot(&app, "connection-details-scrolled").await?;
    app.click_on("#details [data-action=close]", Duration::ZERO)
        .await?;

    // Open its tunnels: production asks first; then the tunnels view shows them, and so does
    // the command line.
    app.click_on(
        &format!("{row} [data-action=tunnels]"),
        Duration::from_secs(5),
    )
    .await?;
    app.click_on("#production-yes", Duration::from_secs(20))
        .await?;
    let listed = {
        let start = Instant::now();
        loop {
            let listed = tunnel_list(&user).await?;
            if listed.len() == 2 {
                break listed;
            }
            ensure!(
                start.elapsed() < Duration::from_secs(30),
                "tunnels: {listed:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let db = listed
        .iter()
        .find(|t| t["relationship"] == "database")
        .context("the database tunnel")?;
    let (id, local) = (
        db["id"].as_u64().unwrap_or_default(),
        db["local"].as_str().unwrap_or_default(),
    );
    let tunnel = format!("[data-tunnel=\"{id}\"]");
    wait_text(
        &app,
        &format!("{tunnel} [data-field=address]"),
        local,
        Duration::from_secs(10),
    )
    .await?;
    wait_text(
        &app,
        &format!("{tunnel} [data-field=state]"),
        "open",
        Duration::from_secs(20),
    )
    .await?;
    screenshot(&app, "tunnels").await?;

    // Copy its address, read it back from the X clipboard, and connect psql to it.
    app.click_on(
        &format!("{tunnel} [data-action=copy-address]"),
        Duration::ZERO,
    )
    .await?;
    notes
        .wait_for("Copied tunnel address", Duration::from_secs(10))
        .await?;
    assert_eq!(clipboard(&desktop).await?, local);
    let port: u16 = local.rsplit(':').next().unwrap_or_default().parse()?;
    assert_eq!(psql(port, "select 6*7").await?, "42");

    // Close it: gone for the command line, its port free.
    app.click_on(&format!("{tunnel} [data-action=close]"), Duration::ZERO)
        .await?;
    let start = Instant::now();
    while tunnel_list(&user)
        .await?
        .iter()
        .any(|t| t["id"].as_u64() == Some(id))
    {
        ensure!(
            start.elapsed() < Duration::from_secs(10),
            "the tunnel is still open"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tether_e2e::port_has_no_listener(port).context("the closed tunnel's port")?;

    // Settings: a bad value is refused in words, a good one saved.
    app.click_on("#nav-settings", Duration::ZERO).await?;
    let hours = app
        .find(
            "#settings [name=inactivity_limit_hours]",
            Duration::from_secs(10),
        )
        .await?;
    app.execute(
        "arguments[0].value = ''; arguments[0].dispatchEvent(new Event('input'));",
        json!([tether_e2e::webdriver::element_arg(&hours)]),
    )
    .await?;
    app.send_keys(&hours, "12").await?;
    app.click_on("#settings [name=start_at_login]", Duration::ZERO)
        .await?;
    app.click_on("#save-settings", Duration::ZERO).await?;
    if let Err(e) = wait_text(
        &app,
        "#settings [role=status]",
        "Saved",
        Duration::from_secs(10),
    )
    .await
    {
        let form = app
            .text(&app.find("#settings", Duration::ZERO).await?)
            .await?;
        bail!("{e}; the form says: {form}");
    }
    let saved: Value = serde_json::from_slice(&std::fs::read(
        user.home().join(".local/share/tether/desktop.json"),
    )?)?;
    assert_eq!(saved["inactivity_limit_hours"], 12, "{saved}");
    assert_eq!(saved["start_at_login"], true, "{saved}");
    // Start at login, the XDG way: an autostart entry that starts Tether in the tray.
    let autostart = user.home().join(".config/autostart/Tether.desktop");
    let entry = std::fs::read_to_string(&autostart)
        .with_context(|| format!("the autostart entry {}", autostart.display()))?;
    assert!(
        entry.contains("tether-desktop") && entry.contains("--hidden"),
        "{entry}"
    );
    screenshot(&app, "settings").await?;

    // One notification per event: here only the copy.
    notes.assert_count("Copied", 1);
    let _ = app.quit().await;
    Ok(())
}

/// The tray as a desktop shell sees it: account, apps and tunnels with their labels; "Open
/// tunnels" and "Close all tunnels" change what `tether tunnel:list` says; the icon follows the
/// state; "Open terminal" starts a real terminal on the app; tunnels down and back are told
/// once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tray_offers_the_account_apps_tunnels_and_terminals_as_a_shell_sees_them() -> Result<()>
{
    let redis = Redis::start()?;
    let mut options = tether_sim::SimOptions::default();
    backend(&mut options, "redis", redis.port);
    let sim = demo_sim(options).await?;
    let user = User::new(&sim.info, false)?;
    user.ok(&["auth:api-token-login"], Some(ALICE_TOKEN))
        .await?;
    // The terminal: xterm, logging what it shows.
    let terminal_log = user.home().join("xterm.log");
    let settings_file = user.home().join(".local/share/tether/desktop.json");
    std::fs::write(
        &settings_file,
        serde_json::to_vec(&json!({
            "terminal": format!("xterm -l -lf {} -e {{}}", terminal_log.display()),
            "pinned": [format!("{MARKETING}/main/web")],
            // Its production opens without a question (the project's switch): the questions
            // are desktop_workflow's.
            "production_unguarded": [MARKETING],
        }))?,
    )?;

    let desktop = Desktop::start().await?;
    let notes = Notifications::start(&desktop.bus_address).await?;
    let app = desktop.launch_for(&user, &["--hidden"])?;
    let w = &desktop.watcher;
    let item = desktop.tray_item().await?;
    let menu = w
        .wait_for_menu_entry(&item, "Storefront", Duration::from_secs(30))
        .await?;
    let labels = menu.labels();
    assert_eq!(
        labels[..4],
        [
            "Signed in to Local platform (tether-sim) as alice",
            labels[1].as_str(),
            "Sign in with MFA…",
            "Sign out"
        ],
        "{labels:?}"
    );
    assert!(
        labels[1].starts_with("Certificate valid until ") && labels[1].ends_with(" UTC"),
        "{labels:?}"
    );
    // The pinned app first, then the projects.
    let pinned = "★ web — Marketing site / main [PRODUCTION]";
    assert_eq!(labels[5], pinned, "{labels:?}");
    for project in ["Storefront", "Marketing site"] {
        assert!(labels.iter().any(|l| l == project), "{project}: {labels:?}");
    }
    let storefront = menu.at(&["Storefront"]).context("Storefront")?.labels();
    assert!(
        storefront.contains(&"main [PRODUCTION] › app".to_string())
            && storefront.contains(&"staging (staging) › app".to_string())
            && storefront.contains(&"feature-search (development, paused)".to_string()),
        "{storefront:?}"
    );
    assert_eq!(
        menu.at(&[pinned]).context("the pinned app")?.labels(),
        [
            "Open terminal",
            "SQL shell",
            "Logs",
            "Open site",
            "Open tunnels",
            "Open in…",
            "Copy as…",
            "Download a database dump…",
            "Copy SSH command",
            "Copy user@host",
            "Connection details…"
        ]
    );
    wait_for_icon(w, &item, include_bytes!("../../icons/tray.png")).await?;
    // Signed in before the app started: it adds Tether's block to ~/.ssh/config at start.
    let start = Instant::now();
    while !std::fs::read_to_string(user.ssh_config())
        .unwrap_or_default()
        .contains("# BEGIN: Tether certificate configuration")
    {
        ensure!(
            start.elapsed() < Duration::from_secs(10),
            "no Tether block in ~/.ssh/config"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // "Open tunnels" in the tray opens them for the command line too.
    w.click_path(&item, &[pinned, "Open tunnels"]).await?;
    let start = Instant::now();
    let listed = loop {
        let listed = tunnel_list(&user).await?;
        if !listed.is_empty() {
            break listed;
        }
        ensure!(
            start.elapsed() < Duration::from_secs(30),
            "no tunnel opened"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let local = listed[0]["local"].as_str().unwrap_or_default().to_string();
    let label = format!("redis of {MARKETING}/main/web [PRODUCTION] — {local} (open)");
    let menu = w
        .wait_for_menu_entry(&item, &label, Duration::from_secs(10))
        .await?;
    assert_eq!(
        menu.at(&[&label]).context("the tunnel")?.labels(),
        [
            format!("Copy {local}").as_str(),
            "Copy URL",
            "Copy export PLATFORM_RELATIONSHIPS=…",
            "Close"
        ]
    );

    // The gateway goes away: the icon asks for attention, and the tunnel's fall and return
    // are told once each.
    sim.stop_gateway().await;
    let port: u16 = local.rsplit(':').next().unwrap_or_default().parse()?;
    // A connection attempt finds the link down.
    let _ = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
    notes
        .wait_for("Tunnel down: redis", Duration::from_secs(30))
        .await?;
    wait_for_icon(w, &item, include_bytes!("../../icons/tray-attention.png")).await?;
    sim.start_gateway().await?;
    notes
        .wait_for("Tunnel back: redis", Duration::from_secs(30))
        .await?;
    wait_for_icon(w, &item, include_bytes!("../../icons/tray.png")).await?;
    notes.assert_count("Tunnel down", 1);
    notes.assert_count("Tunnel back", 1);

    // "Copy URL" of the tunnel puts its URL on the clipboard.
    w.click_path(&item, &[&label, "Copy URL"]).await?;
    notes
        .wait_for("Copied tunnel URL", Duration::from_secs(10))
        .await?;
    let url = clipboard(&desktop).await?;
    assert!(url.starts_with("redis://") && url.contains(&local), "{url}");

    // "Close all tunnels" closes them for the command line too.
    w.click(&item, "Close all tunnels").await?;
    let start = Instant::now();
    while !tunnel_list(&user).await?.is_empty() {
        ensure!(
            start.elapsed() < Duration::from_secs(10),
            "still open after the tray's Close all tunnels"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    w.wait_for_menu_entry(&item, "No tunnels open", Duration::from_secs(10))
        .await?;

    // "Open terminal" starts xterm on the app: its screen shows the app's welcome.
    w.click_path(&item, &[pinned, "Open terminal"]).await?;
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

    // A second launch only brings the first one's window forward, and ends.
    let mut second = desktop.launch_for(&user, &[])?;
    let start = Instant::now();
    while second.child.try_wait()?.is_none() {
        ensure!(
            start.elapsed() < Duration::from_secs(20),
            "a second app is still running"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let window = desktop
        .visible_window("^Tether$", Duration::from_secs(20))
        .await?;

    // Closing the window leaves the app in the tray with no web view (WebKit's processes
    // end); "Open Tether…" makes a new window.
    let app_pid = app.child.id();
    desktop.close_window(&window)?;
    let start = Instant::now();
    while !children_of(app_pid).is_empty() {
        ensure!(
            start.elapsed() < Duration::from_secs(20),
            "WebKit's processes outlived the window: {:?}",
            children_of(app_pid)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(w.item_property(&item, "Status").await?, "Active");
    w.click(&item, "Open Tether…").await?;
    let window = desktop
        .visible_window("^Tether$", Duration::from_secs(20))
        .await?;
    // The new window renders (WebKit started its processes again): more than a blank page.
    let shot = desktop.state.path().join("reopened.png");
    let start = Instant::now();
    loop {
        let _ = std::process::Command::new("import")
            .args(["-window", &window])
            .arg(&shot)
            .env("DISPLAY", &desktop.display)
            .status()?;
        let colours = std::process::Command::new("convert")
            .arg(&shot)
            .args(["-format", "%k", "info:"])
            .output()?;
        let colours: u32 = String::from_utf8_lossy(&colours.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        if colours > 50 {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let _ = std::process::Command::new("import")
                .args(["-window", &window])
                .arg(&shot)
                .env("DISPLAY", &desktop.display)
                .status()?;
            break;
        }
        ensure!(
            start.elapsed() < Duration::from_secs(20),
            "the reopened window shows {colours} colours"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    if let Some(dir) = screenshot_dir() {
        std::fs::copy(&shot, dir.join("desktop-window-reopened.png"))?;
    }

    // Signing out from the tray: the icon says so, and no notification (the user did it).
    w.click(&item, "Sign out").await?;
    wait_for_icon(w, &item, include_bytes!("../../icons/tray-signed-out.png")).await?;
    w.wait_for_menu_entry(&item, "Sign in…", Duration::from_secs(10))
        .await?;
    notes
        .counts_hold(&[("Sign in", 0)], Duration::from_secs(2))
        .await?;
    w.click(&item, "Quit Tether").await?;
    Ok(())
}

/// The names of a process's children (WebKit's web and network processes, for the app).
fn children_of(parent: u32) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let (comm, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
            let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == parent && !rest.starts_with('Z')).then(|| comm.to_string())
        })
        .collect()
}

/// An organization that demands MFA, met with a password-only session: its project says why
/// and offers the MFA sign-in (`amr=mfa`) in the window; after it, the project's apps are
/// listed and their tunnels open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_that_demands_mfa_is_one_mfa_sign_in_away() -> Result<()> {
    const BANK: &str = "pzt3xbvc7ebkq";
    let postgres = Postgres::start()?;
    let mut options = tether_sim::SimOptions::default();
    backend(&mut options, "postgresql", postgres.port);
    let sim = demo_sim(options).await?;
    let fixture = tether_sim::fixture::Fixture::demo()?;
    let carol = fixture.user_by_name("carol").context("carol")?;
    let user = User::new(&sim.info, false)?;
    let desktop = Desktop::start().await?;
    let (_driver, url) = desktop.tauri_driver_for(&user)?;
    let app = app_session(&url).await?;
    let _stop = user.agent_stopper();

    // A password-only sign-in: carol is asked for her code only when a client demands MFA.
    let first = sign_in_through_the_window(&app, "#sign-in", carol).await?;
    assert!(!first.contains("amr=mfa"), "{first}");
    wait_text(&app, "#account", "Carol", Duration::from_secs(30)).await?;
    let project = format!("[data-project={BANK}]");
    wait_text(
        &app,
        &format!("{project} [data-field=problem]"),
        "Multi-factor authentication (MFA) is required",
        Duration::from_secs(30),
    )
    .await?;
    screenshot(&app, "mfa-required").await?;

    // Its "Sign in with MFA" asks the platform for MFA, then lists the project's apps.
    let second =
        sign_in_through_the_window(&app, &format!("{project} [data-action=step-up]"), carol)
            .await?;
    assert!(second.contains("amr=mfa"), "{second}");
    let row = format!("[data-app=\"{BANK}/main/api\"]");
    app.find(&row, Duration::from_secs(30)).await?;
    app.click_on(&format!("{row} [data-action=tunnels]"), Duration::ZERO)
        .await?;
    // Its main environment is production: the window asks first.
    app.click_on("#production-yes", Duration::from_secs(20))
        .await?;
    let start = Instant::now();
    let ledger = loop {
        if let Some(t) = tunnel_list(&user)
            .await?
            .into_iter()
            .find(|t| t["relationship"] == "ledger")
        {
            break t;
        }
        ensure!(
            start.elapsed() < Duration::from_secs(30),
            "no ledger tunnel"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let port: u16 = ledger["local"]
        .as_str()
        .and_then(|l| l.rsplit(':').next())
        .unwrap_or_default()
        .parse()?;
    assert_eq!(psql(port, "select 1").await?, "1");
    let _ = app.quit().await;
    Ok(())
}

/// The app for a simulator's user whose browser is a [`BrowserStub`], on its main window.
struct AppWithBrowserStub {
    // Dropped in this order: the user's agent, the app, tauri-driver, the desktop, the rest.
    _stop: tether_e2e::cli::AgentStopper,
    app: WebDriver,
    _driver: tether_e2e::ChildGuard,
    _desktop: Desktop,
    browser: BrowserStub,
    _user: User,
    sim: tether_sim::SimHandle,
}

impl AppWithBrowserStub {
    /// The demo platform, its sign-in page with navigation probes when `probes`.
    async fn start(probes: bool) -> Result<AppWithBrowserStub> {
        let sim = demo_sim(tether_sim::SimOptions::default()).await?;
        sim.set_navigation_probes(probes);
        let user = User::new(&sim.info, false)?;
        let browser = BrowserStub::new(user.home(), "browser")?;
        let desktop = Desktop::start().await?;
        let (driver, url) =
            desktop.tauri_driver_for_with_env(&user, &[("BROWSER", browser.path())])?;
        let app = app_session(&url).await?;
        Ok(AppWithBrowserStub {
            _stop: user.agent_stopper(),
            app,
            _driver: driver,
            _desktop: desktop,
            browser,
            _user: user,
            sim,
        })
    }
}

/// "Use my browser instead": the app opens the platform's page in the user's browser (`$BROWSER`,
/// here a script that hands the address to headless Chromium), whose redirect comes back to the
/// app's loopback listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_sign_in_comes_back_to_the_app() -> Result<()> {
    let fixture = tether_sim::fixture::Fixture::demo()?;
    let alice = fixture.user_by_name("alice").context("alice")?;
    let AppWithBrowserStub {
        app, browser, sim, ..
    } = &AppWithBrowserStub::start(false).await?;

    app.click_on("#sign-in-browser", Duration::from_secs(60))
        .await?;
    let address = browser.wait_for(1).await?.remove(0);
    assert!(address.starts_with(&sim.info.auth_url), "{address}");
    let chromium = tether_e2e::webdriver::Chromium::start().await?;
    tether_e2e::webdriver::sign_in(
        &chromium.driver,
        &address,
        &alice.username,
        &alice.password,
        alice.totp_secret.as_deref(),
    )
    .await?;
    // The browser lands on the app's listener, which says so; the window shows the account.
    let done = chromium
        .driver
        .find("#title", Duration::from_secs(20))
        .await?;
    assert_eq!(chromium.driver.text(&done).await?, "Signed in");
    wait_text(app, "#account", "Alice", Duration::from_secs(30)).await?;
    let _ = app.quit().await;
    Ok(())
}

/// The sign-in window on a page with what real sign-in pages carry (tether-sim's navigation
/// probes): a frame from another origin loads in the page and is not sent to the browser; the
/// page sending the window to another origin by itself is refused (the window keeps the sign-in
/// page, and nothing opens); a link the user clicks opens in the browser, not in the window. The
/// sign-in then goes on as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sign_in_window_leaves_frames_to_the_page_and_sends_only_clicked_pages_to_the_browser(
) -> Result<()> {
    let fixture = tether_sim::fixture::Fixture::demo()?;
    let alice = fixture.user_by_name("alice").context("alice")?;
    let AppWithBrowserStub {
        app, browser, sim, ..
    } = &AppWithBrowserStub::start(true).await?;

    let main = app.window_handle().await?;
    app.click_on("#sign-in", Duration::from_secs(60)).await?;
    app.switch_to_new_window(std::slice::from_ref(&main), Duration::from_secs(20))
        .await?;
    // The frame (the API's origin) loaded in the page: it told the page so, and the page then
    // asked to take the window there.
    wait_text(
        app,
        "#probe-frame-status",
        "loaded",
        Duration::from_secs(20),
    )
    .await?;
    wait_text(app, "#probe-away-status", "asked", Duration::from_secs(5)).await?;
    screenshot(app, "sign-in-probes").await?;
    // Watched for two seconds: the window keeps the sign-in page, and nothing opens.
    let shown = || async {
        let v = app.execute("return location.href;", json!([])).await?;
        anyhow::Ok(v.as_str().unwrap_or_default().to_string())
    };
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(2) {
        let href = shown().await?;
        ensure!(
            href.starts_with(&sim.info.auth_url),
            "the page took the sign-in window to {href} by itself"
        );
        let opened = browser.opened();
        ensure!(
            opened.is_empty(),
            "the app opened {opened:?} in the browser with nobody clicking"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A click on the page's link: the browser gets it, the window keeps the sign-in page.
    let help = format!("{}{}", sim.info.api_url, tether_sim::probes::HELP);
    app.click_on("#probe-help", Duration::ZERO).await?;
    let opened = browser.wait_for(1).await?;
    assert_eq!(opened, [help], "only the clicked page goes to the browser");
    let href = shown().await?;
    assert!(href.starts_with(&sim.info.auth_url), "{href}");
    app.find("#username", Duration::ZERO)
        .await
        .context("the sign-in page is still shown")?;

    // And the sign-in goes on in the window.
    tether_e2e::webdriver::fill_sign_in(
        app,
        &alice.username,
        &alice.password,
        alice.totp_secret.as_deref(),
    )
    .await?;
    app.switch_to_window(&main).await?;
    wait_text(app, "#account", "Alice", Duration::from_secs(30)).await?;
    assert_eq!(browser.opened().len(), 1, "{:?}", browser.opened());
    let _ = app.quit().await;
    Ok(())
}

/// The app on the real keyring, as users run it (the Secret Service on the desktop's bus,
/// gnome-keyring here, no `TETHER_TOKEN_STORE`): a sign-in through the window puts the session in
/// the keyring and in no file, the command line finds it there, an app started again is still
/// signed in, and signing out in the app takes it out of the keyring.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_in_the_app_lives_in_the_keyring_until_signed_out() -> Result<()> {
    let sim = demo_sim(tether_sim::SimOptions::default()).await?;
    let fixture = tether_sim::fixture::Fixture::demo()?;
    let alice = fixture.user_by_name("alice").context("alice")?;
    let user = User::new(&sim.info, true)?;
    let keyring = user.keyring()?;
    let desktop = Desktop::start_on_bus(&keyring.bus_address).await?;
    let (_driver, url) = desktop.tauri_driver_for(&user)?;
    let app = app_session(&url).await?;
    let _stop = user.agent_stopper();

    sign_in_through_the_window(&app, "#sign-in", alice).await?;
    wait_text(&app, "#account", "Alice", Duration::from_secs(30)).await?;
    // In the Secret Service, as another program reads it, and in no file.
    for token in ["access_token", "refresh_token"] {
        let secret = user.stored_token(token)?;
        assert_eq!(
            user.files_containing(&secret),
            Vec::<PathBuf>::new(),
            "the {token} in a file"
        );
    }
    let who = user
        .ok(&["auth:info", "--property", "username"], None)
        .await?;
    assert_eq!(who.trim(), "alice");

    // The app again, from the start: signed in from the keyring (its own agent, a new process).
    let first = user.agent_pid().context("the app hosts no agent")?;
    app.quit().await?;
    // Gone before the next one starts, which would otherwise only hand over to it (single
    // instance) and never open its window.
    desktop
        .wait_app_ended(first, Duration::from_secs(20))
        .await?;
    let app = app_session(&url).await?;
    wait_text(&app, "#account", "Alice", Duration::from_secs(60)).await?;
    let again = user.agent_pid();
    ensure!(
        again.is_some_and(|p| p != first),
        "the agent is {again:?}, not a new app's (it was {first})"
    );

    // Signing out in the app takes the session out of the keyring.
    app.click_on("#sign-out", Duration::from_secs(10)).await?;
    let start = Instant::now();
    while keyring.lookup(KEYRING_SERVICE, "session")?.is_some() {
        ensure!(
            start.elapsed() < Duration::from_secs(15),
            "the session is still in the keyring after signing out"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.find("#sign-in", Duration::from_secs(15)).await?;
    let _ = app.quit().await;
    Ok(())
}

/// The platform demands MFA of a tunnel the app holds (the session lost its MFA): the user is
/// told once that MFA is needed and once that the tunnel is down, the icon asks for attention,
/// and the tray offers the MFA sign-in; after one, the tunnel is back and that is told once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mfa_demand_is_told_once_and_the_tray_asks_for_attention() -> Result<()> {
    use tether_e2e::{ALICE_MFA_TOKEN, MFA_PROJECT};
    let redis = Redis::start()?;
    let mut options = tether_sim::SimOptions::default();
    backend(&mut options, "postgresql", redis.port);
    let sim = demo_sim(options).await?;
    let user = User::new(&sim.info, false)?;
    user.ok(&["auth:api-token-login"], Some(ALICE_MFA_TOKEN))
        .await?;
    let desktop = Desktop::start().await?;
    let notes = Notifications::start(&desktop.bus_address).await?;
    let _app = desktop.launch_for(&user, &["--hidden"])?;
    let w = &desktop.watcher;
    let item = desktop.tray_item().await?;
    user.ok(
        &["tunnel:open", "-p", MFA_PROJECT, "-e", "main", "-A", "api"],
        None,
    )
    .await?;
    wait_for_icon(w, &item, include_bytes!("../../icons/tray.png")).await?;

    // The session loses its MFA and the connection drops: the gateway refuses the tunnel's
    // next channel for want of MFA.
    user.ok(&["auth:api-token-login"], Some(ALICE_TOKEN))
        .await?;
    sim.stop_gateway().await;
    sim.start_gateway().await?;
    let listed = tunnel_list(&user).await?;
    let port: u16 = listed[0]["local"]
        .as_str()
        .and_then(|l| l.rsplit(':').next())
        .unwrap_or_default()
        .parse()?;
    let start = Instant::now();
    while notes
        .with_summary("Multi-factor authentication needed")
        .is_empty()
    {
        ensure!(
            start.elapsed() < Duration::from_secs(30),
            "no MFA notification: {:?}",
            notes.received()
        );
        // A client arrives and is refused.
        if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            let mut buf = [0u8; 1];
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                tokio::io::AsyncReadExt::read(&mut s, &mut buf),
            )
            .await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    notes
        .wait_for("Tunnel down: ledger", Duration::from_secs(10))
        .await?;
    wait_for_icon(w, &item, include_bytes!("../../icons/tray-attention.png")).await?;
    w.wait_for_menu_entry(&item, "Sign in with MFA…", Duration::from_secs(10))
        .await?;

    // An MFA sign-in (here with the API token that carries it) brings the tunnel back.
    user.ok(&["auth:api-token-login"], Some(ALICE_MFA_TOKEN))
        .await?;
    notes
        .wait_for("Tunnel back: ledger", Duration::from_secs(30))
        .await?;
    wait_for_icon(w, &item, include_bytes!("../../icons/tray.png")).await?;
    for (summary, times) in [
        ("Multi-factor authentication needed", 1),
        ("Tunnel down", 1),
        ("Tunnel back", 1),
    ] {
        notes.assert_count(summary, times);
    }
    // The agent lives in the app: `agent:stop` says how to stop it instead of stopping it.
    let refused = user.run(&["agent:stop"], None).await?;
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("quit the Tether app"), "{said}");
    assert!(tunnel_list(&user).await?.len() == 1);
    Ok(())
}

/// A headless agent already runs: the app uses it (and says so) instead of starting a second;
/// when it stops, the app hosts the agent itself and `tether` commands find the app's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_uses_a_running_headless_agent_and_takes_over_when_it_stops() -> Result<()> {
    let sim = demo_sim(tether_sim::SimOptions::default()).await?;
    let user = User::new(&sim.info, false)?;
    let _stop = user.agent_stopper();
    user.ok(&["auth:api-token-login"], Some(ALICE_TOKEN))
        .await?;
    user.ok(&["tunnel:open", "-p", MARKETING, "-e", "main"], None)
        .await?;
    let headless = user.agent_pid().context("the headless agent's pid")?;

    let desktop = Desktop::start().await?;
    let app = desktop.launch_for(&user, &["--hidden"])?;
    let w = &desktop.watcher;
    let item = desktop.tray_item().await?;
    let using = format!("Using the tether agent already running (pid {headless})");
    if let Err(e) = w
        .wait_for_menu_entry(&item, &using, Duration::from_secs(30))
        .await
    {
        bail!(
            "{e}; the app said: {}",
            std::fs::read_to_string(desktop.log())?
        );
    }
    let tunnel = format!("redis of {MARKETING}/main/web");
    let menu = w.menu(&item).await?;
    assert!(
        menu.labels().iter().any(|l| l.starts_with(&tunnel)),
        "{:?}",
        menu.labels()
    );

    user.ok(&["agent:stop"], None).await?;
    w.wait_for_menu_entry(&item, "No tunnels open", Duration::from_secs(30))
        .await?;
    let start = Instant::now();
    while user.agent_pid() != Some(app.child.id()) {
        ensure!(
            start.elapsed() < Duration::from_secs(20),
            "the app did not take the agent over: {:?}",
            user.agent_pid()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let menu = w.menu(&item).await?;
    assert!(
        !menu
            .labels()
            .iter()
            .any(|l| l.starts_with("Using the tether agent")),
        "{:?}",
        menu.labels()
    );
    // The command line now uses the app's agent.
    user.ok(&["tunnel:open", "-p", MARKETING, "-e", "main"], None)
        .await?;
    w.wait_for_menu_entry(&item, "Close all tunnels", Duration::from_secs(30))
        .await?;
    assert_eq!(user.agent_pid(), Some(app.child.id()));
    w.click(&item, "Quit Tether").await?;
    Ok(())
}

/// The app in the tray, signed in with an API token, against a platform whose certificates
/// live 8 s (renewed at three quarters of that: the keeper asks the platform within seconds),
/// with a notification server on its bus.
struct ShortCertificates {
    sim: tether_sim::SimHandle,
    user: User,
    desktop: Desktop,
    notes: Notifications,
    item: TrayItem,
    _app: tether_e2e::ChildGuard,
}

impl ShortCertificates {
    async fn start() -> Result<ShortCertificates> {
        let options = tether_sim::SimOptions {
            certificate_lifetime: Duration::from_secs(8),
            ..tether_sim::SimOptions::default()
        };
        let sim = demo_sim(options).await?;
        let (user, desktop, notes, app, item) = hidden_app(&sim.info).await?;
        wait_for_icon(
            &desktop.watcher,
            &item,
            include_bytes!("../../icons/tray.png"),
        )
        .await?;
        Ok(ShortCertificates {
            sim,
            user,
            desktop,
            notes,
            item,
            _app: app,
        })
    }
}

/// The session ends at the platform (its API token revoked): at the next renewal the user is
/// told once to sign in again, and the tray says signed out and offers the sign-in. The
/// session's tunnels closed with it; after the next sign-in the tray offers to reopen them,
/// and they come back on their old ports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ended_at_the_platform_asks_once_to_sign_in_again() -> Result<()> {
    let t = ShortCertificates::start().await?;
    let (sim, user, notes, w, item) = (&t.sim, &t.user, &t.notes, &t.desktop.watcher, &t.item);
    let ports = |tunnels: &[Value]| -> Vec<String> {
        let mut p: Vec<String> = tunnels
            .iter()
            .map(|t| t["local"].as_str().unwrap_or_default().to_string())
            .collect();
        p.sort();
        p
    };
    // On ports of their own: the suite's other tests take theirs from 30000 meanwhile, and
    // one of them could hold this test's old port by the time the tunnels are reopened.
    for rel in ["database", "rediscache"] {
        let port = tether_e2e::free_port().to_string();
        user.ok(
            &[
                "tunnel:open",
                "-p",
                DEMO_PROJECT,
                "-e",
                "main",
                "-A",
                "app",
                "-r",
                rel,
                "--port",
                &port,
            ],
            None,
        )
        .await?;
    }
    let opened = ports(&tunnel_list(user).await?);
    assert_eq!(opened.len(), 2, "{opened:?}");
    // The app listens on them now (what is checked again after the session ends).
    let app_pid = user.agent_pid().context("the app hosts the agent")?;
    let held = tether_e2e::listening_ports(app_pid)?;
    for local in &opened {
        let port: u16 = local.rsplit(':').next().unwrap_or_default().parse()?;
        assert!(held.contains(&port), "{local} not among {held:?}");
    }

    assert!(sim.revoke_api_token(ALICE_TOKEN));
    let note = notes
        .wait_for("Sign in to Tether again", Duration::from_secs(30))
        .await?;
    assert!(
        // The certifier refused the token; the refresh that followed says why: the API token
        // itself was revoked.
        note.body.starts_with("The API token was refused"),
        "{note:?}"
    );
    wait_for_icon(w, item, include_bytes!("../../icons/tray-signed-out.png")).await?;
    w.wait_for_menu_entry(item, "Sign in…", Duration::from_secs(10))
        .await?;
    // Neither a second warning nor a renewal failure follows.
    notes
        .counts_hold(
            &[("Sign in to Tether again", 1), ("Certificate renewal", 0)],
            Duration::from_secs(2),
        )
        .await?;

    // Nothing outlived the session: no tunnel, and the app listens on none of their ports.
    // (Whether a port is free would say nothing: a test running beside this one may take it
    // as soon as it is.)
    assert!(tunnel_list(user).await?.is_empty());
    let held = tether_e2e::listening_ports(app_pid)?;
    for local in &opened {
        let port: u16 = local.rsplit(':').next().unwrap_or_default().parse()?;
        assert!(
            !held.contains(&port),
            "{local} is still held by the app after the session ended"
        );
    }
    // Signed in again, the tray offers to reopen them; they come back where they were.
    user.ok(&["auth:api-token-login"], Some(ALICE_MFA_TOKEN))
        .await?;
    let reopen = "Reopen 2 tunnels closed at sign-out";
    w.wait_for_menu_entry(item, reopen, Duration::from_secs(20))
        .await?;
    w.click(item, reopen).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = ports(&tunnel_list(user).await?);
        if now == opened {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the tunnels did not come back on {opened:?}: {now:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// The certifier is down when the certificate is due: the user is told once that renewal
/// fails, the icon and the menu say so; once a new certificate loads, all is well again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_renewal_is_told_once_and_clears_when_one_succeeds() -> Result<()> {
    let t = ShortCertificates::start().await?;
    let (sim, user, notes, w, item) = (&t.sim, &t.user, &t.notes, &t.desktop.watcher, &t.item);

    sim.set_certifier_down(true);
    notes
        .wait_for("Certificate renewal failed", Duration::from_secs(30))
        .await?;
    wait_for_icon(w, item, include_bytes!("../../icons/tray-attention.png")).await?;
    w.wait_for_menu_entry(
        item,
        "Certificate renewal is failing; retrying",
        Duration::from_secs(10),
    )
    .await?;

    // Back: a new certificate (asked for here rather than waiting for the retry) clears it.
    sim.set_certifier_down(false);
    user.ok(&["ssh-cert:load", "--new"], None).await?;
    wait_for_icon(w, item, include_bytes!("../../icons/tray.png")).await?;
    let menu = w.menu(item).await?;
    assert!(
        !menu
            .labels()
            .iter()
            .any(|l| l.contains("renewal is failing")),
        "{:?}",
        menu.labels()
    );
    notes.assert_count("Certificate renewal failed", 1);
    Ok(())
}

/// The bind address of tunnels as `desktop.json` holds it (the default when it says none).
fn saved_bind_address(desktop: &Desktop) -> Result<String> {
    let file = desktop.state.path().join("data/desktop.json");
    let saved: Value = serde_json::from_slice(&std::fs::read(file)?)?;
    Ok(saved["bind_address"]
        .as_str()
        .unwrap_or("127.0.0.1")
        .to_string())
}

/// Types `address` as the settings' bind address and saves.
async fn save_bind_address(app: &WebDriver, address: &str) -> Result<()> {
    let bind = app
        .find("#settings [name=bind_address]", Duration::from_secs(10))
        .await?;
    app.execute(
        "arguments[0].value = ''; arguments[0].dispatchEvent(new Event('input'));",
        json!([tether_e2e::webdriver::element_arg(&bind)]),
    )
    .await?;
    app.send_keys(&bind, address).await?;
    app.click_on("#save-settings", Duration::ZERO).await
}

/// Waits for the settings page to answer (`[role=status]` "Saved", or the question `#confirm`
/// with `words`), then reads the bind address the file holds.
async fn settings_answer(app: &WebDriver, desktop: &Desktop, words: &str) -> Result<String> {
    let css = if words == "Saved" {
        "#settings [role=status]"
    } else {
        "#settings #confirm"
    };
    wait_text(app, css, words, Duration::from_secs(10)).await?;
    saved_bind_address(desktop)
}

/// Tunnels listening on every address can be reached by every machine on the network, with
/// the services' credentials: the settings ask before saving such a bind address (as `--bind`
/// asks at a terminal) and save it only after a yes; an address of this machine alone is
/// saved without a question.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_bind_address_is_saved_only_after_a_yes() -> Result<()> {
    let desktop = Desktop::start_without_keyring().await?;
    let (_driver, url) = desktop.tauri_driver()?;
    let app = app_session(&url).await?;
    app.click_on("#nav-settings", Duration::from_secs(60))
        .await?;

    save_bind_address(&app, "0.0.0.0").await?;
    let asked = "Listen on every address (0.0.0.0)? Every machine on every network";
    assert_eq!(settings_answer(&app, &desktop, asked).await?, "127.0.0.1");
    screenshot(&app, "settings-wildcard-question").await?;
    // No: nothing saved, the question goes.
    app.click_on("#confirm-no", Duration::ZERO).await?;
    ensure!(app.find("#confirm", Duration::ZERO).await.is_err());
    assert_eq!(saved_bind_address(&desktop)?, "127.0.0.1");

    // Yes: saved. The address is typed again, as a person would after a no (the form may
    // have been drawn again from the saved settings meanwhile).
    save_bind_address(&app, "0.0.0.0").await?;
    app.click_on("#confirm-yes", Duration::from_secs(10))
        .await?;
    assert_eq!(settings_answer(&app, &desktop, "Saved").await?, "0.0.0.0");

    // Back to loopback: no question. IPv6's wildcard asks again.
    save_bind_address(&app, "127.0.0.1").await?;
    assert_eq!(settings_answer(&app, &desktop, "Saved").await?, "127.0.0.1");
    save_bind_address(&app, "::").await?;
    let asked = "every address (::)";
    assert_eq!(settings_answer(&app, &desktop, asked).await?, "127.0.0.1");
    let _ = app.quit().await;
    Ok(())
}
