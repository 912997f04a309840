//! What Tether hands to the processes it starts: the `ssh` and terminal processes get the
//! user's environment without the variables that carry API tokens, which they have no use for
//! (a remote command, a shell's history or a terminal's crash report could leak them). And the
//! log, at its most verbose, never shows a token.

use std::path::Path;

use anyhow::{Context, Result};
use tether_e2e::cli::User;
use tether_e2e::*;
use tether_sim::SimOptions;

const TOKEN_VARIABLES: [&str; 4] = [
    "TETHER_SIM_TOKEN",
    "PLATFORMSH_CLI_TOKEN",
    "UPSUN_CLI_TOKEN",
    "TETHER_TOKEN",
];

/// A program that records its environment in `<dir>/<name>.env`, then runs `then`.
fn recorder(dir: &Path, name: &str, then: &str) -> Result<()> {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!("#!/bin/sh\nenv > '{}/{name}.env'\n{then}\n", dir.display()),
    )?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

fn recorded(dir: &Path, name: &str) -> Result<String> {
    std::fs::read_to_string(dir.join(format!("{name}.env")))
        .with_context(|| format!("{name} was not started"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_variables_do_not_reach_ssh_or_the_terminal() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let user = User::new(&sim.info, false)?;
    let bin = tempfile::tempdir()?;
    // The real ssh still runs, so the command must work end to end.
    recorder(bin.path(), "ssh", "exec /usr/bin/ssh \"$@\"")?;
    recorder(bin.path(), "term", "exit 0")?;
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let with_tokens = |args: &[&str]| -> Result<std::process::Command> {
        let mut cmd = user.tether(args)?;
        cmd.env("PATH", &path)
            .env("TETHER_SIM_TOKEN", ALICE_TOKEN)
            .env("PLATFORMSH_CLI_TOKEN", "other-platform-token")
            .env("UPSUN_CLI_TOKEN", "other-upsun-token")
            .env(
                "TETHER_TERMINAL",
                format!("{}/term {{}}", bin.path().display()),
            );
        Ok(cmd)
    };

    // The profile's variable signs tether in; ssh runs without it.
    let out = run(&mut with_tokens(&[
        "ssh",
        "-p",
        "rjify4yjcwxaa",
        "-e",
        "main",
        "-A",
        "web",
        "--",
        "echo reached",
    ])?)?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "reached");
    let ssh_env = recorded(bin.path(), "ssh")?;
    assert!(
        ssh_env.contains("PATH="),
        "the rest of the environment is kept"
    );
    for var in TOKEN_VARIABLES {
        assert!(
            !ssh_env.contains(&format!("{var}=")),
            "ssh got {var}:\n{ssh_env}"
        );
    }
    assert!(!ssh_env.contains(ALICE_TOKEN));

    let out = run(&mut with_tokens(&[
        "ssh",
        "-p",
        "rjify4yjcwxaa",
        "-e",
        "main",
        "-A",
        "web",
        "--terminal",
    ])?)?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let term_env = (0..50)
        .find_map(|_| {
            recorded(bin.path(), "term").ok().or_else(|| {
                std::thread::sleep(std::time::Duration::from_millis(100));
                None
            })
        })
        .context("the terminal was not started")?;
    for var in TOKEN_VARIABLES {
        assert!(
            !term_env.contains(&format!("{var}=")),
            "the terminal got {var}:\n{term_env}"
        );
    }
    Ok(())
}
