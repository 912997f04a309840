//! `tether-loadgen`: the traffic of `make bench`, so that every tunnel (Tether's, OpenSSH's
//! `-L`, none) is measured with the same client and server.
//!
//! - `serve PORT_FILE`: on 127.0.0.1, an echo server and a sink (which reads everything and
//!   answers the byte count) on ports of their own; writes `ECHO_PORT SINK_PORT` to the file.
//! - `send PORT BYTES`: sends BYTES to a sink through PORT, prints seconds and GB/s.
//! - `latency PORT COUNT`: COUNT round trips of 64 bytes to an echo server, prints p50/p99 µs.
//! - `accepting SECS PORT…`: waits until every port accepts, prints the seconds it took.
//!
//! Loopback only; every command ends by itself.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CHUNK: usize = 256 * 1024;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let arg = |i: usize| {
        args.get(i)
            .cloned()
            .context("missing argument (see the module docs)")
    };
    match args.first().map(String::as_str) {
        Some("serve") => rt.block_on(serve(arg(1)?)),
        Some("send") => rt.block_on(send(arg(1)?.parse()?, arg(2)?.parse()?)),
        Some("latency") => rt.block_on(latency(arg(1)?.parse()?, arg(2)?.parse()?)),
        Some("accepting") => {
            let ports: Vec<u16> = args[2..].iter().map(|p| p.parse()).collect::<Result<_, _>>()?;
            rt.block_on(accepting(arg(1)?.parse()?, ports))
        }
        _ => bail!("usage: tether-loadgen serve FILE | send PORT BYTES | latency PORT COUNT | accepting SECS PORT..."),
    }
}

async fn serve(port_file: String) -> Result<()> {
    let echo = TcpListener::bind("127.0.0.1:0").await?;
    let sink = TcpListener::bind("127.0.0.1:0").await?;
    std::fs::write(
        &port_file,
        format!(
            "{} {}\n",
            echo.local_addr()?.port(),
            sink.local_addr()?.port()
        ),
    )?;
    let echoing = tokio::spawn(async move {
        while let Ok((mut s, _)) = echo.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let sinking = tokio::spawn(async move {
        while let Ok((mut s, _)) = sink.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; CHUNK];
                let mut total = 0u64;
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    total += n as u64;
                }
                let _ = s.write_all(&total.to_be_bytes()).await;
            });
        }
    });
    let _ = tokio::join!(echoing, sinking);
    Ok(())
}

async fn send(port: u16, bytes: u64) -> Result<()> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    let buf = vec![0x5au8; CHUNK];
    let start = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        s.write_all(&buf[..n]).await?;
        left -= n as u64;
    }
    s.shutdown().await?;
    let mut count = [0u8; 8];
    s.read_exact(&mut count)
        .await
        .context("the sink did not answer")?;
    let secs = start.elapsed().as_secs_f64();
    let got = u64::from_be_bytes(count);
    if got != bytes {
        bail!("the sink received {got} bytes of {bytes}");
    }
    println!("{secs:.3} {:.3}", bytes as f64 / secs / 1e9);
    Ok(())
}

async fn latency(port: u16, count: usize) -> Result<()> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    s.set_nodelay(true)?;
    let msg = [7u8; 64];
    let mut back = [0u8; 64];
    let mut times = Vec::with_capacity(count);
    for i in 0..count + 20 {
        let start = Instant::now();
        s.write_all(&msg).await?;
        s.read_exact(&mut back).await?;
        if i >= 20 {
            times.push(start.elapsed());
        }
    }
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "{:.1} {:.1}",
        at(0.50).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6
    );
    Ok(())
}

async fn accepting(secs: u64, ports: Vec<u16>) -> Result<()> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    for port in ports {
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if Instant::now() > deadline {
                bail!("port {port} does not accept after {secs} s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    println!("{:.4}", start.elapsed().as_secs_f64());
    Ok(())
}
