//! The log at its most verbose (`TETHER_LOG=trace`) over a whole session, from sign-in to
//! sign-out, never shows a secret: not the API token, not an access or refresh token, not the
//! session's private key.

use anyhow::{bail, Context, Result};
use tether_e2e::cli::User;
use tether_e2e::*;
use tether_sim::SimOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_session_logged_at_trace_level_shows_no_secret() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let user = User::new(&sim.info, false)?;
    let mut log = String::new();
    let mut step = |args: &[&str], stdin: Option<&str>| -> Result<()> {
        let mut cmd = user.tether(args)?;
        cmd.env("TETHER_LOG", "trace");
        let out = if let Some(input) = stdin {
            use std::io::Write;
            let mut child = cmd
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()?;
            if let Some(mut pipe) = child.stdin.take() {
                pipe.write_all(input.as_bytes())?;
            }
            child.wait_with_output()?
        } else {
            run(&mut cmd)?
        };
        log.push_str(&String::from_utf8_lossy(&out.stdout));
        log.push_str(&String::from_utf8_lossy(&out.stderr));
        if !out.status.success() {
            bail!("tether {args:?} failed:\n{log}");
        }
        Ok(())
    };
    step(&["auth:api-token-login"], Some(ALICE_TOKEN))?;
    step(&["auth:info"], None)?;
    step(&["ssh-cert:load", "--new"], None)?;
    step(&["projects"], None)?;
    step(
        &[
            "ssh",
            "-p",
            "rjify4yjcwxaa",
            "-e",
            "main",
            "-A",
            "web",
            "--",
            "true",
        ],
        None,
    )?;
    // The secrets of this session, read from where Tether keeps them.
    let store: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        user.session_dir().join("tokens.json"),
    )?)?;
    let tokens: serde_json::Value = serde_json::from_str(
        store["session"]
            .as_str()
            .context("no session in the token store")?,
    )?;
    let key = std::fs::read_to_string(user.session_dir().join("id_ed25519"))?;
    let key_lines: Vec<String> = key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::to_string)
        .collect();
    step(&["logout"], None)?;

    assert!(
        log.contains("auth:api-token-login") || log.contains("command"),
        "the trace level logs something at all:\n{log}"
    );
    let mut secrets = vec![ALICE_TOKEN.to_string()];
    secrets.extend(key_lines);
    let access = tokens["access_token"].as_str().context("no access token")?;
    assert!(access.len() > 100, "a JWT: {access}");
    for field in ["access_token", "refresh_token"] {
        if let Some(t) = tokens.get(field).and_then(|v| v.as_str()) {
            secrets.push(t.to_string());
            // A JWT's signature part alone is a secret too.
            if let Some(sig) = t.rsplit('.').next() {
                secrets.push(sig.to_string());
            }
        }
    }
    for secret in secrets.iter().filter(|s| s.len() >= 16) {
        assert!(
            !log.contains(secret.as_str()),
            "a secret reached the log:\n{log}"
        );
    }
    Ok(())
}
