//! The agent as users run it, `tether agent`, with the real binaries: it keeps plain `ssh`
//! working across certificate renewals without any tether command in between, open sessions
//! and forwarded connections survive every renewal, and it signs out after the inactivity
//! limit. Without an agent, the `Match exec` hook renews an expired certificate before plain
//! `ssh` and `rsync`. Both keep their tokens in the real Secret Service (gnome-keyring on a bus
//! of the test's own) in one test each. The control socket is private, single and robust
//! against bad clients. Inactivity is tested by dating the shared activity record back, not by
//! waiting for it.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tether_e2e::cli::{User, KEYRING_SERVICE};
use tether_e2e::*;
use tether_sim::SimOptions;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::UnixStream;
use tokio::process::{Child, ChildStdout};

const APP_HOST: &str = "jyu7waly36ncj-main-7rqtwti--app@ssh.eu-3.tether.test";
/// A tunnel to the demo app's Redis.
fn open_redis() -> Vec<&'static str> {
    [&["tunnel:open"][..], &DEMO_REDIS[..]].concat()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `tether agent ARGS` in the background, once its socket answers.
async fn start_agent(user: &User, args: &[&str]) -> Result<Child> {
    let mut all = vec!["agent"];
    all.extend_from_slice(args);
    let mut cmd = tokio::process::Command::from(user.tether(&all)?);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd.spawn().context("cannot start tether agent")?;
    for _ in 0..100 {
        if let Some(status) = child.try_wait()? {
            bail!("tether agent exited at once ({status})");
        }
        if user.run(&["agent:status"], None).await?.status.success() {
            return Ok(child);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("tether agent did not answer in 10 s")
}

/// `tether events --format json`, read line by line.
struct Events {
    home: std::path::PathBuf,
    _child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Events {
    async fn start(user: &User) -> Result<Events> {
        let mut cmd = tokio::process::Command::from(user.tether(&["events", "--format", "json"])?);
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd.spawn()?;
        let lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
        Ok(Events {
            home: user.home().to_path_buf(),
            _child: child,
            lines,
        })
    }

    async fn next(&mut self, timeout: Duration) -> Result<serde_json::Value> {
        let line = tokio::time::timeout(timeout, self.lines.next_line())
            .await
            .context("no event in time")??
            .context("tether events ended")?;
        Ok(serde_json::from_str(&line)?)
    }
}

async fn redis_ping(conn: &mut tokio::net::TcpStream) -> Result<String> {
    conn.write_all(b"PING\r\n").await?;
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf)).await??;
    Ok(String::from_utf8_lossy(&buf[..n]).trim().to_string())
}

/// Dates the activity record every Tether process of the profile shares back to `ago` before
/// now: the session has been idle that long, without the test waiting for it.
fn idle_for(user: &User, ago: Duration) -> Result<()> {
    let then = tether_e2e::cli::unix_now() - ago.as_secs();
    std::fs::write(
        user.session_dir().join("last-activity"),
        format!("{then}\n"),
    )?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_keeps_plain_ssh_working_and_signs_out_when_idle() -> Result<()> {
    let redis = Redis::start()?;
    let mut options = SimOptions {
        certificate_lifetime: Duration::from_secs(4),
        ..SimOptions::default()
    };
    backend(&mut options, "redis", redis.port);
    let sim = demo_sim(options).await?;
    let user = User::new(&sim.info, false)?;
    user.ok(&["auth:api-token-login"], Some(ALICE_TOKEN))
        .await?;
    user.ok(&["config:ssh", "--write"], None).await?;
    let _agent = start_agent(&user, &["--inactivity-limit", "30s"]).await?;
    // A tunnel, opened before anyone listens to events: the sign-out after inactivity closes it.
    user.ok(&open_redis(), None).await?;
    let tunnels = tunnel_ports(&user).await?;
    assert_eq!(tunnels.len(), 1, "{tunnels:?}");
    let mut events = Events::start(&user).await?;

    // A long session and a forwarded connection, both opened with the first certificate.
    let mut long = user.ssh(APP_HOST);
    long.arg("for i in $(seq 1 40); do echo tick $i; sleep 0.25; done");
    let mut long = tokio::process::Command::from(long);
    long.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut long = long.spawn()?;
    let mut ticks = BufReader::new(long.stdout.take().context("stdout")?).lines();
    let (_forward, local) = spawn_on_free_port("ssh -L", Duration::from_secs(15), |local| {
        let mut forward = user.ssh(APP_HOST);
        forward
            .args(["-N", "-o", "ExitOnForwardFailure=yes", "-L"])
            .arg(format!("127.0.0.1:{local}:rediscache.internal:6379"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Ok(forward)
    })?;
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", local)).await?;
    assert_eq!(redis_ping(&mut conn).await?, "+PONG");

    // The agent renews on its own; plain ssh through the written config works after each
    // renewal, and the connections opened before keep working.
    let mut serials = vec![user.certificate_serial()?];
    while serials.len() < 4 {
        let event = events.next(Duration::from_secs(15)).await?;
        match event["event"].as_str() {
            Some("renewed") => {
                assert!(event["valid_before"].as_u64().is_some(), "{event}");
                serials.push(user.certificate_serial()?);
                assert_eq!(redis_ping(&mut conn).await?, "+PONG");
                let mut plain = user.ssh(APP_HOST);
                plain.arg("echo plain");
                let out = run_async(plain).await?;
                assert_eq!(text(&out.stdout).trim(), "plain", "{}", text(&out.stderr));
            }
            _ => bail!("unexpected event while renewing: {event}"),
        }
    }
    serials.dedup();
    assert!(
        serials.len() >= 4,
        "three renewals, each a new certificate: {serials:?}"
    );
    let mut last = String::new();
    while let Some(line) =
        tokio::time::timeout(Duration::from_secs(20), ticks.next_line()).await??
    {
        last = line;
    }
    assert_eq!(
        last, "tick 40",
        "the long session ran to its end across renewals"
    );
    assert!(long.wait().await?.success());
    assert_eq!(redis_ping(&mut conn).await?, "+PONG");

    // Nobody uses the session any more: after 30 s the agent signs out and says why.
    let signed_out = loop {
        let event = events.next(Duration::from_secs(60)).await?;
        match event["event"].as_str() {
            Some("renewed") => continue,
            _ => break event,
        }
    };
    assert_eq!(signed_out["event"], "signed_out", "{signed_out}");
    assert!(
        signed_out["reason"]
            .as_str()
            .is_some_and(|r| r.contains("without activity")),
        "{signed_out}"
    );
    let status: serde_json::Value =
        serde_json::from_str(&user.ok(&["agent:status", "--format", "json"], None).await?)?;
    assert_eq!(status["session"], "signed_out", "{status}");
    // The tunnel closed with the session: announced so, and its port is free.
    let closed = events.next(Duration::from_secs(10)).await?;
    assert_eq!(closed["event"], "tunnel", "{closed}");
    assert_eq!(closed["state"], "closed (signed out)", "{closed}");
    assert!(tunnel_ports(&user).await?.is_empty());
    let agent = user.agent_pid().context("no agent")?;
    assert!(
        !listening_ports(agent)?.contains(&tunnels["rediscache"]),
        "the tunnel's port is still held by the agent after the idle sign-out"
    );
    // Plain ssh no longer gets in: the key and certificate went with the session.
    let mut plain = user.ssh(APP_HOST);
    plain.arg("echo plain");
    let out = run_async(plain).await?;
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let out = user.run(&["auth:info"], None).await?;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("without activity"),
        "{}",
        text(&out.stderr)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_agent_the_ssh_hook_renews_an_expired_certificate_from_the_keyring() -> Result<()>
{
    // Access tokens shorter than the refresh margin: each renewal by the hook first exchanges
    // the API token the keyring holds for a new access token, and stores that there.
    let sim = demo_sim(SimOptions {
        certificate_lifetime: Duration::from_secs(4),
        access_token_lifetime: Duration::from_secs(30),
        ..SimOptions::default()
    })
    .await?;
    let user = User::new(&sim.info, true)?;
    user.ok(&["auth:api-token-login"], Some(ALICE_TOKEN))
        .await?;
    user.ok(&["config:ssh", "--write"], None).await?;
    assert!(!user.session_dir().join("tokens.json").exists());

    // On a fresh certificate the hook says nothing and succeeds.
    let out = user
        .run(&["ssh-cert:load", "--refresh-only", "--quiet"], None)
        .await?;
    assert!(out.status.success());
    assert_eq!(
        (text(&out.stdout), text(&out.stderr)),
        (String::new(), String::new())
    );

    for round in 0..2 {
        let before = user.certificate_serial()?;
        let access_before = user.stored_token("access_token")?;
        user.until_certificate_expired().await?;
        let mut ssh = user.ssh(APP_HOST);
        ssh.arg("echo hooked");
        let out = run_async(ssh).await?;
        assert_eq!(
            text(&out.stdout).trim(),
            "hooked",
            "round {round}: {}",
            text(&out.stderr)
        );
        assert_ne!(
            user.certificate_serial()?,
            before,
            "the hook loaded a new certificate"
        );
        assert_ne!(
            user.stored_token("access_token")?,
            access_before,
            "round {round}: the hook renewed with the API token from the keyring and stored the \
             new access token there"
        );
    }

    user.until_certificate_expired().await?;
    let file = user.home().join("notes.txt");
    std::fs::write(&file, "synced after expiry\n")?;
    let mut rsync = std::process::Command::new("rsync");
    rsync
        .arg("-a")
        .arg("-e")
        .arg(format!(
            "ssh -F {} -o BatchMode=yes",
            user.ssh_config().display()
        ))
        .arg(&file)
        .arg(format!("{APP_HOST}:synced.txt"));
    user.environment(&mut rsync);
    let out = run_async(rsync).await?;
    assert!(out.status.success(), "rsync: {}", text(&out.stderr));
    // No token ever reached a file.
    let access = user.stored_token("access_token")?;
    for secret in [ALICE_TOKEN, access.as_str()] {
        assert_eq!(
            user.files_containing(secret),
            Vec::<std::path::PathBuf>::new()
        );
    }

    // Without an agent the inactivity limit still holds, and it is the session's (recorded as
    // it signed in), not the command's: the next command after it ends the session and asks
    // to sign in again.
    let mut login = user.tether(&["auth:api-token-login"])?;
    login
        .env("TETHER_INACTIVITY_LIMIT", "10m")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut login = tokio::process::Command::from(login).spawn()?;
    login
        .stdin
        .take()
        .context("stdin")?
        .write_all(ALICE_TOKEN.as_bytes())
        .await?;
    assert!(login.wait().await?.success());
    idle_for(&user, Duration::from_secs(3600))?;
    let out = user.run(&["ssh-cert:load"], None).await?;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("without activity"),
        "{}",
        text(&out.stderr)
    );
    assert!(!user.session_dir().join("id_ed25519-cert.pub").exists());
    // The session ended here forgets the API token that opened it, as a sign-out does: the
    // keyring holds nothing of it any more.
    let left = user.keyring()?.items(KEYRING_SERVICE)?;
    assert!(left.trim().is_empty(), "left in the keyring:\n{left}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_renews_with_the_refresh_token_in_the_keyring_and_sign_out_empties_it(
) -> Result<()> {
    // Renewals every 3 s, each refreshing the access token first (it is shorter than the
    // refresh margin) with the refresh token the keyring holds; refresh tokens rotate.
    let redis = Redis::start()?;
    let mut options = SimOptions {
        certificate_lifetime: Duration::from_secs(4),
        access_token_lifetime: Duration::from_secs(30),
        ..SimOptions::default()
    };
    backend(&mut options, "redis", redis.port);
    let sim = demo_sim(options).await?;
    let user = User::new(&sim.info, true)?;
    user.sign_in_with_chromium("alice", ALICE_PASSWORD, Some(ALICE_TOTP))
        .await?;
    user.ok(&["config:ssh", "--write"], None).await?;
    // The sign-in left its refresh token in the keyring, and nowhere on disk.
    let signed_in = user.stored_token("refresh_token")?;
    assert!(!user.session_dir().join("tokens.json").exists());
    assert_eq!(
        user.files_containing(&signed_in),
        Vec::<std::path::PathBuf>::new()
    );

    let _agent = start_agent(&user, &[]).await?;
    let mut events = Events::start(&user).await?;
    user.ok(&open_redis(), None).await?;
    let tunnels = tunnel_ports(&user).await?;
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", tunnels["rediscache"])).await?;

    // The agent renews with what the keyring holds and puts each new refresh token back (the
    // sign-in's came from another process and lived only there). No command refreshes
    // meanwhile: plain ssh's hook takes its fast path on the fresh certificates.
    let mut refresh_tokens = vec![user.stored_token("refresh_token")?];
    for _ in 0..6 {
        if refresh_tokens.len() == 3 {
            break;
        }
        until(&mut events, Duration::from_secs(30), |e| {
            e["event"] == "renewed"
        })
        .await?;
        let now = user.stored_token("refresh_token")?;
        if refresh_tokens.last() != Some(&now) {
            refresh_tokens.push(now);
        }
        assert_eq!(redis_ping(&mut conn).await?, "+PONG");
        let mut plain = user.ssh(APP_HOST);
        plain.arg("echo plain");
        let out = run_async(plain).await?;
        assert_eq!(text(&out.stdout).trim(), "plain", "{}", text(&out.stderr));
    }
    assert_eq!(
        refresh_tokens.len(),
        3,
        "within six renewals, two new refresh tokens in the keyring"
    );
    for t in refresh_tokens.iter().chain([&signed_in]) {
        assert_eq!(user.files_containing(t), Vec::<std::path::PathBuf>::new());
    }

    // Signing out (handed to the agent) empties the keyring and closes the tunnel.
    user.ok(&["logout"], None).await?;
    let left = user.keyring()?.items(KEYRING_SERVICE)?;
    assert!(left.trim().is_empty(), "left in the keyring:\n{left}");
    let status: serde_json::Value =
        serde_json::from_str(&user.ok(&["agent:status", "--format", "json"], None).await?)?;
    assert_eq!(status["session"], "signed_out", "{status}");
    assert!(tunnel_ports(&user).await?.is_empty());
    // The platform no longer takes the last refresh token.
    let resp = http()
        .post(format!("{}/oauth2/token", sim.info.auth_url))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_tokens[2].as_str()),
            ("client_id", "tether"),
        ])
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 400);
    Ok(())
}

/// One request line on a fresh connection; the reply line.
async fn exchange(socket: &Path, request: &[u8], close_after: bool) -> Result<String> {
    let mut conn = UnixStream::connect(socket).await?;
    conn.write_all(request).await?;
    if close_after {
        conn.shutdown().await?;
    }
    let mut lines = BufReader::new(conn).lines();
    Ok(
        tokio::time::timeout(Duration::from_secs(5), lines.next_line())
            .await??
            .unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_socket_is_private_single_and_robust() -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let sim = demo_sim(SimOptions::default()).await?;
    let user = User::new(&sim.info, false)?;
    let mut first = start_agent(&user, &[]).await?;
    let dir = user.runtime_dir().join("tether");
    let socket = dir.join("tether-sim.sock");
    let mode = |p: &Path| -> Result<u32> { Ok(std::fs::metadata(p)?.permissions().mode() & 0o777) };
    assert_eq!(mode(&dir)?, 0o700);
    assert_eq!(mode(&socket)?, 0o600);
    // Every file the agent writes is its user's alone: the pid file and the log too.
    assert_eq!(mode(&dir.join("tether-sim.pid"))?, 0o600);
    let log = user
        .home()
        .join(".local/share/tether/logs/agent-tether-sim.log");
    assert_eq!(mode(&log)?, 0o600, "{}", log.display());

    // Connections that say nothing cannot hold every slot: the agent closes them, and answers
    // the next command.
    let mut idle = Vec::new();
    for _ in 0..70 {
        idle.push(UnixStream::connect(&socket).await?);
    }
    let started = std::time::Instant::now();
    let out = user.run(&["agent:status"], None).await?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "agent:status took {:?} behind idle connections",
        started.elapsed()
    );
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(10), idle[0].read(&mut buf)).await??;
    assert_eq!(n, 0, "the agent closed the idle connection");
    drop(idle);

    // A second agent for the same profile refuses and names the running one.
    let out = user.run(&["agent"], None).await?;
    assert!(!out.status.success());
    let pid = first.id().context("no pid")?;
    assert!(
        text(&out.stderr).contains("already running")
            && text(&out.stderr).contains(&format!("pid {pid}")),
        "{}",
        text(&out.stderr)
    );

    // Bad requests get an error reply; the connection (or the agent) goes on serving.
    let mut conn = BufReader::new(UnixStream::connect(&socket).await?);
    conn.get_mut()
        .write_all(b"hello\n{\"v\":1,\"op\":\"status\"}\n")
        .await?;
    let mut line = String::new();
    conn.read_line(&mut line).await?;
    assert!(line.contains("\"code\":\"protocol\""), "{line}");
    line.clear();
    conn.read_line(&mut line).await?;
    assert!(line.contains("\"reply\":\"status\""), "{line}");
    let reply = exchange(&socket, b"{\"v\":99,\"op\":\"status\"}\n", false).await?;
    assert!(reply.contains("protocol 99"), "{reply}");
    let reply = exchange(&socket, b"{\"v\":1,\"op\":\"stat", true).await?;
    assert!(reply.contains("ended before its newline"), "{reply}");
    let reply = exchange(&socket, &vec![b'x'; 100 * 1024], false).await?;
    assert!(reply.contains("longer than"), "{reply}");
    let reply = exchange(&socket, b"{\"v\":1,\"op\":\"status\"}\n", false).await?;
    assert!(reply.contains(&format!("\"pid\":{pid}")), "{reply}");

    // Another user is refused: by the directory's mode, and, were that loosened, by the
    // agent's own check of the peer's uid. Never skipped: it takes root to be another user,
    // and the suite runs as root (as CI does; the namespace suites need it too).
    assert!(
        is_root(),
        "the peer-uid check runs a command as another user, which needs root: run make test as root"
    );
    {
        let other = tempfile::Builder::new().prefix("tether-other-").tempdir()?;
        std::fs::set_permissions(other.path(), std::fs::Permissions::from_mode(0o755))?;
        let bin = other.path().join("tether");
        std::fs::copy(tether_e2e::cli::workspace_binary("tether")?, &bin)?;
        let profile = other.path().join("profile.toml");
        std::fs::copy(&user.profile, &profile)?;
        std::fs::set_permissions(&profile, std::fs::Permissions::from_mode(0o644))?;
        let as_nobody = || {
            let mut cmd = std::process::Command::new("setpriv");
            cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(&bin)
                .args(["agent:status", "--profile"])
                .arg(&profile)
                .env("HOME", other.path())
                .env("XDG_RUNTIME_DIR", user.runtime_dir())
                .env("TETHER_TOKEN_STORE", "file");
            cmd
        };
        let out = run_async(as_nobody()).await?;
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains("ermission denied"),
            "{}",
            text(&out.stderr)
        );
        for p in [user.home(), &user.runtime_dir(), &dir] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o711))?;
        }
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666))?;
        let out = run_async(as_nobody()).await?;
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains("serves only uid 0"),
            "{}",
            text(&out.stderr)
        );
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    }

    // A killed agent leaves its socket behind; the next agent replaces it.
    first.start_kill()?;
    first.wait().await?;
    assert!(socket.exists());
    let second = start_agent(&user, &[]).await?;
    let reply = exchange(&socket, b"{\"v\":1,\"op\":\"status\"}\n", false).await?;
    assert!(
        reply.contains(&format!("\"pid\":{}", second.id().context("no pid")?)),
        "{reply}"
    );
    Ok(())
}

/// The agent logs under `home`, for a failure's message.
fn walk_logs(home: &Path) -> String {
    let mut out = String::new();
    let mut dirs = vec![home.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "log") {
                out += &format!(
                    "--- {}\n{}",
                    p.display(),
                    std::fs::read_to_string(&p).unwrap_or_default()
                );
            }
        }
    }
    out
}

/// Relationship → local port of the agent's tunnels.
async fn tunnel_ports(user: &User) -> Result<std::collections::BTreeMap<String, u16>> {
    let out = user.ok(&["tunnel:list", "--format", "json"], None).await?;
    let v: serde_json::Value = serde_json::from_str(&out).with_context(|| out.clone())?;
    Ok(v.as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|t| {
            let port = t["local"].as_str()?.parse::<std::net::SocketAddr>().ok()?;
            Some((t["relationship"].as_str()?.to_string(), port.port()))
        })
        .collect())
}

/// Reads events until `wanted` says yes; fails with what it saw.
async fn until(
    events: &mut Events,
    timeout: Duration,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> Result<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match events.next(left).await {
            Ok(e) if wanted(&e) => return Ok(e),
            Ok(e) => seen.push(e),
            Err(err) => {
                let logs = walk_logs(events.home.as_path());
                bail!("{err}; saw {seen:?}\n{logs}")
            }
        }
    }
}

/// After `signed_out`, both tunnels are announced `closed (signed out)`, their ports are free,
/// and the agent remembers them for a reopen.
async fn tunnels_closed_by_the_end_of_the_session(
    user: &User,
    events: &mut Events,
    ports: &std::collections::BTreeMap<String, u16>,
    reason: &str,
) -> Result<()> {
    let signed_out = until(events, Duration::from_secs(30), |e| {
        e["event"] == "signed_out"
    })
    .await?;
    assert!(
        signed_out["reason"]
            .as_str()
            .is_some_and(|r| r.contains(reason)),
        "{signed_out}"
    );
    for _ in 0..ports.len() {
        let closed = until(events, Duration::from_secs(10), |e| e["event"] == "tunnel").await?;
        assert_eq!(closed["state"], "closed (signed out)", "{closed}");
    }
    assert!(tunnel_ports(user).await?.is_empty());
    let agent = user.agent_pid().context("no agent")?;
    let held = listening_ports(agent)?;
    for port in ports.values() {
        assert!(
            !held.contains(port),
            "port {port} is still held by the agent after the sign-out"
        );
    }
    let status: serde_json::Value =
        serde_json::from_str(&user.ok(&["agent:status", "--format", "json"], None).await?)?;
    assert_eq!(status["session"], "signed_out", "{status}");
    assert_eq!(status["reopenable"], ports.len(), "{status}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnels_close_whenever_the_session_ends_and_an_outage_is_not_an_end() -> Result<()> {
    // Renewals every 3 s, each exchanging the API token again (access tokens are shorter than
    // the refresh margin), so the token endpoint's answers reach the agent quickly.
    let sim = demo_sim(SimOptions {
        certificate_lifetime: Duration::from_secs(4),
        access_token_lifetime: Duration::from_secs(30),
        ..SimOptions::default()
    })
    .await?;
    let user = User::new(&sim.info, false)?;
    user.ok(&["auth:api-token-login"], Some(ALICE_TOKEN))
        .await?;
    let _agent = start_agent(&user, &[]).await?;
    let socket = user.runtime_dir().join("tether").join("tether-sim.sock");
    let mut events = Events::start(&user).await?;
    // Subscribed once an event comes through (the subscriber may take a while to start).
    let mut subscribed = false;
    for _ in 0..20 {
        exchange(&socket, b"{\"v\":1,\"op\":\"signed_in\"}\n", false).await?;
        if events.next(Duration::from_secs(1)).await.is_ok() {
            subscribed = true;
            break;
        }
    }
    assert!(subscribed, "tether events showed nothing");
    let app = ["-p", DEMO_PROJECT, "-e", "main", "-A", "app"];
    user.ok(&[&["tunnel:open"][..], &app].concat(), None)
        .await?;
    let ports = tunnel_ports(&user).await?;
    assert_eq!(ports.len(), 2, "{ports:?}");

    // An outage of the sign-in server is not a sign-out: renewals fail and say so, the
    // session and its tunnels stay.
    for failure in [
        tether_sim::state::RenewalFailure::TemporarilyUnavailable,
        tether_sim::state::RenewalFailure::BadGateway,
    ] {
        sim.set_renewal_failure(Some(failure));
        // A sign-in notice makes the keeper look at once, not after its backoff.
        exchange(&socket, b"{\"v\":1,\"op\":\"signed_in\"}\n", false).await?;
        let failed = until(&mut events, Duration::from_secs(30), |e| {
            !matches!(
                e["event"].as_str(),
                Some("renewed" | "tunnel" | "signed_in")
            )
        })
        .await?;
        assert_eq!(failed["event"], "renewal_failed", "{failure:?}: {failed}");
        assert!(
            failed["reason"]
                .as_str()
                .is_some_and(|r| r.contains("not a sign-out")),
            "{failed}"
        );
        assert_eq!(tunnel_ports(&user).await?, ports);
    }
    sim.set_renewal_failure(None);
    exchange(&socket, b"{\"v\":1,\"op\":\"signed_in\"}\n", false).await?;
    until(&mut events, Duration::from_secs(30), |e| {
        e["event"] == "renewed"
    })
    .await?;

    // The platform refuses the grant: the session ends, and its tunnels with it.
    sim.set_renewal_failure(Some(tether_sim::state::RenewalFailure::InvalidGrant));
    tunnels_closed_by_the_end_of_the_session(&user, &mut events, &ports, "API token").await?;

    // Reopening asks for a sign-in first, and keeps them for it.
    let reply = exchange(&socket, b"{\"v\":1,\"op\":\"tunnel_reopen\"}\n", false).await?;
    assert!(reply.contains("\"code\":\"sign_in\""), "{reply}");
    let status: serde_json::Value =
        serde_json::from_str(&user.ok(&["agent:status", "--format", "json"], None).await?)?;
    assert_eq!(status["reopenable"], ports.len(), "{status}");

    // After a new sign-in the tunnels open again on their old ports.
    sim.set_renewal_failure(None);
    user.ok(&["auth:api-token-login"], Some(ALICE_TOKEN))
        .await?;
    let reply = exchange(&socket, b"{\"v\":1,\"op\":\"tunnel_reopen\"}\n", false).await?;
    assert!(reply.contains("\"reply\":\"opened\""), "{reply}");
    assert_eq!(tunnel_ports(&user).await?, ports);

    // The API token is revoked: the certifier refuses the session's token, the refresh that
    // follows is refused, and the tunnels close again.
    assert!(sim.revoke_api_token(ALICE_TOKEN));
    tunnels_closed_by_the_end_of_the_session(&user, &mut events, &ports, "API token").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_with_a_shorter_limit_does_not_cut_the_agents_session() -> Result<()> {
    // The desktop keeps a 12 h session; a command run with a shorter limit of its own must not
    // end it: the session's limit is the agent's, and the agent decides.
    let sim = demo_sim(SimOptions::default()).await?;
    let user = User::signed_in(&sim.info, ALICE_TOKEN).await?;
    let _agent = start_agent(&user, &["--inactivity-limit", "12h"]).await?;
    // An hour without use: past the command's limit, well within the session's.
    idle_for(&user, Duration::from_secs(3600))?;
    let mut load = user.tether(&["ssh-cert:load"])?;
    load.env("TETHER_INACTIVITY_LIMIT", "10m");
    let out = run_async(load).await?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status: serde_json::Value =
        serde_json::from_str(&user.ok(&["agent:status", "--format", "json"], None).await?)?;
    assert_eq!(status["session"], "active", "{status}");
    assert_eq!(status["inactivity_limit_secs"], 12 * 3600, "{status}");
    Ok(())
}
