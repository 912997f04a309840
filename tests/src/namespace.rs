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
    Ok(())
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
