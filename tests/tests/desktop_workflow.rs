//! The workflow after a tunnel, in the real app on a private desktop (Xvfb + D-Bus session):
//! "SQL shell" opens xterm with psql through the app's tunnel (read-only on production),
//! "Open in…" starts a database client found on PATH with the URL form it takes, "Copy as…"
//! puts the service's connection on the X clipboard, and production asks first, in the
//! window's dialog and in the tray's (no: nothing happens; yes: it happens). One app start
//! serves every check: its window is driven through tauri-driver, its tray over D-Bus.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};
use tether_e2e::cli::User;
use tether_e2e::desktop::{app_session, screenshot, screenshot_dir, Desktop};
use tether_e2e::notifications::Notifications;
use tether_e2e::webdriver::WebDriver;
use tether_e2e::{backend, demo_sim, psql_command, Postgres, Redis, ALICE_TOKEN};

const STOREFRONT: &str = "jyu7waly36ncj";
const MARKETING: &str = "rjify4yjcwxaa";

/// `xdotool ARGS` on the desktop's display; its output.
fn xdotool(desktop: &Desktop, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new("xdotool")
        .args(args)
        .env("DISPLAY", &desktop.display)
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The ids of the visible windows `xdotool search --onlyvisible SEARCH…` finds, waiting up to
/// `timeout` for one.
async fn visible_windows(
    desktop: &Desktop,
    search: &[&str],
    timeout: Duration,
) -> Result<Vec<String>> {
    let start = Instant::now();
    loop {
        let found: Vec<String> =
            xdotool(desktop, &[&["search", "--onlyvisible"], search].concat())?
                .lines()
                .map(str::to_string)
                .collect();
        if !found.is_empty() || start.elapsed() >= timeout {
            return Ok(found);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The ids of the visible windows whose name matches `name`, waiting up to `timeout` for one.
async fn windows_named(desktop: &Desktop, name: &str, timeout: Duration) -> Result<Vec<String>> {
    visible_windows(desktop, &["--name", name], timeout).await
}

/// The visible xterm windows, waiting up to `timeout` for one.
async fn xterms(desktop: &Desktop, timeout: Duration) -> Result<Vec<String>> {
    visible_windows(desktop, &["--class", "xterm"], timeout).await
}

/// A screenshot of an X window (a dialog WebDriver cannot see), as `desktop-<name>.png`.
fn window_shot(desktop: &Desktop, window: &str, name: &str) -> Result<()> {
    if let Some(dir) = screenshot_dir() {
        std::process::Command::new("import")
            .args(["-window", window])
            .arg(dir.join(format!("desktop-{name}.png")))
            .env("DISPLAY", &desktop.display)
            .status()?;
    }
    Ok(())
}

/// The tray's production question: waits for its dialog, then answers with `key` (`Return`
/// or `Escape` is no, `alt+y` is "Yes, go on").
async fn answer_tray_question(desktop: &Desktop, key: &str, shot: &str) -> Result<()> {
    let found = windows_named(desktop, "Tether: production", Duration::from_secs(20)).await?;
    let window = found
        .first()
        .with_context(|| {
            format!(
                "no production question from the tray; the app said: {}",
                std::fs::read_to_string(desktop.log()).unwrap_or_default()
            )
        })?
        .clone();
    tokio::time::sleep(Duration::from_millis(500)).await;
    window_shot(desktop, &window, shot)?;
    xdotool(desktop, &["windowfocus", "--sync", &window])?;
    xdotool(desktop, &["key", "--clearmodifiers", key])?;
    let start = Instant::now();
    while !windows_named(desktop, "Tether: production", Duration::ZERO)
        .await?
        .is_empty()
    {
        ensure!(
            start.elapsed() < Duration::from_secs(10),
            "the question stayed after {key}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The local port of the app's tunnel to `relationship` on `environment`, as
/// `tether tunnel:list` says it.
async fn tunnel_port(user: &User, environment: &str, relationship: &str) -> Result<u16> {
    let start = Instant::now();
    loop {
        let listed = user.ok(&["tunnel:list", "--format", "json"], None).await?;
        let tunnels: Vec<Value> = serde_json::from_str(&listed)?;
        let found = tunnels
            .iter()
            .find(|t| t["environment"] == environment && t["relationship"] == relationship);
        if let Some(t) = found {
            let local = t["local"].as_str().unwrap_or_default();
            return Ok(local.rsplit(':').next().unwrap_or_default().parse()?);
        }
        ensure!(
            start.elapsed() < Duration::from_secs(30),
            "no {relationship} tunnel to {environment}: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the X clipboard holds once it holds `want`-like text (a copy is written off the
/// window's thread).
async fn clipboard_with(desktop: &Desktop, starts: &str) -> Result<String> {
    let start = Instant::now();
    loop {
        let held = desktop.clipboard(None).await?.unwrap_or_default();
        if held.starts_with(starts) {
            return Ok(held);
        }
        ensure!(
            start.elapsed() < Duration::from_secs(15),
            "the clipboard holds {held:?}, not {starts}…"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text content of the first element `css` finds, once it contains `want` (WebDriver's
/// rendered text is empty for some visible spans in WebKitGTK).
async fn wait_content(app: &WebDriver, css: &str, want: &str, timeout: Duration) -> Result<String> {
    let start = Instant::now();
    loop {
        let text = app
            .execute(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';",
                json!([css]),
            )
            .await?
            .as_str()
            .unwrap_or_default()
            .to_string();
        if text.contains(want) {
            return Ok(text);
        }
        ensure!(
            start.elapsed() < timeout,
            "{css} says {text:?}, not {want:?}, after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clicks an app's item in the window: `[data-app=KEY] SELECTOR`, found again when the view
/// drew its rows anew between the find and the click (after an event of the agent).
async fn click_in_row(app: &WebDriver, key: &str, selector: &str) -> Result<()> {
    let css = format!("[data-app=\"{key}\"] {selector}");
    let start = Instant::now();
    loop {
        let element = app.find(&css, Duration::from_secs(30)).await?;
        match app.click(&element).await {
            Err(e)
                if format!("{e:#}").contains("stale")
                    && start.elapsed() < Duration::from_secs(10) =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            done => return done,
        }
    }
}

/// A terminal session the test reads: xterm's log file, and its window to type in.
struct Terminal {
    log: PathBuf,
}

impl Terminal {
    /// The text xterm logged so far.
    fn shown(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the terminal shows every one of `want`.
    async fn wait_for(&self, want: &[&str], desktop: &Desktop) -> Result<String> {
        let start = Instant::now();
        loop {
            let shown = self.shown();
            if want.iter().all(|w| shown.contains(w)) {
                return Ok(shown);
            }
            if start.elapsed() > Duration::from_secs(30) {
                bail!(
                    "the terminal shows {shown:?}, not {want:?}; the app said: {}",
                    std::fs::read_to_string(desktop.log()).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Types a line into the (one) xterm window: xterm takes sent keys with
    /// `allowSendEvents`, which the terminal setting turns on.
    async fn type_line(&self, desktop: &Desktop, line: &str) -> Result<()> {
        let found = xterms(desktop, Duration::from_secs(20)).await?;
        let window = found.last().context("no xterm window")?;
        xdotool(
            desktop,
            &["type", "--window", window, "--delay", "20", line],
        )?;
        xdotool(desktop, &["key", "--window", window, "Return"])?;
        Ok(())
    }

    /// Ends psql (`\q`), which ends xterm, and forgets the log.
    async fn quit(&self, desktop: &Desktop) -> Result<()> {
        self.type_line(desktop, "\\q").await?;
        self.closed(desktop).await
    }

    /// Waits for xterm to end, and forgets the log.
    async fn closed(&self, desktop: &Desktop) -> Result<()> {
        let start = Instant::now();
        while !xterms(desktop, Duration::ZERO).await?.is_empty() {
            ensure!(
                start.elapsed() < Duration::from_secs(10),
                "xterm stayed after \\q"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = std::fs::remove_file(&self.log);
        Ok(())
    }
}

/// A stand-in database client on the app's PATH, which writes its arguments (one per line) to
/// a file when started.
fn stand_in(bin: &Path, name: &str) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let out = bin.join(format!("{name}.args"));
    let script = bin.join(name);
    std::fs::write(
        &script,
        format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\n", out.display()),
    )?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    Ok(out)
}

/// Runs SQL on the test's PostgreSQL directly.
fn psql_exec(port: u16, sql: &str) -> Result<()> {
    let out = psql_command(port, "main").args(["-c", sql]).output()?;
    ensure!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

async fn wait_file(path: &Path, timeout: Duration) -> Result<String> {
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if !text.is_empty() {
                return Ok(text);
            }
        }
        ensure!(
            start.elapsed() < timeout,
            "{} was not written",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_shell_open_in_copy_as_and_the_production_question_in_the_window_and_the_tray(
) -> Result<()> {
    let postgres = Postgres::start()?;
    let redis = Redis::start()?;
    let mut options = tether_sim::SimOptions::default();
    backend(&mut options, "postgresql", postgres.port);
    backend(&mut options, "redis", redis.port);
    let sim = demo_sim(options).await?;
    let user = User::new(&sim.info, false)?;
    user.ok(&["auth:api-token-login"], Some(ALICE_TOKEN))
        .await?;
    let _stop = user.agent_stopper();
    // The terminal: xterm, logging what it shows, taking the keys the test sends.
    let terminal = Terminal {
        log: user.home().join("xterm.log"),
    };
    std::fs::write(
        user.home().join(".local/share/tether/desktop.json"),
        serde_json::to_vec(&json!({
            "terminal": format!(
                "xterm -xrm XTerm*allowSendEvents:true -l -lf {} -e {{}}",
                terminal.log.display()
            ),
            "pinned": [format!("{STOREFRONT}/staging/app"), format!("{STOREFRONT}/main/app")],
        }))?,
    )?;
    // A stand-in DBeaver, found on the app's PATH.
    let bin = tempfile::tempdir()?;
    let dbeaver_args = stand_in(bin.path(), "dbeaver")?;
    let tableplus_args = stand_in(bin.path(), "tableplus")?;
    let browser_args = stand_in(bin.path(), "browser")?;
    let browser = bin.path().join("browser").display().to_string();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let desktop = Desktop::start().await?;
    let notes = Notifications::start(&desktop.bus_address).await?;
    let (_driver, url) = desktop.tauri_driver_for_with_env(
        &user,
        &[
            ("PATH", &path),
            ("BROWSER", &browser),
            ("TETHER_LOG", "info"),
        ],
    )?;
    let app = app_session(&url).await?;
    let staging = format!("{STOREFRONT}/staging/app");
    let main = format!("{STOREFRONT}/main/app");

    // The window: every environment says its type, production is marked, in the pinned apps'
    // labels as in the environments' tags.
    wait_content(
        &app,
        &format!("[data-app=\"{main}\"] .app-context"),
        "Storefront · main [PRODUCTION]",
        Duration::from_secs(60),
    )
    .await?;
    wait_content(
        &app,
        &format!("[data-app=\"{staging}\"] .app-context"),
        "Storefront · staging (staging)",
        Duration::ZERO,
    )
    .await?;
    wait_content(
        &app,
        &format!("[data-environment=\"{MARKETING}/main\"] [data-field=type]"),
        "PRODUCTION",
        Duration::ZERO,
    )
    .await?;
    screenshot(&app, "workflow-environments").await?;

    // Copy as… on staging asks nothing, opens the tunnels, and copies each form.
    click_in_row(&app, &staging, "[data-menu-toggle=copy-as]").await?;
    screenshot(&app, "workflow-copy-as").await?;
    click_in_row(&app, &staging, "[data-form=url]").await?;
    notes
        .wait_for("Copied database URL", Duration::from_secs(30))
        .await?;
    let url = clipboard_with(&desktop, "postgresql://").await?;
    let port = tunnel_port(&user, "staging", "database").await?;
    assert_eq!(url, format!("postgresql://main:main@127.0.0.1:{port}/main"));
    click_in_row(&app, &staging, "[data-menu-toggle=copy-as]").await?;
    click_in_row(&app, &staging, "[data-form=jdbc]").await?;
    assert_eq!(
        clipboard_with(&desktop, "jdbc:").await?,
        format!("jdbc:postgresql://127.0.0.1:{port}/main?user=main&password=main")
    );
    click_in_row(&app, &staging, "[data-menu-toggle=copy-as]").await?;
    click_in_row(&app, &staging, "[data-form=command]").await?;
    assert_eq!(
        clipboard_with(&desktop, "PGPASSWORD=").await?,
        format!("PGPASSWORD=main psql -h 127.0.0.1 -p {port} -U main main")
    );
    click_in_row(&app, &staging, "[data-menu-toggle=copy-as]").await?;
    click_in_row(&app, &staging, "[data-form=env]").await?;
    assert_eq!(
        clipboard_with(&desktop, "export PGHOST").await?,
        format!(
            "export PGHOST=127.0.0.1\nexport PGPORT={port}\nexport PGUSER=main\n\
             export PGPASSWORD=main\nexport PGDATABASE=main\n\
             export DATABASE_URL=postgresql://main:main@127.0.0.1:{port}/main\n"
        )
    );

    // Production asks first in the window: no, and nothing happens.
    click_in_row(&app, &main, "[data-menu-toggle=open-in]").await?;
    click_in_row(&app, &main, "[data-client=dbeaver]").await?;
    let question = wait_content(
        &app,
        "#production-question-text",
        "PRODUCTION environment of project",
        Duration::from_secs(20),
    )
    .await?;
    assert!(question.contains("open a SQL shell on"), "{question}");
    screenshot(&app, "workflow-production-question").await?;
    app.click_on("#production-no", Duration::ZERO).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !dbeaver_args.exists(),
        "DBeaver started after a no: {:?}",
        std::fs::read_to_string(&dbeaver_args)
    );
    let listed = user.ok(&["tunnel:list", "--format", "json"], None).await?;
    assert!(
        !listed.contains("\"environment\": \"main\"")
            && !listed.contains("\"environment\":\"main\""),
        "a tunnel to production opened after a no: {listed}"
    );
    // Yes: the tunnel opens, and the stand-in DBeaver gets its -con spec through it.
    click_in_row(&app, &main, "[data-menu-toggle=open-in]").await?;
    click_in_row(&app, &main, "[data-client=dbeaver]").await?;
    app.click_on("#production-yes", Duration::from_secs(20))
        .await?;
    let args = wait_file(&dbeaver_args, Duration::from_secs(30)).await?;
    let main_port = tunnel_port(&user, "main", "database").await?;
    assert_eq!(
        args,
        format!(
            "-con\nname={STOREFRONT} main database|driver=postgresql|host=127.0.0.1|port={main_port}|\
             database=main|user=main|password=main|connect=true|openConsole=true\n"
        )
    );

    // TablePlus on staging (no question) gets the URL it opens: postgresql://, not pgsql://.
    click_in_row(&app, &staging, "[data-menu-toggle=open-in]").await?;
    click_in_row(&app, &staging, "[data-client=table_plus]").await?;
    assert_eq!(
        wait_file(&tableplus_args, Duration::from_secs(30)).await?,
        format!("postgresql://main:main@127.0.0.1:{port}/main\n")
    );

    // Open site: the environment's primary route in the browser.
    click_in_row(&app, &staging, "[data-action=open-site]").await?;
    assert_eq!(
        wait_file(&browser_args, Duration::from_secs(30)).await?,
        format!("https://staging-kqi3yda-{STOREFRONT}.eu-3.tether.test/\n")
    );

    // A dump of staging: the save dialog offers db:dump's name; the file is pg_dump's output
    // from the environment, and a notification says where it is.
    psql_exec(postgres.port, "create table dumped_marker (x int)")?;
    click_in_row(&app, &staging, "[data-action=dump]").await?;
    let dialog = windows_named(&desktop, "Save the database dump", Duration::from_secs(30))
        .await?
        .first()
        .cloned()
        .context("no save dialog")?;
    tokio::time::sleep(Duration::from_millis(800)).await;
    window_shot(&desktop, &dialog, "workflow-dump-save-dialog")?;
    let dump = user.home().join("staging-dump.sql");
    xdotool(&desktop, &["windowfocus", "--sync", &dialog])?;
    xdotool(&desktop, &["key", "--clearmodifiers", "ctrl+a"])?;
    xdotool(
        &desktop,
        &["type", "--delay", "10", &dump.display().to_string()],
    )?;
    xdotool(&desktop, &["key", "--clearmodifiers", "Return"])?;
    let saved = notes
        .wait_for("Database dump saved", Duration::from_secs(60))
        .await?;
    assert!(
        saved.body.contains(&dump.display().to_string()),
        "{saved:?}"
    );
    let dumped = std::fs::read_to_string(&dump)?;
    assert!(
        dumped.contains("PostgreSQL database dump") && dumped.contains("dumped_marker"),
        "{}",
        &dumped[..dumped.len().min(400)]
    );

    // The connection details offer each service's own client: redis-cli for the cache.
    click_in_row(&app, &staging, "[data-action=details]").await?;
    let cache = app
        .find(
            "[data-service=\"rediscache\"] [data-action=sql-shell]",
            Duration::from_secs(30),
        )
        .await?;
    app.execute(
        "document.querySelector('[data-service=\"rediscache\"]').scrollIntoView()",
        json!([]),
    )
    .await?;
    screenshot(&app, "workflow-details").await?;
    app.click(&cache).await?;
    terminal.wait_for(&["127.0.0.1:"], &desktop).await?;
    terminal.type_line(&desktop, "PING").await?;
    terminal.wait_for(&["PONG"], &desktop).await?;
    terminal.type_line(&desktop, "quit").await?;
    terminal.closed(&desktop).await?;
    app.click_on("#details [data-action=close]", Duration::ZERO)
        .await?;

    // The tray: every label says the type, production marked.
    let w = &desktop.watcher;
    let item = desktop.tray_item().await?;
    let staging_label = "★ app — Storefront / staging (staging)";
    let main_label = "★ app — Storefront / main [PRODUCTION]";
    let menu = w
        .wait_for_menu_entry(&item, main_label, Duration::from_secs(30))
        .await?;
    assert!(menu.find(staging_label).is_some(), "{:?}", menu.labels());
    let storefront = menu.at(&["Storefront"]).context("Storefront")?.labels();
    for want in [
        "main [PRODUCTION] › app",
        "staging (staging) › app",
        "feature-search (development, paused)",
    ] {
        assert!(
            storefront.iter().any(|l| l == want),
            "{want}: {storefront:?}"
        );
    }
    let open_in = menu
        .at(&[main_label, "Open in…"])
        .context("Open in…")?
        .labels();
    assert_eq!(
        open_in,
        ["DBeaver", "TablePlus", "Terminal (psql, mysql, redis-cli)"]
    );
    assert!(
        menu.labels().iter().any(|l| l.starts_with(&format!(
            "database of {STOREFRONT}/main/app [PRODUCTION] — "
        ))),
        "{:?}",
        menu.labels()
    );

    // "SQL shell" on staging: no question, psql in xterm through the tunnel answers a query.
    w.click_path(&item, &[staging_label, "SQL shell"]).await?;
    terminal.wait_for(&["main=#"], &desktop).await?;
    terminal
        .type_line(&desktop, "select 40 + 2 as answer;")
        .await?;
    let shown = terminal
        .wait_for(&["answer", "42", "(1 row)"], &desktop)
        .await?;
    assert!(!shown.contains("read-only"), "{shown}");
    terminal.quit(&desktop).await?;

    // Logs: the app's log followed over ssh; a line appended shows up.
    w.click_path(&item, &[staging_label, "Logs"]).await?;
    let app_log = sim
        .scratch_dir()
        .join(STOREFRONT)
        .join("staging")
        .join("app")
        .join("var/log/app.log");
    wait_file(&app_log, Duration::from_secs(30)).await?;
    terminal
        .wait_for(&["app.INFO: Application started"], &desktop)
        .await?;
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&app_log)?;
        writeln!(f, "tether-e2e: a line appended while following")?;
    }
    terminal
        .wait_for(&["tether-e2e: a line appended while following"], &desktop)
        .await?;
    let window = xterms(&desktop, Duration::ZERO).await?;
    let window = window.last().context("no xterm")?;
    xdotool(&desktop, &["key", "--window", window, "ctrl+c"])?;
    terminal.closed(&desktop).await?;

    // On production the tray asks in a dialog of its own, where Enter answers no (Cancel is its
    // default): nothing happens.
    w.click_path(&item, &[main_label, "SQL shell"]).await?;
    answer_tray_question(&desktop, "Return", "workflow-tray-question").await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        xterms(&desktop, Duration::ZERO).await?.is_empty() && terminal.shown().is_empty(),
        "a terminal opened after a no: {}",
        terminal.shown()
    );
    // Yes: psql starts read-only, says so and how to leave it; a write is refused.
    w.click_path(&item, &[main_label, "SQL shell"]).await?;
    answer_tray_question(&desktop, "alt+y", "workflow-tray-question-yes").await?;
    terminal
        .wait_for(
            &[
                "read-only",
                "SET default_transaction_read_only = off;",
                "main=#",
            ],
            &desktop,
        )
        .await?;
    terminal
        .type_line(&desktop, "create table guarded (x int);")
        .await?;
    terminal
        .wait_for(
            &["cannot execute CREATE TABLE in a read-only transaction"],
            &desktop,
        )
        .await?;
    terminal
        .type_line(&desktop, "select 6 * 7 as answer;")
        .await?;
    terminal.wait_for(&["42"], &desktop).await?;
    if let Some(window) = xterms(&desktop, Duration::ZERO).await?.last() {
        window_shot(&desktop, window, "workflow-sql-shell-production")?;
    }
    terminal.quit(&desktop).await?;
    app.quit().await?;
    Ok(())
}
