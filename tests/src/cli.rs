//! Running the real `tether` binary as a user would: a temporary HOME, the simulator's profile,
//! and either the real Secret Service or the opt-in token file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tether_sim::ReadyInfo;

use crate::keyring::SecretService;

/// `ssh BASE… REST…`: the arguments of a `tether ssh` run, from a fixed selection and the rest.
pub fn ssh_args<'a>(base: &[&'a str], rest: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["ssh"];
    v.extend_from_slice(base);
    v.extend_from_slice(rest);
    v
}

/// A binary of this workspace, built by `cargo build --workspace` (make test builds first).
pub fn workspace_binary(name: &str) -> Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let bin = target.join("debug").join(name);
    if !bin.exists() {
        bail!(
            "{} is missing: run cargo build --workspace first (make test does)",
            bin.display()
        );
    }
    Ok(bin)
}

/// The Secret Service's `service` under which Tether keeps the simulator profile's tokens.
pub const KEYRING_SERVICE: &str = "tether:tether-sim";

pub enum Store {
    Keyring(SecretService),
    File,
}

/// One user's machine: a home directory, a profile, a token store.
pub struct User {
    /// Before `home`: a keyring stops before the directory holding its files goes.
    pub store: Store,
    pub home: tempfile::TempDir,
    pub profile: PathBuf,
}

impl User {
    pub fn new(info: &ReadyInfo, keyring: bool) -> Result<User> {
        let home = tempfile::Builder::new().prefix("tether-home-").tempdir()?;
        let profile = home.path().join("sim-profile.toml");
        std::fs::write(&profile, info.profile_toml())?;
        let store = if keyring {
            Store::Keyring(SecretService::start(&home.path().join("keyring"))?)
        } else {
            Store::File
        };
        Ok(User {
            home,
            profile,
            store,
        })
    }

    /// A user of the simulator signed in with an API token (the file token store).
    pub async fn signed_in(info: &ReadyInfo, token: &str) -> Result<User> {
        let user = User::new(info, false)?;
        user.ok(&["auth:api-token-login"], Some(token)).await?;
        Ok(user)
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// The Secret Service this user's tokens live in (a user made with `keyring`).
    pub fn keyring(&self) -> Result<&SecretService> {
        match &self.store {
            Store::Keyring(s) => Ok(s),
            Store::File => bail!("this user keeps its tokens in the file store"),
        }
    }

    /// The session (its tokens) as this user's store holds it, read as another program would
    /// (`secret-tool`, or the token file).
    pub fn stored_session(&self) -> Result<serde_json::Value> {
        let stored = match &self.store {
            Store::Keyring(s) => s
                .lookup(KEYRING_SERVICE, "session")?
                .context("no session in the keyring")?,
            Store::File => {
                let file: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
                    self.session_dir().join("tokens.json"),
                )?)?;
                file["session"]
                    .as_str()
                    .context("no session in the token file")?
                    .to_string()
            }
        };
        Ok(serde_json::from_str(&stored)?)
    }

    /// One token of the stored session (`access_token`, `refresh_token`), never empty.
    pub fn stored_token(&self, name: &str) -> Result<String> {
        self.stored_session()?[name]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .with_context(|| format!("no {name} in the stored session"))
    }

    pub fn ssh_config(&self) -> PathBuf {
        self.home().join(".ssh/config")
    }

    pub fn session_dir(&self) -> PathBuf {
        self.home().join(".local/share/tether/sessions/tether-sim")
    }

    /// The serial of the session's stored certificate.
    pub fn certificate_serial(&self) -> Result<u64> {
        Ok(tether_core::cert::CertFiles::new(self.session_dir())
            .read_certificate()
            .context("no certificate")?
            .serial())
    }

    /// Waits until the certificate stored now has expired (so that the next plain `ssh` or
    /// reconnection needs another); fails with its end and the time if that does not come
    /// within 30 s.
    pub async fn until_certificate_expired(&self) -> Result<()> {
        let valid_before = tether_core::cert::CertFiles::new(self.session_dir())
            .read_certificate()
            .context("no certificate")?
            .valid_before();
        let start = std::time::Instant::now();
        loop {
            let now = unix_now();
            if now > valid_before {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(30) {
                bail!("the certificate valid before {valid_before} has not expired at {now}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `tether ARGS` with this user's environment (and nothing of the caller's session).
    pub fn tether(&self, args: &[&str]) -> Result<Command> {
        let mut cmd = Command::new(workspace_binary("tether")?);
        cmd.args(args);
        self.environment(&mut cmd);
        Ok(cmd)
    }

    /// Where this user's agents put their sockets (`$XDG_RUNTIME_DIR/tether`).
    pub fn runtime_dir(&self) -> PathBuf {
        self.home().join("run")
    }

    /// The pid of this user's running agent, from its lock file.
    pub fn agent_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.runtime_dir().join("tether").join("tether-sim.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Stops this user's agent (one `tunnel:open` started in the background) when dropped.
    pub fn agent_stopper(&self) -> AgentStopper {
        AgentStopper {
            pid_file: self.runtime_dir().join("tether").join("tether-sim.pid"),
        }
    }

    /// This user's environment, for tether and for what runs tether (ssh's `Match exec`).
    pub fn environment(&self, cmd: &mut Command) {
        cmd.env("HOME", self.home())
            .env("XDG_RUNTIME_DIR", self.runtime_dir())
            .env("TETHER_PROFILE", &self.profile)
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("XDG_DATA_HOME")
            .env_remove("TETHER_DATA_DIR")
            .env_remove("TETHER_TOKEN")
            .env_remove("TETHER_SIM_TOKEN")
            .env("NO_COLOR", "1");
        match &self.store {
            Store::Keyring(s) => {
                cmd.env("DBUS_SESSION_BUS_ADDRESS", &s.bus_address)
                    .env_remove("TETHER_TOKEN_STORE");
            }
            Store::File => {
                cmd.env("TETHER_TOKEN_STORE", "file")
                    .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent");
            }
        }
    }

    /// Runs `tether ARGS`, feeding `stdin`.
    pub async fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<Output> {
        run_tether(self.tether(args)?, args, stdin).await
    }

    /// Runs `tether ARGS` and fails unless it succeeds; returns stdout.
    pub async fn ok(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let out = self.run(args, stdin).await?;
        succeeded(args, &out)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The system `ssh` with only the `~/.ssh/config` Tether wrote (OpenSSH reads the
    /// passwd home, not $HOME, so the file is named explicitly).
    pub fn ssh(&self, destination: &str) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.arg("-F")
            .arg(self.ssh_config())
            .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"])
            .arg(destination);
        self.environment(&mut cmd);
        cmd
    }

    /// A core session over the same files the CLI uses for this user (file token store).
    pub fn core_session(&self) -> Result<tether_core::auth::Session> {
        let profile = tether_core::Profile::from_file(&self.profile)?;
        let paths = tether_core::Paths::under_home(self.home(), None);
        let store = tether_core::auth::TokenStore::File {
            path: paths.session_dir(&profile).join("tokens.json"),
        };
        Ok(tether_core::auth::Session::new(
            profile,
            store,
            paths,
            std::sync::Arc::new(tether_core::SystemClock),
            reqwest::Client::new(),
            None,
        ))
    }

    /// Every file under the home directory whose bytes contain `needle`.
    pub fn files_containing(&self, needle: &str) -> Vec<PathBuf> {
        fn walk(dir: &Path, needle: &[u8], out: &mut Vec<PathBuf>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for e in entries.flatten() {
                let p = e.path();
                match e.file_type() {
                    Ok(t) if t.is_dir() => walk(&p, needle, out),
                    Ok(t)
                        if t.is_file()
                            && std::fs::read(&p)
                                .is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle)) =>
                    {
                        out.push(p)
                    }
                    _ => {}
                }
            }
        }
        let mut out = Vec::new();
        walk(self.home(), needle.as_bytes(), &mut out);
        out
    }
}

/// A `tether login --no-browser …` that printed its sign-in URL and waits for the browser to
/// come back to it. Dropping it stops the command.
pub struct PendingLogin {
    pub url: String,
    child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>,
    seen: String,
}

impl PendingLogin {
    /// Starts `cmd`, a `tether login --no-browser …` (see [`User::start_login`]; this one for a
    /// command with an environment of its caller's), and reads the sign-in URL it prints.
    pub async fn start(cmd: Command) -> Result<PendingLogin> {
        use tokio::io::AsyncBufReadExt;
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("cannot start tether login")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        let mut seen = String::new();
        let url = loop {
            let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
                .await
                .map_err(|_| anyhow!("tether login printed no URL in 30 s: {seen}"))??
                .ok_or_else(|| anyhow!("tether login ended before printing a URL: {seen}"))?;
            seen.push_str(&line);
            seen.push('\n');
            if let Some(u) = line
                .split_whitespace()
                .find(|w| w.contains("/oauth2/authorize?"))
            {
                break u.to_string();
            }
        };
        Ok(PendingLogin {
            url,
            child,
            lines,
            seen,
        })
    }

    /// Waits for `tether login` to finish, with everything it printed.
    pub async fn finish(mut self) -> Result<Output> {
        let lines = &mut self.lines;
        let seen = &mut self.seen;
        let rest = async {
            while let Ok(Some(line)) = lines.next_line().await {
                seen.push_str(&line);
                seen.push('\n');
            }
        };
        let (status, _) = tokio::time::timeout(Duration::from_secs(60), async {
            tokio::join!(self.child.wait(), rest)
        })
        .await
        .map_err(|_| anyhow!("tether login did not finish after the browser came back"))?;
        let mut stdout = Vec::new();
        if let Some(mut out) = self.child.stdout.take() {
            use tokio::io::AsyncReadExt;
            out.read_to_end(&mut stdout).await?;
        }
        Ok(Output {
            status: status?,
            stdout,
            stderr: std::mem::take(&mut self.seen).into_bytes(),
        })
    }
}

impl User {
    /// Starts `tether login --no-browser --timeout 90 EXTRA…` and reads the sign-in URL it
    /// prints.
    pub async fn start_login(&self, extra: &[&str]) -> Result<PendingLogin> {
        let mut args = vec!["login", "--no-browser", "--timeout", "90"];
        args.extend_from_slice(extra);
        PendingLogin::start(self.tether(&args)?).await
    }

    /// `tether login --no-browser …`, with a real browser signing in at the URL it prints.
    pub async fn browser_login(
        &self,
        browser: &crate::webdriver::WebDriver,
        username: &str,
        password: &str,
        totp_secret: Option<&str>,
        extra: &[&str],
    ) -> Result<Output> {
        let pending = self.start_login(extra).await?;
        crate::webdriver::sign_in(browser, &pending.url, username, password, totp_secret).await?;
        pending.finish().await
    }

    /// `tether login --no-browser` with a Chromium of its own, quit afterwards; fails with what
    /// the command printed unless it signs in. Returns that output.
    pub async fn sign_in_with_chromium(
        &self,
        username: &str,
        password: &str,
        totp_secret: Option<&str>,
    ) -> Result<Output> {
        let browser = crate::webdriver::Chromium::start().await?;
        let out = self
            .browser_login(&browser.driver, username, password, totp_secret, &[])
            .await?;
        browser.driver.quit().await?;
        if !out.status.success() {
            bail!(
                "tether login failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(out)
    }
}

/// Sends SIGTERM to the agent whose pid its lock file records, when dropped: a headless agent
/// started by a test must not outlive it, even when the test fails.
pub struct AgentStopper {
    pid_file: PathBuf,
}

impl Drop for AgentStopper {
    fn drop(&mut self) {
        stop_agent(&self.pid_file);
    }
}

/// Sends SIGTERM to the agent whose pid `pid_file` records, if it still runs.
fn stop_agent(pid_file: &Path) {
    if let Some(pid) = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        // The lock file outlives its agent: never signal a process that reused the pid.
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("tether"))
        })
    {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// A user's agent ends with the user, before their home (and the agent's pid file) goes,
/// whatever order a test drops things in.
impl Drop for User {
    fn drop(&mut self) {
        stop_agent(&self.runtime_dir().join("tether").join("tether-sim.pid"));
    }
}

/// Runs `cmd`, a `tether ARGS` from [`User::tether`] that a suite may have given more
/// variables or another directory, with `stdin` fed then closed; fails if it does not finish
/// in 120 s.
pub async fn run_tether(cmd: Command, args: &[&str], stdin: Option<&str>) -> Result<Output> {
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().context("cannot start tether")?;
    if let Some(mut pipe) = child.stdin.take() {
        use tokio::io::AsyncWriteExt;
        if let Some(input) = stdin {
            pipe.write_all(input.as_bytes()).await?;
        }
    }
    tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .map_err(|_| anyhow!("tether {args:?} did not finish in 120 s"))?
        .context("tether failed to run")
}

/// Fails unless `tether ARGS` succeeded, with its status, stdout and stderr in the error.
pub fn succeeded(args: &[&str], out: &Output) -> Result<()> {
    if !out.status.success() {
        bail!(
            "tether {args:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Seconds since the Unix epoch, by the wall clock.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl User {
    /// Runs `tether ARGS` on a terminal of its own (through `script`), as a person at a
    /// terminal would: each `(shown, typed)` of `script` types `typed` once the terminal has
    /// shown `shown` (in order, each after the one before). Returns the exit status and
    /// everything the terminal showed; fails after 60 s with what it showed.
    pub async fn at_a_terminal(
        &self,
        args: &[&str],
        script: &[(&str, &str)],
    ) -> Result<(std::process::ExitStatus, String)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let tether = workspace_binary("tether")?;
        let line = std::iter::once(tether.display().to_string())
            .chain(args.iter().map(|a| a.to_string()))
            .map(|a| format!("'{a}'"))
            .collect::<Vec<_>>()
            .join(" ");
        let mut cmd = Command::new("script");
        cmd.args(["-qefc", &line, "/dev/null"]);
        self.environment(&mut cmd);
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd.spawn()?;
        let mut stdin = child.stdin.take().context("no stdin")?;
        let mut stdout = child.stdout.take().context("no stdout")?;
        let mut shown = Vec::new();
        let run = async {
            let mut script = script.iter();
            let mut next = script.next();
            // Where the next prompt is looked for: after the last one answered.
            let mut from = 0;
            let mut buf = [0u8; 4096];
            loop {
                let n = stdout.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                shown.extend_from_slice(&buf[..n]);
                while let Some((prompt, typed)) = next {
                    let seen = String::from_utf8_lossy(&shown[from..]).into_owned();
                    let Some(at) = seen.find(prompt) else { break };
                    from += at + prompt.len();
                    stdin.write_all(typed.as_bytes()).await?;
                    next = script.next();
                }
            }
            drop(stdin);
            Ok::<_, anyhow::Error>(child.wait().await?)
        };
        let status = tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .with_context(|| {
                format!(
                    "not finished in 60 s; the terminal showed:\n{}",
                    String::from_utf8_lossy(&shown)
                )
            })??;
        Ok((status, String::from_utf8_lossy(&shown).into_owned()))
    }
}

/// The user's browser (`$BROWSER`, or a command's `--browser`): a script that writes down each
/// address it is given, one a line.
pub struct BrowserStub {
    script: PathBuf,
    opened: PathBuf,
}

impl BrowserStub {
    /// The script `DIR/NAME.sh`, writing to `DIR/NAME-opened`.
    pub fn new(dir: &Path, name: &str) -> Result<BrowserStub> {
        let opened = dir.join(format!("{name}-opened"));
        let script = dir.join(format!("{name}.sh"));
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$1\" >> '{}'\n",
                opened.display()
            ),
        )?;
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        Ok(BrowserStub { script, opened })
    }

    /// The script's path, for `BROWSER` or `--browser`.
    pub fn path(&self) -> &str {
        self.script.to_str().unwrap_or_default()
    }

    /// The addresses opened so far.
    pub fn opened(&self) -> Vec<String> {
        std::fs::read_to_string(&self.opened)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The addresses opened, once there are `n` (within 20 s).
    pub async fn wait_for(&self, n: usize) -> Result<Vec<String>> {
        let start = std::time::Instant::now();
        loop {
            let opened = self.opened();
            if opened.len() >= n {
                return Ok(opened);
            }
            if start.elapsed() >= Duration::from_secs(20) {
                bail!("the browser was given {opened:?}, not {n} addresses, in 20 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
