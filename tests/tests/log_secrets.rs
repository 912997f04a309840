//! The log at its most verbose (`TETHER_LOG=trace`) never shows a secret. Two whole sessions,
//! from sign-in to sign-out: one opened with an API token (the token, access and refresh
//! tokens, the session's private key), and one opened in a real browser and kept by the agent
//! (the authorization code, the PKCE verifier and the `state` of the sign-in, every refresh token
//! the agent used, and a relationship's password, both as the platform sends it and carried
//! through a tunnel). Every command's stderr and every log file under the home directory (the
//! agent's among them) are searched; stdout is not, since printing a tunnel's URL with its
//! credentials is what `tunnel:list` is asked to do.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use tether_e2e::cli::{PendingLogin, User};
use tether_e2e::echo::echo_server;
use tether_e2e::secrets::{key_lines, token_secrets};
use tether_e2e::*;
use tether_sim::{Fixture, Sim, SimOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// What Tether logged during a test, by where it came from: each command's stderr, each log
/// file.
#[derive(Default)]
struct Logs(Vec<(String, String)>);

impl Logs {
    fn add(&mut self, source: impl Into<String>, log: impl Into<String>) {
        self.0.push((source.into(), log.into()));
    }

    /// Runs `cmd` (a tether command, or what runs one) logging at trace level; keeps its stderr
    /// and returns its stdout, failing unless it succeeds.
    async fn run(&mut self, what: &str, mut cmd: Command, stdin: Option<&str>) -> Result<String> {
        cmd.env("TETHER_LOG", "trace");
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().with_context(|| format!("cannot run {what}"))?;
        if let Some(mut pipe) = child.stdin.take() {
            pipe.write_all(stdin.unwrap_or_default().as_bytes()).await?;
        }
        let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .with_context(|| format!("{what} did not finish in 120 s"))??;
        self.add(what, text(&out.stderr));
        if !out.status.success() {
            bail!("{what} failed ({}):\n{}", out.status, text(&out.stderr));
        }
        Ok(text(&out.stdout))
    }

    async fn tether(&mut self, user: &User, args: &[&str], stdin: Option<&str>) -> Result<String> {
        self.run(&format!("tether {args:?}"), user.tether(args)?, stdin)
            .await
    }

    /// Adds every `*.log` file under `dir` (the agent's log among them).
    fn add_log_files(&mut self, dir: &std::path::Path) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                self.add_log_files(&p);
            } else if p.extension().is_some_and(|x| x == "log") {
                let log = std::fs::read_to_string(&p).unwrap_or_default();
                self.add(p.display().to_string(), log);
            }
        }
    }

    /// Fails if the logs say little at trace level, or if any of them holds a secret (named by
    /// what it is), with the lines that hold it.
    fn assert_no_secret(&self, secrets: &[(&str, String)]) -> Result<()> {
        let all: usize = self.0.iter().map(|(_, log)| log.len()).sum();
        ensure!(
            self.0.iter().any(|(_, log)| log.contains(" TRACE ")),
            "nothing was logged at trace level ({all} bytes of logs): the search below would \
             prove nothing"
        );
        for (what, secret) in secrets {
            ensure!(
                secret.len() >= 16,
                "{what} is not a secret worth searching for: {secret:?}"
            );
            for (source, log) in &self.0 {
                let lines: Vec<&str> = log.lines().filter(|l| l.contains(secret)).collect();
                ensure!(
                    lines.is_empty(),
                    "{what} reached the log of {source}:\n{}",
                    lines.join("\n")
                );
            }
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_token_session_logged_at_trace_level_shows_no_secret() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let user = User::new(&sim.info, false)?;
    let mut logs = Logs::default();
    logs.tether(&user, &["auth:api-token-login"], Some(ALICE_TOKEN))
        .await?;
    logs.tether(&user, &["auth:info"], None).await?;
    logs.tether(&user, &["ssh-cert:load", "--new"], None)
        .await?;
    logs.tether(&user, &["projects"], None).await?;
    logs.tether(
        &user,
        &[
            "ssh",
            "-p",
            "rjify4yjcwxaa",
            "-e",
            "main",
            "-A",
            "web",
            "--",
            "true",
        ],
        None,
    )
    .await?;
    // The secrets of this session, read from where Tether keeps them.
    let session = user.stored_session()?;
    let access = user.stored_token("access_token")?;
    ensure!(access.len() > 100, "a JWT: {access}");
    let mut secrets = vec![("the API token", ALICE_TOKEN.to_string())];
    secrets.extend(token_secrets("the access token", &access));
    if let Some(refresh) = session["refresh_token"].as_str() {
        secrets.extend(token_secrets("the refresh token", refresh));
    }
    secrets.extend(key_lines(&user)?);
    logs.tether(&user, &["logout"], None).await?;
    logs.add_log_files(user.home());
    logs.assert_no_secret(&secrets)
}

/// A platform with Alice (password only), and an app whose database relationship has a
/// password of this test's, served by `echo`.
fn fixture(echo: std::net::SocketAddr, password: &str) -> Result<Fixture> {
    tether_e2e::echo::database_on_echo_fixture(
        echo,
        password,
        "01HZX3LOGS000000000000000",
        "logs",
        "Logs",
        "logsproj1",
    )
}

const APP: [&str; 6] = ["-p", "logsproj1", "-e", "dev", "-A", "app"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_session_kept_by_the_agent_with_a_tunnel_logged_at_trace_level_shows_no_secret(
) -> Result<()> {
    let password = format!("relpw-{:032x}", rand::random::<u128>());
    let (echo, _) = echo_server().await?;
    // Renewals every 3 s, each refreshing the access token first (it is shorter than the
    // refresh margin): the agent uses, and logs around, one refresh token after another.
    let sim = Sim::start(
        fixture(echo, &password)?,
        SimOptions {
            certificate_lifetime: Duration::from_secs(4),
            access_token_lifetime: Duration::from_secs(30),
            ..SimOptions::default()
        },
    )
    .await?;
    let user = User::new(&sim.info, false)?;
    let mut logs = Logs::default();

    // The browser sign-in's stderr is searched like any other, but for the URL it prints for
    // the person to open, which carries the `state` by design.
    let mut login = user.tether(&["login", "--no-browser", "--timeout", "90"])?;
    login.env("TETHER_LOG", "trace");
    let pending = PendingLogin::start(login).await?;
    let printed = format!("  {}\n", pending.url);
    let url = url::Url::parse(&pending.url)?;
    let state = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .context("no state in the sign-in URL")?;
    {
        let browser = tether_e2e::webdriver::Chromium::start().await?;
        tether_e2e::webdriver::sign_in(
            &browser.driver,
            url.as_str(),
            "alice",
            ALICE_PASSWORD,
            None,
        )
        .await?;
        let out = pending.finish().await?;
        let shown = text(&out.stderr).replace(&printed, "");
        ensure!(out.status.success(), "tether login failed:\n{shown}");
        ensure!(
            shown.contains(" TRACE "),
            "the sign-in logged nothing at trace level:\n{shown}"
        );
        logs.add("tether login", shown);
        browser.driver.quit().await?;
    }
    let redeemed = sim.redeemed_codes();
    ensure!(redeemed.len() == 1, "one code exchanged: {redeemed:?}");
    let mut secrets = vec![
        ("the sign-in's state", state),
        ("the authorization code", redeemed[0].code.clone()),
        ("the PKCE verifier", redeemed[0].verifier.clone()),
        ("the relationship's password", password.clone()),
    ];
    let first_refresh = user.stored_token("refresh_token")?;
    secrets.extend(token_secrets("the sign-in's refresh token", &first_refresh));
    secrets.extend(token_secrets(
        "the sign-in's access token",
        &user.stored_token("access_token")?,
    ));

    // The agent keeps the session, logging at trace level to its file (and its stderr).
    let agent_stderr = user.home().join("agent-stderr.txt");
    let mut agent = user.tether(&["agent"])?;
    agent
        .env("TETHER_LOG", "trace")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&agent_stderr)?);
    let mut agent = tokio::process::Command::from(agent)
        .kill_on_drop(true)
        .spawn()?;
    let start = std::time::Instant::now();
    while !user.run(&["agent:status"], None).await?.status.success() {
        if let Some(status) = agent.try_wait()? {
            bail!(
                "tether agent exited ({status}):\n{}",
                std::fs::read_to_string(&agent_stderr)?
            );
        }
        ensure!(
            start.elapsed() < Duration::from_secs(10),
            "tether agent did not answer in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A tunnel to the database: the relationships (with the password) come over SSH, and a
    // client sends the password through the tunnel, as a database client logging in does.
    logs.tether(&user, &[&["tunnel:open"][..], &APP].concat(), None)
        .await?;
    let listed: serde_json::Value = serde_json::from_str(
        &logs
            .tether(&user, &["tunnel:list", "--format", "json"], None)
            .await?,
    )?;
    let port = listed[0]["local"]
        .as_str()
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        .with_context(|| format!("no tunnel: {listed}"))?
        .port();
    let login_line = format!("PASS main {password}\r\n");
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    conn.write_all(login_line.as_bytes()).await?;
    let mut back = vec![0u8; login_line.len()];
    tokio::time::timeout(Duration::from_secs(10), conn.read_exact(&mut back)).await??;
    ensure!(back == login_line.as_bytes(), "the tunnel carried it");
    drop(conn);
    // The relationships variable as the app sees it (base64 JSON with the password).
    let variable = logs
        .tether(
            &user,
            &[&["ssh"][..], &APP, &["--", "echo $PLATFORM_RELATIONSHIPS"]].concat(),
            None,
        )
        .await?;
    secrets.push(("the relationships variable", variable.trim().to_string()));

    // With no command running, the agent renews on its own, refreshing with one refresh token
    // after another (the commands above refreshed too).
    secrets.extend(token_secrets(
        "a refresh token a command got",
        &user.stored_token("refresh_token")?,
    ));
    let start = std::time::Instant::now();
    let mut seen = vec![user.stored_token("refresh_token")?];
    while seen.len() < 3 {
        let now = user.stored_token("refresh_token")?;
        if !seen.contains(&now) {
            seen.push(now);
        }
        ensure!(
            start.elapsed() < Duration::from_secs(30),
            "the agent did not refresh twice in 30 s: refresh tokens {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for t in &seen[1..] {
        secrets.extend(token_secrets("a refresh token the agent got", t));
    }
    secrets.extend(token_secrets(
        "an access token the agent got",
        &user.stored_token("access_token")?,
    ));
    secrets.extend(key_lines(&user)?);

    // Plain ssh through the written config, its hook logging at trace level too.
    logs.tether(&user, &["config:ssh", "--write"], None).await?;
    let mut plain = user.ssh("logsproj1-dev-abcdefg--app@ssh.eu-3.tether.test");
    plain.arg("true");
    logs.run("plain ssh", plain, None).await?;

    logs.tether(&user, &["logout"], None).await?;
    logs.tether(&user, &["agent:stop"], None).await?;
    tokio::time::timeout(Duration::from_secs(20), agent.wait()).await??;
    let agent_log = user
        .home()
        .join(".local/share/tether/logs/agent-tether-sim.log");
    let written = std::fs::read_to_string(&agent_log)
        .with_context(|| format!("the agent's log {}", agent_log.display()))?;
    ensure!(
        written.contains(" TRACE "),
        "the agent logged nothing at trace level:\n{written}"
    );
    logs.add(
        "the agent's stderr",
        std::fs::read_to_string(&agent_stderr)?,
    );
    logs.add_log_files(user.home());
    logs.assert_no_secret(&secrets)
}
