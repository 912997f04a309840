//! The `tether-sim` binary: serves a fixture on loopback, prints one JSON line when ready,
//! optionally writes the profile `tether` uses to reach it, and stops on SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use russh::keys::PrivateKey;
use tether_sim::{Fixture, Sim, SimOptions};

/// A local platform (OAuth2 with MFA, API, SSH certificate authority, SSH gateway) for
/// Tether's tests and demo. A development tool: it runs app commands as the current user.
#[derive(Parser, Debug)]
#[command(name = "tether-sim", version)]
struct Args {
    /// Serve the shipped demo fixture.
    #[arg(long, conflicts_with = "fixture")]
    demo: bool,
    /// Serve this fixture file (TOML).
    #[arg(long, value_name = "FILE")]
    fixture: Option<PathBuf>,
    /// Point a named backend at a running server, e.g. `postgresql=127.0.0.1:5432`.
    #[arg(long = "backend", value_name = "NAME=HOST:PORT")]
    backends: Vec<String>,
    /// Write the profile that `tether --profile PATH` uses to reach this simulator.
    #[arg(long, value_name = "PATH")]
    profile_out: Option<PathBuf>,
    /// Lifetime of access tokens, in seconds.
    #[arg(long, default_value_t = 900, value_name = "SECS")]
    token_lifetime: u64,
    /// Validity of SSH certificates, in seconds.
    #[arg(long, default_value_t = 3600, value_name = "SECS")]
    cert_lifetime: u64,
    /// Use this OpenSSH private key as the certificate authority instead of a new one.
    #[arg(long, value_name = "FILE")]
    ca_key: Option<PathBuf>,
    /// Use this OpenSSH private key as the gateway's host key instead of a new one.
    #[arg(long, value_name = "FILE")]
    host_key: Option<PathBuf>,
    /// Where app commands run (default: a temporary directory removed on exit).
    #[arg(long, value_name = "DIR")]
    scratch_dir: Option<PathBuf>,
    /// Serve apps at `ssh.<region>.DOMAIN` instead of the fixture's domain: `platform.sh`
    /// serves at the real gateway names, where they resolve here (a network namespace with an
    /// `/etc/hosts` of its own, with `--ssh-port 22`).
    #[arg(long, value_name = "DOMAIN")]
    ssh_domain: Option<String>,
    /// With --profile-out, write a profile shaped like the built-in ones: no `[ssh]` block
    /// (names resolved by the system, port 22), the gateway's key as bundled host keys.
    #[arg(long, requires = "profile_out")]
    builtin_shaped: bool,
    /// Answer with a `Date` header this many seconds ahead of this machine's clock (negative:
    /// behind), as a platform whose clock differs would: what `tether doctor` checks.
    #[arg(
        long,
        default_value_t = 0,
        value_name = "SECS",
        allow_hyphen_values = true
    )]
    clock_skew: i64,
    /// The address to serve on: loopback, or an address of a network namespace's own.
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDRESS")]
    bind: std::net::IpAddr,
    /// Ports to serve on (0 picks free ones).
    #[arg(long, default_value_t = 0)]
    auth_port: u16,
    #[arg(long, default_value_t = 0)]
    api_port: u16,
    #[arg(long, default_value_t = 0)]
    ssh_port: u16,
}

fn read_key(path: &Path) -> Result<PrivateKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    PrivateKey::from_openssh(text.trim_end().as_bytes()).with_context(|| {
        format!(
            "{} is not an unencrypted OpenSSH private key",
            path.display()
        )
    })
}

/// Writes next to the target, then renames, so a reader never sees half a file.
fn write_atomically(path: &Path, contents: &str) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, contents.as_bytes())?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Listens for SIGTERM and SIGINT from the moment it is created, so that a signal sent as soon
/// as the ready line appears is not lost to the default action.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
                int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn wait(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Keeps freed heap memory for reuse instead of handing it back to the system at once. The
/// gateway's russh session (its server side is as published) allocates and frees buffers for
/// every packet; with glibc's defaults the freed pages went back to the system (`madvise`) and
/// were faulted in again: 100,000 page faults per GiB carried, a fifth of the simulator's CPU,
/// which made it the pace of every client measured through it. Up to 64 MiB stays with the
/// allocator, and nothing under 32 MiB is mapped on its own.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn keep_freed_memory() {
    // SAFETY: mallopt only sets the allocator's parameters; it takes no pointers and may be
    // called from any thread at any time.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

#[tokio::main]
async fn main() -> Result<()> {
    // Called by a container's stand-in name (psql, tail…): translate and run the real program.
    tether_sim::shim::run_if_called_as_shim();
    keep_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TETHER_SIM_LOG")
                .unwrap_or_else(|_| "tether_sim=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut signals = Signals::install()?;
    let mut fixture = match (&args.fixture, args.demo) {
        (Some(path), _) => Fixture::from_file(path)?,
        (None, true) => Fixture::demo()?,
        (None, false) => bail!("say which platform to serve: --demo, or --fixture FILE"),
    };
    if let Some(domain) = &args.ssh_domain {
        if domain.is_empty()
            || !domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        {
            bail!("--ssh-domain {domain:?}: expected a domain such as platform.sh");
        }
        fixture.ssh_domain = domain.clone();
    }
    let mut options = SimOptions {
        bind: args.bind,
        access_token_lifetime: Duration::from_secs(args.token_lifetime),
        certificate_lifetime: Duration::from_secs(args.cert_lifetime),
        scratch_dir: args.scratch_dir.clone(),
        auth_port: args.auth_port,
        api_port: args.api_port,
        ssh_port: args.ssh_port,
        clock_skew: args.clock_skew,
        ..SimOptions::default()
    };
    for b in &args.backends {
        let (name, addr) = b
            .split_once('=')
            .with_context(|| format!("--backend {b:?}: expected NAME=HOST:PORT"))?;
        let addr: SocketAddr = addr.parse().with_context(|| {
            format!("--backend {b:?}: {addr:?} is not HOST:PORT (for example 127.0.0.1:5432)")
        })?;
        options.backends.insert(name.to_string(), addr);
    }
    if let Some(p) = &args.ca_key {
        options.ca_key = Some(read_key(p)?);
    }
    if let Some(p) = &args.host_key {
        options.host_key = Some(read_key(p)?);
    }
    let sim = Sim::start(fixture, options).await?;
    if let Some(path) = &args.profile_out {
        let profile = if args.builtin_shaped {
            sim.info.builtin_shaped_profile_toml(true)
        } else {
            sim.info.profile_toml()
        };
        write_atomically(path, &profile)?;
    }
    println!("{}", serde_json::to_string(&sim.info)?);
    eprintln!(
        "tether-sim is a development tool: app commands run as {} on this machine.",
        std::env::var("USER").unwrap_or_else(|_| "the current user".into())
    );
    signals.wait().await;
    eprintln!("tether-sim: stopping");
    sim.shutdown().await;
    Ok(())
}
