//! Shared harness for the end-to-end suites: the simulator, real servers (PostgreSQL, Redis,
//! OpenSSH's sshd), keys and certificates made the way a client makes them, the system `ssh`
//! client, and a small W3C WebDriver client for driving real browsers and the real app.
//!
//! Every server binds loopback; every child process is killed when its guard drops.

pub mod cli;
pub mod db;
pub mod desktop;
pub mod echo;
pub mod forms;
pub mod keyring;
pub mod mariadb;
pub mod namespace;
pub mod notifications;
pub mod openssh;
pub mod secrets;
pub mod tray;
pub mod webdriver;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use tether_sim::{Fixture, ReadyInfo, Sim, SimHandle, SimOptions};

/// Kills the process, and every process it started, when dropped: the child runs in a process
/// group of its own (a browser's renderers, tauri-driver's WebKitWebDriver and app, the server
/// `runuser` starts), and the whole group is asked to stop (SIGTERM), killed if it has not within
/// two seconds (SIGKILL), and waited for, so nothing of it outlives the guard or writes into a
/// directory removed after it.
pub struct ChildGuard {
    pub child: Child,
}

impl ChildGuard {
    pub fn spawn(name: &str, cmd: &mut Command) -> Result<ChildGuard> {
        use std::os::unix::process::CommandExt;
        let child = cmd.process_group(0).spawn().with_context(|| {
            format!("cannot start {name}: is it installed? (make test installs it)")
        })?;
        Ok(ChildGuard { child })
    }

    /// Stops the child's process group now (what dropping the guard does).
    pub fn stop(&mut self) {
        let group = self.child.id();
        let reap = |child: &mut Child| {
            let _ = child.try_wait();
        };
        if group_alive(group) {
            signal_group(group, "TERM");
            let start = Instant::now();
            while group_alive(group) && start.elapsed() < Duration::from_secs(2) {
                reap(&mut self.child);
                std::thread::sleep(Duration::from_millis(20));
            }
            if group_alive(group) {
                signal_group(group, "KILL");
                let start = Instant::now();
                while group_alive(group) && start.elapsed() < Duration::from_secs(5) {
                    reap(&mut self.child);
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The processes, not yet exited (zombies excluded), whose `/proc/<pid>/stat` satisfies `keep`
/// given (pid, process group).
fn processes(keep: impl Fn(u32, u32) -> bool) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // After the command's name, which may hold spaces and parentheses: state, ppid, pgrp.
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                return false;
            };
            let mut fields = rest.split_whitespace();
            let state = fields.next().unwrap_or("Z");
            let pgrp = fields.nth(1).and_then(|g| g.parse::<u32>().ok());
            state != "Z" && state != "X" && pgrp.is_some_and(|g| keep(pid, g))
        })
        .collect()
}

/// Whether a process of group `group` still runs.
fn group_alive(group: u32) -> bool {
    !processes(|_, g| g == group).is_empty()
}

fn signal_group(group: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), "--", &format!("-{group}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Ends every process whose command line holds `marker` (a test's private directory), SIGTERM
/// then SIGKILL after two seconds, and waits until none runs: for processes a test's children
/// start in groups of their own.
pub fn kill_processes_mentioning(marker: &str) {
    let matching = || {
        processes(|pid, _| {
            pid != std::process::id()
                && std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
    };
    for (signal, patience) in [("TERM", 2), ("KILL", 5)] {
        let pids = matching();
        if pids.is_empty() {
            return;
        }
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .args(pids.iter().map(u32::to_string))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let start = Instant::now();
        while !matching().is_empty() && start.elapsed() < Duration::from_secs(patience) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Fails unless `127.0.0.1:port` can be listened on again: no listener holds it. The bind
/// asks for SO_REUSEADDR, as Tether's own listeners do, so that the connections it carried
/// lingering in TIME_WAIT (whichever end closed first) do not count.
pub fn port_has_no_listener(port: u16) -> Result<()> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket
        .bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .and_then(|()| socket.listen(1).map(drop))
        .with_context(|| format!("port {port} is still listened on"))
}

/// A loopback address that refuses every connection for as long as the test binary runs: its
/// port stays bound and is never listened on. A port that was only free when it was chosen can be
/// taken by another listener later, or be picked as the source port of a connection to itself
/// (a simultaneous open on loopback), which then succeeds: a "refusing" service that accepted
/// once failed a CI run of the tunnels suite.
pub fn refusing_address() -> Result<std::net::SocketAddr> {
    static HELD: std::sync::OnceLock<(tokio::net::TcpSocket, std::net::SocketAddr)> =
        std::sync::OnceLock::new();
    if let Some((_, addr)) = HELD.get() {
        return Ok(*addr);
    }
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let addr = socket.local_addr()?;
    Ok(HELD.get_or_init(|| (socket, addr)).1)
}

/// A free loopback port (there is a small window in which someone else could take it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Starts a server on a free port: picks a port, starts `make(port)`, and waits until the port
/// accepts while the process still runs. Another process may take the port between the pick
/// and the bind; the server then exits, and another port is tried.
pub fn spawn_on_free_port(
    name: &str,
    timeout: Duration,
    mut make: impl FnMut(u16) -> Result<Command>,
) -> Result<(ChildGuard, u16)> {
    for _ in 0..5 {
        let port = free_port();
        let mut guard = ChildGuard::spawn(name, &mut make(port)?)?;
        let start = Instant::now();
        loop {
            if guard.child.try_wait()?.is_some() {
                break;
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                // Someone else's listener would not keep our process alive.
                std::thread::sleep(Duration::from_millis(100));
                if guard.child.try_wait()?.is_none() {
                    return Ok((guard, port));
                }
                break;
            }
            if start.elapsed() > timeout {
                bail!("{name} does not listen on 127.0.0.1:{port} after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    bail!("{name} could not listen on a free port in 5 tries")
}

/// Waits until something accepts TCP connections on `port`.
pub fn wait_for_port(port: u16, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("nothing listens on 127.0.0.1:{port} after {timeout:?}")
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a command and returns its output; fails with its stderr if it could not start.
pub fn run(cmd: &mut Command) -> Result<Output> {
    cmd.stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))
}

/// Runs a command without blocking the async runtime the simulator serves on.
pub async fn run_async(cmd: Command) -> Result<Output> {
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .map_err(|_| anyhow!("command did not finish in 60 s: {cmd:?}"))?
        .with_context(|| format!("cannot run {cmd:?}"))?;
    Ok(out)
}

pub fn run_ok(cmd: &mut Command) -> Result<String> {
    let out = run(cmd)?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Points a named backend of the simulator (`postgresql`, `redis`, …) at a server of the
/// test's on loopback.
pub fn backend(options: &mut SimOptions, name: &str, port: u16) {
    options.backends.insert(
        name.to_string(),
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
    );
}

/// A simulator with the demo fixture, started on this test's runtime.
pub async fn demo_sim(options: SimOptions) -> Result<SimHandle> {
    Ok(Sim::start(Fixture::demo()?, options).await?)
}

pub const DEMO_PROJECT: &str = "jyu7waly36ncj";
/// The demo app's Redis relationship, as `tunnel:open` and `tunnel:single` select it.
pub const DEMO_REDIS: [&str; 8] = [
    "-p",
    DEMO_PROJECT,
    "-e",
    "main",
    "-A",
    "app",
    "-r",
    "rediscache",
];
pub const DEMO_ENV_MACHINE: &str = "main-7rqtwti";
pub const ALICE_TOKEN: &str = "demo-api-token-alice-0123456789abcdef";
pub const ALICE_MFA_TOKEN: &str = "demo-api-token-alice-mfa-fedcba9876543210";
pub const ALICE_TOTP: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
pub const ALICE_PASSWORD: &str = "correct horse battery staple";
/// Carol has an authenticator but is asked for it only when MFA is demanded.
pub const CAROL_PASSWORD: &str = "carol-password-1234";
pub const CAROL_TOTP: &str = "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU";
pub const BOB_TOKEN: &str = "demo-api-token-bob-5555aaaa5555aaaa";
pub const MFA_PROJECT: &str = "pzt3xbvc7ebkq";
pub const MFA_ENV_MACHINE: &str = "main-wq4mt2y";

/// The TCP ports process `pid` listens on: its sockets' inodes, found in /proc/net/tcp{,6}.
/// What a test checks to see a port freed by Tether: whether the port is free would say
/// nothing, since a test running beside it may take it as soon as it is.
pub fn listening_ports(pid: u32) -> Result<Vec<u16>> {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))?
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            l.to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(str::to_string)
        })
        .collect();
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for line in std::fs::read_to_string(table)?.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is field 1, st 3 (0A: listening), inode 9.
            if f.len() > 9 && f[3] == "0A" && inodes.contains(f[9]) {
                if let Some(port) = f[1]
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
                {
                    ports.push(port);
                }
            }
        }
    }
    Ok(ports)
}

/// Alice, her password and her API token, as fixture lines for a test's own platform.
pub fn alice_fixture() -> String {
    format!(
        r#"[[users]]
id = "5d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"
username = "alice"
first_name = "Alice"
last_name = "Anders"
email = "alice@example.com"
password = "{ALICE_PASSWORD}"

[[api_tokens]]
user = "alice"
token = "{ALICE_TOKEN}"
"#
    )
}

/// The SSH username of an app container in the demo.
pub fn app_user(project: &str, machine: &str, app: &str) -> String {
    format!("{project}-{machine}--{app}")
}

/// The current TOTP code for a base32 secret.
pub fn totp_now(secret: &str) -> Result<String> {
    let bytes = totp_rs::Secret::Encoded(secret.to_string())
        .to_bytes()
        .map_err(|e| anyhow!("bad TOTP secret: {e:?}"))?;
    let totp = totp_rs::TOTP::new_unchecked(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes);
    Ok(totp.generate_current()?)
}

/// An HTTP client that does not follow redirects, so tests see what the server answers.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap_or_default()
}

/// Exchanges an API token for an access token (the `api_token` grant).
pub async fn api_token_login(info: &ReadyInfo, api_token: &str) -> Result<String> {
    let resp: Value = http()
        .post(format!("{}/oauth2/token", info.auth_url))
        .form(&[
            ("grant_type", "api_token"),
            ("api_token", api_token),
            ("client_id", "platform-cli"),
        ])
        .send()
        .await?
        .json()
        .await?;
    resp["access_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("no access token in {resp}"))
}

/// A key pair made by `ssh-keygen`, as a user would have one.
pub struct KeyPair {
    pub private: PathBuf,
    pub public: PathBuf,
    pub cert: PathBuf,
}

pub fn ssh_keygen(dir: &Path, name: &str) -> Result<KeyPair> {
    let private = dir.join(name);
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&private),
    )?;
    Ok(KeyPair {
        public: private.with_extension("pub"),
        cert: dir.join(format!("{name}-cert.pub")),
        private,
    })
}

/// Asks the certifier for a certificate of `key` and writes it next to the key.
pub async fn request_certificate(
    info: &ReadyInfo,
    access_token: &str,
    key: &KeyPair,
) -> Result<String> {
    let public = std::fs::read_to_string(&key.public)?;
    let resp = http()
        .post(format!("{}/ssh", info.auth_url))
        .bearer_auth(access_token)
        .json(&serde_json::json!({ "key": public.trim() }))
        .send()
        .await?;
    let status = resp.status();
    let body: Value = resp.json().await?;
    let cert = body["certificate"]
        .as_str()
        .ok_or_else(|| anyhow!("certifier answered {status}: {body}"))?
        .to_string();
    std::fs::write(&key.cert, format!("{cert}\n"))?;
    Ok(cert)
}

/// Signs `key` with a CA private key file using `ssh-keygen -s`, the standard tool.
pub fn sign_with_ssh_keygen(
    ca: &Path,
    key: &KeyPair,
    key_id: &str,
    principals: &str,
    validity: &str,
) -> Result<()> {
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-s"])
            .arg(ca)
            .args(["-I", key_id, "-n", principals, "-V", validity])
            .args([
                "-O",
                "clear",
                "-O",
                "permit-pty",
                "-O",
                "permit-port-forwarding",
            ])
            .arg(&key.public),
    )?;
    Ok(())
}

/// A `known_hosts` file that trusts exactly the simulator's gateway.
pub fn known_hosts(dir: &Path, info: &ReadyInfo) -> Result<PathBuf> {
    let path = dir.join("known_hosts");
    std::fs::write(&path, format!("{}\n", info.known_hosts_line()))?;
    Ok(path)
}

/// OpenSSH options that use nothing of the user's configuration: only this key, this
/// certificate and this known-hosts file (for `ssh`, `scp`, `sftp` and `rsync -e`).
pub fn ssh_options(known_hosts: &Path, key: &KeyPair) -> Vec<String> {
    [
        "-F",
        "/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "ConnectTimeout=10",
    ]
    .into_iter()
    .map(str::to_string)
    .chain([
        "-o".to_string(),
        format!("UserKnownHostsFile={}", known_hosts.display()),
        "-i".to_string(),
        key.private.display().to_string(),
        "-o".to_string(),
        format!("CertificateFile={}", key.cert.display()),
    ])
    .collect()
}

/// The system `ssh` with nothing from the user's configuration: only what the test passes.
pub fn ssh_command(known_hosts: &Path, key: &KeyPair, port: u16, destination: &str) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.args(ssh_options(known_hosts, key))
        .args(["-p", &port.to_string(), destination]);
    cmd
}

/// PostgreSQL started for one test, on loopback, with a `main` role and database whose
/// password is `main` (the demo relationship's credentials). PostgreSQL refuses to run as
/// root, so as root it runs as the `postgres` system user.
pub struct Postgres {
    pub port: u16,
    _server: ChildGuard,
    _dir: tempfile::TempDir,
}

fn pg_bin(name: &str) -> Result<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL is not installed (make test installs it)")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin").join(name)))
        .filter(|p| p.exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .ok_or_else(|| anyhow!("no PostgreSQL {name} under /usr/lib/postgresql"))
}

fn as_service_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// `psql` on the test's PostgreSQL ([`Postgres`]) at 127.0.0.1:`port`, as `main` (password
/// `main`), on `database`; the caller adds what to run.
pub fn psql_command(port: u16, database: &str) -> Command {
    let mut cmd = Command::new("psql");
    cmd.env("PGPASSWORD", "main").args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-U",
        "main",
        "-d",
        database,
    ]);
    cmd
}

impl Postgres {
    pub fn start() -> Result<Postgres> {
        let dir = tempfile::Builder::new().prefix("tether-pg-").tempdir()?;
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, "main\n")?;
        if is_root() {
            run_ok(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(dir.path()),
            )?;
        }
        run_ok(
            as_service_user(&pg_bin("initdb")?)
                .args(["-A", "scram-sha-256", "-U", "main", "--pwfile"])
                .arg(&pwfile)
                .arg("-D")
                .arg(&data),
        )?;
        let postgres = pg_bin("postgres")?;
        let (server, port) = spawn_on_free_port("postgres", Duration::from_secs(30), |port| {
            let mut cmd = as_service_user(&postgres);
            cmd.arg("-D")
                .arg(&data)
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            Ok(cmd)
        })?;
        // The server accepts connections a moment before it accepts logins.
        let start = Instant::now();
        loop {
            let ok = run(psql_command(port, "postgres").args(["-tAc", "create database main"]))?;
            if ok.status.success() {
                break;
            }
            if start.elapsed() > Duration::from_secs(20) {
                bail!(
                    "PostgreSQL did not accept logins: {}",
                    String::from_utf8_lossy(&ok.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Postgres {
            port,
            _server: server,
            _dir: dir,
        })
    }
}

/// Redis started for one test on loopback, without persistence.
pub struct Redis {
    pub port: u16,
    _server: ChildGuard,
}

impl Redis {
    pub fn start() -> Result<Redis> {
        let (server, port) = spawn_on_free_port("redis-server", Duration::from_secs(10), |port| {
            let mut cmd = Command::new("redis-server");
            cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            Ok(cmd)
        })?;
        Ok(Redis {
            port,
            _server: server,
        })
    }
}

/// OpenSSH's own `sshd`, trusting a user CA, for proof that the certificates are standard.
pub struct Sshd {
    pub port: u16,
    pub known_hosts: PathBuf,
    /// Its public host keys (`ssh-ed25519 AAAA…`), one per type it was started with.
    pub host_keys: Vec<String>,
    _server: ChildGuard,
}

impl Sshd {
    /// `principals` are what the login user accepts (AuthorizedPrincipalsFile).
    pub fn start(dir: &Path, ca_public_key: &str, principals: &[&str]) -> Result<Sshd> {
        Sshd::start_with_host_keys(dir, ca_public_key, principals, &["ed25519"])
    }

    /// An sshd holding a host key of each of `key_types` (`ed25519`, `rsa`, `ecdsa`), as real
    /// gateways do: which one it presents depends on what the client asks for first.
    pub fn start_with_host_keys(
        dir: &Path,
        ca_public_key: &str,
        principals: &[&str],
        key_types: &[&str],
    ) -> Result<Sshd> {
        let mut host_key_lines = String::new();
        let mut host_keys = Vec::new();
        for kind in key_types {
            let host_key = dir.join(format!("sshd_host_{kind}"));
            run_ok(
                Command::new("ssh-keygen")
                    .args(["-q", "-t", kind, "-N", "", "-f"])
                    .arg(&host_key),
            )?;
            host_key_lines.push_str(&format!("HostKey {}\n", host_key.display()));
            host_keys.push(
                std::fs::read_to_string(host_key.with_extension("pub"))?
                    .trim()
                    .to_string(),
            );
        }
        let ca = dir.join("user_ca.pub");
        std::fs::write(&ca, format!("{ca_public_key}\n"))?;
        let principals_file = dir.join("principals");
        std::fs::write(&principals_file, principals.join("\n") + "\n")?;
        if is_root() {
            std::fs::create_dir_all("/run/sshd")?;
        }
        let config = dir.join("sshd_config");
        let (server, port) = spawn_on_free_port("sshd", Duration::from_secs(10), |port| {
            std::fs::write(
                &config,
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\n{host_key_lines}PidFile none\n\
                     TrustedUserCAKeys {ca}\nAuthorizedPrincipalsFile {pf}\nAuthorizedKeysFile none\n\
                     PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                     PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nAllowTcpForwarding yes\n\
                     Subsystem sftp internal-sftp\n",
                    ca = ca.display(),
                    pf = principals_file.display(),
                ),
            )?;
            let mut cmd = Command::new("/usr/sbin/sshd");
            cmd.args(["-D", "-e", "-f"])
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            Ok(cmd)
        })?;
        let known_hosts = dir.join("sshd_known_hosts");
        std::fs::write(
            &known_hosts,
            host_keys
                .iter()
                .map(|k| format!("[127.0.0.1]:{port} {k}\n"))
                .collect::<String>(),
        )?;
        Ok(Sshd {
            port,
            known_hosts,
            host_keys,
            _server: server,
        })
    }
}

/// The login name of the user running the tests (the user sshd logs in as).
pub fn current_user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            run_ok(Command::new("id").arg("-un"))
                .ok()
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "root".to_string())
}
