//! What the platform or an app sends is bounded and escaped, through the real `tether` and its
//! agent: an app that prints 5 MiB around its relationships, a platform whose environment list is
//! 5 MiB, relationship names that collide with an endpoint index or carry control characters,
//! and titles that carry terminal escapes. Each is refused or escaped with a clear message,
//! and the agent goes on serving.

use std::net::SocketAddr;

use anyhow::{ensure, Context, Result};
use base64::Engine;
use serde_json::Value;
use tether_e2e::cli::User;
use tether_e2e::echo::{echo_once, echo_server};
use tether_e2e::*;
use tether_sim::{Fixture, Sim, SimHandle, SimOptions};

const FIVE_MIB: usize = 5 * 1024 * 1024;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::STANDARD.encode(v.to_string())
}

fn endpoint(host: &str) -> Value {
    serde_json::json!({
        "username": null, "scheme": "redis", "service": "cache", "fragment": null,
        "ip": "169.254.1.2", "hostname": "cache.service._.eu-3.platformsh.site",
        "port": 6379, "cluster": "p-main", "host": host, "rel": "redis", "path": null,
        "query": {}, "password": null, "type": "redis:7.0", "public": false,
        "host_mapped": false,
    })
}

fn fixture(echo: SocketAddr) -> Result<Fixture> {
    // 5 MiB printed before the relationships: more than Tether reads of an app's answer. (A
    // 5 MiB variable cannot be: Linux refuses environment strings past 128 KiB, so login
    // scripts are how an app answers this much.)
    let chatty = "A".repeat(FIVE_MIB);
    let dotted = b64(&serde_json::json!({ "db.1": [endpoint("db.internal")] }));
    let bell = b64(&serde_json::json!({ "cache\u{7}\u{1b}[2J": [endpoint("c.internal")] }));
    let alice = alice_fixture();
    let toml = format!(
        r#"
[backends]
echo = "{echo}"

[[organizations]]
id = "01HZX3BOUNDED0000000000000"
name = "bounded"
label = "Bounded"

{alice}
[[projects]]
id = "boundedproj1"
title = "Bounded\u001b]0;pwned\u0007 \u001b[31mred"
region = "eu-3"
organization = "bounded"
members = ["alice"]

  [[projects.services]]
  name = "one"
  type = "redis:7.0"
  backend = "echo"

  [[projects.apps]]
  name = "fine"
  type = "php:8.3"
  relationships = {{ cache = "one:redis" }}

  [[projects.apps]]
  name = "chatty"
  type = "php:8.3"
  relationships = {{ cache = "one:redis" }}
  login_output = "{chatty}"

  [[projects.apps]]
  name = "dotted"
  type = "php:8.3"
  relationships = {{ cache = "one:redis" }}
  relationships_variable = "{dotted}"

  [[projects.apps]]
  name = "bell"
  type = "php:8.3"
  relationships = {{ cache = "one:redis" }}
  relationships_variable = "{bell}"

  [[projects.environments]]
  id = "main"
  machine_name = "main-abcdefg"
  status = "active"
  type = "production"

[[projects]]
id = "hugeproj1"
title = "Huge"
region = "eu-3"
organization = "bounded"
members = ["alice"]

  [[projects.services]]
  name = "one"
  type = "redis:7.0"
  backend = "echo"

  [[projects.apps]]
  name = "fine"
  type = "php:8.3"
  relationships = {{ cache = "one:redis" }}

  [[projects.environments]]
  id = "main"
  machine_name = "main-hijklmn"
  status = "active"
  type = "production"
  api_filler = {FIVE_MIB}
"#
    );
    Ok(Fixture::from_toml(&toml)?)
}

async fn start() -> Result<SimHandle> {
    let (echo, _) = echo_server().await?;
    Ok(Sim::start(fixture(echo)?, SimOptions::default()).await?)
}

async fn signed_in(sim: &SimHandle) -> Result<(User, tether_e2e::cli::AgentStopper)> {
    let user = User::new(&sim.info, false)?;
    let stopper = user.agent_stopper();
    user.ok(&["auth:api-token-login"], Some(ALICE_TOKEN))
        .await?;
    Ok((user, stopper))
}

fn open_args<'a>(project: &'a str, app: &'a str) -> Vec<&'a str> {
    vec!["tunnel:open", "-p", project, "-e", "main", "-A", app]
}

/// `tunnel:open` fails, saying `expect`, without a panic.
async fn open_fails(user: &User, project: &str, app: &str, expect: &str) -> Result<String> {
    let out = user.run(&open_args(project, app), None).await?;
    let err = text(&out.stderr);
    ensure!(!out.status.success(), "{project}/{app}: should fail");
    ensure!(
        err.contains(expect),
        "{project}/{app}: expected {expect:?} in: {err}"
    );
    ensure!(!err.contains("panicked"), "{err}");
    Ok(err)
}

/// The app `fine` opens and carries bytes, through the same agent as before.
async fn agent_still_serves(user: &User, pid: Option<u32>) -> Result<()> {
    user.ok(&open_args("boundedproj1", "fine"), None).await?;
    let out = user.ok(&["tunnel:list", "--format", "json"], None).await?;
    let tunnels: Value = serde_json::from_str(&out).with_context(|| format!("not JSON: {out}"))?;
    let port = tunnels
        .as_array()
        .and_then(|t| t.iter().find(|t| t["app"] == "fine"))
        .and_then(|t| t["local"].as_str())
        .and_then(|a| a.parse::<SocketAddr>().ok())
        .map(|a| a.port())
        .with_context(|| format!("no tunnel of fine in {out}"))?;
    echo_once(port, 64 * 1024, 7).await?;
    ensure!(
        user.agent_pid() == pid,
        "the agent changed: {pid:?} then {:?}",
        user.agent_pid()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_mib_of_output_around_the_relationships_is_refused_and_the_agent_keeps_serving(
) -> Result<()> {
    let sim = start().await?;
    let (user, _stop) = signed_in(&sim).await?;
    user.ok(&open_args("boundedproj1", "fine"), None).await?;
    let pid = user.agent_pid();
    ensure!(pid.is_some(), "tunnel:open started an agent");
    open_fails(&user, "boundedproj1", "chatty", "more than 4 MiB").await?;
    agent_still_serves(&user, pid).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_five_mib_api_answer_is_refused_and_the_agent_keeps_serving() -> Result<()> {
    let sim = start().await?;
    let (user, _stop) = signed_in(&sim).await?;
    user.ok(&open_args("boundedproj1", "fine"), None).await?;
    let pid = user.agent_pid();
    open_fails(&user, "hugeproj1", "fine", "larger than the 4 MiB").await?;
    agent_still_serves(&user, pid).await?;
    // Without the agent too: the CLI's own listing says the same.
    let out = user.run(&["environments", "-p", "hugeproj1"], None).await?;
    let err = text(&out.stderr);
    ensure!(
        !out.status.success(),
        "environments of hugeproj1 should fail"
    );
    ensure!(err.contains("larger than the 4 MiB"), "{err}");
    Ok(())
}

/// No byte that a terminal reads as a command: C0 controls other than line feed, DEL, ESC.
fn assert_inert(what: &str, out: &str) -> Result<()> {
    let bad: Vec<char> = out
        .chars()
        .filter(|c| c.is_control() && *c != '\n')
        .collect();
    ensure!(
        bad.is_empty(),
        "{what} printed control characters {bad:?}: {out:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_title_with_terminal_escapes_is_printed_escaped() -> Result<()> {
    let sim = start().await?;
    let (user, _stop) = signed_in(&sim).await?;
    let out = user.run(&["projects"], None).await?;
    let stdout = text(&out.stdout);
    ensure!(out.status.success(), "projects: {}", text(&out.stderr));
    assert_inert("projects", &stdout)?;
    ensure!(
        stdout.contains("Bounded\\u{1b}]0;pwned\\u{7} \\u{1b}[31mred"),
        "the title is shown, escaped: {stdout}"
    );
    // JSON keeps the title as the platform sent it (JSON escapes it itself).
    let json = user.ok(&["projects", "--format", "json"], None).await?;
    assert_inert("projects --format json", &json)?;
    ensure!(json.contains("\\u001b]0;pwned"), "{json}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relationship_names_with_a_dot_or_a_control_character_are_refused_by_name() -> Result<()> {
    let sim = start().await?;
    let (user, _stop) = signed_in(&sim).await?;
    // `db.1` would be endpoint 1 of `db`.
    let err = open_fails(&user, "boundedproj1", "dotted", "db.1").await?;
    ensure!(
        err.contains("contains a \".\", which Tether reads as an endpoint index"),
        "{err}"
    );
    let out = user.run(&open_args("boundedproj1", "bell"), None).await?;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    ensure!(!out.status.success(), "bell: should fail: {stdout}");
    assert_inert("tunnel:open of bell (stdout)", &stdout)?;
    assert_inert("tunnel:open of bell (stderr)", &stderr)?;
    ensure!(stderr.contains("contains a control character"), "{stderr}");
    ensure!(
        stderr.contains("cache\\u{7}\\u{1b}[2J"),
        "named, escaped: {stderr}"
    );
    // The agent still lists tunnels and `-r` of a refused name says what there is, escaped.
    let out = user
        .run(
            &[
                &open_args("boundedproj1", "bell")[..],
                &["-r", "nosuch"][..],
            ]
            .concat(),
            None,
        )
        .await?;
    assert_inert("tunnel:open -r nosuch", &text(&out.stderr))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_valid_until_the_end_of_time_is_loaded_and_shown() -> Result<()> {
    let (echo, _) = echo_server().await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let options = SimOptions {
        // valid_before within a minute of u64::MAX.
        certificate_lifetime: std::time::Duration::from_secs(u64::MAX - now - 60),
        ..SimOptions::default()
    };
    let sim = Sim::start(fixture(echo)?, options).await?;
    let (user, _stop) = signed_in(&sim).await?;
    let load = user.run(&["ssh-cert:load"], None).await?;
    let err = text(&load.stderr);
    ensure!(load.status.success(), "ssh-cert:load: {err}");
    ensure!(!err.contains("panicked"), "{err}");
    let info = user.run(&["ssh-cert:info"], None).await?;
    let (out, err) = (text(&info.stdout), text(&info.stderr));
    ensure!(info.status.success(), "ssh-cert:info: {err}");
    ensure!(out.contains("years)"), "valid for years: {out}");
    // And the certificate works: the agent opens a tunnel with it.
    user.ok(&open_args("boundedproj1", "fine"), None).await?;
    Ok(())
}
