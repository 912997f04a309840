//! MariaDB started for one suite, on loopback, with a `main` user (password `main`) and a
//! `main` database: the credentials the MariaDB fixtures' relationships carry. Its data
//! directory and socket are in a temporary directory of the suite's (under `TMPDIR`), removed
//! with the server when the guard drops.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::{is_root, run, run_ok, spawn_on_free_port, ChildGuard};

pub struct MariaDb {
    pub port: u16,
    // Dropped in this order: the server stops before its directory is removed.
    _server: ChildGuard,
    _dir: tempfile::TempDir,
}

/// The first of `names` on the `PATH` or in /usr/sbin (MariaDB's names, then MySQL's).
fn program(names: &[&str]) -> Result<String> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = names
        .iter()
        .flat_map(|n| {
            path.split(':')
                .chain(["/usr/sbin", "/usr/bin"])
                .map(move |d| Path::new(d).join(n))
        })
        .find(|p| p.is_file())
        .map(|p| p.to_string_lossy().into_owned())
        .with_context(|| {
            format!(
                "none of {names:?} is installed: MariaDB is needed \
                 (scripts/setup-system.sh installs mariadb-server and mariadb-client)"
            )
        });
    found
}

/// The options every MariaDB program of the harness gets first: no option file of the
/// machine's (`/etc/mysql/…`, `~/.my.cnf`) applies.
const NO_DEFAULTS: &str = "--no-defaults";

impl MariaDb {
    pub fn start() -> Result<MariaDb> {
        let dir = tempfile::Builder::new()
            .prefix("tether-mariadb-")
            .tempdir()?;
        let data = dir.path().join("data");
        let socket = dir.path().join("mysqld.sock");
        // MariaDB refuses to run as root unless told to; as root, it runs as root here (the
        // files are then root's, removed with the directory).
        let user: Vec<String> = if is_root() {
            vec!["--user=root".into()]
        } else {
            vec![]
        };
        run_ok(
            Command::new(program(&["mariadb-install-db", "mysql_install_db"])?)
                .arg(NO_DEFAULTS)
                .arg(format!("--datadir={}", data.display()))
                .args(&user)
                .args([
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                    "--skip-name-resolve",
                ]),
        )?;
        let server = program(&["mariadbd", "mysqld"])?;
        let (guard, port) = spawn_on_free_port("mariadbd", Duration::from_secs(60), |port| {
            let mut cmd = Command::new(&server);
            cmd.arg(NO_DEFAULTS)
                .arg(format!("--datadir={}", data.display()))
                .arg(format!("--socket={}", socket.display()))
                .arg(format!(
                    "--pid-file={}",
                    dir.path().join("mysqld.pid").display()
                ))
                .arg(format!("--tmpdir={}", dir.path().display()))
                .arg(format!(
                    "--log-error={}",
                    dir.path().join("error.log").display()
                ))
                .args(&user)
                .args([
                    "--bind-address=127.0.0.1",
                    &format!("--port={port}"),
                    "--skip-name-resolve",
                    "--skip-log-bin",
                    "--innodb-buffer-pool-size=16M",
                    "--innodb-log-file-size=8M",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            Ok(cmd)
        })
        .with_context(|| {
            format!(
                "MariaDB did not start; its log: {}",
                std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
            )
        })?;
        // Root logs in without a password over the socket; it makes the test's user, which
        // may create databases (a dump is restored into a fresh one).
        let client = program(&["mariadb", "mysql"])?;
        let setup = "DROP USER IF EXISTS ''@'localhost'; \
                     CREATE USER 'main'@'%' IDENTIFIED BY 'main'; \
                     GRANT ALL PRIVILEGES ON *.* TO 'main'@'%'; \
                     CREATE DATABASE main; FLUSH PRIVILEGES;";
        let start = Instant::now();
        loop {
            let out = run(Command::new(&client)
                .arg(NO_DEFAULTS)
                .arg(format!("--socket={}", socket.display()))
                .args(["--user=root", "--batch", "--execute", setup]))?;
            if out.status.success() {
                break;
            }
            if start.elapsed() > Duration::from_secs(20) {
                bail!(
                    "MariaDB did not accept root's login: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(MariaDb {
            port,
            _server: guard,
            _dir: dir,
        })
    }

    /// Runs `sql` in `database` as `main` over TCP, not through Tether; its output, tab
    /// separated, without column names, trimmed.
    pub fn query(&self, database: &str, sql: &str) -> Result<String> {
        Ok(run_ok(
            Command::new(program(&["mariadb", "mysql"])?)
                .arg(NO_DEFAULTS)
                .args(["--host=127.0.0.1", "--user=main", "--password=main"])
                .arg(format!("--port={}", self.port))
                .args(["--batch", "--skip-column-names", "--execute", sql, database]),
        )?
        .trim()
        .to_string())
    }
}
