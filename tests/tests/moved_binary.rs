//! The session's ssh hook follows the `tether` people run: a binary moved (or installed
//! elsewhere) points the `Match exec` line at itself at its first command, and a binary that is
//! gone leaves plain ssh working and silent.

use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};
use tether_e2e::cli::{workspace_binary, User};
use tether_e2e::{demo_sim, openssh, ALICE_TOKEN, DEMO_PROJECT};
use tether_sim::SimOptions;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The program the user's session config runs before each plain ssh.
fn hook_program(user: &User) -> Result<String> {
    let config = user
        .home()
        .join(".local/share/tether/ssh/tether-sim.config");
    let text = std::fs::read_to_string(&config)?;
    let line = text
        .lines()
        .find(|l| l.starts_with("Match "))
        .with_context(|| format!("no Match line in {text}"))?;
    let (_, program) = line
        .split_once("test -x '")
        .with_context(|| format!("no test -x in {line}"))?;
    Ok(program
        .split_once('\'')
        .map(|(p, _)| p.to_string())
        .unwrap_or_default())
}

/// `program ARGS` as `user`.
fn run_as(user: &User, program: &Path, args: &[&str]) -> Result<()> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    user.environment(&mut cmd);
    let out = cmd.output()?;
    ensure!(
        out.status.success(),
        "{} {args:?}: {}",
        program.display(),
        text(&out.stderr)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_tether_points_the_hook_at_itself_and_a_removed_one_leaves_ssh_quiet() -> Result<()>
{
    let sim = demo_sim(SimOptions::default()).await?;
    let user = User::signed_in(&sim.info, ALICE_TOKEN).await?;
    user.ok(&["config:ssh", "--write"], None).await?;
    user.ok(&["ssh-cert:load"], None).await?;
    let built = workspace_binary("tether")?;
    ensure!(hook_program(&user)? == built.canonicalize()?.display().to_string());

    // The binary moved to another directory: its first command rewrites the line.
    let moved_dir = user.home().join("opt bin");
    std::fs::create_dir_all(&moved_dir)?;
    let moved = moved_dir.join("tether");
    std::fs::copy(&built, &moved)?;
    run_as(&user, &moved, &["auth:info"])?;
    ensure!(
        hook_program(&user)? == moved.display().to_string(),
        "the hook still runs {}",
        hook_program(&user)?
    );

    // That binary removed: plain ssh still reads the config, with no error printed.
    std::fs::remove_file(&moved)?;
    let host = format!("{DEMO_PROJECT}-main-7rqtwti--app@ssh.eu-3.tether.test");
    let (settings, said) = openssh::settings(&user, &host)?;
    ensure!(
        said.is_empty(),
        "ssh with the hook's binary gone said {said:?}"
    );
    ensure!(
        settings.contains("certificatefile "),
        "the session's Host block no longer applies"
    );

    // The remaining binary takes the line back at its next command.
    user.ok(&["auth:info"], None).await?;
    ensure!(hook_program(&user)? == built.canonicalize()?.display().to_string());
    Ok(())
}
