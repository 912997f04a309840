//! The path the built-in profiles take, under test: a profile with no `[ssh]` block, so the
//! gateway is reached at its real name, `ssh.<region>.platform.sh`, resolved by the system
//! resolver, on port 22; its host key trusted only because the user's known_hosts or the
//! profile's bundled-style keys have it.
//!
//! Each test runs in a network and mount namespace of its own (see
//! `tether_e2e::namespace`): there, tether-sim serves at those names on port 22 of the
//! namespace's loopback, and `/etc/hosts` is the test's. The real `tether` binary, its agent and
//! the system `ssh` run inside with it.

use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use tether_e2e::cli::User;
use tether_e2e::echo::{echo_retrying, echo_server};
use tether_e2e::forms::FormAgent;
use tether_e2e::namespace::Namespace;
use tether_e2e::*;
use tether_sim::{Fixture, Sim, SimHandle, SimOptions};

/// The gateway of the demo project.
const GATEWAY: &str = "ssh.eu-3.platform.sh";
const APP: [&str; 6] = ["-p", DEMO_PROJECT, "-e", "main", "-A", "app"];

/// Where the gateway's host key is, for a test.
#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyIn {
    /// The profile's `gateway_host_keys`, as the built-in profiles bundle theirs.
    Profile,
    /// The user's `~/.ssh/known_hosts`, hashed as `HashKnownHosts yes` writes it.
    KnownHosts,
    /// Nowhere.
    Nowhere,
    /// The user's `~/.ssh/known_hosts` has another key for the gateway.
    Changed,
}

/// One inside test: the simulator at the real names, the echo service behind `rediscache`, and
/// a user whose profile is shaped like a built-in one.
struct Inside {
    /// First, so that it drops first: the agent ends while its home (and pid file) exists.
    _stop: tether_e2e::cli::AgentStopper,
    user: User,
    sim: SimHandle,
    _ns: Namespace,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Inside {
    async fn start(key_in: KeyIn) -> Result<Inside> {
        let mut fixture = Fixture::demo()?;
        fixture.ssh_domain = "platform.sh".into();
        let names: Vec<String> = fixture
            .projects
            .iter()
            .flat_map(|p| ["ssh", "git"].map(|k| format!("{k}.{}.platform.sh", p.region)))
            .collect();
        let ns = Namespace::enter(&names)?;
        let (echo, _) = echo_server().await?;
        let mut options = SimOptions {
            ssh_port: 22,
            ..SimOptions::default()
        };
        backend(&mut options, "redis", echo.port());
        let sim = Sim::start(fixture, options).await?;
        ensure!(sim.info.ssh_port == 22, "the gateway is not on port 22");
        let user = User::new(&sim.info, false)?;
        std::fs::write(
            &user.profile,
            sim.info
                .builtin_shaped_profile_toml(key_in == KeyIn::Profile),
        )?;
        let known_hosts = user.home().join(".ssh/known_hosts");
        std::fs::create_dir_all(user.home().join(".ssh"))?;
        match key_in {
            KeyIn::KnownHosts => {
                std::fs::write(
                    &known_hosts,
                    format!("{GATEWAY} {}\n", sim.info.ssh_host_key),
                )?;
                run_ok(
                    Command::new("ssh-keygen")
                        .arg("-H")
                        .arg("-f")
                        .arg(&known_hosts),
                )?;
                ensure!(
                    !std::fs::read_to_string(&known_hosts)?.contains(GATEWAY),
                    "ssh-keygen -H left the name in clear"
                );
            }
            KeyIn::Changed => {
                let other = ssh_keygen(user.home(), "impostor")?;
                let key = std::fs::read_to_string(&other.public)?;
                std::fs::write(&known_hosts, format!("{GATEWAY} {}", key.trim()))?;
            }
            KeyIn::Profile | KeyIn::Nowhere => {}
        }
        let stop = user.agent_stopper();
        Ok(Inside {
            _stop: stop,
            user,
            sim,
            _ns: ns,
        })
    }

    async fn sign_in_with_token(&self) -> Result<()> {
        self.user
            .ok(&["auth:api-token-login"], Some(ALICE_TOKEN))
            .await?;
        Ok(())
    }

    /// `tunnel:open -r rediscache` must carry the echo through its local port.
    async fn tunnel_carries(&self) -> Result<()> {
        let out = self
            .user
            .run(
                &[&["tunnel:open"][..], &APP, &["-r", "rediscache"]].concat(),
                None,
            )
            .await?;
        ensure!(
            out.status.success(),
            "tunnel:open failed: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let port: u16 = self
            .user
            .ok(&["tunnel:info", "-P", "rediscache.0.port"], None)
            .await?
            .trim()
            .parse()
            .context("tunnel:info -P rediscache.0.port")?;
        echo_retrying(port, Duration::from_secs(10)).await
    }

    /// `tunnel:open` must fail, naming the host, the key's type and fingerprint.
    async fn tunnel_refused(&self, saying: &str) -> Result<String> {
        let out = tokio::time::timeout(
            Duration::from_secs(60),
            self.user.run(
                &[&["tunnel:open"][..], &APP, &["-r", "rediscache"]].concat(),
                None,
            ),
        )
        .await
        .context("tunnel:open did not answer within 60 s")??;
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        ensure!(!out.status.success(), "tunnel:open succeeded: {said}");
        let fingerprint = host_key_fingerprint(&self.sim.info.ssh_host_key)?;
        for wanted in [GATEWAY, "ssh-ed25519", fingerprint.as_str(), saying] {
            ensure!(
                said.contains(wanted),
                "tunnel:open did not say {wanted:?}: {said}"
            );
        }
        Ok(said)
    }

    /// `tether ssh … -- CMD`.
    async fn tether_ssh(&self, command: &str) -> Result<std::process::Output> {
        self.user
            .run(&[&["ssh"][..], &APP, &["--", command]].concat(), None)
            .await
    }
}

/// `SHA256:…` of an OpenSSH public key line, as ssh-keygen prints it.
fn host_key_fingerprint(key: &str) -> Result<String> {
    let key = russh::keys::PublicKey::from_openssh(key)?;
    Ok(key.fingerprint(russh::keys::HashAlg::Sha256).to_string())
}

/// Outer tests: one namespace each.
macro_rules! in_its_own_namespace {
    ($($name:ident),* $(,)?) => {
        mod in_namespace {
            $(
                #[test]
                fn $name() -> anyhow::Result<()> {
                    tether_e2e::namespace::run_inside(concat!("inside::", stringify!($name)))
                }
            )*
        }
    };
}

in_its_own_namespace!(
    sign_in_at_the_real_names,
    tether_ssh_and_plain_ssh_reach_the_gateway_by_name,
    tunnel_open_trusts_a_key_only_in_known_hosts,
    tunnel_open_trusts_a_key_only_in_the_bundled_style_keys,
    an_unknown_host_key_is_refused_on_every_path,
    a_changed_host_key_is_refused_on_every_path,
);

/// Inside tests: ignored in a plain run, started in their namespace by the outer ones.
mod inside {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "runs inside its own namespace, started by in_namespace::<same name>"]
    async fn sign_in_at_the_real_names() -> Result<()> {
        let t = Inside::start(KeyIn::Profile).await?;
        let pending = t.user.start_login(&[]).await?;
        let redirect = FormAgent::new(&t.sim.info.auth_url)
            .login(&pending.url, Some(ALICE_TOTP))
            .await?;
        // The browser follows the redirect to tether's loopback listener.
        http().get(&redirect).send().await?;
        let out = pending.finish().await?;
        ensure!(
            out.status.success(),
            "tether login failed: {}",
            text(&out.stderr)
        );
        let who = t.user.ok(&["auth:info", "-P", "username"], None).await?;
        ensure!(who.trim() == "alice", "{who}");
        // The session's OpenSSH files read the user's known_hosts first, then Tether's.
        let config = std::fs::read_to_string(
            t.user
                .home()
                .join(".local/share/tether/ssh/tether-sim.config"),
        )?;
        let line = config
            .lines()
            .find(|l| l.contains("UserKnownHostsFile"))
            .with_context(|| format!("no UserKnownHostsFile: {config}"))?;
        let user_file = t.user.home().join(".ssh/known_hosts");
        ensure!(
            line.find(&*user_file.to_string_lossy()) < line.find("tether-sim.known_hosts"),
            "{line}"
        );
        let known = std::fs::read_to_string(
            t.user
                .home()
                .join(".local/share/tether/ssh/tether-sim.known_hosts"),
        )?;
        ensure!(known.contains(&t.sim.info.ssh_host_key), "{known}");
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "runs inside its own namespace, started by in_namespace::<same name>"]
    async fn tether_ssh_and_plain_ssh_reach_the_gateway_by_name() -> Result<()> {
        let t = Inside::start(KeyIn::Profile).await?;
        t.sign_in_with_token().await?;
        let out = t.tether_ssh("echo $PLATFORM_APPLICATION_NAME").await?;
        ensure!(
            out.status.success() && text(&out.stdout).trim() == "app",
            "tether ssh: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let address = t
            .user
            .ok(&[&["ssh"][..], &APP, &["--pipe"]].concat(), None)
            .await?;
        ensure!(
            address.trim().ends_with(&format!("@{GATEWAY}")),
            "{address}"
        );
        t.user.ok(&["config:ssh", "--write"], None).await?;
        let mut plain_ssh = t.user.ssh(address.trim());
        plain_ssh.arg("echo plain-$PLATFORM_APPLICATION_NAME");
        let plain = run(&mut plain_ssh)?;
        ensure!(
            plain.status.success() && text(&plain.stdout).trim() == "plain-app",
            "plain ssh: {}{}",
            text(&plain.stdout),
            text(&plain.stderr)
        );
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "runs inside its own namespace, started by in_namespace::<same name>"]
    async fn tunnel_open_trusts_a_key_only_in_known_hosts() -> Result<()> {
        let t = Inside::start(KeyIn::KnownHosts).await?;
        t.sign_in_with_token().await?;
        t.tunnel_carries().await?;
        let out = t.tether_ssh("echo hashed-ok").await?;
        ensure!(
            text(&out.stdout).trim() == "hashed-ok",
            "tether ssh with a hashed known_hosts line: {}",
            text(&out.stderr)
        );
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "runs inside its own namespace, started by in_namespace::<same name>"]
    async fn tunnel_open_trusts_a_key_only_in_the_bundled_style_keys() -> Result<()> {
        let t = Inside::start(KeyIn::Profile).await?;
        t.sign_in_with_token().await?;
        t.tunnel_carries().await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "runs inside its own namespace, started by in_namespace::<same name>"]
    async fn an_unknown_host_key_is_refused_on_every_path() -> Result<()> {
        let t = Inside::start(KeyIn::Nowhere).await?;
        t.sign_in_with_token().await?;
        t.tunnel_refused("no trusted source knows").await?;
        let out = t.tether_ssh("echo should-not-run").await?;
        ensure!(
            !out.status.success() && !text(&out.stdout).contains("should-not-run"),
            "tether ssh ran with an unknown host key"
        );
        ensure!(
            text(&out.stderr).contains("Host key verification failed"),
            "{}",
            text(&out.stderr)
        );
        // Doing what the message says works, with the agent that refused still running.
        std::fs::write(
            t.user.home().join(".ssh/known_hosts"),
            format!("{GATEWAY} {}\n", t.sim.info.ssh_host_key),
        )?;
        t.tunnel_carries().await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "runs inside its own namespace, started by in_namespace::<same name>"]
    async fn a_changed_host_key_is_refused_on_every_path() -> Result<()> {
        let t = Inside::start(KeyIn::Changed).await?;
        t.sign_in_with_token().await?;
        let said = t.tunnel_refused("other keys").await?;
        ensure!(said.contains("known_hosts"), "{said}");
        let out = t.tether_ssh("echo should-not-run").await?;
        ensure!(
            !out.status.success() && !text(&out.stdout).contains("should-not-run"),
            "tether ssh ran with a changed host key"
        );
        ensure!(
            text(&out.stderr).contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
            "{}",
            text(&out.stderr)
        );
        Ok(())
    }
}
