//! The desktop shell's side of scripts/bench-desktop.sh, on the D-Bus session bus of
//! `DBUS_SESSION_BUS_ADDRESS` (a private one):
//!
//! `tether-tray-probe launch-time RUNS -- COMMAND [ARGS...]` serves a StatusNotifierWatcher of
//! its own, starts COMMAND RUNS + 1 times (the first a warm-up, not counted), and prints the time
//! from each start to the RegisterStatusNotifierItem it receives (`launch N MS`), then
//! `median MS`. Each launch ends with SIGTERM (then SIGKILL) to its process group.
//!
//! `tether-tray-probe serve` is the tests' StatusNotifierWatcher ([`tether_e2e::tray`]), driven
//! over stdin a command a line, and answering a line each (`ok …` or `error …`):
//! `wait-item SECS`, `wait-menu SECS LABEL`, `click LABEL`, `labels`.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tether_e2e::tray::{TrayItem, TrayWatcher};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;
use zbus::interface;
use zbus::message::Header;

const USAGE: &str = "usage: tether-tray-probe launch-time RUNS -- COMMAND [ARGS...]\n       tether-tray-probe serve";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("tether-tray-probe: {e:#}");
        std::process::exit(1);
    }
}

fn bus_address() -> Result<String> {
    std::env::var("DBUS_SESSION_BUS_ADDRESS")
        .context("DBUS_SESSION_BUS_ADDRESS is not set: the probe serves a private session bus")
}

async fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("launch-time") => {
            let runs: usize = args
                .get(1)
                .and_then(|r| r.parse().ok())
                .filter(|&r| r > 0)
                .ok_or_else(|| anyhow!("{USAGE}"))?;
            let command = match args.get(2).map(String::as_str) {
                Some("--") if args.len() > 3 => &args[3..],
                _ => bail!("{USAGE}"),
            };
            launch_time(runs, command).await
        }
        Some("serve") => serve().await,
        _ => bail!("{USAGE}"),
    }
}

/// A StatusNotifierWatcher that notes when each item registers, as soon as the call arrives.
struct TimingWatcher {
    registered: mpsc::UnboundedSender<Instant>,
    items: Arc<Mutex<Vec<String>>>,
}

#[interface(name = "org.kde.StatusNotifierWatcher")]
impl TimingWatcher {
    async fn register_status_notifier_item(
        &self,
        service: &str,
        #[zbus(header)] header: Header<'_>,
    ) {
        let at = Instant::now();
        let sender = header.sender().map(|s| s.to_string()).unwrap_or_default();
        if let Ok(mut items) = self.items.lock() {
            items.push(format!("{sender}{service}"));
        }
        let _ = self.registered.send(at);
    }

    async fn register_status_notifier_host(&self, _service: &str) {}

    #[zbus(property)]
    async fn registered_status_notifier_items(&self) -> Vec<String> {
        self.items.lock().map(|i| i.clone()).unwrap_or_default()
    }

    #[zbus(property)]
    async fn is_status_notifier_host_registered(&self) -> bool {
        true
    }

    #[zbus(property)]
    async fn protocol_version(&self) -> i32 {
        0
    }
}

/// Signals a process group (`kill -SIG -- -PGID`); false once the group is gone.
fn signal_group(pgid: u32, signal: &str) -> bool {
    Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Ends a launch and everything it started (WebKit's processes too): SIGTERM to its process
/// group, SIGKILL after 10 s.
async fn stop(child: &mut std::process::Child) -> Result<()> {
    let pgid = child.id();
    signal_group(pgid, "TERM");
    let start = Instant::now();
    while child.try_wait()?.is_none() || signal_group(pgid, "0") {
        if start.elapsed() > Duration::from_secs(10) {
            signal_group(pgid, "KILL");
            child.wait()?;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn launch_time(runs: usize, command: &[String]) -> Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let items = Arc::new(Mutex::new(Vec::new()));
    let _connection = zbus::connection::Builder::address(bus_address()?.as_str())?
        .name("org.kde.StatusNotifierWatcher")?
        .serve_at(
            "/StatusNotifierWatcher",
            TimingWatcher {
                registered: tx,
                items: items.clone(),
            },
        )?
        .build()
        .await
        .context("cannot serve org.kde.StatusNotifierWatcher")?;

    let mut times = Vec::new();
    for run in 0..=runs {
        while rx.try_recv().is_ok() {}
        if let Ok(mut i) = items.lock() {
            i.clear();
        }
        let start = Instant::now();
        let mut child = Command::new(&command[0])
            .args(&command[1..])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::io::stderr()))
            .spawn()
            .with_context(|| format!("cannot start {}", command[0]))?;
        let registered = tokio::time::timeout(Duration::from_secs(60), rx.recv()).await;
        let exited = child.try_wait()?;
        stop(&mut child).await?;
        let at = match (registered, exited) {
            (Ok(Some(at)), _) => at,
            (_, Some(status)) => bail!(
                "{} exited ({status}) before its tray registered",
                command[0]
            ),
            _ => bail!("{}: no tray item registered in 60 s", command[0]),
        };
        let ms = at.duration_since(start).as_secs_f64() * 1000.0;
        if run == 0 {
            println!("warmup {ms:.1}");
        } else {
            println!("launch {run} {ms:.1}");
            times.push(ms);
        }
        // Let the bus and the page cache settle between launches.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    times.sort_by(f64::total_cmp);
    let n = times.len();
    let median = if n % 2 == 1 {
        times[n / 2]
    } else {
        (times[n / 2 - 1] + times[n / 2]) / 2.0
    };
    println!("median {median:.1}");
    Ok(())
}

async fn serve() -> Result<()> {
    let watcher = TrayWatcher::start(&bus_address()?).await?;
    let mut item: Option<TrayItem> = None;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let reply = match command(&watcher, &mut item, line.trim()).await {
            Ok(said) => format!("ok {said}"),
            Err(e) => format!("error {e:#}").replace('\n', " "),
        };
        println!("{reply}");
    }
    Ok(())
}

/// `SECS REST` of a command's arguments.
fn seconds(args: &str) -> Result<(Duration, &str)> {
    let (secs, rest) = args.split_once(' ').unwrap_or((args, ""));
    let secs: u64 = secs
        .parse()
        .map_err(|_| anyhow!("not a number of seconds: {secs:?}"))?;
    Ok((Duration::from_secs(secs), rest))
}

async fn command(w: &TrayWatcher, item: &mut Option<TrayItem>, line: &str) -> Result<String> {
    let (verb, args) = line.split_once(' ').unwrap_or((line, ""));
    let registered = |item: &Option<TrayItem>| {
        item.clone()
            .ok_or_else(|| anyhow!("no tray item yet: wait-item first"))
    };
    match verb {
        "wait-item" => {
            let (timeout, _) = seconds(args)?;
            let found = w.wait_for_item(timeout).await?;
            let said = format!("{}{}", found.bus_name, found.path);
            *item = Some(found);
            Ok(said)
        }
        "wait-menu" => {
            let (timeout, label) = seconds(args)?;
            let menu = w
                .wait_for_menu_entry(&registered(item)?, label, timeout)
                .await?;
            Ok(serde_json::to_string(&menu.labels())?)
        }
        "click" => {
            w.click(&registered(item)?, args).await?;
            Ok(String::new())
        }
        "labels" => {
            let menu = w.menu(&registered(item)?).await?;
            Ok(serde_json::to_string(&menu.labels())?)
        }
        _ => bail!("unknown command {verb:?}"),
    }
}
