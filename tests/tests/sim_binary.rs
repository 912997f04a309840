//! The `tether-sim` binary as the demo and scripts use it: the ready line, the profile it
//! writes, a fixture that is wrong, and a clean stop on SIGTERM and SIGINT.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tether_e2e::cli::workspace_binary;

fn stop_with(signal: &str) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let profile = dir.path().join("profile.toml");
    let mut child = Command::new(workspace_binary("tether-sim")?)
        .args([
            "--demo",
            "--backend",
            "postgresql=127.0.0.1:6543",
            "--profile-out",
        ])
        .arg(&profile)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    let ready: serde_json::Value =
        serde_json::from_str(&line).with_context(|| format!("not JSON: {line:?}"))?;
    for key in [
        "api_url",
        "auth_url",
        "ssh_host",
        "ssh_port",
        "ssh_host_key",
        "ca_public_key",
    ] {
        assert!(!ready[key].is_null(), "ready line lacks {key}: {line}");
    }
    assert_eq!(ready["ssh_host"], "127.0.0.1");
    assert_eq!(ready["demo"]["username"], "alice");
    assert!(ready["demo"]["totp_secret"].is_string());
    let written = std::fs::read_to_string(&profile)?;
    let parsed = tether_core::Profile::from_toml(&written, &profile)?;
    assert_eq!(
        parsed.api_url.as_str().trim_end_matches('/'),
        ready["api_url"].as_str().unwrap_or_default()
    );
    assert_eq!(
        parsed.ssh_ca_keys,
        vec![ready["ca_public_key"]
            .as_str()
            .unwrap_or_default()
            .to_string()]
    );

    Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()?;
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            anyhow::bail!("tether-sim did not stop within 10 s of {signal}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{signal}: {status}");
    Ok(())
}

#[test]
fn the_binary_prints_its_ready_line_writes_a_profile_and_stops_on_sigterm() -> Result<()> {
    stop_with("-TERM")
}

#[test]
fn the_binary_stops_on_sigint() -> Result<()> {
    stop_with("-INT")
}

#[test]
fn a_wrong_fixture_or_backend_is_explained() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let fixture = dir.path().join("f.toml");
    std::fs::write(
        &fixture,
        "[[projects]]\nid = \"Bad-Id\"\ntitle = \"x\"\nregion = \"eu\"\norganization = \"nope\"\n",
    )?;
    let out = Command::new(workspace_binary("tether-sim")?)
        .arg("--fixture")
        .arg(&fixture)
        .output()?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Bad-Id") && stderr.contains("lowercase"),
        "{stderr}"
    );
    let out = Command::new(workspace_binary("tether-sim")?)
        .args(["--demo", "--backend", "postgresql=localhost"])
        .output()?;
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not HOST:PORT"));
    let out = Command::new(workspace_binary("tether-sim")?).output()?;
    assert!(String::from_utf8_lossy(&out.stderr).contains("--demo, or --fixture FILE"));
    Ok(())
}

#[test]
fn the_binary_serves_at_the_real_gateway_names_with_a_builtin_shaped_profile() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let profile = dir.path().join("profile.toml");
    let mut child = tether_e2e::ChildGuard::spawn(
        "tether-sim",
        Command::new(workspace_binary("tether-sim")?)
            .args(["--demo", "--ssh-domain", "platform.sh", "--builtin-shaped"])
            .arg("--profile-out")
            .arg(&profile)
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    )?;
    let mut line = String::new();
    BufReader::new(child.child.stdout.take().context("stdout")?).read_line(&mut line)?;
    let ready: serde_json::Value =
        serde_json::from_str(&line).with_context(|| format!("not JSON: {line:?}"))?;
    let hosts: Vec<&str> = ready["gateway_hosts"]
        .as_array()
        .context("no gateway_hosts")?
        .iter()
        .filter_map(|h| h.as_str())
        .collect();
    assert!(hosts.contains(&"ssh.eu-3.platform.sh"), "{line}");
    assert!(hosts.contains(&"git.eu-3.platform.sh"), "{line}");
    assert_eq!(
        ready["ssh_host_patterns"],
        serde_json::json!(["*.platform.sh"])
    );
    let parsed = tether_core::Profile::from_file(&profile)?;
    assert!(
        parsed.ssh.is_none(),
        "a built-in-shaped profile has no [ssh] block"
    );
    assert_eq!(parsed.gateway_host_keys.len(), 1);
    assert!(parsed.gateway_host_keys[0].contains("ssh.eu-3.platform.sh"));
    assert!(
        parsed.gateway_host_keys[0].ends_with(ready["ssh_host_key"].as_str().unwrap_or("missing"))
    );
    Ok(())
}
