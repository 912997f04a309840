//! The gateway can be killed and brought back on its port while the rest of the simulator runs:
//! what Tether's tests use to prove that tunnels reconnect by themselves.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use rand::RngCore;
use russh::keys::ssh_key::certificate::{Builder, CertType};
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{Certificate, PrivateKey, PublicKey, PublicKeyOrCertificate};
use tether_sim::certifier::PRINCIPAL_PREFIX;
use tether_sim::{Fixture, Sim, SimHandle, SimOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ALICE_ID: &str = "3f6d9a52-6c1e-4b7b-9c0b-2f1e8d7a1c01";
const APP_USER: &str = "jyu7waly36ncj-main-7rqtwti--app";
const SOON: Duration = Duration::from_secs(2);

fn gateway_addr(sim: &SimHandle) -> Result<SocketAddr> {
    Ok(SocketAddr::new(
        sim.info.ssh_host.parse()?,
        sim.info.ssh_port,
    ))
}

/// Connects and reads the server's identification line.
async fn banner(addr: SocketAddr) -> Result<TcpStream> {
    let mut tcp = TcpStream::connect(addr).await?;
    let mut first = [0u8; 8];
    tokio::time::timeout(SOON, tcp.read_exact(&mut first)).await??;
    ensure!(
        &first == b"SSH-2.0-",
        "{:?}",
        String::from_utf8_lossy(&first)
    );
    Ok(tcp)
}

/// Whether the peer ended the connection (EOF or reset) within a moment.
async fn ended(tcp: &mut TcpStream) -> Result<bool> {
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(SOON, tcp.read(&mut buf)).await {
            Err(_) => return Ok(false),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(true),
            Ok(Ok(_)) => continue,
        }
    }
}

/// Whether the peer's socket is closed rather than shut down for writing: what is sent to a
/// closed socket is answered with a reset, after which writing fails.
async fn closed(tcp: &mut TcpStream) -> bool {
    if tcp.write_all(b"pong").await.is_err() {
        return true;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    tcp.write_all(b"pong").await.is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_gateway_refuses_and_cuts_then_serves_again_on_its_port() -> Result<()> {
    let sim = Sim::start(Fixture::demo()?, SimOptions::default()).await?;
    let addr = gateway_addr(&sim)?;
    let mut held = banner(addr).await?;
    ensure!(sim.gateway_connections() == 1);

    sim.stop_gateway().await;
    ensure!(ended(&mut held).await?, "a connection outlived the stop");
    let refused = TcpStream::connect(addr).await;
    ensure!(
        matches!(&refused, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
        "{refused:?}"
    );
    ensure!(sim.gateway_connections() == 0);
    sim.stop_gateway().await;

    sim.start_gateway().await?;
    sim.start_gateway().await?;
    let _again = banner(addr).await?;
    ensure!(sim.gateway_connections() == 1);
    sim.shutdown().await;
    Ok(())
}

struct Client {
    host_key: PublicKey,
}

impl russh::client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(matches!(key, PublicKeyOrCertificate::PublicKey { key, .. }
            if key.key_data() == self.host_key.key_data()))
    }
}

fn random_key() -> PrivateKey {
    let mut seed = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut seed);
    PrivateKey::from(Ed25519Keypair::from_seed(&seed))
}

/// A certificate for Alice as the certifier would issue it.
fn certificate(ca: &PrivateKey, key: &PrivateKey) -> Result<Certificate> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let mut builder = Builder::new(
        vec![7; 32],
        key.public_key().key_data().clone(),
        now - 60,
        now + 3600,
    )?;
    builder
        .cert_type(CertType::User)?
        .key_id(ALICE_ID)?
        .valid_principal(format!("{PRINCIPAL_PREFIX}{ALICE_ID}"))?
        .extension("permit-port-forwarding", "")?
        .extension("permit-pty", "")?;
    Ok(builder.sign(ca)?)
}

async fn login(
    sim: &SimHandle,
    key: &PrivateKey,
    cert: &Certificate,
) -> Result<russh::client::Handle<Client>> {
    let client = Client {
        host_key: PublicKey::from_openssh(&sim.info.ssh_host_key)?,
    };
    let mut ssh = russh::client::connect(
        Arc::new(russh::client::Config::default()),
        gateway_addr(sim)?,
        client,
    )
    .await?;
    let auth = ssh
        .authenticate_openssh_cert(APP_USER, Arc::new(key.clone()), cert.clone())
        .await?;
    ensure!(auth.success(), "{auth:?}");
    Ok(ssh)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_cuts_ssh_connections_and_their_forwards_and_the_restart_keeps_keys_and_ca(
) -> Result<()> {
    let backend = TcpListener::bind("127.0.0.1:0").await?;
    let ca = random_key();
    let options = SimOptions {
        ca_key: Some(ca.clone()),
        backends: [("postgresql".to_string(), backend.local_addr()?)].into(),
        ..SimOptions::default()
    };
    let sim = Sim::start(Fixture::demo()?, options).await?;
    let key = random_key();
    let cert = certificate(&ca, &key)?;

    let ssh = login(&sim, &key, &cert).await?;
    let channel = ssh
        .channel_open_direct_tcpip("database.internal", 5432, "127.0.0.1", 40000)
        .await?;
    let (mut served, _) = tokio::time::timeout(SOON, backend.accept()).await??;
    let mut tunnel = channel.into_stream();
    tunnel.write_all(b"ping").await?;
    let mut got = [0u8; 4];
    tokio::time::timeout(SOON, served.read_exact(&mut got)).await??;
    ensure!(&got == b"ping");
    ensure!(sim.gateway_connections() == 1);

    sim.stop_gateway().await;
    ensure!(sim.gateway_connections() == 0);
    // The backend, which waits for its client, is let go: the forward ended with the
    // connection, its socket closed, not merely shut down for writing (what the client's end of
    // the channel closing alone would do, leaving the forward open until the backend speaks).
    ensure!(ended(&mut served).await?, "the forward outlived the stop");
    ensure!(closed(&mut served).await, "the forward outlived the stop");
    // The client's connection ended without a word from the gateway.
    let mut rest = Vec::new();
    tokio::time::timeout(SOON, tunnel.read_to_end(&mut rest))
        .await
        .context("the tunnel outlived the stop")?
        .ok();
    tokio::time::timeout(SOON, ssh)
        .await
        .context("the SSH connection outlived the stop")?
        .ok();

    sim.start_gateway().await?;
    let ssh = login(&sim, &key, &cert).await?;
    ensure!(sim.gateway_connections() == 1);
    drop(ssh);
    sim.shutdown().await;
    Ok(())
}

/// Runs `command` on a session channel (on a PTY if asked) and returns the pid it prints.
async fn spawn_remote(
    ssh: &russh::client::Handle<Client>,
    pty: bool,
    command: &str,
) -> Result<u32> {
    let mut channel = ssh.channel_open_session().await?;
    if pty {
        channel
            .request_pty(true, "xterm", 80, 24, 0, 0, &[])
            .await?;
    }
    channel.exec(true, command).await?;
    let mut out = Vec::new();
    let read = async {
        while let Some(msg) = channel.wait().await {
            if let russh::ChannelMsg::Data { data } = msg {
                out.extend_from_slice(&data);
                if out.contains(&b'\n') {
                    break;
                }
            }
        }
    };
    tokio::time::timeout(SOON, read).await?;
    let text = String::from_utf8_lossy(&out);
    text.trim()
        .parse()
        .with_context(|| format!("no pid in {text:?}"))
}

/// Whether a process has ended (it is gone, or a zombie waiting to be reaped).
#[cfg(target_os = "linux")]
fn ended_process(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_ends_the_processes_of_the_sessions() -> Result<()> {
    let ca = random_key();
    let options = SimOptions {
        ca_key: Some(ca.clone()),
        ..SimOptions::default()
    };
    let sim = Sim::start(Fixture::demo()?, options).await?;
    let key = random_key();
    let cert = certificate(&ca, &key)?;
    let ssh = login(&sim, &key, &cert).await?;
    let piped = spawn_remote(&ssh, false, "echo $$; exec sleep 30").await?;
    let on_pty = spawn_remote(&ssh, true, "echo $$; exec sleep 30").await?;
    ensure!(!ended_process(piped) && !ended_process(on_pty));

    sim.stop_gateway().await;
    let deadline = tokio::time::Instant::now() + SOON;
    while !(ended_process(piped) && ended_process(on_pty)) {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "processes outlived the stop: piped {piped} ended {}, on a PTY {on_pty} ended {}",
            ended_process(piped),
            ended_process(on_pty)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sim.shutdown().await;
    Ok(())
}
