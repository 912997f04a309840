//! `tether-loadgen`: the traffic of `make bench`, so that every tunnel (Tether's, OpenSSH's
//! `-L`, none) is measured with the same client and server.
//!
//! - `serve PORT_FILE`: on 127.0.0.1, an echo server and a sink (which reads everything and
//!   answers the byte count) on ports of their own; writes `ECHO_PORT SINK_PORT` to the file.
//! - `send PORT BYTES [PID]`: sends BYTES to a sink through PORT, prints seconds, GB/s and the
//!   CPU seconds process PID used meanwhile (0 without a PID).
//! - `duplex PORT BYTES [PID]`: sends BYTES to an echo server through PORT while reading the
//!   echo back, both at once on one connection, and checks every byte; prints seconds, GB/s
//!   each way (BYTES / seconds) and PID's CPU seconds.
//! - `latency PORT COUNT`: COUNT round trips of 64 bytes to an echo server, prints p50/p99 µs.
//! - `accepting SECS PORT…`: waits until every port accepts, prints the seconds it took.
//!
//! The servers copy with large buffers, so that they are never what a tunnel's figure
//! measures (the benchmark prints raw loopback through them as the ceiling). Loopback only;
//! every command ends by itself.

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
        Some("send") => rt.block_on(send(arg(1)?.parse()?, arg(2)?.parse()?, watched(&args)?)),
        Some("duplex") => rt.block_on(duplex(
            arg(1)?.parse()?,
            arg(2)?.parse()?,
            watched(&args)?,
        )),
        Some("latency") => rt.block_on(latency(arg(1)?.parse()?, arg(2)?.parse()?)),
        Some("accepting") => {
            let ports: Vec<u16> = args[2..].iter().map(|p| p.parse()).collect::<Result<_, _>>()?;
            rt.block_on(accepting(arg(1)?.parse()?, ports))
        }
        _ => bail!("usage: tether-loadgen serve FILE | send PORT BYTES [PID] | duplex PORT BYTES [PID] | latency PORT COUNT | accepting SECS PORT..."),
    }
}

/// The process whose CPU time `send` and `duplex` report: their optional fourth argument.
fn watched(args: &[String]) -> Result<Option<CpuClock>> {
    args.get(3)
        .map(|pid| Ok(CpuClock::new(pid.parse().context("PID")?)))
        .transpose()
}

/// The CPU time (user and system) a process has used, from `/proc/PID/stat`.
struct CpuClock {
    pid: u32,
    ticks_per_second: f64,
}

impl CpuClock {
    fn new(pid: u32) -> CpuClock {
        // USER_HZ: 100 on every Linux this runs on; asked of getconf to be sure.
        let ticks_per_second = std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0);
        CpuClock {
            pid,
            ticks_per_second,
        }
    }

    fn seconds(&self) -> Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .with_context(|| format!("reading the CPU time of process {}", self.pid))?;
        // The command name (field 2) may hold spaces; the fields after it are plain numbers:
        // state is the first, utime the 12th and stime the 13th.
        let rest = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .context("an unreadable /proc/PID/stat")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| -> Result<f64> {
            Ok(fields
                .get(i)
                .context("a short /proc/PID/stat")?
                .parse::<f64>()?)
        };
        Ok((ticks(11)? + ticks(12)?) / self.ticks_per_second)
    }
}

/// CPU seconds `clock`'s process used since `before` (0 without a process).
fn cpu_since(clock: &Option<CpuClock>, before: f64) -> Result<f64> {
    Ok(match clock {
        Some(c) => c.seconds()? - before,
        None => 0.0,
    })
}

fn cpu_now(clock: &Option<CpuClock>) -> Result<f64> {
    clock.as_ref().map_or(Ok(0.0), CpuClock::seconds)
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
                // tokio::io::copy's 8 KiB buffer would make the echo a syscall pump.
                let mut buf = vec![0u8; CHUNK];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = s.shutdown().await;
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

async fn send(port: u16, bytes: u64, clock: Option<CpuClock>) -> Result<()> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    let buf = vec![0x5au8; CHUNK];
    let cpu = cpu_now(&clock)?;
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
    let cpu = cpu_since(&clock, cpu)?;
    let got = u64::from_be_bytes(count);
    if got != bytes {
        bail!("the sink received {got} bytes of {bytes}");
    }
    println!("{secs:.3} {:.3} {cpu:.2}", bytes as f64 / secs / 1e9);
    Ok(())
}

/// The bytes `duplex` sends: a pattern that repeats only every [`PATTERN`] bytes (a prime, so
/// that no chunk boundary lines up with it), so that a lost, repeated or reordered chunk shows.
const PATTERN: usize = 65_521;

fn pattern() -> Vec<u8> {
    // One period and a chunk more: a chunk from any offset within the period is one slice.
    (0..PATTERN + CHUNK)
        .map(|i| {
            ((i % PATTERN) as u32)
                .wrapping_mul(2_654_435_761)
                .to_be_bytes()[1]
        })
        .collect()
}

async fn duplex(port: u16, bytes: u64, clock: Option<CpuClock>) -> Result<()> {
    let s = TcpStream::connect(("127.0.0.1", port)).await?;
    s.set_nodelay(true)?;
    let (mut r, mut w) = s.into_split();
    let data = std::sync::Arc::new(pattern());
    let cpu = cpu_now(&clock)?;
    let start = Instant::now();
    let sending = {
        let data = data.clone();
        tokio::spawn(async move {
            let mut sent = 0u64;
            while sent < bytes {
                let at = (sent % PATTERN as u64) as usize;
                let n = (bytes - sent).min(CHUNK as u64) as usize;
                w.write_all(&data[at..at + n]).await?;
                sent += n as u64;
            }
            w.shutdown().await?;
            Ok::<_, std::io::Error>(())
        })
    };
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0u64;
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        let at = (got % PATTERN as u64) as usize;
        if got + n as u64 > bytes || buf[..n] != data[at..at + n] {
            bail!(
                "the echo differs from what was sent, within bytes {got}..{}",
                got + n as u64
            );
        }
        got += n as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_since(&clock, cpu)?;
    sending.await??;
    if got != bytes {
        bail!("the echo returned {got} bytes of {bytes}");
    }
    println!("{secs:.3} {:.3} {cpu:.2}", bytes as f64 / secs / 1e9);
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
