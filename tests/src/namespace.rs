//! Tests that run inside a network and mount namespace of their own, where a test can be the
//! platform at its real names: `ssh.<region>.platform.sh` on port 22, resolved by the system
//! resolver through an `/etc/hosts` the test bind-mounts (the path the built-in profiles
//! take, which has no `[ssh]` block to point elsewhere).
//!
//! A namespace test is two tests: an outer one that runs this test binary again under
//! `unshare --net --mount` with the inner test's name, and the inner one (ignored, so a plain
//! run never starts it outside its namespace) that calls [`Namespace::enter`] first. Nothing
//! leaves the namespace: its only interface is its own loopback.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

/// Set in the environment of a test binary run inside its namespace.
const INSIDE: &str = "TETHER_TEST_NAMESPACE";

/// Runs the ignored test `name` (its full path, such as `inside::sign_in`) of the current test
/// binary in a new network and mount namespace, and fails with its output unless it passed.
pub fn run_inside(name: &str) -> Result<()> {
    run_inside_reporting(name).map(|_| ())
}

/// [`run_inside`], returning what the inner test wrote to stderr (its measurements, for the
/// outer test to pass on).
pub fn run_inside_reporting(name: &str) -> Result<String> {
    ensure!(
        crate::is_root(),
        "namespace tests need root for unshare --net --mount (CI runs as root): run make test as root"
    );
    let exe = std::env::current_exe()?;
    let out = Command::new("unshare")
        .args(["--net", "--mount", "--"])
        .arg(&exe)
        .args([
            "--exact",
            name,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INSIDE, "1")
        .env("RUST_LIB_BACKTRACE", "0")
        .stdin(std::process::Stdio::null())
        .output()
        .context("cannot run unshare (util-linux)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !stdout.contains("1 passed") {
        bail!(
            "{name} failed in its namespace ({}):\n{stdout}\n{stderr}",
            out.status
        );
    }
    Ok(stderr.into_owned())
}

/// The inside of a namespace test's namespace.
pub struct Namespace {
    _hosts: tempfile::TempDir,
}

impl Namespace {
    /// Brings loopback up and makes `names` resolve to 127.0.0.1 through a bind-mounted
    /// `/etc/hosts`. Refuses to run outside a namespace made by [`run_inside`], where it would
    /// change the machine's own files.
    pub fn enter(names: &[String]) -> Result<Namespace> {
        ensure!(
            std::env::var_os(INSIDE).is_some(),
            "this test runs only inside its own namespace: run it through its outer test"
        );
        crate::run_ok(Command::new("ip").args(["link", "set", "lo", "up"]))?;
        let dir = tempfile::Builder::new().prefix("tether-ns-").tempdir()?;
        let hosts = dir.path().join("hosts");
        let mut text = String::from("127.0.0.1 localhost\n::1 localhost ip6-localhost\n");
        for n in names {
            text.push_str(&format!("127.0.0.1 {n}\n"));
        }
        std::fs::write(&hosts, text)?;
        mount_over(&hosts, Path::new("/etc/hosts"))?;
        Ok(Namespace { _hosts: dir })
    }
}

fn mount_over(file: &Path, target: &Path) -> Result<()> {
    crate::run_ok(Command::new("mount").arg("--bind").arg(file).arg(target))?;
    Ok(())
}

/// How the path to a port fails, as `nftables` makes it fail in the namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Every packet to or from the port is dropped: a network gone silent (a laptop that lost
    /// its Wi-Fi, or asleep).
    Silence,
    /// This many packets in a hundred, picked at random, are dropped.
    Loss(u8),
    /// Every packet to the port is answered with a TCP reset.
    Reset,
}

/// The table the faults live in; deleting it ends them.
const FAULT_TABLE: &str = "tether_faults";

/// Breaks the path to and from `port` on the namespace's own interfaces as `fault` says,
/// replacing any fault already there. Loopback traffic crosses the input hook, so one chain
/// covers both directions. Refuses to run outside a namespace made by [`run_inside`].
pub fn break_port(port: u16, fault: Fault) -> Result<()> {
    ensure!(
        std::env::var_os(INSIDE).is_some(),
        "nftables faults are made only inside a test's own namespace"
    );
    heal()?;
    let verdict = match fault {
        Fault::Silence => "drop".to_string(),
        Fault::Loss(percent) => format!("numgen random mod 100 < {percent} drop"),
        // Not a reset itself: the resets nft sends cross the same hook.
        Fault::Reset => "tcp flags & rst == 0 reject with tcp reset".to_string(),
    };
    let script = format!(
        "table inet {FAULT_TABLE} {{\n\
           chain input {{\n\
             type filter hook input priority 0; policy accept;\n\
             tcp dport {port} {verdict}\n\
             tcp sport {port} {verdict}\n\
           }}\n\
         }}\n"
    );
    nft(&["-f", "-"], Some(&script))
}

/// Ends every fault [`break_port`] made.
pub fn heal() -> Result<()> {
    ensure!(
        std::env::var_os(INSIDE).is_some(),
        "nftables faults are made only inside a test's own namespace"
    );
    let tables = crate::run_ok(Command::new("nft").args(["list", "tables"]))
        .context("cannot run nft (Debian package nftables; scripts/setup-system.sh installs it)")?;
    if tables.contains(FAULT_TABLE) {
        nft(&["delete", "table", "inet", FAULT_TABLE], None)?;
    }
    Ok(())
}

fn nft(args: &[&str], stdin: Option<&str>) -> Result<()> {
    use std::io::Write;
    let mut child = Command::new("nft")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("cannot run nft (Debian package nftables; scripts/setup-system.sh installs it)")?;
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(stdin.unwrap_or_default().as_bytes())?;
    }
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "nft {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stderr),
        stdin.unwrap_or_default()
    );
    Ok(())
}
