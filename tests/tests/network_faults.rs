//! Networks that fail badly: the path between Tether and the gateway goes silent (a laptop
//! losing its Wi-Fi, or asleep), loses packets, or answers with resets; the agent is stopped
//! and continued as a suspended machine would be. Each scenario runs in a network and mount
//! namespace of its own (see `tether_e2e::namespace`), where `nftables` breaks only the
//! gateway's port on the namespace's loopback; nothing leaves it. The scenarios run in
//! parallel, each bounded in time, and report what they measured.

use std::time::Duration;

use anyhow::Result;

/// Runs `inside::<name>` in its namespace and passes its measurements on.
fn scenario(name: &str) -> Result<()> {
    let said = tether_e2e::namespace::run_inside_reporting(&format!("inside::{name}"))?;
    for line in said.lines().filter(|l| l.starts_with("measured:")) {
        eprintln!("{name}: {line}");
    }
    Ok(())
}

#[test]
fn a_silent_gateway_is_noticed_waited_out_and_never_blocks_the_agent() -> Result<()> {
    scenario("silence")
}

#[test]
fn a_transfer_through_a_lossy_network_is_byte_exact_and_is_not_activity() -> Result<()> {
    scenario("loss")
}

#[test]
fn resets_make_tunnels_reconnect_with_backoff_and_say_why() -> Result<()> {
    scenario("resets")
}

#[test]
fn tunnels_carry_soon_after_the_agent_is_stopped_and_continued() -> Result<()> {
    scenario("suspend")
}

/// How long the silence lasts (the issue's 60 s).
const SILENCE: Duration = Duration::from_secs(60);

mod inside {
    use std::net::SocketAddr;
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use anyhow::{bail, ensure, Context, Result};
    use serde_json::Value;
    use tether_e2e::cli::{AgentStopper, User};
    use tether_e2e::echo::{echo_once, echo_retrying, echo_server};
    use tether_e2e::namespace::{break_port, heal, Fault, Namespace};
    use tether_e2e::*;
    use tether_sim::{Fixture, Sim, SimHandle, SimOptions};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    const PROJECT: &str = "faultproj1";

    fn app(name: &str) -> Vec<String> {
        ["-p", PROJECT, "-e", "main", "-A", name]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// An app `five` with five relationships to an echo service, and apps `two` and `three`
    /// with one each.
    fn fixture(echo: SocketAddr) -> Result<Fixture> {
        let alice = alice_fixture();
        let toml = format!(
            r#"
[backends]
echo = "{echo}"

[[organizations]]
id = "01HZX3FAULTS0000000000000"
name = "faulters"
label = "Faulters"

{alice}
[[projects]]
id = "{PROJECT}"
title = "Faults"
region = "eu-3"
organization = "faulters"
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

  [[projects.apps]]
  name = "five"
  type = "php:8.3"
  relationships = {{ one = "one:redis", two = "two:memcached", three = "three:rabbitmq", four = "four:elasticsearch", five = "five:mongodb" }}

  [[projects.apps]]
  name = "two"
  type = "php:8.3"
  relationships = {{ one = "one:redis" }}

  [[projects.apps]]
  name = "three"
  type = "php:8.3"
  relationships = {{ one = "one:redis" }}

  [[projects.environments]]
  id = "main"
  machine_name = "main-abcdefg"
  status = "active"
  type = "development"
"#
        );
        Ok(Fixture::from_toml(&toml)?)
    }

    /// The namespace, the simulator, an echo service and a signed-in user.
    struct World {
        _ns: Namespace,
        sim: SimHandle,
        _echoed: Arc<AtomicU64>,
        user: User,
        _stop: AgentStopper,
    }

    impl World {
        async fn new() -> Result<World> {
            let ns = Namespace::enter(&[])?;
            let (echo, echoed) = echo_server().await?;
            let sim = Sim::start(fixture(echo)?, SimOptions::default()).await?;
            let user = User::new(&sim.info, false)?;
            let stop = user.agent_stopper();
            user.ok(&["auth:api-token-login"], Some(ALICE_TOKEN))
                .await?;
            Ok(World {
                _ns: ns,
                sim,
                _echoed: echoed,
                user,
                _stop: stop,
            })
        }

        fn gateway(&self) -> u16 {
            self.sim.info.ssh_port
        }

        async fn tether(&self, args: &[&str]) -> Result<String> {
            self.user.ok(args, None).await
        }

        async fn open(&self, name: &str) -> Result<()> {
            let mut args = vec!["tunnel:open".to_string()];
            args.extend(app(name));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            self.tether(&args).await.map(|_| ())
        }

        async fn close(&self, name: &str) -> Result<()> {
            let mut args = vec!["tunnel:close".to_string(), "-y".to_string()];
            args.extend(app(name));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            self.tether(&args).await.map(|_| ())
        }

        async fn list(&self) -> Result<Vec<Value>> {
            let out = self.tether(&["tunnel:list", "--format", "json"]).await?;
            let v: Value =
                serde_json::from_str(&out).with_context(|| format!("not JSON: {out}"))?;
            Ok(v.as_array().cloned().unwrap_or_default())
        }

        /// The tunnels of `app`: (relationship, port, state, error).
        async fn tunnels(&self, app: &str) -> Result<Vec<(String, u16, String, String)>> {
            Ok(self
                .list()
                .await?
                .iter()
                .filter(|t| t["app"] == app)
                .map(|t| {
                    (
                        t["relationship"].as_str().unwrap_or_default().to_string(),
                        t["local"]
                            .as_str()
                            .and_then(|a| a.parse::<SocketAddr>().ok())
                            .map(|a| a.port())
                            .unwrap_or_default(),
                        t["state"].as_str().unwrap_or_default().to_string(),
                        t["error"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect())
        }

        async fn ports(&self, app: &str) -> Result<Vec<u16>> {
            Ok(self.tunnels(app).await?.iter().map(|t| t.1).collect())
        }

        /// Waits until every tunnel of `app` is in `state`; how long that took.
        async fn until(&self, app: &str, state: &str, within: Duration) -> Result<Duration> {
            let start = Instant::now();
            loop {
                let tunnels = self.tunnels(app).await?;
                if !tunnels.is_empty() && tunnels.iter().all(|t| t.2 == state) {
                    return Ok(start.elapsed());
                }
                if start.elapsed() > within {
                    bail!("{app} not all {state} after {within:?}: {tunnels:?}");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }

        fn agent_pid(&self) -> Result<u32> {
            self.user.agent_pid().context("no agent running")
        }
    }

    /// An app of the project as tunnel:list names it (its `app` field).
    fn key(name: &str) -> String {
        name.to_string()
    }

    /// How long `f` took, failing past `limit`.
    async fn within<T>(
        what: &str,
        limit: Duration,
        f: impl std::future::Future<Output = Result<T>>,
    ) -> Result<(T, Duration)> {
        let start = Instant::now();
        let out = tokio::time::timeout(limit + Duration::from_secs(30), f)
            .await
            .with_context(|| format!("{what} did not answer at all"))??;
        let took = start.elapsed();
        ensure!(took <= limit, "{what} took {took:?}, more than {limit:?}");
        eprintln!("measured: {what}: {took:?}");
        Ok((out, took))
    }

    /// A local connection made while the gateway is silent: it must be closed cleanly (EOF,
    /// no data) within the limit. How long it was held.
    async fn held_then_closed(port: u16) -> Result<Duration> {
        let start = Instant::now();
        let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(b"hello?").await?;
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf))
            .await
            .context("a connection made during the silence was never closed")?;
        let took = start.elapsed();
        match n {
            Ok(0) => {}
            Ok(n) => bail!("a connection during the silence got {n} bytes back"),
            Err(e) => bail!("a connection during the silence was not closed cleanly: {e}"),
        }
        Ok(took)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "runs inside its own namespace, started by the outer test of the same name"]
    async fn silence() -> Result<()> {
        let w = World::new().await?;
        w.open("five").await?;
        w.open("two").await?;
        // Three's relationships are read once; reopening it later needs no gateway.
        w.open("three").await?;
        w.close("three").await?;
        let five = w.ports(&key("five")).await?;
        ensure!(five.len() == 5, "five tunnels: {five:?}");
        let two = w.ports(&key("two")).await?;
        for (i, port) in five.iter().chain(&two).enumerate() {
            echo_once(*port, 64 * 1024, i as u8).await?;
        }
        // Idle a moment, so that nothing has just been heard from the gateway.
        tokio::time::sleep(Duration::from_secs(2)).await;

        break_port(w.gateway(), Fault::Silence)?;
        let silent = Instant::now();

        // A local connection arrives at two: the arrival probes its link.
        let arrival = tokio::spawn(held_then_closed(two[0]));
        let arrived = Instant::now();
        let noticed = w
            .until(&key("two"), "reconnecting", Duration::from_secs(5))
            .await
            .context("a local connection did not make the dead link noticed")?;
        eprintln!(
            "measured: dead link noticed {:?} after a local connection arrived",
            arrived.elapsed().min(noticed + Duration::from_millis(200))
        );
        let held = arrival.await??;
        ensure!(
            held <= Duration::from_millis(10_500),
            "a connection during the silence was held {held:?}"
        );
        eprintln!("measured: a connection during the silence closed after {held:?}");

        // Closing, and opening another app, answer at once while links hang.
        within(
            "tunnel:close during the silence",
            Duration::from_secs(2),
            w.close("two"),
        )
        .await?;
        within(
            "tunnel:open of another app during the silence",
            Duration::from_secs(2),
            w.open("three"),
        )
        .await?;

        // Five had no traffic: keepalives notice.
        let idle = w
            .until(&key("five"), "reconnecting", Duration::from_secs(20))
            .await;
        let idle_noticed = silent.elapsed();
        idle.context("the idle link was not noticed dead within 20 s")?;
        ensure!(
            idle_noticed <= Duration::from_secs(20),
            "idle link noticed after {idle_noticed:?}"
        );
        eprintln!("measured: idle dead link noticed {idle_noticed:?} after the silence began");
        let errors = w.tunnels(&key("five")).await?;
        ensure!(
            errors.iter().all(|t| !t.3.is_empty()),
            "reconnecting tunnels say why: {errors:?}"
        );

        // Deep in the silence: a connection to five waits at most 10 s; closing three answers.
        let held = held_then_closed(five[0]).await?;
        ensure!(held <= Duration::from_millis(10_500), "held {held:?}");
        eprintln!("measured: a connection deep in the silence closed after {held:?}");
        within(
            "tunnel:close deep in the silence",
            Duration::from_secs(2),
            w.close("three"),
        )
        .await?;

        let rest = super::SILENCE.saturating_sub(silent.elapsed());
        tokio::time::sleep(rest).await;
        heal()?;
        let back = Instant::now();
        let mut echoes = Vec::new();
        for (i, port) in five.iter().enumerate() {
            let port = *port;
            echoes.push(tokio::spawn(async move {
                echo_retrying(port, Duration::from_secs(5)).await?;
                echo_once(port, 256 * 1024, i as u8).await
            }));
        }
        for e in echoes {
            e.await??;
        }
        let recovered = back.elapsed();
        ensure!(
            recovered <= Duration::from_secs(5),
            "tunnels carried again only {recovered:?} after the network returned"
        );
        eprintln!(
            "measured: every tunnel carried byte-exact {recovered:?} after the network returned"
        );
        ensure!(w.ports(&key("five")).await? == five, "ports kept");

        // Silent again: agent:stop answers at once.
        break_port(w.gateway(), Fault::Silence)?;
        let _pending = tokio::spawn(held_then_closed(five[1]));
        tokio::time::sleep(Duration::from_millis(500)).await;
        within(
            "agent:stop during the silence",
            Duration::from_secs(2),
            async { w.tether(&["agent:stop"]).await.map(|_| ()) },
        )
        .await?;
        heal()?;
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "runs inside its own namespace, started by the outer test of the same name"]
    async fn loss() -> Result<()> {
        let w = World::new().await?;
        w.open("two").await?;
        let port = w.ports(&key("two")).await?[0];
        echo_once(port, 1024, 1).await?;
        // Traffic through a tunnel is not the person's activity: the record stays as the last
        // command left it.
        let activity = || {
            std::fs::read_to_string(w.user.session_dir().join("last-activity")).unwrap_or_default()
        };
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let before = activity();
        break_port(w.gateway(), Fault::Loss(5))?;
        let start = Instant::now();
        tokio::time::timeout(
            Duration::from_secs(120),
            echo_once(port, 64 * 1024 * 1024, 42),
        )
        .await
        .context("64 MiB under 5% loss did not finish in 120 s")??;
        eprintln!(
            "measured: 64 MiB echoed byte-exact under 5% loss in {:?}",
            start.elapsed()
        );
        heal()?;
        ensure!(
            activity() == before,
            "tunnel traffic recorded activity: {before:?} then {:?}",
            activity()
        );
        w.tether(&["agent:stop"]).await?;
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "runs inside its own namespace, started by the outer test of the same name"]
    async fn resets() -> Result<()> {
        let w = World::new().await?;
        w.open("five").await?;
        let five = w.ports(&key("five")).await?;
        break_port(w.gateway(), Fault::Reset)?;
        // The next packet meets a reset: a local connection sends one.
        let _arrival = tokio::spawn(held_then_closed(five[0]));
        w.until(&key("five"), "reconnecting", Duration::from_secs(5))
            .await?;
        // Waits for the fourth attempt, watched every 100 ms. With backoff (125 ms doubling to
        // a 3 s cap) the third pause alone is 500 ms and the count is seen at 4 or 5;
        // reconnecting at once after each reset would be dozens of attempts by the first look.
        let since = Instant::now();
        let attempts = loop {
            let list = w.list().await?;
            let attempts: Vec<u64> = list
                .iter()
                .filter(|t| t["app"] == key("five"))
                .map(|t| t["attempt"].as_u64().unwrap_or_default())
                .collect();
            if !attempts.is_empty() && attempts.iter().all(|a| *a >= 4) {
                break attempts;
            }
            ensure!(
                since.elapsed() < Duration::from_secs(15),
                "no fourth attempt within 15 s of resets: {list:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let took = since.elapsed();
        let down = w.tunnels(&key("five")).await?;
        eprintln!(
            "measured: attempts {attempts:?} after {took:?} of resets, saying {:?}",
            down[0].3
        );
        ensure!(
            down.iter()
                .all(|t| t.2 == "reconnecting" && !t.3.is_empty()),
            "reconnecting, saying why: {down:?}"
        );
        ensure!(
            down.iter()
                .all(|t| t.3.contains("refused") || t.3.contains("reset")),
            "the reason names the reset: {down:?}"
        );
        ensure!(
            attempts.iter().all(|a| *a <= 5) && took >= Duration::from_millis(400),
            "backoff: attempts {attempts:?} after {took:?}"
        );
        heal()?;
        let took = w
            .until(&key("five"), "open", Duration::from_secs(5))
            .await?;
        eprintln!("measured: open again {took:?} after the resets ended");
        for port in &five {
            echo_retrying(*port, Duration::from_secs(5)).await?;
        }
        w.tether(&["agent:stop"]).await?;
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "runs inside its own namespace, started by the outer test of the same name"]
    async fn suspend() -> Result<()> {
        let w = World::new().await?;
        w.open("five").await?;
        let five = w.ports(&key("five")).await?;
        let pid = w.agent_pid()?.to_string();
        // The issue's 90 s; TETHER_TEST_SUSPEND_SECS makes it shorter for a quick run.
        let asleep = Duration::from_secs(
            std::env::var("TETHER_TEST_SUSPEND_SECS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(90),
        );
        run_ok(std::process::Command::new("kill").args(["-STOP", &pid]))?;
        // While it sleeps, the network goes and the gateway forgets the connection, as a
        // gateway does with a client that stopped answering.
        break_port(w.gateway(), Fault::Silence)?;
        w.sim.stop_gateway().await;
        w.sim.start_gateway().await?;
        tokio::time::sleep(asleep).await;
        heal()?;
        run_ok(std::process::Command::new("kill").args(["-CONT", &pid]))?;
        let woke = Instant::now();
        let mut echoes = Vec::new();
        for (i, port) in five.iter().enumerate() {
            let port = *port;
            echoes.push(tokio::spawn(async move {
                echo_retrying(port, Duration::from_secs(5)).await?;
                echo_once(port, 64 * 1024, i as u8).await
            }));
        }
        for e in echoes {
            e.await??;
        }
        let took = woke.elapsed();
        ensure!(took <= Duration::from_secs(5), "carried after {took:?}");
        eprintln!(
            "measured: after {asleep:?} stopped, every tunnel carried {took:?} after SIGCONT"
        );
        // Carrying alone does not show the jump was seen: a local connection arriving probes
        // the link too. The agent says that the pause itself made it look, at once, both for
        // the links and for the certificate.
        let log_path = w
            .user
            .home()
            .join(".local/share/tether/logs/agent-tether-sim.log");
        let said = [
            "the clock jumped: checking the tunnel connection",
            "the clock jumped (suspend, a paused process, or a clock change)",
        ];
        let start = Instant::now();
        loop {
            let log = std::fs::read_to_string(&log_path).context("the agent's log")?;
            if said.iter().all(|s| log.contains(s)) {
                break;
            }
            ensure!(
                start.elapsed() < Duration::from_secs(5),
                "the agent did not say {said:?} within 5 s of the pause; its log:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        w.until(&key("five"), "open", Duration::from_secs(5))
            .await?;
        w.tether(&["agent:stop"]).await?;
        Ok(())
    }
}
