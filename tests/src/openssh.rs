//! What the system `ssh` makes of a user's configuration, `Match exec` hooks included.

use std::process::Command;

use anyhow::{ensure, Result};

use crate::cli::User;

/// What `ssh -G` settles for `destination` through `user`'s `~/.ssh/config` (running its hooks
/// as a connection would), and what it printed on stderr; fails when ssh fails. OpenSSH 9.2's
/// `-G` complains about its own stdin whatever the config holds: that line is left out.
pub fn settings(user: &User, destination: &str) -> Result<(String, Vec<String>)> {
    let mut ssh = Command::new("ssh");
    ssh.arg("-G")
        .arg("-F")
        .arg(user.ssh_config())
        .arg(destination);
    user.environment(&mut ssh);
    let out = ssh.output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let said: Vec<String> = stderr
        .lines()
        .filter(|l| !l.starts_with("Pseudo-terminal will not be allocated"))
        .map(str::to_string)
        .collect();
    ensure!(
        out.status.success(),
        "ssh -G {destination} ({}): {said:?}",
        out.status
    );
    Ok((String::from_utf8_lossy(&out.stdout).into_owned(), said))
}
