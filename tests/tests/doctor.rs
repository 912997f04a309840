//! `tether doctor` on the real binary: each check has a broken case in a throwaway HOME (an
//! OpenSSH without `Include`, a `Host *` that shadows Tether's `Include`, the block missing,
//! the platform's clock skewed, no Secret Service or tray host on the bus, no agent or an
//! agent's socket others can reach, the tunnel port range taken, the hook's binary gone, a
//! passwd home whose `~/.ssh/config` does not reach Tether's),
//! which it reports with its status and exit code 1 for a problem; then the fix the report names is run (or, where it would change the
//! machine itself, done the test's way) and doctor says ok. And `--bundle` writes a 0600
//! archive that holds none of the session's secrets, even when the log it packs does.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;
use tether_e2e::cli::{workspace_binary, User};
use tether_e2e::*;
use tether_sim::SimOptions;

/// What one `tether doctor --format json` said.
struct Doctor {
    code: i32,
    report: Value,
}

impl Doctor {
    fn check(&self, id: &str) -> Result<&Value> {
        self.report["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["id"] == id))
            .with_context(|| format!("no {id} check in {:#}", self.report))
    }

    /// Fails unless `id` has `status`, showing the check.
    fn expect(&self, id: &str, status: &str) -> Result<()> {
        let check = self.check(id)?;
        ensure!(check["status"] == status, "{id} is not {status}: {check:#}");
        Ok(())
    }

    /// The command the report names to fix `id`.
    fn fix(&self, id: &str) -> Result<String> {
        let check = self.check(id)?;
        check["fix"]["command"]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("{id} names no command: {check:#}"))
    }
}

/// `tether doctor --format json` as `user`, `tweak`ed.
async fn doctor_with(user: &User, tweak: impl FnOnce(&mut Command)) -> Result<Doctor> {
    let mut cmd = user.tether(&["doctor", "--format", "json"])?;
    tweak(&mut cmd);
    report_of(cmd).await
}

/// What a command running `tether doctor --format json` printed, and its exit code.
async fn report_of(cmd: Command) -> Result<Doctor> {
    let out = run_async(cmd).await?;
    let report = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "doctor printed no JSON ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    Ok(Doctor {
        code: out.status.code().unwrap_or(-1),
        report,
    })
}

async fn doctor(user: &User) -> Result<Doctor> {
    doctor_with(user, |_| {}).await
}

/// A shell command as `user` would type it, `tether` being the built binary.
fn shell(user: &User, command: &str) -> Result<Command> {
    let bin = workspace_binary("tether")?;
    let dir = bin.parent().context("the binary has a directory")?;
    let mut cmd = Command::new("sh");
    cmd.args(["-c", command]);
    user.environment(&mut cmd);
    cmd.env(
        "PATH",
        format!(
            "{}:{}",
            dir.display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    );
    Ok(cmd)
}

/// Runs the fix `command` as `user`; fails with its output unless it succeeds.
async fn run_fix(user: &User, command: &str) -> Result<()> {
    let out = run_async(shell(user, command)?).await?;
    ensure!(
        out.status.success(),
        "the fix {command:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A signed-in user (file store, chosen) with Tether's block in `~/.ssh/config`.
async fn wired_user(sim: &tether_sim::SimHandle) -> Result<User> {
    let user = User::signed_in(&sim.info, ALICE_TOKEN).await?;
    user.ok(&["config:ssh", "--write"], None).await?;
    Ok(user)
}

const ALWAYS_OK: [&str; 7] = [
    "openssh_version",
    "ssh_config_block",
    "ssh_resolution",
    "keyring",
    "clock",
    "tunnel_ports",
    "hook_binary",
];

/// Fails unless doctor exits 0 with every check but the agent and the tray host ok.
fn healthy(d: &Doctor) -> Result<()> {
    for id in ALWAYS_OK {
        d.expect(id, "ok")?;
    }
    ensure!(d.code == 0, "doctor exited {} on a healthy machine", d.code);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_star_before_the_include_is_a_problem_and_moving_the_block_fixes_it() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let user = wired_user(&sim).await?;
    let d = doctor(&user).await?;
    healthy(&d)?;
    // Without a desktop: no agent, no bus to ask for a tray: warnings, not problems.
    d.expect("agent", "warning")?;
    d.expect("tray_host", "warning")?;
    ensure!(
        d.check("keyring")?["title"]
            .as_str()
            .is_some_and(|t| t.contains("as chosen")),
        "the file store, chosen, is ok with a note: {:#}",
        d.check("keyring")?
    );

    // The user's own `Host *` with a certificate, before the block.
    let config = user.ssh_config();
    let mine = format!(
        "Host *\n  CertificateFile {}/.ssh/mine-cert.pub\n\n",
        user.home().display()
    );
    let before = std::fs::read_to_string(&config)?;
    std::fs::write(&config, format!("{mine}{before}"))?;
    let d = doctor(&user).await?;
    d.expect("ssh_config_block", "problem")?;
    d.expect("ssh_resolution", "problem")?;
    ensure!(d.code == 1, "a problem exits 1, not {}", d.code);
    let title = d.check("ssh_config_block")?["title"].as_str().unwrap_or("");
    ensure!(
        title.contains("Line 2") && title.contains("certificatefile"),
        "the line and the option are named: {title}"
    );

    run_fix(&user, &d.fix("ssh_config_block")?).await?;
    healthy(&doctor(&user).await?)?;
    let after = std::fs::read_to_string(&config)?;
    ensure!(
        after.starts_with(tether_core::openssh::BLOCK_BEGIN) && after.contains(mine.trim()),
        "the block comes first and the user's lines are kept:\n{after}"
    );
    Ok(())
}

/// `tether doctor --format json` as `user`, in a mount namespace of its own whose
/// `/etc/passwd` gives this uid the home directory `home`: where OpenSSH (and doctor) look for
/// `~/.ssh/config`, whatever `HOME` says.
async fn doctor_with_passwd_home(user: &User, home: &Path) -> Result<Doctor> {
    ensure!(
        is_root(),
        "this test needs root for unshare --mount (CI runs as root): run make test as root"
    );
    let uid = run_ok(Command::new("id").arg("-u"))?.trim().to_string();
    let home = home.to_str().context("a UTF-8 home")?;
    let mut found = false;
    let passwd: String = std::fs::read_to_string("/etc/passwd")?
        .lines()
        .map(|line| {
            let mut fields: Vec<&str> = line.split(':').collect();
            if fields.len() == 7 && fields[2] == uid {
                fields[5] = home;
                found = true;
            }
            fields.join(":") + "\n"
        })
        .collect();
    ensure!(found, "uid {uid} has no line in /etc/passwd");
    let file = user.home().join("passwd");
    std::fs::write(&file, passwd)?;
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "sh",
        "-c",
        "mount --bind \"$0\" /etc/passwd && exec \"$@\"",
    ])
    .arg(&file)
    .arg(workspace_binary("tether")?)
    .args(["doctor", "--format", "json"]);
    user.environment(&mut cmd);
    report_of(cmd).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_home_that_ssh_does_not_read_is_a_warning_and_an_include_from_the_one_it_reads_fixes_it(
) -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let user = wired_user(&sim).await?;
    let written = user.ssh_config();

    // The suite's users have a HOME of their own; OpenSSH reads the passwd home's config.
    let d = doctor(&user).await?;
    healthy(&d)?;
    d.expect("ssh_home", "warning")?;
    let check = d.check("ssh_home")?;
    let title = check["title"].as_str().unwrap_or_default();
    ensure!(
        title.contains(&written.display().to_string()) && title.starts_with("ssh reads /"),
        "{check:#}"
    );
    let fix = check["fix"]["text"].as_str().unwrap_or_default();
    let include = fix
        .split('`')
        .nth(1)
        .filter(|l| l.starts_with("Include "))
        .with_context(|| format!("the fix names no Include line: {check:#}"))?
        .to_string();

    // Where the passwd home is that HOME, ssh reads the block Tether wrote.
    let d = doctor_with_passwd_home(&user, user.home()).await?;
    d.expect("ssh_home", "ok")?;
    ensure!(d.code == 0, "doctor exited {}", d.code);

    // Another passwd home, whose config does not reach Tether's: still the warning. With the
    // line the fix names at its top, plain ssh uses the session, and doctor says so.
    let other = user.home().join("passwd-home");
    std::fs::create_dir_all(other.join(".ssh"))?;
    std::fs::write(
        other.join(".ssh/config"),
        "Host *\n  ServerAliveInterval 30\n",
    )?;
    let d = doctor_with_passwd_home(&user, &other).await?;
    d.expect("ssh_home", "warning")?;
    std::fs::write(
        other.join(".ssh/config"),
        format!("{include}\nHost *\n  ServerAliveInterval 30\n"),
    )?;
    let d = doctor_with_passwd_home(&user, &other).await?;
    d.expect("ssh_home", "ok")?;
    let title = d.check("ssh_home")?["title"].as_str().unwrap_or_default();
    ensure!(
        title.contains("reaches the session's certificate"),
        "{title}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_block_is_a_problem_and_config_ssh_write_fixes_it() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let user = wired_user(&sim).await?;
    user.ok(&["config:ssh", "--remove"], None).await?;
    let d = doctor(&user).await?;
    d.expect("ssh_config_block", "problem")?;
    // ssh -G finds no certificate of the session's for the platform's hosts.
    d.expect("ssh_resolution", "problem")?;
    ensure!(d.code == 1, "a problem exits 1, not {}", d.code);
    let fix = d.fix("ssh_config_block")?;
    ensure!(fix == "tether config:ssh --write", "{fix}");
    run_fix(&user, &fix).await?;
    healthy(&doctor(&user).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_clock_ten_minutes_off_is_a_problem_and_agreeing_clocks_are_ok() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let user = wired_user(&sim).await?;
    sim.set_clock_skew(-600);
    let d = doctor(&user).await?;
    d.expect("clock", "problem")?;
    ensure!(d.code == 1, "a problem exits 1, not {}", d.code);
    let title = d.check("clock")?["title"].as_str().unwrap_or("");
    ensure!(
        title.contains("ahead of the platform")
            && (598..=602).any(|s| title.contains(&format!("{s} s"))),
        "how far and which way: {title}"
    );
    ensure!(d.fix("clock")?.contains("timedatectl set-ntp true"));
    // Setting this machine's clock is not for a test: the platform's comes back instead,
    // within the tolerance.
    sim.set_clock_skew(45);
    let d = doctor(&user).await?;
    healthy(&d)?;
    ensure!(
        d.check("clock")?["title"]
            .as_str()
            .is_some_and(|t| t.contains("behind")),
        "{:#}",
        d.check("clock")?
    );
    Ok(())
}

/// A session bus that starts no service on demand (a standard one would start the system's
/// gnome-keyring the first time the Secret Service is asked for), and its address.
fn bare_bus(dir: &Path) -> Result<(ChildGuard, String)> {
    let config = dir.join("bare-bus.conf");
    std::fs::write(
        &config,
        format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={dir}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
            dir = dir.display()
        ),
    )?;
    let mut bus = ChildGuard::spawn(
        "dbus-daemon",
        Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--nosyslog", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    )?;
    let stdout = bus.child.stdout.take().context("no stdout")?;
    let mut address = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut address)?;
    ensure!(!address.trim().is_empty(), "dbus-daemon printed no address");
    Ok((bus, address.trim().to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openssh_older_than_include_is_a_problem_naming_what_it_lacks() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let user = wired_user(&sim).await?;
    // Ubuntu 16.04's ssh, first on PATH: it has certificates but no Include.
    let old = user.home().join("old-openssh");
    std::fs::create_dir_all(&old)?;
    let ssh = old.join("ssh");
    std::fs::write(
        &ssh,
        "#!/bin/sh\necho 'OpenSSH_7.2p2 Ubuntu-4ubuntu2.10, OpenSSL 1.0.2g  1 Mar 2016' >&2\nexit 255\n",
    )?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o755))?;
    let path = format!(
        "{}:{}",
        old.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let d = doctor_with(&user, |cmd| {
        cmd.env("PATH", &path);
    })
    .await?;
    d.expect("openssh_version", "problem")?;
    let title = d.check("openssh_version")?["title"].as_str().unwrap_or("");
    ensure!(
        title.contains("7.2")
            && title.contains("Include (OpenSSH 7.3)")
            && !title.contains("CertificateFile"),
        "{title}"
    );
    ensure!(d.report["versions"]["openssh"]
        .as_str()
        .is_some_and(|v| v.starts_with("OpenSSH_7.2p2")));
    ensure!(d.code == 1, "a problem exits 1, not {}", d.code);
    ensure!(d.fix("openssh_version")?.contains("openssh-client"));
    // Installing a newer client is not for a test: the system's, 7.3 or later, is found again.
    healthy(&doctor(&user).await?)
}

/// Waits until `name` has an owner on the bus at `address`.
fn wait_for_name(address: &str, name: &str) -> Result<()> {
    let start = Instant::now();
    loop {
        let out = run(Command::new("busctl").args(["--address", address, "status", name]))?;
        if out.status.success() {
            return Ok(());
        }
        ensure!(
            start.elapsed() < Duration::from_secs(20),
            "{name} did not appear on the bus in 20 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bus_without_a_secret_service_or_tray_host_says_so_and_starting_them_fixes_it(
) -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let user = wired_user(&sim).await?;
    // A session bus with nothing on it (and nothing it would start on demand), and the
    // keyring asked for (not the file).
    let (_bus, address) = bare_bus(user.home())?;
    let on_bus = |cmd: &mut Command| {
        cmd.env_remove("TETHER_TOKEN_STORE")
            .env("DBUS_SESSION_BUS_ADDRESS", &address);
    };
    let d = doctor_with(&user, on_bus).await?;
    d.expect("keyring", "problem")?;
    d.expect("tray_host", "warning")?;
    ensure!(
        d.check("tray_host")?["title"] == "No tray host on the session bus",
        "{:#}",
        d.check("tray_host")?
    );
    ensure!(d.code == 1, "a problem exits 1, not {}", d.code);

    // The fix the report names, on that bus, with the password on stdin as it asks; in the
    // foreground so that the test's guard stops it.
    let fix = d.fix("keyring")?;
    ensure!(fix.contains("gnome-keyring-daemon"), "{fix}");
    let keyring_home = user.home().join("keyring");
    std::fs::create_dir_all(keyring_home.join("run"))?;
    let mut daemon = shell(&user, &format!("exec {fix} --foreground"))?;
    daemon
        .env("DBUS_SESSION_BUS_ADDRESS", &address)
        .env("XDG_RUNTIME_DIR", keyring_home.join("run"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut daemon = ChildGuard::spawn("gnome-keyring-daemon", &mut daemon)?;
    if let Some(mut stdin) = daemon.child.stdin.take() {
        use std::io::Write;
        stdin.write_all(b"tether-test-keyring")?;
    }
    wait_for_name(&address, "org.freedesktop.secrets")?;
    // A panel starting (or GNOME's extension turned on) takes the watcher's name.
    let _watcher = tether_e2e::tray::TrayWatcher::start(&address).await?;

    // The daemon takes its name on the bus a moment before its login collection is there.
    let start = Instant::now();
    let d = loop {
        let d = doctor_with(&user, on_bus).await?;
        if d.check("keyring")?["status"] == "ok" || start.elapsed() > Duration::from_secs(10) {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    d.expect("keyring", "ok")?;
    d.expect("tray_host", "ok")?;
    ensure!(d.code == 0, "doctor exited {} once they run", d.code);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_agent_is_a_warning_tether_agent_fixes_it_and_an_open_socket_is_a_problem() -> Result<()>
{
    let sim = demo_sim(SimOptions::default()).await?;
    let user = wired_user(&sim).await?;
    let _stopper = user.agent_stopper();
    let d = doctor(&user).await?;
    d.expect("agent", "warning")?;
    ensure!(d.code == 0, "a warning alone exits 0, not {}", d.code);

    let fix = d.fix("agent")?;
    ensure!(fix == "tether agent", "{fix}");
    let mut agent = shell(&user, &format!("exec {fix}"))?;
    agent.stdout(Stdio::null()).stderr(Stdio::null());
    let _agent = ChildGuard::spawn("tether agent", &mut agent)?;
    let start = Instant::now();
    while !user.run(&["agent:status"], None).await?.status.success() {
        ensure!(
            start.elapsed() < Duration::from_secs(15),
            "tether agent did not answer in 15 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let d = doctor(&user).await?;
    d.expect("agent", "ok")?;
    healthy(&d)?;

    // Someone opened the agent's socket to everyone.
    let socket = user.runtime_dir().join("tether").join("tether-sim.sock");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666))?;
    let d = doctor(&user).await?;
    d.expect("agent", "problem")?;
    ensure!(d.code == 1, "a problem exits 1, not {}", d.code);
    run_fix(&user, &d.fix("agent")?).await?;
    let d = doctor(&user).await?;
    d.expect("agent", "ok")?;
    ensure!(d.code == 0, "doctor exited {} after the fix", d.code);
    Ok(())
}

/// The program the session config's hook runs.
fn hook_program(user: &User) -> Result<String> {
    let text = std::fs::read_to_string(
        user.home()
            .join(".local/share/tether/ssh/tether-sim.config"),
    )?;
    let line = text
        .lines()
        .find(|l| l.starts_with("Match "))
        .with_context(|| format!("no Match line in {text}"))?;
    let (_, program) = line.split_once("test -x '").context("no test -x")?;
    Ok(program.split('\'').next().unwrap_or("").to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_naming_a_binary_that_is_gone_is_a_problem_until_tether_runs_again() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let user = wired_user(&sim).await?;
    // Another tether, since removed, was the last to run: the hook names it.
    let moved_dir = user.home().join("opt bin");
    std::fs::create_dir_all(&moved_dir)?;
    let moved = moved_dir.join("tether");
    std::fs::copy(workspace_binary("tether")?, &moved)?;
    // A test beside this one may fork while the copy is still open for writing, and its child
    // holds it open until it execs: running the copy then fails with "text file busy" a moment.
    let start = Instant::now();
    loop {
        let mut cmd = Command::new(&moved);
        cmd.arg("auth:info");
        user.environment(&mut cmd);
        match run_ok(&mut cmd) {
            Ok(_) => break,
            Err(e)
                if start.elapsed() < Duration::from_secs(5)
                    && e.chain().any(|c| {
                        c.downcast_ref::<std::io::Error>()
                            .is_some_and(|io| io.raw_os_error() == Some(26))
                    }) =>
            {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => return Err(e),
        }
    }
    ensure!(hook_program(&user)? == moved.display().to_string());
    std::fs::remove_file(&moved)?;

    let d = doctor(&user).await?;
    d.expect("hook_binary", "problem")?;
    ensure!(d.code == 1, "a problem exits 1, not {}", d.code);
    let title = d.check("hook_binary")?["title"].as_str().unwrap_or("");
    ensure!(title.contains(&moved.display().to_string()), "{title}");
    // Doctor itself leaves the hook as it found it.
    ensure!(hook_program(&user)? == moved.display().to_string());

    run_fix(&user, &d.fix("hook_binary")?).await?;
    healthy(&doctor(&user).await?)
}

#[test]
fn a_taken_tunnel_port_range_is_a_problem_and_closing_the_tunnels_fixes_it() -> Result<()> {
    tether_e2e::namespace::run_inside("inside::taken_port_range")
}

mod inside {
    use super::*;
    use tether_e2e::namespace::Namespace;

    /// Set for a port holder: the first and last port it holds.
    const HOLD: &str = "TETHER_TEST_HOLD_PORTS";

    /// Holds every port from 30000 up on loopback that is free, in the namespace only: in
    /// processes of 10,000 ports each (this test binary again, running [`hold`]), since one
    /// process may not open that many files here. They stop when their stdin closes.
    fn hold_ports() -> Result<Vec<ChildGuard>> {
        let exe = std::env::current_exe()?;
        let mut holders = Vec::new();
        let mut first = 30000u32;
        while first < u32::from(u16::MAX) {
            let last = (first + 9_999).min(u32::from(u16::MAX));
            let mut cmd = Command::new(&exe);
            cmd.args(["--exact", "inside::hold", "--ignored", "--nocapture"])
                .env(HOLD, format!("{first}-{last}"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null());
            let mut holder = ChildGuard::spawn("a port holder", &mut cmd)?;
            let stdout = holder.child.stdout.take().context("no stdout")?;
            use std::io::BufRead;
            let mut lines = std::io::BufReader::new(stdout);
            let mut said = String::new();
            while !said.contains("holding") {
                said.clear();
                ensure!(
                    lines.read_line(&mut said)? > 0,
                    "the holder of {first}-{last} ended before holding its ports"
                );
            }
            holders.push(holder);
            first = last + 1;
        }
        Ok(holders)
    }

    #[test]
    #[ignore = "a port holder, started by taken_port_range"]
    fn hold() -> Result<()> {
        let range = std::env::var(HOLD).context("run by taken_port_range only")?;
        let (first, last) = range.split_once('-').context("FIRST-LAST")?;
        let (first, last): (u16, u16) = (first.parse()?, last.parse()?);
        let mut held = Vec::new();
        for p in first..=last {
            match std::net::TcpListener::bind(("127.0.0.1", p)) {
                Ok(l) => held.push(l),
                // A tunnel's.
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {}
                Err(e) => return Err(e).with_context(|| format!("cannot hold port {p}")),
            }
        }
        println!("holding {} ports", held.len());
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut rest)?;
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "runs inside its own namespace, started by the outer test of the same name"]
    async fn taken_port_range() -> Result<()> {
        let _ns = Namespace::enter(&[])?;
        // Connections' own ports come from below the tunnels' range here, so that holding
        // the range leaves the namespace able to connect.
        std::fs::write("/proc/sys/net/ipv4/ip_local_port_range", "20000 29999")?;
        let sim = demo_sim(SimOptions::default()).await?;
        let user = wired_user(&sim).await?;
        let _stopper = user.agent_stopper();
        // A tunnel takes the first port, then something else takes all the others.
        user.ok(&[&["tunnel:open"][..], &DEMO_REDIS].concat(), None)
            .await?;
        let _held = hold_ports()?;
        let d = doctor(&user).await?;
        d.expect("tunnel_ports", "problem")?;
        ensure!(d.code == 1, "a problem exits 1, not {}", d.code);
        let fix = d.fix("tunnel_ports")?;
        ensure!(fix.contains("tunnel:close"), "{fix}");
        run_fix(&user, &fix).await?;
        let d = doctor(&user).await?;
        d.expect("tunnel_ports", "ok")?;
        let title = d.check("tunnel_ports")?["title"].as_str().unwrap_or("");
        ensure!(title.starts_with("1 of 35536"), "{title}");
        ensure!(d.code == 0, "doctor exited {} after the fix", d.code);
        Ok(())
    }
}

/// A platform with Alice and an app whose database relationship has `password`, served by
/// an echo server at `echo`.
fn bundle_fixture(echo: std::net::SocketAddr, password: &str) -> Result<tether_sim::Fixture> {
    tether_e2e::echo::database_on_echo_fixture(
        echo,
        password,
        "01HZX3DOCT000000000000000",
        "doctor",
        "Doctor",
        "doctorproj1",
    )
}

/// Every file under `dir`, with its text.
fn files_under(dir: &Path) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            out.extend(files_under(&p)?);
        } else {
            out.push((
                p.display().to_string(),
                String::from_utf8_lossy(&std::fs::read(&p)?).into_owned(),
            ));
        }
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bundle_is_private_and_holds_no_secret_even_from_a_log_that_does() -> Result<()> {
    let password = format!("relpw-{:032x}", rand::random::<u128>());
    let (echo, _) = tether_e2e::echo::echo_server().await?;
    let sim =
        tether_sim::Sim::start(bundle_fixture(echo, &password)?, SimOptions::default()).await?;
    let user = wired_user(&sim).await?;
    let _stopper = user.agent_stopper();

    // A tunnel at trace level: the agent it starts logs at trace too, and the password
    // goes through the tunnel as a database client's login would.
    let mut open = user.tether(&["tunnel:open", "-p", "doctorproj1", "-e", "dev", "-A", "app"])?;
    open.env("TETHER_LOG", "trace");
    let out = run_async(open).await?;
    ensure!(
        out.status.success(),
        "tunnel:open failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Value =
        serde_json::from_str(&user.ok(&["tunnel:list", "--format", "json"], None).await?)?;
    let port = listed[0]["local"]
        .as_str()
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        .with_context(|| format!("no tunnel: {listed}"))?
        .port();
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let login = format!("PASS main {password}\r\n");
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        conn.write_all(login.as_bytes()).await?;
        let mut back = vec![0u8; login.len()];
        tokio::time::timeout(Duration::from_secs(10), conn.read_exact(&mut back)).await??;
    }

    // The session's secrets, where Tether keeps them.
    let access = user.stored_token("access_token")?;
    // A session from an API token may have no refresh token.
    let refresh = user.stored_token("refresh_token").unwrap_or_default();
    let mut secrets = vec![
        ("the API token", ALICE_TOKEN.to_string()),
        ("the relationship's password", password.clone()),
    ];
    secrets.extend(tether_e2e::secrets::token_secrets(
        "the access token",
        &access,
    ));
    if !refresh.is_empty() {
        secrets.extend(tether_e2e::secrets::token_secrets(
            "the refresh token",
            &refresh,
        ));
    }
    secrets.extend(tether_e2e::secrets::key_lines(&user)?);

    // A log that does hold them (an older version's, or a bug's): the bundle scrubs them.
    let log = user
        .home()
        .join(".local/share/tether/logs/agent-tether-sim.log");
    let key = std::fs::read_to_string(user.session_dir().join("id_ed25519"))?;
    let leak = format!(
        "2026-12-07T00:00:00Z TRACE leaked by an older version: access_token={access} \
         refresh_token=\"{refresh}\" api token {ALICE_TOKEN} \
         url=pgsql://main:{password}@127.0.0.1:5432/main PASS main {password}\n{key}"
    );
    let mut file = std::fs::OpenOptions::new().append(true).open(&log)?;
    std::io::Write::write_all(&mut file, leak.as_bytes())?;
    drop(file);

    let bundle = user.home().join("support.tar.gz");
    let path = bundle.display().to_string();
    let d = user.run(&["doctor", "--bundle", &path], None).await?;
    ensure!(
        d.status.success(),
        "doctor --bundle failed ({}): {}{}",
        d.status,
        String::from_utf8_lossy(&d.stdout),
        String::from_utf8_lossy(&d.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&bundle)?.permissions().mode() & 0o777;
    ensure!(mode == 0o600, "the bundle's mode is {mode:o}");

    let unpacked = tempfile::tempdir()?;
    run_ok(
        Command::new("tar")
            .arg("-xzf")
            .arg(&bundle)
            .arg("-C")
            .arg(unpacked.path()),
    )?;
    let files = files_under(unpacked.path())?;
    let named = |name: &str| -> Result<&String> {
        files
            .iter()
            .find(|(p, _)| p.ends_with(&format!("tether-doctor/{name}")))
            .map(|(_, t)| t)
            .with_context(|| format!("no {name} in the bundle"))
    };
    let agent_log = named("agent.log")?;
    ensure!(
        agent_log.contains(" TRACE ") && agent_log.contains("leaked by an older version"),
        "the log's last lines are in the bundle:\n{agent_log}"
    );
    ensure!(agent_log.lines().count() <= 1000);
    ensure!(agent_log.contains("<scrubbed>") && agent_log.contains("<private key block scrubbed>"));
    ensure!(named("versions.txt")?.contains("OpenSSH_"));
    let report: Value = serde_json::from_str(named("report.json")?)?;
    ensure!(report["checks"].as_array().is_some_and(|c| c.len() == 10));
    ensure!(named("report.txt")?.contains("[ok] "));
    for (what, secret) in &secrets {
        ensure!(secret.len() >= 16, "{what} is too short to search for");
        for (file, text) in &files {
            if let Some(line) = text.lines().find(|l| l.contains(secret.as_str())) {
                bail!("{what} is in {file}: {line}");
            }
        }
    }

    // An existing file is not replaced unless asked.
    let again = user.run(&["doctor", "--bundle", &path], None).await?;
    ensure!(again.status.code() == Some(1));
    let said = String::from_utf8_lossy(&again.stderr);
    ensure!(
        said.contains("already exists") && said.contains("--force"),
        "{said}"
    );
    user.ok(&["doctor", "--bundle", &path, "--force"], None)
        .await?;
    Ok(())
}
