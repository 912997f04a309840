//! Local boundaries, through the real binaries: the `Match exec` refresh hook run from a
//! deleted current directory, exactly as the session's SSH config spells it; a tunnel's
//! remembered port held by another process; tunnels bound beyond loopback and the question
//! asked at a terminal before listening on every address.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{ensure, Context, Result};
use serde_json::Value;
use tether_e2e::cli::User;
use tether_e2e::echo::{echo_once, echo_server};
use tether_e2e::*;
use tether_sim::{Fixture, Sim, SimHandle, SimOptions};

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
            "mkdir '{0}' && cd '{0}' && rmdir '{0}' && {command}",
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

fn fixture(echo: SocketAddr) -> Result<Fixture> {
    let alice = alice_fixture();
    let toml = format!(
        r#"
[backends]
echo = "{echo}"

[[organizations]]
id = "01HZX3LOCAL00000000000000"
name = "local"
label = "Local"

{alice}
[[projects]]
id = "localproj1"
title = "Local"
region = "eu-3"
organization = "local"
members = ["alice"]

  [[projects.services]]
  name = "one"
  type = "redis:7.0"
  backend = "echo"

  [[projects.apps]]
  name = "app"
  type = "php:8.3"
  relationships = {{ cache = "one:redis" }}

  [[projects.environments]]
  id = "dev"
  machine_name = "dev-abcdefg"
  status = "active"
  type = "development"
"#
    );
    Ok(Fixture::from_toml(&toml)?)
}

const OPEN: [&str; 7] = ["tunnel:open", "-p", "localproj1", "-e", "dev", "-A", "app"];

async fn start() -> Result<(SimHandle, User, tether_e2e::cli::AgentStopper)> {
    let (echo, _) = echo_server().await?;
    let sim = Sim::start(fixture(echo)?, SimOptions::default()).await?;
    let user = User::new(&sim.info, false)?;
    let stopper = user.agent_stopper();
    user.ok(&["auth:api-token-login"], Some(ALICE_TOKEN))
        .await?;
    Ok((sim, user, stopper))
}

/// The open tunnels, as `tunnel:list --format json` gives them.
async fn tunnels(user: &User) -> Result<Vec<Value>> {
    let out = user.ok(&["tunnel:list", "--format", "json"], None).await?;
    let v: Value = serde_json::from_str(&out).with_context(|| format!("not JSON: {out}"))?;
    Ok(v.as_array().cloned().unwrap_or_default())
}

fn local(tunnel: &Value) -> Result<SocketAddr> {
    tunnel["local"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .with_context(|| format!("no local address in {tunnel}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remembered_port_held_by_another_process_is_not_silently_replaced() -> Result<()> {
    let (_sim, user, _stop) = start().await?;
    user.ok(&OPEN, None).await?;
    let port = local(&tunnels(&user).await?[0])?.port();
    user.ok(&["tunnel:close", "-y"], None).await?;

    // Another process (this test) takes the port meanwhile.
    let squatter = std::net::TcpListener::bind(("127.0.0.1", port))?;
    let out = user.run(&OPEN, None).await?;
    let stdout = text(&out.stdout);
    ensure!(out.status.success(), "reopen: {}", text(&out.stderr));
    ensure!(
        stdout.contains(&format!(
            "port {port}, this tunnel's port last time, is in use by"
        )) && stdout.contains(&format!("(pid {})", std::process::id())),
        "the move and the holder are named: {stdout}"
    );
    let now = local(&tunnels(&user).await?[0])?.port();
    ensure!(now != port, "a new port was chosen");
    echo_once(now, 4096, 3).await?;
    // Scripts see it too.
    let json = user.ok(&["tunnel:list", "--format", "json"], None).await?;
    ensure!(json.contains("\"displaced\""), "{json}");
    drop(squatter);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnels_export_the_address_they_listen_on_and_a_wildcard_exports_loopback() -> Result<()> {
    let (_sim, user, _stop) = start().await?;
    user.ok(&[&OPEN[..], &["--bind", "127.0.0.2"]].concat(), None)
        .await?;
    let t = tunnels(&user).await?;
    ensure!(local(&t[0])?.ip().to_string() == "127.0.0.2", "{t:?}");
    let url = t[0]["url"].as_str().unwrap_or_default();
    ensure!(
        url.contains("127.0.0.2:"),
        "the URL names the address: {url}"
    );
    let info = user
        .ok(&["tunnel:info", "-P", "cache.0.host"], None)
        .await?;
    ensure!(info.trim() == "127.0.0.2", "tunnel:info: {info}");
    user.ok(&["tunnel:close", "-y"], None).await?;

    // Every address: reached here at 127.0.0.1 (no terminal: the warning, no question).
    let out = user
        .run(&[&OPEN[..], &["--bind", "0.0.0.0"]].concat(), None)
        .await?;
    ensure!(out.status.success(), "{}", text(&out.stderr));
    ensure!(
        text(&out.stderr).contains("Warning"),
        "{}",
        text(&out.stderr)
    );
    let t = tunnels(&user).await?;
    let url = t[0]["url"].as_str().unwrap_or_default();
    ensure!(
        url.contains("127.0.0.1:"),
        "0.0.0.0 is no address to connect to: {url}"
    );
    let info = user.ok(&["tunnel:info", "--encode"], None).await?;
    ensure!(!info.is_empty(), "encoded export");
    echo_once(local(&t[0])?.port(), 4096, 5).await?;
    Ok(())
}

const QUESTION: &str = "Listen on every address (0.0.0.0)?";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listening_on_every_address_is_asked_at_a_terminal() -> Result<()> {
    let (_sim, user, _stop) = start().await?;
    let args = [&OPEN[..], &["--bind", "0.0.0.0"]].concat();
    let (status, shown) = user.at_a_terminal(&args, &[(QUESTION, "n\n")]).await?;
    ensure!(!status.success(), "answered no: {shown}");
    ensure!(shown.contains(QUESTION), "the question: {shown}");
    ensure!(shown.contains("nothing opened"), "{shown}");
    ensure!(tunnels(&user).await?.is_empty(), "nothing opened");

    let (status, shown) = user.at_a_terminal(&args, &[(QUESTION, "y\n")]).await?;
    ensure!(status.success(), "answered yes: {shown}");
    ensure!(tunnels(&user).await?.len() == 1, "one tunnel");
    // -y answers it without a question.
    user.ok(&["tunnel:close", "-y"], None).await?;
    let (status, shown) = user
        .at_a_terminal(&[&args[..], &["-y"]].concat(), &[])
        .await?;
    ensure!(status.success(), "-y: {shown}");
    ensure!(
        !shown.contains("Listen on every address"),
        "asked despite -y"
    );
    Ok(())
}
