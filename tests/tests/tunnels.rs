//! Tunnels as users run them: `tether tunnel:open` starts a headless agent that keeps the
//! tunnels, real `psql` and `redis-cli` connect through them to real servers behind
//! tether-sim's gateway, and `tunnel:info --encode` gives a `PLATFORM_RELATIONSHIPS` that a
//! program reading only that variable connects with. Then things break on purpose: the
//! gateway is killed and comes back, stays down for a minute, the certificate expires, ports
//! are taken, a thousand connections arrive at once, the platform sends broken relationships,
//! connection details race an open of the same app, and one app's gateway keeps its open
//! waiting while other apps are used.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use base64::Engine;
use serde_json::Value;
use tether_core::agent::{AgentClient, Reply, Request};
use tether_core::api::{AppName, EnvironmentId, ProjectId};
use tether_core::tunnel::{AppKey, CloseRequest, OpenRequest};
use tether_e2e::cli::User;
use tether_e2e::echo::{echo_once, echo_retrying, echo_server};
use tether_e2e::*;
use tether_sim::{Fixture, Sim, SimHandle, SimOptions};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};

const DEMO_ENV: &str = "main";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `tether tunnel:list --format json`.
async fn list(user: &User) -> Result<Vec<Value>> {
    let out = user.ok(&["tunnel:list", "--format", "json"], None).await?;
    let v: Value = serde_json::from_str(&out).with_context(|| format!("not JSON: {out}"))?;
    Ok(v.as_array().cloned().unwrap_or_default())
}

/// Relationship name → local port.
fn ports(tunnels: &[Value]) -> BTreeMap<String, u16> {
    tunnels
        .iter()
        .map(|t| {
            (
                t["relationship"].as_str().unwrap_or_default().to_string(),
                t["local"]
                    .as_str()
                    .and_then(|a| a.parse::<SocketAddr>().ok())
                    .map(|a| a.port())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

fn states(tunnels: &[Value]) -> Vec<String> {
    tunnels
        .iter()
        .map(|t| t["state"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn psql(port: u16, sql: &str) -> Result<String> {
    let out = run_async({
        let mut c = Command::new("psql");
        c.arg(format!("postgresql://main:main@127.0.0.1:{port}/main"))
            .args(["-tAc", sql]);
        c
    })
    .await?;
    ensure!(out.status.success(), "psql failed: {}", text(&out.stderr));
    Ok(text(&out.stdout).trim().to_string())
}

fn redis_cli(port: u16, args: &[&str]) -> Result<String> {
    Ok(run_ok(
        Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args),
    )?
    .trim()
    .to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnels_carry_psql_and_redis_and_export_platform_relationships() -> Result<()> {
    let postgres = Postgres::start()?;
    let redis = Redis::start()?;
    let mut options = SimOptions::default();
    backend(&mut options, "postgresql", postgres.port);
    backend(&mut options, "redis", redis.port);
    let sim = demo_sim(options).await?;
    let (user, _stop) = signed_in(&sim, ALICE_TOKEN).await?;

    let app = ["-p", DEMO_PROJECT, "-e", DEMO_ENV, "-A", "app"];
    let open = user
        .run(&[&["tunnel:open"][..], &app].concat(), None)
        .await?;
    let said = text(&open.stdout);
    ensure!(
        open.status.success(),
        "tunnel:open failed: {}",
        text(&open.stderr)
    );
    for wanted in [
        "SSH tunnel opened to database",
        "SSH tunnel opened to rediscache",
        "postgresql://main:main@127.0.0.1:",
        "tether tunnel:list",
        "tether tunnel:close",
        "agent-tether-sim.log",
        "export PLATFORM_RELATIONSHIPS=\"$(tether tunnel:info --encode)\"",
    ] {
        ensure!(
            said.contains(wanted),
            "tunnel:open did not say {wanted:?}:\n{said}"
        );
    }
    let tunnels = list(&user).await?;
    ensure!(tunnels.len() == 2, "two tunnels expected: {tunnels:?}");
    ensure!(states(&tunnels) == ["open", "open"], "{tunnels:?}");
    let first = ports(&tunnels);
    let (db, cache) = (first["database"], first["rediscache"]);
    ensure!(
        db >= 30000 && cache >= 30000,
        "ports from 30000 up: {first:?}"
    );

    // Real clients through the tunnels.
    ensure!(psql(db, "select 6 * 7").await? == "42");
    ensure!(redis_cli(cache, &["set", "tether", "tunnelled"])? == "OK");
    ensure!(redis_cli(cache, &["get", "tether"])? == "tunnelled");
    let tunnels = list(&user).await?;
    let counted = tunnels
        .iter()
        .find(|t| t["relationship"] == "database")
        .context("db")?;
    ensure!(
        counted["counters"]["connections"].as_u64() >= Some(1),
        "{counted}"
    );
    ensure!(
        counted["counters"]["bytes_received"].as_u64() > Some(0),
        "{counted}"
    );

    // The export: the reference's shape, with the local address and a URL.
    let encoded = user.ok(&["tunnel:info", "--encode"], None).await?;
    let decoded: Value =
        serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(encoded.trim())?)?;
    let database = &decoded["database"][0];
    ensure!(
        database["host"] == "127.0.0.1" && database["ip"] == "127.0.0.1",
        "{database}"
    );
    ensure!(database["port"] == db, "{database}");
    ensure!(
        database["url"] == format!("postgresql://main:main@127.0.0.1:{db}/main"),
        "{database}"
    );
    for kept in [
        "cluster", "hostname", "service", "rel", "type", "query", "username", "password",
    ] {
        ensure!(
            database.get(kept).is_some(),
            "{kept} was dropped: {database}"
        );
    }
    ensure!(database["hostname"]
        .as_str()
        .is_some_and(|h| h.ends_with(".platformsh.site")));
    ensure!(decoded["rediscache"][0]["url"] == format!("redis://127.0.0.1:{cache}"));
    ensure!(
        user.ok(&["tunnel:info", "-P", "database.0.port"], None)
            .await?
            .trim()
            == db.to_string()
    );
    let both = user
        .run(&["tunnel:info", "--encode", "-P", "database"], None)
        .await?;
    ensure!(
        !both.status.success(),
        "--encode with --property must be refused"
    );

    // A small program that knows nothing but the variable. The JSON escapes '/' as '\/', as
    // the official client's (PHP's json_encode) does, so the program unescapes it.
    let program = r#"url=$(printf %s "$PLATFORM_RELATIONSHIPS" | base64 -d | sed 's#\\/#/#g' | grep -o '"url":"postgresql://[^"]*"' | cut -d'"' -f4); exec psql "$url" -tAc 'select current_user'"#;
    let out = run(Command::new("env")
        .arg("-i")
        .arg(format!(
            "PATH={}",
            std::env::var("PATH").unwrap_or_default()
        ))
        .arg(format!("PLATFORM_RELATIONSHIPS={}", encoded.trim()))
        .args(["sh", "-c", program]))?;
    ensure!(
        out.status.success() && text(&out.stdout).trim() == "main",
        "the program could not connect: {} {}",
        text(&out.stdout),
        text(&out.stderr)
    );

    // Closing frees the port at once (the agent listens on it no more; whether it is free
    // would say nothing, as the suite's other tests take ports from 30000); the other tunnel
    // goes on.
    let agent = user.agent_pid().context("no agent")?;
    ensure!(listening_ports(agent)?.contains(&cache));
    user.ok(&["tunnel:close", "-y", "-r", "rediscache"], None)
        .await?;
    ensure!(
        !listening_ports(agent)?.contains(&cache),
        "the closed tunnel's port is still held by the agent"
    );
    ensure!(psql(db, "select 1").await? == "1");
    ensure!(list(&user).await?.len() == 1);

    // The ports are remembered: after the agent restarts, the same ones. Other tests of this
    // suite take ports from 30000 up meanwhile, so the remembered ones are moved to ports
    // outside that range first (as if an earlier run had had them).
    user.ok(&["agent:stop"], None).await?;
    let book = user
        .home()
        .join(".local/share/tether/tunnels/tether-sim.ports.json");
    // Each relationship's port, with when it was last used.
    let entries: BTreeMap<String, Value> = serde_json::from_slice(&std::fs::read(&book)?)?;
    let remembered: BTreeMap<String, u16> = entries
        .iter()
        .map(|(k, e)| {
            let port = e["port"].as_u64().and_then(|p| u16::try_from(p).ok());
            Ok((k.clone(), port.with_context(|| format!("no port in {e}"))?))
        })
        .collect::<Result<_>>()?;
    let mut kept: Vec<u16> = remembered.values().copied().collect();
    let mut wanted: Vec<u16> = first.values().copied().collect();
    kept.sort_unstable();
    wanted.sort_unstable();
    ensure!(kept == wanted, "remembered {remembered:?}, had {first:?}");
    let moved: BTreeMap<u16, u16> = remembered.values().map(|&p| (p, free_port())).collect();
    let seeded: BTreeMap<&String, u16> = remembered.iter().map(|(k, p)| (k, moved[p])).collect();
    // Written as a book from before ports had a last use: it must still be read.
    std::fs::write(&book, serde_json::to_vec(&seeded)?)?;
    user.ok(&[&["tunnel:open"][..], &app].concat(), None)
        .await?;
    let expected: BTreeMap<String, u16> =
        first.iter().map(|(r, p)| (r.clone(), moved[p])).collect();
    ensure!(
        ports(&list(&user).await?) == expected,
        "ports changed after a restart"
    );

    // A chosen port that is busy: a clear error naming it and its holder, exit 1.
    user.ok(&["tunnel:close", "--all", "-y"], None).await?;
    ensure!(list(&user).await?.is_empty());
    let held = TcpListener::bind(("127.0.0.1", 0)).await?;
    let busy = held.local_addr()?.port();
    let refused = user
        .run(
            &[
                &["tunnel:open"][..],
                &app,
                &["-r", "database", "--port", &busy.to_string()],
            ]
            .concat(),
            None,
        )
        .await?;
    let err = text(&refused.stderr);
    ensure!(
        refused.status.code() == Some(1),
        "exit {:?}: {err}",
        refused.status.code()
    );
    ensure!(
        err.contains(&format!("port {busy}")) && err.contains("in use"),
        "the error does not name the port: {err}"
    );
    ensure!(
        err.contains(&format!("pid {}", std::process::id())),
        "the error does not name the holder: {err}"
    );
    ensure!(
        list(&user).await?.is_empty(),
        "nothing may open on a busy port"
    );
    drop(held);

    // --port for several relationships is refused.
    let many = user
        .run(
            &[&["tunnel:open"][..], &app, &["--port", "31999"]].concat(),
            None,
        )
        .await?;
    ensure!(!many.status.success() && text(&many.stderr).contains("-r"));

    // First free from 30000: a new user, whose usual port is taken.
    let (other, _stop_other) = signed_in(&sim, ALICE_TOKEN).await?;
    let mut taken = None;
    for port in 30000..31000 {
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)).await {
            taken = Some(l);
            break;
        }
    }
    let taken = taken.context("no free port from 30000")?;
    let taken_port = taken.local_addr()?.port();
    other
        .ok(
            &[&["tunnel:open"][..], &app, &["-r", "rediscache"]].concat(),
            None,
        )
        .await?;
    let got = ports(&list(&other).await?)["rediscache"];
    ensure!(
        got >= 30000 && got != taken_port,
        "got {got}, {taken_port} was taken"
    );
    ensure!(redis_cli(got, &["ping"])? == "PONG");
    other.ok(&["agent:stop"], None).await?;
    user.ok(&["agent:stop"], None).await?;
    Ok(())
}

/// What the login scripts of the tunnel fixture's app `noisy` print before every command (as
/// `.environment` and `.bashrc` may on the real platform), ending without a line feed so that
/// the command's output follows on the same line.
const NOISY_LOGIN: &str = "nvm: using node v20.11.1 (npm v10.2.4)\nLoading .environment... done";
/// What they print once a command has ended (an EXIT trap).
const NOISY_EXIT: &str = "\n.environment: bye from noisy\n";

/// A platform with an app of five relationships to echo services, apps whose relationships
/// variable is broken in each way the platform could break it, an app whose login scripts
/// print around every command, and a service that refuses.
fn tunnel_fixture(echo: SocketAddr, refusing: SocketAddr) -> Result<Fixture> {
    let endpoint = |rel: &str, host: &str, port: Value| {
        serde_json::json!({
            "username": null, "scheme": "redis", "service": "cache", "fragment": null,
            "ip": "169.254.1.2", "hostname": "cache.service._.eu-3.platformsh.site",
            "port": port, "cluster": "p-main", "host": host, "rel": rel, "path": null,
            "query": {}, "password": null, "type": "redis:7.0", "public": false,
            "host_mapped": false,
        })
    };
    let b64 = |v: &Value| base64::engine::general_purpose::STANDARD.encode(v.to_string());
    let mut missing_host = endpoint("redis", "x", Value::from(6379));
    missing_host
        .as_object_mut()
        .context("object")?
        .remove("host");
    let mixed = serde_json::json!({
        "cache": [endpoint("redis", "cache.internal", Value::from(6379))],
        "refused": [endpoint("redis", "refused.internal", Value::from(6379))],
        "nohost": [missing_host],
        "wrongtype": [endpoint("redis", "w.internal", Value::from("six"))],
        "outofrange": [endpoint("redis", "o.internal", Value::from(70000))],
        "badhost": [endpoint("redis", "bad host/", Value::from(6379))],
    });
    let alice = alice_fixture();
    let toml = format!(
        r#"
[backends]
echo = "{echo}"
refusing = "{refusing}"

[[organizations]]
id = "01HZX3TUNNEL00000000000000"
name = "tunnelers"
label = "Tunnelers"

{alice}
[[projects]]
id = "tunnelproj1"
title = "Tunnels"
region = "eu-3"
organization = "tunnelers"
members = ["alice"]

  [[projects.services]]
  name = "one"
  type = "redis:7.0"
  backend = "echo"
  [[projects.services]]
  name = "two"
  type = "memcached:1.6"
  backend = "echo"
  [[projects.services]]
  name = "three"
  type = "rabbitmq:3.12"
  backend = "echo"
  [[projects.services]]
  name = "four"
  type = "elasticsearch:8.5"
  backend = "echo"
  [[projects.services]]
  name = "five"
  type = "mongodb:6.0"
  backend = "echo"
  [[projects.services]]
  name = "dead"
  type = "redis:7.0"
  backend = "refusing"

  [[projects.apps]]
  name = "five"
  type = "php:8.3"
  relationships = {{ one = "one:redis", two = "two:memcached", three = "three:rabbitmq", four = "four:elasticsearch", five = "five:mongodb" }}

  [[projects.apps]]
  name = "nobase64"
  type = "php:8.3"
  relationships = {{ one = "one:redis" }}
  relationships_variable = "%%% this is not base64 %%%"

  [[projects.apps]]
  name = "nojson"
  type = "php:8.3"
  relationships = {{ one = "one:redis" }}
  relationships_variable = "{nojson}"

  [[projects.apps]]
  name = "mixed"
  type = "php:8.3"
  relationships = {{ cache = "one:redis", refused = "dead:redis" }}
  relationships_variable = "{mixed}"

  [[projects.apps]]
  name = "official"
  type = "php:8.3"
  relationships = {{ cache = "one:redis", database = "one:redis" }}
  relationships_variable = "{official}"

  [[projects.apps]]
  name = "noisy"
  type = "nodejs:20"
  relationships = {{ cache = "one:redis", queue = "three:rabbitmq" }}
  login_output = {noisy_login}
  exit_output = {noisy_exit}

  [[projects.environments]]
  id = "main"
  machine_name = "main-abcdefg"
  status = "active"
  type = "production"

  [[projects.environments]]
  id = "dev"
  machine_name = "dev-hijklmn"
  status = "active"
  type = "development"
"#,
        nojson = base64::engine::general_purpose::STANDARD.encode("{\"database\": [{\"host\": "),
        mixed = b64(&mixed),
        official = base64::engine::general_purpose::STANDARD.encode(OFFICIAL_APP),
        // JSON strings are TOML basic strings too.
        noisy_login = Value::from(NOISY_LOGIN),
        noisy_exit = Value::from(NOISY_EXIT),
    );
    Ok(Fixture::from_toml(&toml)?)
}

const TUNNEL_PROJECT: &str = "tunnelproj1";
/// Opens the five tunnels of the tunnel fixture's app `five`.
const OPEN_FIVE: [&str; 7] = [
    "tunnel:open",
    "-p",
    TUNNEL_PROJECT,
    "-e",
    "main",
    "-A",
    "five",
];
/// The same app on the non-production environment `dev`.
const OPEN_FIVE_DEV: [&str; 7] = [
    "tunnel:open",
    "-p",
    TUNNEL_PROJECT,
    "-e",
    "dev",
    "-A",
    "five",
];

/// A user of `sim` signed in with an API token, and the stopper of the agent their tunnels
/// start (dropped first, so the agent ends before its home goes).
async fn signed_in(sim: &SimHandle, token: &str) -> Result<(User, tether_e2e::cli::AgentStopper)> {
    let user = User::new(&sim.info, false)?;
    let stopper = user.agent_stopper();
    user.ok(&["auth:api-token-login"], Some(token)).await?;
    Ok((user, stopper))
}

async fn tunnel_sim(options: SimOptions) -> Result<(SimHandle, Arc<AtomicU64>)> {
    let (echo, accepted) = echo_server().await?;
    // The "service" refuses every connection.
    let refusing = tether_e2e::refusing_address()?;
    let sim = Sim::start(tunnel_fixture(echo, refusing)?, options).await?;
    Ok((sim, accepted))
}

/// Probes every port every 50 ms until stopped: a refused connection means a listener was
/// closed, which must never happen while a tunnel is open.
fn watch_listeners(ports: Vec<u16>) -> (Arc<AtomicBool>, tokio::task::JoinHandle<Result<u64>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let task = tokio::spawn(async move {
        let mut probes = 0u64;
        while !flag.load(Ordering::Relaxed) {
            for port in &ports {
                match TcpStream::connect(("127.0.0.1", *port)).await {
                    Ok(_) => probes += 1,
                    Err(e) => bail!("port {port} refused a connection: {e}"),
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(probes)
    });
    (stop, task)
}

/// Waits until there are tunnels and every one is in `state`; returns them.
async fn until_all(user: &User, state: &str, within: Duration) -> Result<Vec<Value>> {
    let start = Instant::now();
    loop {
        let tunnels = list(user).await?;
        if !tunnels.is_empty() && states(&tunnels).iter().all(|s| s == state) {
            return Ok(tunnels);
        }
        if start.elapsed() > within {
            bail!("not all {state} after {within:?}: {tunnels:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every tunnel is open, and says how long that took.
async fn until_all_open(user: &User, count: usize, within: Duration) -> Result<Duration> {
    let start = Instant::now();
    loop {
        let tunnels = list(user).await?;
        if tunnels.len() == count && states(&tunnels).iter().all(|s| s == "open") {
            return Ok(start.elapsed());
        }
        if start.elapsed() > within {
            bail!("not all open after {within:?}: {:?}", states(&tunnels));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnels_heal_after_the_gateway_restarts_and_the_certificate_expires() -> Result<()> {
    let options = SimOptions {
        certificate_lifetime: Duration::from_secs(8),
        ..SimOptions::default()
    };
    let (sim, _) = tunnel_sim(options).await?;
    let (user, _stop) = signed_in(&sim, ALICE_TOKEN).await?;
    user.ok(&OPEN_FIVE, None).await?;
    let before = ports(&list(&user).await?);
    ensure!(before.len() == 5, "five tunnels expected: {before:?}");
    let all: Vec<u16> = before.values().copied().collect();
    ensure!(
        sim.gateway_connections() == 1,
        "one SSH connection carries the app's tunnels"
    );

    // Traffic flows on every tunnel.
    for (i, port) in all.iter().enumerate() {
        echo_once(*port, 256 * 1024, i as u8).await?;
    }
    let (stop_watch, watcher) = watch_listeners(all.clone());

    // The gateway is killed and comes back on the same port.
    for round in [
        "gateway restart",
        "certificate expired, then gateway restart",
    ] {
        if round.starts_with("certificate") {
            // The certificate the connection authenticated with expires (8 s of validity);
            // the agent has renewed the files meanwhile, and the reconnection must use a
            // valid certificate, not the one it connected with.
            let connected_with = user.certificate_serial()?;
            user.until_certificate_expired().await?;
            ensure!(
                user.certificate_serial()? != connected_with,
                "the agent should have renewed before the certificate expired"
            );
        }
        sim.stop_gateway().await;
        let down = until_all(&user, "reconnecting", Duration::from_secs(5))
            .await
            .context(round)?;
        ensure!(
            down.iter()
                .all(|t| t["error"].as_str().is_some_and(|e| !e.is_empty())),
            "{down:?}"
        );
        sim.start_gateway().await?;
        let took = until_all_open(&user, 5, Duration::from_secs(5)).await?;
        eprintln!("{round}: all five tunnels open again {took:?} after the gateway came back");
        ensure!(
            ports(&list(&user).await?) == before,
            "{round}: ports changed"
        );
        for port in &all {
            echo_retrying(*port, Duration::from_secs(5)).await?;
        }
        ensure!(
            sim.gateway_connections() == 1,
            "{round}: one connection again"
        );
    }
    stop_watch.store(true, Ordering::Relaxed);
    let probes = watcher.await??;
    ensure!(probes > 0);
    user.ok(&["agent:stop"], None).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnels_wait_out_a_gateway_that_is_down_for_a_minute() -> Result<()> {
    let (sim, _) = tunnel_sim(SimOptions::default()).await?;
    let (user, _stop) = signed_in(&sim, ALICE_TOKEN).await?;
    user.ok(&OPEN_FIVE, None).await?;
    let before = ports(&list(&user).await?);
    let all: Vec<u16> = before.values().copied().collect();
    let (stop_watch, watcher) = watch_listeners(all.clone());
    sim.stop_gateway().await;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let down = list(&user).await?;
        ensure!(
            states(&down).iter().all(|s| s == "reconnecting"),
            "after {:?}: {down:?}",
            start.elapsed()
        );
    }
    // A client that connects while the gateway is still down is held, not refused, and
    // gets through once it is back.
    let early = tokio::spawn(echo_once(all[0], 4096, 3));
    let held = Instant::now();
    while !list(&user)
        .await?
        .iter()
        .any(|t| t["counters"]["active"].as_u64() > Some(0))
    {
        ensure!(
            held.elapsed() < Duration::from_secs(5),
            "the early client's connection was never taken"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sim.start_gateway().await?;
    let took = until_all_open(&user, 5, Duration::from_secs(5)).await?;
    eprintln!("after 60 s down: all five tunnels open again {took:?} after the gateway came back");
    early.await??;
    ensure!(ports(&list(&user).await?) == before);
    stop_watch.store(true, Ordering::Relaxed);
    watcher.await??;
    user.ok(&["agent:stop"], None).await?;
    Ok(())
}

/// The anonymous memory of a process, in KiB: its heap and stacks, what a leak grows (the
/// rest of its RSS is its executable's pages, which grow as more of its code runs).
fn private_kib(pid: u32) -> Result<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))?;
    rollup
        .lines()
        .find_map(|l| l.strip_prefix("Anonymous:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no Anonymous in smaps_rollup")
}

/// The least load the thousand-connection test runs with.
const MIN_LOAD_CONNECTIONS: usize = 1000;

/// How many connections the load test makes: a thousand, or more when
/// `TETHER_LOAD_CONNECTIONS` asks for more. The variable can only raise the load: a smaller or
/// unreadable value is refused, so that no setting turns the test into one that proves less
/// than its name says.
fn load_connections(var: Option<&str>) -> Result<usize> {
    let Some(var) = var else {
        return Ok(MIN_LOAD_CONNECTIONS);
    };
    let n: usize = var
        .trim()
        .parse()
        .with_context(|| format!("TETHER_LOAD_CONNECTIONS={var:?} is not a number"))?;
    ensure!(
        n >= MIN_LOAD_CONNECTIONS,
        "TETHER_LOAD_CONNECTIONS={n} would lower the load below {MIN_LOAD_CONNECTIONS} connections; it can only raise it"
    );
    Ok(n)
}

#[test]
fn the_load_cannot_be_lowered_by_the_environment() {
    assert_eq!(load_connections(None).ok(), Some(MIN_LOAD_CONNECTIONS));
    assert_eq!(load_connections(Some("5000")).ok(), Some(5000));
    for refused in ["0", "1", "999", "", "-1", "many"] {
        assert!(
            load_connections(Some(refused)).is_err(),
            "TETHER_LOAD_CONNECTIONS={refused:?} was accepted"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_connections_through_one_tunnel_are_byte_exact() -> Result<()> {
    let (sim, accepted) = tunnel_sim(SimOptions::default()).await?;
    let (user, _stop) = signed_in(&sim, ALICE_TOKEN).await?;
    user.ok(
        &[
            "tunnel:open",
            "-p",
            TUNNEL_PROJECT,
            "-e",
            "main",
            "-A",
            "five",
            "-r",
            "one",
        ],
        None,
    )
    .await?;
    let port = ports(&list(&user).await?)["one"];
    let pid = user.agent_pid().context("no agent pid")?;
    // Warm up, then measure.
    echo_once(port, 64 * 1024, 1).await?;
    let before = private_kib(pid)?;

    let connections = load_connections(std::env::var("TETHER_LOAD_CONNECTIONS").ok().as_deref())?;
    // Two rounds, each settling within 32 MiB of the start: the allocator may keep some of
    // what a thousand connections' buffers used at once (5 to 19 MiB seen, varying from round
    // to round), but a leak of 16 KiB or more per connection crosses the bound by the end of
    // the second round.
    let mut settled = Vec::new();
    for round in 1..=2u8 {
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..connections {
            tasks.spawn(echo_once(port, 64 * 1024, (i as u8).wrapping_add(round)));
        }
        let mut failures = Vec::new();
        while let Some(r) = tasks.join_next().await {
            if let Err(e) = r? {
                failures.push(e.to_string());
            }
        }
        ensure!(
            failures.is_empty(),
            "round {round}: {} of {connections} failed, first: {:?}",
            failures.len(),
            failures.first()
        );
        eprintln!(
            "round {round}: {connections} × 64 KiB echoed in {:?}",
            start.elapsed()
        );
        // Memory comes back as the connections' tasks end: watched until it is within the
        // round's bound, for at most 10 s, failing with what was last seen.
        let bound = before + 32 * 1024;
        let settle = Instant::now();
        let now = loop {
            let tunnels = list(&user).await?;
            let active = tunnels[0]["counters"]["active"]
                .as_u64()
                .unwrap_or(u64::MAX);
            let now = private_kib(pid)?;
            if active == 0 && now <= bound {
                break now;
            }
            if settle.elapsed() > Duration::from_secs(10) {
                bail!(
                    "round {round}, 10 s after {connections} connections closed: {active} active, \
                     {now} KiB anonymous memory, above {bound} KiB (before: {before} KiB, after \
                     each round: {settled:?})"
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        settled.push(now);
    }
    ensure!(accepted.load(Ordering::Relaxed) >= 2 * connections as u64);
    let (first, second) = (settled[0], settled[1]);
    eprintln!(
        "agent's anonymous memory: {before} KiB before, {first} KiB after round 1, {second} KiB after round 2"
    );
    let tunnels = list(&user).await?;
    let carried = 2 * connections as u64 + 1;
    ensure!(tunnels[0]["counters"]["connections"].as_u64() == Some(carried));
    ensure!(
        tunnels[0]["counters"]["bytes_sent"].as_u64() == Some(carried * 64 * 1024),
        "{}",
        tunnels[0]
    );
    user.ok(&["agent:stop"], None).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_relationships_are_explained_and_leave_other_tunnels_alone() -> Result<()> {
    let (sim, _) = tunnel_sim(SimOptions::default()).await?;
    let (user, _stop) = signed_in(&sim, ALICE_TOKEN).await?;
    let app = |name: &'static str| ["-p", TUNNEL_PROJECT, "-e", "main", "-A", name];
    user.ok(
        &[&["tunnel:open"][..], &app("five"), &["-r", "one"]].concat(),
        None,
    )
    .await?;
    let good = ports(&list(&user).await?)["one"];

    let failing = |name: &'static str, extra: &'static [&'static str], expect: &'static str| {
        let user = &user;
        async move {
            let out = user
                .run(&[&["tunnel:open"][..], &app(name), extra].concat(), None)
                .await?;
            let err = text(&out.stderr);
            ensure!(!out.status.success(), "{name}: should fail");
            ensure!(
                err.contains(expect),
                "{name}: expected {expect:?} in: {err}"
            );
            ensure!(!err.contains("panicked"), "{err}");
            Ok::<_, anyhow::Error>(())
        }
    };
    failing("nobase64", &[], "not valid base64").await?;
    failing("nojson", &[], "not valid JSON").await?;
    failing("five", &["-r", "nosuch"], "relationship \"nosuch\" not found; this app's relationships are: five, four, one, three, two").await?;

    // Some endpoints broken: the good ones open, each broken one is named with its fault.
    let out = user
        .run(&[&["tunnel:open"][..], &app("mixed")].concat(), None)
        .await?;
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    ensure!(out.status.success(), "{said}");
    for expect in [
        "SSH tunnel opened to cache",
        "SSH tunnel opened to refused",
        "relationship nohost: the endpoint has no \"host\"",
        "relationship wrongtype: \"port\" \"six\" is not a port number",
        "relationship outofrange: \"port\" 70000 is out of range",
        "relationship badhost: \"host\" \"bad host/\" is not a host name",
    ] {
        ensure!(said.contains(expect), "expected {expect:?} in:\n{said}");
    }
    let tunnels = list(&user).await?;
    let mixed = ports(
        &tunnels
            .iter()
            .filter(|t| t["app"] == "mixed")
            .cloned()
            .collect::<Vec<_>>(),
    );
    // The service that refuses: the local connection is closed, the reason is kept.
    let mut s = TcpStream::connect(("127.0.0.1", mixed["refused"])).await?;
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await??;
    ensure!(n == 0, "a refused service's connection must be closed");
    let refused = list(&user)
        .await?
        .into_iter()
        .find(|t| t["relationship"] == "refused")
        .context("refused")?;
    ensure!(
        refused["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("refused the connection")),
        "{refused}"
    );
    ensure!(
        refused["state"] == "open",
        "the tunnel itself stays open: {refused}"
    );

    // Nothing of that touched the other tunnels.
    echo_once(mixed["cache"], 8192, 9).await?;
    echo_once(good, 8192, 5).await?;
    ensure!(list(&user).await?.iter().all(|t| t["state"] == "open"));
    user.ok(&["agent:stop"], None).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_single_runs_in_the_foreground_without_an_agent() -> Result<()> {
    let (sim, _) = tunnel_sim(SimOptions::default()).await?;
    let user = User::new(&sim.info, false)?;
    user.ok(&["auth:api-token-login"], Some(ALICE_TOKEN))
        .await?;
    let port = free_port();
    let mut cmd = tokio::process::Command::from(user.tether(&[
        "tunnel:single",
        "-p",
        TUNNEL_PROJECT,
        "-e",
        "main",
        "-A",
        "five",
        "-r",
        "two",
        "--port",
        &port.to_string(),
    ])?);
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let mut stdout = child.stdout.take().context("stdout")?;
    let mut said = Vec::new();
    let mut buf = [0u8; 512];
    while !text(&said).contains("Ctrl+C") {
        let n = tokio::time::timeout(Duration::from_secs(15), stdout.read(&mut buf)).await??;
        ensure!(n > 0, "tunnel:single ended: {}", text(&said));
        said.extend_from_slice(&buf[..n]);
    }
    ensure!(
        text(&said).contains(&format!("127.0.0.1:{port}")),
        "{}",
        text(&said)
    );
    ensure!(
        user.agent_pid().is_none(),
        "tunnel:single must not start an agent"
    );
    echo_once(port, 100_000, 4).await?;
    // Ctrl+C closes it and frees the port.
    run_ok(Command::new("kill").args(["-INT", &child.id().context("pid")?.to_string()]))?;
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await??;
    ensure!(status.success(), "{status}");
    port_has_no_listener(port)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnels_to_an_mfa_organization_ask_for_mfa_and_open_after_it() -> Result<()> {
    let redis = Redis::start()?;
    let mut options = SimOptions::default();
    // The MFA organization's database, served by a Redis here: only the tunnel matters.
    backend(&mut options, "postgresql", redis.port);
    let sim = demo_sim(options).await?;
    let (user, _stop) = signed_in(&sim, ALICE_TOKEN).await?;
    let app = ["-p", MFA_PROJECT, "-e", "main", "-A", "api"];

    // Without MFA: the step-up exit code and the remedy, and nothing left open.
    let refused = user
        .run(&[&["tunnel:open"][..], &app].concat(), None)
        .await?;
    let err = text(&refused.stderr);
    ensure!(
        refused.status.code() == Some(4),
        "exit {:?}: {err}",
        refused.status.code()
    );
    ensure!(
        err.contains("MFA") && err.contains("tether login --method mfa"),
        "{err}"
    );
    ensure!(list(&user).await?.is_empty());

    // After signing in with MFA (the running agent takes the new session), they open.
    user.ok(&["auth:api-token-login"], Some(ALICE_MFA_TOKEN))
        .await?;
    user.ok(&[&["tunnel:open"][..], &app].concat(), None)
        .await?;
    let tunnels = list(&user).await?;
    ensure!(states(&tunnels) == ["open"], "{tunnels:?}");
    ensure!(redis_cli(ports(&tunnels)["ledger"], &["ping"])? == "PONG");
    user.ok(&["agent:stop"], None).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_that_meets_an_mfa_demand_says_so_and_comes_back_after_an_mfa_sign_in(
) -> Result<()> {
    let redis = Redis::start()?;
    let mut options = SimOptions::default();
    backend(&mut options, "postgresql", redis.port);
    let sim = demo_sim(options).await?;
    let (user, _stop) = signed_in(&sim, ALICE_MFA_TOKEN).await?;
    user.ok(
        &["tunnel:open", "-p", MFA_PROJECT, "-e", "main", "-A", "api"],
        None,
    )
    .await?;
    let port = ports(&list(&user).await?)["ledger"];
    ensure!(redis_cli(port, &["ping"])? == "PONG");

    // The session loses its MFA (a sign-in without it), and the connection drops: the new
    // connection's channels are refused for want of MFA. The agent does not replay events to
    // a late subscriber, so the sign-in is repeated until the subscriber has seen one.
    let mut events = tokio::process::Command::from(user.tether(&["events", "--format", "json"])?);
    events
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut events = events.spawn()?;
    let mut lines = tokio::io::BufReader::new(events.stdout.take().context("stdout")?).lines();
    let mut subscribed = false;
    for _ in 0..30 {
        user.ok(&["auth:api-token-login"], Some(ALICE_TOKEN))
            .await?;
        let seen = tokio::time::timeout(Duration::from_secs(1), async {
            while let Some(line) = lines.next_line().await? {
                if line.contains("\"signed_in\"") {
                    return Ok(true);
                }
            }
            Ok::<_, anyhow::Error>(false)
        })
        .await;
        match seen {
            Ok(Ok(true)) => {
                subscribed = true;
                break;
            }
            Ok(Ok(false)) => bail!("tether events ended"),
            Ok(Err(e)) => return Err(e),
            Err(_) => {}
        }
    }
    ensure!(subscribed, "tether events never reported a sign-in");
    sim.stop_gateway().await;
    sim.start_gateway().await?;
    until_all_open(&user, 1, Duration::from_secs(10)).await?;
    // A client arrives: the gateway refuses its channel, and the tunnel says why.
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await??;
    ensure!(n == 0, "the refused connection must be closed");
    let start = Instant::now();
    let failed = loop {
        let t = list(&user).await?.remove(0);
        if t["state"] == "failed" {
            break t;
        }
        ensure!(
            start.elapsed() < Duration::from_secs(10),
            "never failed: {t}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    ensure!(
        failed["reason"]
            .as_str()
            .is_some_and(|r| r.contains("multi-factor")),
        "{failed}"
    );
    let start = Instant::now();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await??
            .context("events ended")?;
        if line.contains("\"mfa_needed\"") {
            break;
        }
        ensure!(
            start.elapsed() < Duration::from_secs(10),
            "no mfa_needed event"
        );
    }
    // The listener stayed; after an MFA sign-in the tunnel is back on the same port.
    user.ok(&["auth:api-token-login"], Some(ALICE_MFA_TOKEN))
        .await?;
    until_all_open(&user, 1, Duration::from_secs(10)).await?;
    ensure!(ports(&list(&user).await?)["ledger"] == port);
    ensure!(redis_cli(port, &["ping"])? == "PONG");
    user.ok(&["agent:stop"], None).await?;
    Ok(())
}

/// The relationships of the tunnel fixture's app `official`, as the platform would send them:
/// JSON text, so its key order is the platform's (not alphabetical: `database` before
/// `cache`, `username` first). The cache's port is a string, as the platform may send it,
/// and its query an empty object.
const OFFICIAL_APP: &str = r#"{"database":[{"username":"main","scheme":"pgsql","service":"postgresql12","fragment":null,"ip":"169.254.38.66","hostname":"zydalrx.postgresql12.service._.eu-3.platformsh.site","port":5432,"cluster":"rjify4yjcwxaa-master-7rqtwti","host":"postgresql.internal","rel":"postgresql","path":"main","query":{"is_master":true},"password":"main","type":"postgresql:12","public":false,"host_mapped":false},{"username":"main","scheme":"pgsql","service":"postgresql12","fragment":null,"ip":"169.254.38.67","hostname":"r2.postgresql12.service._.eu-3.platformsh.site","port":5432,"cluster":"rjify4yjcwxaa-master-7rqtwti","host":"replica.postgresql.internal","rel":"postgresql","path":"main","query":{"is_master":false},"password":"main","type":"postgresql:12","public":false,"host_mapped":false}],"cache":[{"username":null,"scheme":"redis","service":"one","fragment":null,"ip":"169.254.129.57","hostname":"k3xj2.one.service._.eu-3.platformsh.site","port":"6379","cluster":"rjify4yjcwxaa-master-7rqtwti","host":"cache.internal","rel":"redis","path":null,"query":{},"password":null,"type":"redis:7.0","public":false,"host_mapped":false}]}"#;

/// `tether tunnel:info --encode ARGS`, base64-decoded: the JSON text itself, so that key order
/// and escaping count when compared.
async fn encoded_info(user: &User, args: &[&str]) -> Result<String> {
    let out = user
        .ok(&[&["tunnel:info", "--encode"][..], args].concat(), None)
        .await?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(out.trim())
        .with_context(|| format!("not base64: {out}"))?;
    Ok(String::from_utf8(bytes)?)
}

/// Opens one tunnel of the app `official` (environment `main`) on `port`.
async fn open_official(user: &User, relationship: &str, port: u16) -> Result<()> {
    user.ok(
        &[
            "tunnel:open",
            "-p",
            TUNNEL_PROJECT,
            "-e",
            "main",
            "-A",
            "official",
            "-r",
            relationship,
            "--port",
            &port.to_string(),
        ],
        None,
    )
    .await?;
    Ok(())
}

// The three `--encode` cases of issue 14. Each expected text is what the official client
// prints for the same tunnels, derived from its source:
// - TunnelOpenCommand::execute (legacy/src/Command/Tunnel/TunnelOpenCommand.php) keeps each
//   endpoint as the platform sent it and appends `_relationship_name` and `_relationship_key`
//   (the endpoint's integer index);
// - TunnelInfoCommand::execute (legacy/src/Command/Tunnel/TunnelInfoCommand.php) replaces
//   `host`, `ip` and `port` where present, keeping their places (array_merge over
//   array_intersect_key), appends `url` from Relationships::buildUrl
//   (legacy/src/Service/Relationships.php: pgsql → postgresql, `is_master` dropped from the
//   query, guzzlehttp/psr7 Uri::fromParts), and stores it at `[relationship][index]`;
// - json_encode writes that PHP array as a list when its keys are 0, 1, …, else as an object
//   keyed by index; it escapes `/` as `\/`; an empty object read with json_decode(…, true) is
//   an empty array, so `"query":{}` comes back as `"query":[]`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_info_encode_decodes_to_the_official_clients_object() -> Result<()> {
    let (sim, _) = tunnel_sim(SimOptions::default()).await?;
    let (user, _stop) = signed_in(&sim, ALICE_TOKEN).await?;

    // (a) One relationship (its port sent as a string), which also carries traffic.
    let port = free_port();
    open_official(&user, "cache", port).await?;
    echo_once(port, 4096, 1).await?;
    let expected = format!(
        r#"{{"cache":[{{"username":null,"scheme":"redis","service":"one","fragment":null,"ip":"127.0.0.1","hostname":"k3xj2.one.service._.eu-3.platformsh.site","port":{port},"cluster":"rjify4yjcwxaa-master-7rqtwti","host":"127.0.0.1","rel":"redis","path":null,"query":[],"password":null,"type":"redis:7.0","public":false,"host_mapped":false,"_relationship_name":"cache","_relationship_key":0,"url":"redis:\/\/127.0.0.1:{port}"}}]}}"#
    );
    let got = encoded_info(&user, &[]).await?;
    ensure!(
        got == expected,
        "one relationship:\n got {got}\nwant {expected}"
    );
    user.ok(&["tunnel:close", "--all", "-y"], None).await?;

    // (b) Two endpoints of one relationship, only index 1 tunnelled: it keeps its index.
    let port = free_port();
    open_official(&user, "database.1", port).await?;
    let expected = format!(
        r#"{{"database":{{"1":{{"username":"main","scheme":"pgsql","service":"postgresql12","fragment":null,"ip":"127.0.0.1","hostname":"r2.postgresql12.service._.eu-3.platformsh.site","port":{port},"cluster":"rjify4yjcwxaa-master-7rqtwti","host":"127.0.0.1","rel":"postgresql","path":"main","query":{{"is_master":false}},"password":"main","type":"postgresql:12","public":false,"host_mapped":false,"_relationship_name":"database","_relationship_key":1,"url":"postgresql:\/\/main:main@127.0.0.1:{port}\/main"}}}}}}"#
    );
    let got = encoded_info(&user, &[]).await?;
    ensure!(
        got == expected,
        "index 1 only:\n got {got}\nwant {expected}"
    );
    user.ok(&["tunnel:close", "--all", "-y"], None).await?;

    // (c) A pgsql endpoint with an is_master query: postgresql:// and no query in the URL.
    let port = free_port();
    open_official(&user, "database.0", port).await?;
    let expected = format!(
        r#"{{"database":[{{"username":"main","scheme":"pgsql","service":"postgresql12","fragment":null,"ip":"127.0.0.1","hostname":"zydalrx.postgresql12.service._.eu-3.platformsh.site","port":{port},"cluster":"rjify4yjcwxaa-master-7rqtwti","host":"127.0.0.1","rel":"postgresql","path":"main","query":{{"is_master":true}},"password":"main","type":"postgresql:12","public":false,"host_mapped":false,"_relationship_name":"database","_relationship_key":0,"url":"postgresql:\/\/main:main@127.0.0.1:{port}\/main"}}]}}"#
    );
    let got = encoded_info(&user, &[]).await?;
    ensure!(
        got == expected,
        "pgsql with is_master:\n got {got}\nwant {expected}"
    );
    user.ok(&["agent:stop"], None).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_info_merges_the_tunnels_of_every_app_as_the_official_client() -> Result<()> {
    let (sim, _) = tunnel_sim(SimOptions::default()).await?;
    let (user, _stop) = signed_in(&sim, ALICE_TOKEN).await?;
    open_official(&user, "cache", free_port()).await?;
    user.ok(&[&OPEN_FIVE_DEV[..], &["-r", "one"]].concat(), None)
        .await?;
    // Without -p/-e/-A: one object, relationships in the order their tunnels were opened.
    let merged: serde_json::Map<String, Value> =
        serde_json::from_str(&encoded_info(&user, &[]).await?)?;
    let names: Vec<&String> = merged.keys().collect();
    ensure!(names == ["cache", "one"], "merged: {names:?}");
    let shown = user.ok(&["tunnel:info", "-P", "one.0.port"], None).await?;
    ensure!(shown.trim().parse::<u16>().is_ok(), "{shown}");
    // -A (with -p and -e) picks one app.
    let one: serde_json::Map<String, Value> = serde_json::from_str(
        &encoded_info(&user, &["-p", TUNNEL_PROJECT, "-e", "dev", "-A", "five"]).await?,
    )?;
    ensure!(one.keys().collect::<Vec<_>>() == ["one"], "{one:?}");
    user.ok(&["agent:stop"], None).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relationships_are_read_again_after_a_redeploy() -> Result<()> {
    let (sim, _) = tunnel_sim(SimOptions::default()).await?;
    let (user, _stop) = signed_in(&sim, ALICE_TOKEN).await?;
    let open = |rel: &'static str| {
        let user = &user;
        async move {
            user.run(&[&OPEN_FIVE_DEV[..], &["-r", rel]].concat(), None)
                .await
        }
    };
    ensure!(open("one").await?.status.success());
    let before = open("six").await?;
    ensure!(
        !before.status.success() && text(&before.stderr).contains("relationship \"six\" not found"),
        "{}",
        text(&before.stderr)
    );
    // The app's configuration gains `six`; the environment is redeployed (new head commit).
    let relationships: BTreeMap<String, String> = [("one", "one:redis"), ("six", "one:redis")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let head = sim.redeploy(TUNNEL_PROJECT, "dev", Some(("five", relationships)));
    ensure!(head.is_some(), "the environment exists");
    let after = open("six").await?;
    ensure!(after.status.success(), "{}", text(&after.stderr));
    let six = ports(&list(&user).await?)["six"];
    echo_once(six, 4096, 6).await?;
    // A redeploy with nothing else changed is read again too, and is harmless.
    ensure!(sim.redeploy(TUNNEL_PROJECT, "dev", None).is_some());
    ensure!(open("one").await?.status.success());
    ensure!(sim.redeploy("nosuch", "dev", None).is_none());
    user.ok(&["agent:stop"], None).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnels_to_production_go_ahead_without_a_terminal_and_say_so() -> Result<()> {
    let (sim, _) = tunnel_sim(SimOptions::default()).await?;
    let (user, _stop) = signed_in(&sim, ALICE_TOKEN).await?;
    let app = ["-p", TUNNEL_PROJECT, "-e", "main", "-A", "five"];
    // No terminal (stdin is a pipe): the official client takes its default, yes; so does this,
    // with a note on stderr.
    let out = user
        .run(&[&["tunnel:open"][..], &app, &["-r", "one"]].concat(), None)
        .await?;
    let err = text(&out.stderr);
    ensure!(out.status.success(), "{err}");
    ensure!(
        err.contains("main is the production environment of project") && err.contains("-y skips"),
        "no production note: {err}"
    );
    // -y: no question, no note.
    let out = user
        .run(
            &[&["tunnel:open"][..], &app, &["-r", "two", "-y"]].concat(),
            None,
        )
        .await?;
    let err = text(&out.stderr);
    ensure!(out.status.success(), "{err}");
    ensure!(!err.contains("production"), "-y must skip the note: {err}");
    // Not production: nothing said.
    let out = user
        .run(&[&OPEN_FIVE_DEV[..], &["-r", "one"]].concat(), None)
        .await?;
    ensure!(out.status.success() && !text(&out.stderr).contains("production"));
    user.ok(&["agent:stop"], None).await?;
    Ok(())
}

/// A terminal's rendering of `text`: line feeds as CR LF.
fn on_terminal(text: &str) -> String {
    text.replace('\n', "\r\n")
}

/// The relationships are read between the official client's markers because an app's login
/// scripts may print around every command on the real platform. `tether ssh` shows that text
/// to its user; reading the relationships ignores it, and the tunnels work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnels_open_for_an_app_whose_login_scripts_print_around_every_command() -> Result<()> {
    let (sim, accepted) = tunnel_sim(SimOptions::default()).await?;
    let (user, _stop) = signed_in(&sim, ALICE_TOKEN).await?;
    let app = ["-p", TUNNEL_PROJECT, "-e", "dev", "-A", "noisy"];
    let ssh = |rest: &'static [&'static str]| [&["ssh"][..], &app, rest].concat();

    // An ssh user sees what the scripts print, before the command's output and after it, and
    // the command's own exit status.
    let out = user.run(&ssh(&["--", "echo hello; exit 3"]), None).await?;
    ensure!(
        out.status.code() == Some(3),
        "exit {:?}: {}",
        out.status.code(),
        text(&out.stderr)
    );
    let said = text(&out.stdout);
    ensure!(
        said == format!("{NOISY_LOGIN}hello\n{NOISY_EXIT}"),
        "ssh output: {said:?}"
    );
    // On a terminal too, as a terminal shows it (the system ssh, with the configuration
    // Tether writes for it).
    user.ok(&["config:ssh", "--write"], None).await?;
    let url = user.ok(&ssh(&["--pipe"]), None).await?;
    let out = run_async({
        let mut c = user.ssh(url.trim());
        c.args(["-tt", "echo hello"]);
        c
    })
    .await?;
    let said = text(&out.stdout);
    ensure!(
        out.status.success()
            && said
                == format!(
                    "{}hello\r\n{}",
                    on_terminal(NOISY_LOGIN),
                    on_terminal(NOISY_EXIT)
                ),
        "ssh -tt output ({}): {said:?} {}",
        out.status,
        text(&out.stderr)
    );
    // The command Tether reads the relationships with is answered the same way: the value
    // is only what lies between the markers.
    let read = user
        .ok(
            &ssh(&[
                "--",
                r#"echo -n '_BEGIN_ENV_VAR_'"$PLATFORM_RELATIONSHIPS"'_END_ENV_VAR_'"#,
            ]),
            None,
        )
        .await?;
    let value = read
        .strip_prefix(&format!("{NOISY_LOGIN}_BEGIN_ENV_VAR_"))
        .and_then(|r| r.strip_suffix(&format!("_END_ENV_VAR_{NOISY_EXIT}")))
        .with_context(|| format!("not the scripts' text around the markers: {read:?}"))?;
    let platform: Value =
        serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(value)?)?;
    let platform = platform.as_object().context("an object")?;
    ensure!(
        platform.keys().collect::<Vec<_>>() == ["cache", "queue"],
        "{platform:?}"
    );

    // The real `tether tunnel:open`: both relationships open and carry traffic, byte-exact.
    let open = user
        .run(&[&["tunnel:open"][..], &app].concat(), None)
        .await?;
    let said = format!("{}{}", text(&open.stdout), text(&open.stderr));
    ensure!(open.status.success(), "tunnel:open failed: {said}");
    for rel in ["cache", "queue"] {
        ensure!(
            said.contains(&format!("SSH tunnel opened to {rel}")),
            "{rel}: {said}"
        );
    }
    let tunnels = list(&user).await?;
    ensure!(states(&tunnels) == ["open", "open"], "{tunnels:?}");
    let local = ports(&tunnels);
    for (i, port) in local.values().enumerate() {
        echo_once(*port, 256 * 1024, i as u8).await?;
    }
    ensure!(accepted.load(Ordering::Relaxed) >= 2);

    // tunnel:info has the platform's relationships, with the local addresses.
    let info: Value = serde_json::from_str(&encoded_info(&user, &app).await?)?;
    let info = info.as_object().context("an object")?;
    ensure!(
        info.keys().collect::<Vec<_>>() == ["cache", "queue"],
        "{info:?}"
    );
    for (rel, endpoints) in platform {
        let endpoint = endpoints[0].as_object().context("an endpoint")?;
        let shown = &info[rel][0];
        for (key, value) in endpoint {
            let expected = match key.as_str() {
                "host" | "ip" => Value::from("127.0.0.1"),
                "port" => Value::from(local[rel]),
                // The official client's PHP arrays: an empty object comes back as [].
                _ if value.as_object().is_some_and(|o| o.is_empty()) => Value::Array(vec![]),
                _ => value.clone(),
            };
            ensure!(
                shown[key] == expected,
                "{rel}.{key}: {} instead of {expected}",
                shown[key]
            );
        }
    }
    ensure!(
        user.ok(&["tunnel:info", "-P", "queue.0.port"], None)
            .await?
            .trim()
            == local["queue"].to_string()
    );
    user.ok(&["agent:stop"], None).await?;
    Ok(())
}

/// `request`, sent to the user's running agent over its control socket, as the desktop sends
/// its requests.
async fn ask_agent(user: &User, request: &Request) -> Result<Reply> {
    let socket = user.runtime_dir().join("tether").join("tether-sim.sock");
    let mut agent = AgentClient::connect(&socket)
        .await?
        .context("no agent is running")?;
    Ok(agent.request(request).await?)
}

/// The desktop's "connection details" of `app`: its relationships, which the desktop asks of
/// the agent (`Request::Relationships`). The endpoints' ids.
async fn connection_details(user: &User, app: &AppKey) -> Result<Vec<String>> {
    match ask_agent(user, &Request::Relationships(app.clone())).await? {
        Reply::Relationships {
            endpoints,
            problems,
        } => {
            ensure!(problems.is_empty(), "{problems:?}");
            Ok(endpoints.into_iter().map(|e| e.id).collect())
        }
        other => bail!("not relationships: {other:?}"),
    }
}

/// Issue 15 §2, "Races": connection details racing `tunnel:open` for the same app both
/// succeed. Each round redeploys the app first, so that both have to read its relationships
/// over its connection, which neither may drop under the other. Both requests go to the agent
/// as the shells send them (the open as `tunnel:open` does, the details as the desktop asks
/// them), with no process start between them to blur the timing: one leads the other by a few
/// milliseconds more each round, in turn, so that each lands before, during and after the
/// other's read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_details_racing_tunnel_open_for_the_same_app_both_succeed() -> Result<()> {
    const ROUNDS: u64 = 20;
    let (sim, _) = tunnel_sim(SimOptions::default()).await?;
    let (user, _stop) = signed_in(&sim, ALICE_TOKEN).await?;
    let app = AppKey::parse(&format!("{TUNNEL_PROJECT}/dev/five"))?;
    let open = Request::TunnelOpen(OpenRequest {
        app: app.clone(),
        relationships: Vec::new(),
        port: None,
        bind: None,
    });
    // The app's five relationships, in order.
    let five = ["five", "four", "one", "three", "two"];
    // The first open starts the agent, as it does for users.
    user.ok(&OPEN_FIVE_DEV, None).await?;
    for round in 0..ROUNDS {
        user.ok(&["tunnel:close", "--all", "-y"], None).await?;
        ensure!(sim.redeploy(TUNNEL_PROJECT, "dev", None).is_some());
        let lead = Duration::from_millis(10 * (round / 2));
        let (open_after, details_after) = if round % 2 == 0 {
            (Duration::ZERO, lead)
        } else {
            (lead, Duration::ZERO)
        };
        let (opened, details) = tokio::join!(
            async {
                tokio::time::sleep(open_after).await;
                ask_agent(&user, &open).await
            },
            async {
                tokio::time::sleep(details_after).await;
                connection_details(&user, &app).await
            }
        );
        match opened.with_context(|| format!("round {round}: tunnel open"))? {
            Reply::Opened(report) => ensure!(
                report.tunnels.len() == 5 && report.failed.is_empty(),
                "round {round}: {report:?}"
            ),
            other => bail!("round {round}: not opened: {other:?}"),
        }
        let mut details = details.with_context(|| format!("round {round}: connection details"))?;
        details.sort();
        ensure!(details == five, "round {round}: {details:?}");
        // The open may have found the relationships the details just read, and not waited for
        // a connection: its tunnels come up on their own.
        until_all_open(&user, 5, Duration::from_secs(5))
            .await
            .with_context(|| format!("round {round}"))?;
        let port = ports(&list(&user).await?)["one"];
        echo_once(port, 4096, round as u8).await?;
    }
    user.ok(&["agent:stop"], None).await?;
    Ok(())
}

/// Issue 15 §2 and §7: one app's slow gateway holds up no other app. While the open of an
/// app whose gateway cannot be reached waits for it, opening, listing and closing another
/// app's tunnels and its connection details answer at once, and so does a close of the
/// waiting app itself; the slow open then fails by itself, saying why, and works once the
/// gateway is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_whose_gateway_keeps_its_open_waiting_holds_up_no_other_app() -> Result<()> {
    /// What "at once" means here, as in the network faults' suite.
    const AT_ONCE: Duration = Duration::from_secs(2);
    let (sim, _) = tunnel_sim(SimOptions::default()).await?;
    let (user, _stop) = signed_in(&sim, ALICE_TOKEN).await?;
    let other = AppKey::parse(&format!("{TUNNEL_PROJECT}/main/five"))?;
    // The other app's relationships are known from an earlier open, so that it can open
    // without its gateway; the slow app's never were read.
    user.ok(&[&OPEN_FIVE[..], &["-y"]].concat(), None).await?;
    user.ok(&["tunnel:close", "--all", "-y"], None).await?;
    sim.stop_gateway().await;

    let start = Instant::now();
    let slow = async {
        let out = user.run(&OPEN_FIVE_DEV, None).await;
        (out, start.elapsed())
    };
    let others = async {
        // The slow open has reached the agent and waits for its gateway.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // Every request goes straight to the agent, as `tether` and the desktop send them: the
        // agent's answer is timed, not the start of a process on a loaded machine.
        let mut took = Vec::new();
        let started = Instant::now();
        let reply = ask_agent(
            &user,
            &Request::TunnelOpen(OpenRequest {
                app: other.clone(),
                relationships: Vec::new(),
                port: None,
                bind: None,
            }),
        )
        .await?;
        ensure!(
            matches!(&reply, Reply::Opened(report) if report.tunnels.len() == 5),
            "{reply:?}"
        );
        took.push(("opening another app", started.elapsed()));
        let started = Instant::now();
        let reply = ask_agent(&user, &Request::TunnelList).await?;
        ensure!(matches!(reply, Reply::Tunnels { .. }), "{reply:?}");
        took.push(("listing tunnels", started.elapsed()));
        // `tunnel:close` would see no tunnel of the slow app and ask nothing.
        let started = Instant::now();
        let slow_app = CloseRequest {
            project: Some(ProjectId::parse(TUNNEL_PROJECT)?),
            environment: Some(EnvironmentId::parse("dev")?),
            app: Some(AppName::parse("five")?),
            relationships: Vec::new(),
        };
        let reply = ask_agent(&user, &Request::TunnelClose(slow_app)).await?;
        ensure!(
            matches!(&reply, Reply::Tunnels { tunnels } if tunnels.is_empty()),
            "{reply:?}"
        );
        took.push(("closing the slow app", started.elapsed()));
        let started = Instant::now();
        connection_details(&user, &other).await?;
        took.push(("connection details of another app", started.elapsed()));
        let tunnels = list(&user).await?;
        ensure!(
            tunnels.len() == 5 && tunnels.iter().all(|t| t["environment"] == "main"),
            "the other app's five tunnels, and only those: {tunnels:?}"
        );
        let started = Instant::now();
        let every = CloseRequest {
            project: None,
            environment: None,
            app: None,
            relationships: Vec::new(),
        };
        let reply = ask_agent(&user, &Request::TunnelClose(every)).await?;
        ensure!(
            matches!(&reply, Reply::Tunnels { tunnels } if tunnels.len() == 5),
            "the other app's five tunnels closed: {reply:?}"
        );
        took.push(("closing another app", started.elapsed()));
        Ok::<_, anyhow::Error>((took, start.elapsed()))
    };
    let ((slow, slow_took), others) = tokio::join!(slow, others);
    let (took, others_took) = others?;
    for (what, took) in took {
        eprintln!("while another app's open waited: {what} took {took:?}");
        ensure!(took <= AT_ONCE, "{what} took {took:?}");
    }
    ensure!(
        slow_took > others_took,
        "the slow open ended after {slow_took:?}, before the rest was done ({others_took:?})"
    );
    let slow = slow?;
    ensure!(
        !slow.status.success() && text(&slow.stderr).contains("cannot reach"),
        "the slow open fails by itself and says why: {}",
        text(&slow.stderr)
    );
    ensure!(
        slow_took < Duration::from_secs(30),
        "the slow open took {slow_took:?}"
    );
    sim.start_gateway().await?;
    user.ok(&OPEN_FIVE_DEV, None).await?;
    until_all_open(&user, 5, Duration::from_secs(5)).await?;
    user.ok(&["agent:stop"], None).await?;
    Ok(())
}
