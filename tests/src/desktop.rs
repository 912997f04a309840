//! A private desktop for the real app: an Xvfb display (or a headless weston, for Wayland), a
//! D-Bus session bus, a StatusNotifierWatcher that the tray registers with (as a desktop
//! shell's panel would), and tauri-driver to drive the app's webview. Everything stops when
//! the guard drops.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};

use crate::tray::TrayWatcher;
use crate::webdriver::WebDriver;
use crate::{free_port, spawn_on_free_port, wait_for_port, ChildGuard};

/// Which display server a desktop runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisplayKind {
    /// Xvfb; `display` is `:N`.
    X11,
    /// weston's headless backend; `display` is the path of its socket (`WAYLAND_DISPLAY`).
    Wayland,
}

pub struct Desktop {
    pub display: String,
    pub kind: DisplayKind,
    pub bus_address: String,
    pub watcher: TrayWatcher,
    /// The app starts here for the first time (no settings: the welcome); otherwise as a
    /// returning user, straight to the tray ([`Desktop::first_run`]).
    first_run: bool,
    /// The bus, when this desktop started its own.
    _dbus: Option<ChildGuard>,
    _display_server: ChildGuard,
    /// Where the app keeps its files and its agent's socket (never the real home's); declared
    /// last, so it is removed after the processes above have ended.
    pub state: tempfile::TempDir,
}

/// The bus name by which a second start of the app finds the first (tauri-plugin-single-instance:
/// the identifier in `tauri.conf.json` and `.SingleInstance`).
const SINGLE_INSTANCE_NAME: &str = "sh.tether.desktop.SingleInstance";

/// Whether a process runs (a zombie does not).
pub fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| Some(stat.rsplit_once(") ")?.1.chars().next()? != 'Z'))
        .unwrap_or(false)
}

/// Reads the first line a child prints on stdout (Xvfb's display number, dbus's address).
fn first_line(child: &mut std::process::Child, what: &str) -> Result<String> {
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("{what}: no stdout"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        // Keep draining so the child never blocks on a full pipe.
        let _ = std::io::copy(&mut reader.take(u64::MAX), &mut std::io::sink());
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .map_err(|_| anyhow!("{what} did not start in 20 s"))?;
    let line = line.trim().to_string();
    if line.is_empty() {
        bail!("{what} exited before it was ready");
    }
    Ok(line)
}

/// A private D-Bus session bus and its address.
pub fn session_bus() -> Result<(ChildGuard, String)> {
    let mut dbus = ChildGuard::spawn(
        "dbus-daemon",
        Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nosyslog", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    )?;
    let address = first_line(&mut dbus.child, "dbus-daemon")?;
    Ok((dbus, address))
}

impl Desktop {
    pub async fn start() -> Result<Desktop> {
        let (dbus, bus_address) = session_bus()?;
        Desktop::start_with_bus(Some(dbus), bus_address, true).await
    }

    /// A desktop with no tray host (stock GNOME): its watcher takes the name only when the test
    /// calls `desktop.watcher.appear()`.
    pub async fn start_without_tray_host() -> Result<Desktop> {
        let (dbus, bus_address) = session_bus()?;
        Desktop::start_with_bus(Some(dbus), bus_address, false).await
    }

    /// A desktop whose session bus is `bus_address`, run by someone else: a
    /// [`User`](crate::cli::User)'s real Secret Service, so that the app finds its keyring on the
    /// bus its tray and notifications use, as on a real desktop.
    pub async fn start_on_bus(bus_address: &str) -> Result<Desktop> {
        Desktop::start_with_bus(None, bus_address.to_string(), true).await
    }

    async fn start_with_bus(
        dbus: Option<ChildGuard>,
        bus_address: String,
        tray_host: bool,
    ) -> Result<Desktop> {
        let mut xvfb = ChildGuard::spawn(
            "Xvfb",
            Command::new("Xvfb")
                .args([
                    "-displayfd",
                    "1",
                    "-screen",
                    "0",
                    "1280x800x24",
                    "-nolisten",
                    "tcp",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        )?;
        let display = format!(":{}", first_line(&mut xvfb.child, "Xvfb")?);
        let watcher = if tray_host {
            TrayWatcher::start(&bus_address).await?
        } else {
            TrayWatcher::start_unnamed(&bus_address).await?
        };
        Ok(Desktop {
            state: state_dir()?,
            display,
            kind: DisplayKind::X11,
            bus_address,
            watcher,
            first_run: false,
            _dbus: dbus,
            _display_server: xvfb,
        })
    }

    /// [`Desktop::start_wayland`], or `None` (with a SKIPPED line on stderr) where weston cannot
    /// start at all (it is not installed).
    pub async fn start_wayland_or_skip() -> Result<Option<Desktop>> {
        if let Err(e) = Command::new("weston").arg("--version").output() {
            eprintln!("SKIPPED: weston cannot start here ({e}); make test installs it");
            return Ok(None);
        }
        Ok(Some(Desktop::start_wayland().await?))
    }

    /// A Wayland desktop: weston's headless backend, with the pixman renderer so that its
    /// output has pixels, and `--debug` so that `weston-screenshooter` may take them. Its
    /// socket lives in a runtime directory of its own, named by path in `WAYLAND_DISPLAY`.
    pub async fn start_wayland() -> Result<Desktop> {
        let state = state_dir()?;
        let runtime = state.path().join("wayland");
        std::fs::create_dir(&runtime)?;
        std::fs::set_permissions(
            &runtime,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )?;
        let log = state.path().join("weston.log");
        let mut weston = ChildGuard::spawn(
            "weston",
            Command::new("weston")
                .args([
                    "--backend=headless-backend.so",
                    "--use-pixman",
                    "--width=1280",
                    "--height=800",
                    "--socket=wayland-tether",
                    "--idle-time=0",
                    "--no-config",
                    "--debug",
                ])
                .arg(format!("--log={}", log.display()))
                .env("XDG_RUNTIME_DIR", &runtime)
                .env_remove("WAYLAND_DISPLAY")
                .env_remove("DISPLAY")
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )?;
        let socket = runtime.join("wayland-tether");
        let start = std::time::Instant::now();
        while !socket.exists() {
            let said = || std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(status) = weston.child.try_wait()? {
                bail!(
                    "weston exited ({status}) before its socket was there: {}",
                    said()
                );
            }
            if start.elapsed() > Duration::from_secs(20) {
                bail!("weston made no socket in 20 s: {}", said());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let (dbus, bus_address) = session_bus()?;
        let watcher = TrayWatcher::start(&bus_address).await?;
        Ok(Desktop {
            display: socket.display().to_string(),
            kind: DisplayKind::Wayland,
            bus_address,
            watcher,
            first_run: false,
            _dbus: Some(dbus),
            _display_server: weston,
            state,
        })
    }

    /// A desktop whose session bus has no Secret Service and cannot start one (no service
    /// files): a machine without a keyring, as a plain `dbus-run-session` on a desktop that
    /// has none installed.
    pub async fn start_without_keyring() -> Result<Desktop> {
        let config = tempfile::NamedTempFile::new()?;
        std::fs::write(
            config.path(),
            format!(
                "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\" \
                 \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n\
                 <busconfig><type>session</type><listen>unix:tmpdir={}</listen>\
                 <auth>EXTERNAL</auth><policy context=\"default\"><allow send_destination=\"*\" \
                 eavesdrop=\"true\"/><allow eavesdrop=\"true\"/><allow own=\"*\"/></policy>\
                 </busconfig>\n",
                std::env::temp_dir().display()
            ),
        )?;
        let mut dbus = ChildGuard::spawn(
            "dbus-daemon",
            Command::new("dbus-daemon")
                .arg(format!("--config-file={}", config.path().display()))
                .args(["--nofork", "--nosyslog", "--print-address=1"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        )?;
        let address = first_line(&mut dbus.child, "dbus-daemon")?;
        Desktop::start_with_bus(Some(dbus), address, true).await
    }

    /// The app starts here for the first time: no settings, so its window opens on the
    /// welcome. (Otherwise the harness gives the app a returning user's settings, the
    /// defaults, and it starts as it always did.)
    pub fn first_run(mut self) -> Desktop {
        self.first_run = true;
        let _ = std::fs::remove_file(self.state.path().join("data").join(SETTINGS));
        self
    }

    /// A returning user's settings (the defaults) in `data_dir`, unless there are settings
    /// there or this desktop is for a first run.
    fn settle(&self, data_dir: &std::path::Path) -> Result<()> {
        if self.first_run {
            return Ok(());
        }
        returning_user(data_dir)
    }

    /// Applies this desktop's display, bus and a private data directory to a command (a
    /// [`User`](crate::cli::User)'s environment, applied after, takes over the data).
    pub fn env(&self, cmd: &mut Command) {
        cmd.env("TETHER_DATA_DIR", self.state.path().join("data"))
            .env("XDG_RUNTIME_DIR", self.state.path().join("run"));
        self.display_env(cmd);
    }

    /// Only this desktop's display and bus.
    pub fn display_env(&self, cmd: &mut Command) {
        match self.kind {
            DisplayKind::X11 => cmd
                .env("DISPLAY", &self.display)
                .env_remove("WAYLAND_DISPLAY")
                .env("GDK_BACKEND", "x11"),
            DisplayKind::Wayland => cmd
                .env("WAYLAND_DISPLAY", &self.display)
                .env_remove("DISPLAY")
                .env("GDK_BACKEND", "wayland"),
        };
        cmd.env("DBUS_SESSION_BUS_ADDRESS", &self.bus_address)
            .env("NO_AT_BRIDGE", "1");
    }

    /// tauri-driver on a free port, for this desktop; the app starts with each session.
    pub fn tauri_driver(&self) -> Result<(ChildGuard, String)> {
        self.tauri_driver_with(|cmd| self.env(cmd))
    }

    /// The same, with more variables in the app's environment (`GTK_THEME`).
    pub fn tauri_driver_with_env(&self, vars: &[(&str, &str)]) -> Result<(ChildGuard, String)> {
        self.tauri_driver_with(|cmd| {
            self.env(cmd);
            cmd.envs(vars.iter().copied());
        })
    }

    /// The same, with the app running as `user` (their home, profile and session) on this
    /// desktop's display and bus.
    pub fn tauri_driver_for(&self, user: &crate::cli::User) -> Result<(ChildGuard, String)> {
        self.tauri_driver_for_with_env(user, &[])
    }

    /// The same, with more variables in the app's environment (`BROWSER`).
    pub fn tauri_driver_for_with_env(
        &self,
        user: &crate::cli::User,
        vars: &[(&str, &str)],
    ) -> Result<(ChildGuard, String)> {
        self.settle(&user.home().join(".local/share/tether"))?;
        self.tauri_driver_with(|cmd| {
            user.environment(cmd);
            self.display_env(cmd);
            cmd.envs(vars.iter().copied());
        })
    }

    /// Starts the app as `user` on this desktop, logging to `app.log` in its state directory.
    pub fn launch_for(&self, user: &crate::cli::User, args: &[&str]) -> Result<ChildGuard> {
        self.launch_program_for(&desktop_binary()?, user, args)
    }

    /// The same with another build of the app (the one a package installed).
    pub fn launch_program_for(
        &self,
        program: &std::path::Path,
        user: &crate::cli::User,
        args: &[&str],
    ) -> Result<ChildGuard> {
        self.settle(&user.home().join(".local/share/tether"))?;
        let mut cmd = Command::new(program);
        cmd.args(args);
        user.environment(&mut cmd);
        self.display_env(&mut cmd);
        cmd.stdout(Stdio::null()).stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.log())?,
        );
        ChildGuard::spawn("tether-desktop", &mut cmd)
    }

    /// The app's tray item once it registers (within 60 s); the app's log in the error when it
    /// does not.
    pub async fn tray_item(&self) -> Result<crate::tray::TrayItem> {
        self.watcher
            .wait_for_item(Duration::from_secs(60))
            .await
            .map_err(|e| {
                anyhow!(
                    "{e}; the app said: {}",
                    std::fs::read_to_string(self.log()).unwrap_or_default()
                )
            })
    }

    /// `xclip -o` on this display's clipboard (its `target`, such as `TARGETS`, when given),
    /// read as another program would: the text, or `None` when nobody holds the clipboard.
    pub async fn clipboard(&self, target: Option<&str>) -> Result<Option<String>> {
        let mut cmd = tokio::process::Command::new("xclip");
        cmd.args(["-o", "-selection", "clipboard"])
            .env("DISPLAY", &self.display);
        if let Some(t) = target {
            cmd.args(["-t", t]);
        }
        let out = tokio::time::timeout(Duration::from_secs(10), cmd.output())
            .await
            .map_err(|_| anyhow!("xclip did not answer"))??;
        Ok(out
            .status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).to_string()))
    }

    /// Asks an X window to close as a window manager would (`scripts/close-window.py`: Xvfb has
    /// no window manager to do it).
    pub fn close_window(&self, window: &str) -> Result<()> {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/close-window.py");
        let closed = Command::new("python3")
            .arg(script)
            .arg(window)
            .env("DISPLAY", &self.display)
            .status()?;
        if !closed.success() {
            bail!("close-window.py failed: {closed}");
        }
        Ok(())
    }

    /// The id of the first visible X window whose title matches `pattern` (xdotool's regular
    /// expression), waiting up to `timeout` for it; the error carries the app's log.
    pub async fn visible_window(&self, pattern: &str, timeout: Duration) -> Result<String> {
        let start = std::time::Instant::now();
        loop {
            let found = Command::new("xdotool")
                .args(["search", "--onlyvisible", "--name", pattern])
                .env("DISPLAY", &self.display)
                .output()?;
            if let Some(id) = String::from_utf8_lossy(&found.stdout)
                .split_whitespace()
                .next()
            {
                return Ok(id.to_string());
            }
            if start.elapsed() >= timeout {
                bail!(
                    "no window {pattern:?} in {timeout:?}; the app said: {}",
                    std::fs::read_to_string(self.log()).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits up to 30 s until the terminal the app started, whose screen is logged to `log`
    /// (xterm's `-lf`), shows each of `wanted`; returns what it shows. The error carries the
    /// screen and the app's log.
    pub async fn terminal_shows(&self, log: &Path, wanted: &[&str]) -> Result<String> {
        self.terminal_shows_checking(log, wanted, || Ok(())).await
    }

    /// [`Desktop::terminal_shows`], failing at once if `check` fails on any look before it.
    pub async fn terminal_shows_checking(
        &self,
        log: &Path,
        wanted: &[&str],
        mut check: impl FnMut() -> Result<()>,
    ) -> Result<String> {
        let start = std::time::Instant::now();
        loop {
            let shown = std::fs::read_to_string(log).unwrap_or_default();
            if wanted.iter().all(|w| shown.contains(w)) {
                return Ok(shown);
            }
            check()?;
            if start.elapsed() >= Duration::from_secs(30) {
                bail!(
                    "the terminal shows {shown:?}; the app said: {}",
                    std::fs::read_to_string(self.log()).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the app whose process is `pid` has ended and the bus has let go of its
    /// single-instance name. The bus notices a killed app (WebDriver ends its session that way)
    /// a moment after the process is gone; an app started in that moment finds the name taken,
    /// tries to hand over to the instance that is gone, and exits.
    pub async fn wait_app_ended(&self, pid: u32, within: Duration) -> Result<()> {
        let bus = zbus::connection::Builder::address(self.bus_address.as_str())?
            .build()
            .await?;
        let dbus = zbus::fdo::DBusProxy::new(&bus).await?;
        let name = zbus::names::BusName::try_from(SINGLE_INSTANCE_NAME)?;
        let start = std::time::Instant::now();
        while is_running(pid) || dbus.name_has_owner(name.clone()).await? {
            anyhow::ensure!(
                start.elapsed() < within,
                "the app (pid {pid}) still runs or holds {SINGLE_INSTANCE_NAME} after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// The log of the app [`Desktop::launch_for`] started, and of tauri-driver and the app it
    /// starts.
    pub fn log(&self) -> PathBuf {
        self.state.path().join("app.log")
    }

    fn tauri_driver_with(&self, env: impl Fn(&mut Command)) -> Result<(ChildGuard, String)> {
        let mut native = 0;
        let (guard, port) = spawn_on_free_port("tauri-driver", Duration::from_secs(20), |port| {
            native = free_port();
            let mut cmd = Command::new(tauri_driver_path()?);
            cmd.args([
                "--port",
                &port.to_string(),
                "--native-port",
                &native.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.log())?,
            );
            env(&mut cmd);
            Ok(cmd)
        })?;
        // tauri-driver proxies to WebKitWebDriver, which it starts: that must listen too.
        wait_for_port(native, Duration::from_secs(20))?;
        Ok((guard, format!("http://127.0.0.1:{port}")))
    }
}

/// A WebDriver session on the app, which tauri-driver at `url` starts.
pub async fn app_session(url: &str) -> Result<WebDriver> {
    WebDriver::new_session(
        url,
        serde_json::json!({ "tauri:options": { "application": desktop_binary()? } }),
    )
    .await
}

/// Where the run's screenshots go (`TETHER_SCREENSHOTS`, which `make test` sets), if anywhere.
pub fn screenshot_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("TETHER_SCREENSHOTS")?);
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir)
}

/// The window `app` drives, as `desktop-<name>.png` in the screenshot directory.
pub async fn screenshot(app: &WebDriver, name: &str) -> Result<()> {
    if let Some(dir) = screenshot_dir() {
        // Let the last change paint.
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.screenshot(&dir.join(format!("desktop-{name}.png")))
            .await?;
    }
    Ok(())
}

/// The text of the first element `css` finds, once it contains `want` as it reads (the
/// rendered text, whatever its case).
pub async fn wait_text(
    app: &WebDriver,
    css: &str,
    want: &str,
    timeout: Duration,
) -> Result<String> {
    let start = std::time::Instant::now();
    loop {
        let text = match app.find(css, Duration::ZERO).await {
            Ok(el) => app.text(&el).await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if text.to_lowercase().contains(&want.to_lowercase()) {
            return Ok(text);
        }
        if start.elapsed() > timeout {
            bail!("{css} says {text:?}, not {want:?}, after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Signs in through the app's sign-in window, which `open` (a click in the main window)
/// opens: the platform's pages filled as a person would, then back to the main window.
/// Returns the sign-in page's first address.
pub async fn sign_in_through_the_window(
    app: &WebDriver,
    open: &str,
    user: &tether_sim::fixture::User,
) -> Result<String> {
    let main = app.window_handle().await?;
    app.click_on(open, Duration::from_secs(30)).await?;
    app.switch_to_new_window(std::slice::from_ref(&main), Duration::from_secs(20))
        .await?;
    let url = app.current_url().await?;
    crate::webdriver::fill_sign_in(
        app,
        &user.username,
        &user.password,
        user.totp_secret.as_deref(),
    )
    .await?;
    app.switch_to_window(&main).await?;
    Ok(url)
}

/// The app's settings file in its data directory: without it, the app starts on its first-run
/// welcome.
pub const SETTINGS: &str = "desktop.json";

/// Settings as a returning user has them (the defaults), unless there are some already.
fn returning_user(data_dir: &std::path::Path) -> Result<()> {
    let file = data_dir.join(SETTINGS);
    if !file.exists() {
        std::fs::create_dir_all(data_dir)?;
        std::fs::write(file, "{}\n")?;
    }
    Ok(())
}

/// Where a desktop keeps the app's files (`data`, with a returning user's settings), its logs
/// and (Wayland) its compositor's socket.
fn state_dir() -> Result<tempfile::TempDir> {
    let state = tempfile::Builder::new()
        .prefix("tether-desktop-")
        .tempdir()?;
    returning_user(&state.path().join("data"))?;
    Ok(state)
}

fn tauri_driver_path() -> Result<PathBuf> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let candidates = [
        home.join(".cargo/bin/tauri-driver"),
        PathBuf::from("/usr/local/bin/tauri-driver"),
    ];
    if let Some(p) = candidates.iter().find(|p| p.exists()) {
        return Ok(p.clone());
    }
    Ok(PathBuf::from("tauri-driver"))
}

/// The desktop app's binary, built by `cargo build --workspace` (make test builds it first).
pub fn desktop_binary() -> Result<PathBuf> {
    crate::cli::workspace_binary("tether-desktop")
}

/// Alice signed in on the simulator `info` names, and her app started hidden (in the tray) on
/// a desktop of its own whose notification server is watched.
pub async fn hidden_app(
    info: &tether_sim::ReadyInfo,
) -> Result<(
    crate::cli::User,
    Desktop,
    crate::notifications::Notifications,
    ChildGuard,
    crate::tray::TrayItem,
)> {
    let user = crate::cli::User::new(info, false)?;
    user.ok(&["auth:api-token-login"], Some(crate::ALICE_TOKEN))
        .await?;
    let desktop = Desktop::start().await?;
    let notes = crate::notifications::Notifications::start(&desktop.bus_address).await?;
    let app = desktop.launch_for(&user, &["--hidden"])?;
    let item = desktop.tray_item().await?;
    Ok((user, desktop, notes, app, item))
}

/// Ends the xterm whose log is `log` (started with `xterm -l -lf LOG`), found by that path in
/// its command line, so that no other terminal is touched.
pub fn end_terminal(log: &Path) {
    let wanted = format!("-lf\0{}\0", log.display());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&wanted) {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}
