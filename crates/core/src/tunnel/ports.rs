//! Which local port a tunnel listens on. The user's choice when given (busy is an error that
//! names the port and, where the OS tells, the process holding it: never a silent switch);
//! else the port this relationship had last time, remembered per profile, project,
//! environment, app and relationship, so that a database tool's saved connection keeps
//! working; else the first free port from 30000 up, as the official client. When another
//! process holds the remembered port, a new one is chosen and the tunnel says so
//! ([`Displaced`]): a saved connection would otherwise reach that process instead.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};

use super::LocalPort;
use crate::context::{Clock, SystemClock};
use crate::private_files::{create_private_dir, write_atomic, FileLock};
use crate::problem::{Classify, Problem};

/// Where automatic port choice starts (the official client's first port).
pub const FIRST_PORT: u16 = 30000;

/// Connections a listener queues before accepting them.
const BACKLOG: u32 = 1024;

#[derive(Debug, Clone, thiserror::Error)]
pub enum PortError {
    #[error("port {port} on {ip} is already in use{}: choose another with --port, or stop what holds it", holder.as_ref().map(|h| format!(" (by {h})")).unwrap_or_default())]
    Busy {
        ip: IpAddr,
        port: u16,
        holder: Option<String>,
    },
    #[error("no free port on {ip} from {FIRST_PORT} up: close some tunnels, or choose a port with --port")]
    NoneFree { ip: IpAddr },
    #[error("cannot listen on {addr}: {message}")]
    Bind { addr: SocketAddr, message: String },
}

impl Classify for PortError {
    fn problem(&self) -> Problem {
        // A busy port is not a usage mistake: the same command works once the port is free.
        let _ = self;
        Problem::Other
    }
}

/// How to pick the port of one tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortChoice {
    /// The user asked for this port: it or an error.
    Exact(LocalPort),
    /// This port if it is free (remembered from last time), else the first free one.
    Prefer(LocalPort),
    /// The first free port from [`FIRST_PORT`] up.
    Any,
}

/// The port a tunnel had last time, held by another process when it opened again: the tunnel
/// listens elsewhere, and a client still pointed at the old port would reach that process.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Displaced {
    pub port: u16,
    /// "name (pid N)", where the OS tells.
    pub holder: Option<String>,
}

impl std::fmt::Display for Displaced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "port {}, this tunnel's port last time, is in use",
            self.port
        )?;
        if let Some(holder) = &self.holder {
            write!(f, " by {}", crate::escape::terminal(holder))?;
        }
        f.write_str(", so another was chosen: point clients at the new port, or stop what holds the old one and reopen")
    }
}

/// A tunnel's listener, its port, and the remembered port it could not have.
#[derive(Debug)]
pub struct Bound {
    pub listener: TcpListener,
    pub port: LocalPort,
    pub displaced: Option<Displaced>,
}

/// Binds a tunnel's listener. Ports in `avoid` (remembered for other tunnels) are skipped by
/// the automatic choice so that one tunnel does not take another's usual port.
pub fn bind(ip: IpAddr, choice: PortChoice, avoid: &[u16]) -> Result<Bound, PortError> {
    let bound = |(listener, port)| Bound {
        listener,
        port,
        displaced: None,
    };
    match choice {
        PortChoice::Exact(port) => bind_one(ip, port.get(), true).map(bound),
        PortChoice::Prefer(port) => match bind_one(ip, port.get(), true) {
            Ok(done) => Ok(bound(done)),
            Err(PortError::Busy { port, holder, .. }) => {
                let mut anew = bind(ip, PortChoice::Any, avoid)?;
                anew.displaced = Some(Displaced { port, holder });
                Ok(anew)
            }
            Err(e) => Err(e),
        },
        PortChoice::Any => bind_any(ip, avoid).map(bound),
    }
}

fn bind_any(ip: IpAddr, avoid: &[u16]) -> Result<(TcpListener, LocalPort), PortError> {
    for port in FIRST_PORT..=u16::MAX {
        if avoid.contains(&port) {
            continue;
        }
        // Who holds each busy port is not asked here: finding it scans every process, and a
        // busy range would make that a scan per port.
        match bind_one(ip, port, false) {
            Ok(done) => return Ok(done),
            Err(PortError::Busy { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(PortError::NoneFree { ip })
}

/// Binds `ip:port`; when it is taken, the error names the process holding it if
/// `name_holder`.
fn bind_one(
    ip: IpAddr,
    port: u16,
    name_holder: bool,
) -> Result<(TcpListener, LocalPort), PortError> {
    let addr = SocketAddr::new(ip, port);
    let bind_error = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            PortError::Busy {
                ip,
                port,
                holder: name_holder.then(|| holder_of(port)).flatten(),
            }
        } else {
            PortError::Bind {
                addr,
                message: e.to_string(),
            }
        }
    };
    let socket = match ip {
        IpAddr::V4(_) => TcpSocket::new_v4(),
        IpAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(bind_error)?;
    // Rebinding a port whose last connections linger in TIME_WAIT (a tunnel just closed, an
    // agent restarted) must work; SO_REUSEADDR does not let two listeners share a port.
    socket.set_reuseaddr(true).map_err(bind_error)?;
    socket.bind(addr).map_err(bind_error)?;
    let listener = socket.listen(BACKLOG).map_err(bind_error)?;
    let port = listener
        .local_addr()
        .ok()
        .and_then(|a| LocalPort::new(a.port()))
        .ok_or(PortError::Bind {
            addr,
            message: "the system gave no port".into(),
        })?;
    Ok((listener, port))
}

/// The process listening on a TCP port, as "name (pid N)", where the OS tells (Linux, for
/// processes this user may inspect).
fn holder_of(port: u16) -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        let inode = ["/proc/net/tcp", "/proc/net/tcp6"]
            .iter()
            .find_map(|table| listening_inode(&std::fs::read_to_string(table).ok()?, port))?;
        let needle = format!("socket:[{inode}]");
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
                continue;
            };
            let holds = fds.flatten().any(|fd| {
                std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == needle.as_str())
            });
            if holds {
                let name = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                return Some(format!("{} (pid {pid})", name.trim()));
            }
        }
        None
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = port;
        None
    }
}

/// The inode of the socket listening on `port` in a `/proc/net/tcp` table.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn listening_inode(table: &str, port: u16) -> Option<String> {
    const LISTEN: &str = "0A";
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let local_port = cols.get(1)?.rsplit(':').next()?;
        (u16::from_str_radix(local_port, 16).ok()? == port && *cols.get(3)? == LISTEN)
            .then(|| cols.get(9).map(|s| s.to_string()))
            .flatten()
    })
}

/// How long a port stays remembered after its tunnel last opened: the book forgets apps (and
/// relationships, environments, projects) nobody has opened for this long, so it does not grow
/// forever.
pub const FORGET_AFTER: Duration = Duration::from_secs(90 * 24 * 60 * 60);
/// A remembered port's last use is written again only when it is older than this, so opening
/// a tunnel does not rewrite the file every time.
const TOUCH_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// One remembered port and when its tunnel last opened (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum Entry {
    Used {
        port: u16,
        used: u64,
    },
    /// A book written before ports had a last use: counted as used when first read again.
    Bare(u16),
}

impl Entry {
    fn port(self) -> u16 {
        match self {
            Entry::Used { port, .. } | Entry::Bare(port) => port,
        }
    }

    /// Whether the entry is still remembered at `now`; a bare entry is, until next written.
    fn kept(self, now: u64) -> bool {
        match self {
            Entry::Used { used, .. } => now.saturating_sub(used) < FORGET_AFTER.as_secs(),
            Entry::Bare(_) => true,
        }
    }
}

/// The ports tunnels had, remembered across agent restarts in a small file of the profile.
/// Entries unused for [`FORGET_AFTER`] are forgotten.
pub struct PortBook {
    path: PathBuf,
    clock: Arc<dyn Clock>,
}

impl PortBook {
    pub fn new(path: PathBuf) -> PortBook {
        PortBook::with_clock(path, Arc::new(SystemClock))
    }

    pub fn with_clock(path: PathBuf, clock: Arc<dyn Clock>) -> PortBook {
        PortBook { path, clock }
    }

    /// The entries still remembered now.
    fn read(&self) -> BTreeMap<String, Entry> {
        let now = self.clock.unix();
        let mut all: BTreeMap<String, Entry> = std::fs::read(&self.path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        all.retain(|_, e| e.kept(now));
        all
    }

    /// The port remembered for a tunnel.
    pub fn get(&self, key: &str) -> Option<LocalPort> {
        self.read()
            .get(key)
            .map(|e| e.port())
            .and_then(LocalPort::new)
    }

    /// Ports remembered for other tunnels than `key`.
    pub fn others(&self, key: &str) -> Vec<u16> {
        self.read()
            .into_iter()
            .filter(|(k, _)| k != key)
            .map(|(_, e)| e.port())
            .collect()
    }

    /// Remembers a tunnel's port and that it was used now, forgetting entries unused for
    /// [`FORGET_AFTER`] (best effort: a tunnel works without it).
    pub fn remember(&self, key: &str, port: LocalPort) {
        let Some(dir) = self.path.parent() else {
            return;
        };
        if create_private_dir(dir).is_err() {
            return;
        }
        let Ok(_lock) = FileLock::acquire(&self.path.with_extension("lock")) else {
            return;
        };
        let now = self.clock.unix();
        let on_file: BTreeMap<String, Entry> = std::fs::read(&self.path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        let fresh = |e: &Entry| match *e {
            Entry::Used { port: p, used } => {
                p == port.get() && now.saturating_sub(used) < TOUCH_AFTER.as_secs()
            }
            Entry::Bare(_) => false,
        };
        let forgets = on_file.values().any(|e| !e.kept(now));
        if on_file.get(key).is_some_and(fresh) && !forgets {
            return;
        }
        let mut all: BTreeMap<String, Entry> = on_file
            .into_iter()
            .filter(|(_, e)| e.kept(now))
            .map(|(k, e)| {
                // Old entries get a last use of now, so that they too are forgotten in time.
                let e = match e {
                    Entry::Bare(port) => Entry::Used { port, used: now },
                    used => used,
                };
                (k, e)
            })
            .collect();
        all.insert(
            key.to_string(),
            Entry::Used {
                port: port.get(),
                used: now,
            },
        );
        if let Ok(bytes) = serde_json::to_vec_pretty(&all) {
            if let Err(e) = write_atomic(&self.path, &bytes, 0o600) {
                tracing::warn!(error = %e, "cannot remember the tunnel's port");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[tokio::test]
    async fn a_busy_chosen_port_is_an_error_naming_it_and_its_holder() {
        let Bound {
            listener: held,
            port,
            ..
        } = bind(LOOPBACK, PortChoice::Any, &[]).unwrap();
        let err = bind(LOOPBACK, PortChoice::Exact(port), &[]).unwrap_err();
        let PortError::Busy {
            port: p, holder, ..
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!(*p, port.get());
        if cfg!(target_os = "linux") {
            let holder = holder.as_deref().unwrap_or_default();
            assert!(
                holder.contains(&format!("pid {}", std::process::id())),
                "{holder}"
            );
        }
        assert!(err.to_string().contains(&port.to_string()), "{err}");
        drop(held);
    }

    #[tokio::test]
    async fn a_remembered_port_held_by_another_process_is_replaced_and_said_so() {
        let held = bind(LOOPBACK, PortChoice::Any, &[]).unwrap();
        let port = held.port;
        let anew = bind(LOOPBACK, PortChoice::Prefer(port), &[]).unwrap();
        assert_ne!(anew.port, port);
        assert!(anew.port.get() >= FIRST_PORT);
        let displaced = anew.displaced.expect("the move is reported");
        assert_eq!(displaced.port, port.get());
        if cfg!(target_os = "linux") {
            let holder = displaced.holder.clone().unwrap_or_default();
            assert!(
                holder.contains(&format!("pid {}", std::process::id())),
                "{holder}"
            );
        }
        let said = displaced.to_string();
        assert!(said.contains(&format!("port {port}")), "{said}");
        assert!(said.contains("another was chosen"), "{said}");
        // A free remembered port is simply taken.
        drop(held);
        let again = bind(LOOPBACK, PortChoice::Prefer(port), &[]).unwrap();
        assert_eq!((again.port, again.displaced), (port, None));
    }

    #[tokio::test]
    async fn automatic_choice_skips_ports_remembered_for_other_tunnels() {
        let first = bind(LOOPBACK, PortChoice::Any, &[]).unwrap();
        let port = first.port;
        drop(first);
        let next = bind(LOOPBACK, PortChoice::Any, &[port.get()]).unwrap();
        assert_ne!(next.port, port);
    }

    #[test]
    fn the_book_remembers_ports_per_key() {
        let dir = tempfile::tempdir().unwrap();
        let book = PortBook::new(dir.path().join("t").join("ports.json"));
        assert_eq!(book.get("a"), None);
        book.remember("a", LocalPort::new(30001).unwrap());
        book.remember("b", LocalPort::new(30002).unwrap());
        assert_eq!(book.get("a"), LocalPort::new(30001));
        assert_eq!(book.others("a"), vec![30002]);
    }

    #[test]
    fn the_book_forgets_tunnels_unused_for_90_days() {
        use crate::context::ManualClock;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ports.json");
        // A book from before ports had a last use still reads, and its entries age from now.
        std::fs::write(&path, br#"{"old": 30009}"#).unwrap();
        let clock = ManualClock::new(std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
        let book = PortBook::with_clock(path.clone(), Arc::new(clock.clone()));
        assert_eq!(book.get("old"), LocalPort::new(30009));
        book.remember("a", LocalPort::new(30001).unwrap());
        book.remember("b", LocalPort::new(30002).unwrap());

        // "a" is opened again after 60 days; "b" and "old" are not.
        clock.advance(Duration::from_secs(60 * 24 * 3600));
        book.remember("a", LocalPort::new(30001).unwrap());
        clock.advance(Duration::from_secs(31 * 24 * 3600));
        assert_eq!(book.get("a"), LocalPort::new(30001));
        assert_eq!(book.get("b"), None, "unused for 91 days");
        assert_eq!(book.get("old"), None, "unused for 91 days");
        assert_eq!(book.others("c"), vec![30001]);

        // The next write drops them from the file too: the book does not grow forever.
        book.remember("c", LocalPort::new(30003).unwrap());
        let on_file: BTreeMap<String, serde_json::Value> =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(on_file.keys().collect::<Vec<_>>(), ["a", "c"]);
    }

    #[test]
    fn listening_sockets_are_found_in_the_proc_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:7530 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0\n\
   1: 0100007F:7531 0100007F:7530 01 00000000:00000000 00:00000000 00000000     0        0 999 1 0\n";
        assert_eq!(listening_inode(table, 30000).as_deref(), Some("12345"));
        assert_eq!(listening_inode(table, 30001), None);
    }
}
