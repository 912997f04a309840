//! Local boundaries, through the real binaries: the `Match exec` refresh hook run from a
//! deleted current directory, exactly as the session's SSH config spells it.

use std::path::PathBuf;

use anyhow::{ensure, Context, Result};
use tether_e2e::cli::User;
use tether_e2e::*;
use tether_sim::SimOptions;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The session config Tether wrote for the simulator's profile.
fn session_config(user: &User) -> Result<PathBuf> {
    let dir = user.home().join(".local/share/tether/ssh");
    std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "config"))
        .with_context(|| format!("no session config in {}", dir.display()))
}

/// The hook's command as OpenSSH runs it: the `exec "…"` argument, its `%%` back to `%`.
fn hook_command(config: &str) -> Result<String> {
    let line = config
        .lines()
        .find(|l| l.starts_with("Match host "))
        .with_context(|| format!("no Match line in:\n{config}"))?;
    let (_, exec) = line
        .split_once(" exec \"")
        .with_context(|| format!("no exec in {line}"))?;
    Ok(exec.trim_end_matches('"').replace("%%", "%"))
}

/// Runs `command` with `sh` (as OpenSSH does) from a directory removed before it starts.
async fn run_from_deleted_directory(user: &User, command: &str) -> Result<std::process::Output> {
    let scratch = tempfile::tempdir()?;
    let gone = scratch.path().join("gone");
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "mkdir '{0}' && cd '{0}' && rmdir '{0}' && exec {command}",
            gone.display()
        ))
        .current_dir(scratch.path());
    user.environment(&mut cmd);
    Ok(tokio::process::Command::from(cmd).output().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refresh_hook_works_from_a_deleted_current_directory() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let user = User::signed_in(&sim.info, ALICE_TOKEN).await?;
    user.ok(&["ssh-cert:load"], None).await?;
    let config = std::fs::read_to_string(session_config(&user)?)?;
    let command = hook_command(&config)?;
    ensure!(command.contains("--refresh-only"), "{command}");

    // A fresh certificate: the fast path.
    let out = run_from_deleted_directory(&user, &command).await?;
    ensure!(
        out.status.success(),
        "hook with a fresh certificate: {}",
        text(&out.stderr)
    );

    // No certificate: the full path renews it.
    let cert = std::fs::read_dir(user.session_dir())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with("-cert.pub"))
        .context("no certificate in the session directory")?;
    std::fs::remove_file(&cert)?;
    let out = run_from_deleted_directory(&user, &command).await?;
    ensure!(
        out.status.success(),
        "hook without a certificate: {}",
        text(&out.stderr)
    );
    ensure!(cert.exists(), "the hook loaded a new certificate");
    Ok(())
}
