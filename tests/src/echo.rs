//! An echo service to stand behind tunnels, and byte-exact round trips through a local port.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An echo server on loopback, with the count of connections it accepted.
pub async fn echo_server() -> Result<(SocketAddr, Arc<AtomicU64>)> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let accepted = Arc::new(AtomicU64::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    Ok((addr, accepted))
}

/// One echo round trip of `len` bytes through a local port.
pub async fn echo_once(port: u16, len: usize, seed: u8) -> Result<()> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    let data: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    let (mut r, mut w) = s.split();
    let write = async {
        w.write_all(&data).await?;
        w.shutdown().await?;
        Ok::<_, std::io::Error>(())
    };
    let mut back = Vec::with_capacity(len);
    let read = r.read_to_end(&mut back);
    let (wrote, read) = tokio::join!(write, read);
    wrote?;
    read?;
    ensure!(
        back == data,
        "echo differs: {} bytes back of {len}",
        back.len()
    );
    Ok(())
}

/// Tries an echo round trip until it works (a client that retries).
pub async fn echo_retrying(port: u16, within: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        match echo_once(port, 1024, 7).await {
            Ok(()) => return Ok(()),
            Err(e) if start.elapsed() < within => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => {
                return Err(e.context(format!("no echo through port {port} within {within:?}")))
            }
        }
    }
}

/// A platform with Alice (password only) and one project, `project`, in the organization
/// `organization` (its id `organization_id`; `label` names both): an app whose database
/// relationship (`main`, with `password`) is served by the echo server at `echo`, on a
/// development environment `dev` (machine name `dev-abcdefg`).
pub fn database_on_echo_fixture(
    echo: SocketAddr,
    password: &str,
    organization_id: &str,
    organization: &str,
    label: &str,
    project: &str,
) -> Result<tether_sim::Fixture> {
    let alice = crate::alice_fixture();
    Ok(tether_sim::Fixture::from_toml(&format!(
        r#"
[backends]
echo = "{echo}"

[[organizations]]
id = "{organization_id}"
name = "{organization}"
label = "{label}"

{alice}
[[projects]]
id = "{project}"
title = "{label}"
region = "eu-3"
organization = "{organization}"
members = ["alice"]

  [[projects.services]]
  name = "db"
  type = "postgresql:16"
  backend = "echo"
  username = "main"
  password = "{password}"
  path = "main"

  [[projects.apps]]
  name = "app"
  type = "php:8.3"
  relationships = {{ database = "db:postgresql" }}

  [[projects.environments]]
  id = "dev"
  machine_name = "dev-abcdefg"
  status = "active"
  type = "development"
"#
    ))?)
}
