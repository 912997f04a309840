//! The real Secret Service for tests: a private D-Bus session bus with gnome-keyring's secrets
//! component, unlocked with a password on stdin (gnome-keyring needs a non-empty one).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::{run, ChildGuard};

pub struct SecretService {
    pub bus_address: String,
    _keyring: ChildGuard,
    _dbus: ChildGuard,
}

impl SecretService {
    /// Starts a bus and an unlocked keyring whose files live under `home`.
    pub fn start(home: &Path) -> Result<SecretService> {
        let (dbus, bus_address) = crate::desktop::session_bus()?;
        let runtime = home.join("run");
        std::fs::create_dir_all(&runtime)?;
        let mut keyring = ChildGuard::spawn(
            "gnome-keyring-daemon",
            Command::new("gnome-keyring-daemon")
                .args(["--foreground", "--unlock", "--components=secrets"])
                .env("DBUS_SESSION_BUS_ADDRESS", &bus_address)
                .env("HOME", home)
                .env("XDG_RUNTIME_DIR", &runtime)
                .env("XDG_DATA_HOME", home.join("share"))
                .env("XDG_CACHE_HOME", home.join("cache"))
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )?;
        if let Some(mut stdin) = keyring.child.stdin.take() {
            stdin.write_all(b"tether-test-keyring")?;
        }
        // Ready when the secrets service answers on the bus.
        let start = Instant::now();
        loop {
            let out = run(Command::new("busctl").args([
                "--address",
                &bus_address,
                "status",
                "org.freedesktop.secrets",
            ]))
            .context("busctl is missing")?;
            if out.status.success() {
                break;
            }
            if start.elapsed() > Duration::from_secs(20) {
                bail!("gnome-keyring did not offer org.freedesktop.secrets in 20 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(SecretService {
            bus_address,
            _keyring: keyring,
            _dbus: dbus,
        })
    }

    /// Everything the Secret Service holds under `service`, as `secret-tool search --all` shows
    /// it (attributes on stderr, secrets on stdout): empty when it holds nothing.
    pub fn items(&self, service: &str) -> Result<String> {
        let out = run(Command::new("secret-tool")
            .args(["search", "--all", "service", service])
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus_address))?;
        let shown = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            bail!("secret-tool search failed ({}): {shown}", out.status);
        }
        Ok(shown)
    }

    /// Looks a secret up with the standard `secret-tool`, as another program would.
    pub fn lookup(&self, service: &str, user: &str) -> Result<Option<String>> {
        let out = run(Command::new("secret-tool")
            .args(["lookup", "service", service, "username", user])
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus_address))?;
        let value = String::from_utf8_lossy(&out.stdout).into_owned();
        Ok(if out.status.success() && !value.is_empty() {
            Some(value)
        } else {
            None
        })
    }
}
