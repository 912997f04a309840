//! The platform's view for the commands an app container runs: its DNS and its `/var/log`.
//!
//! On the platform, an app reaches its services at the addresses `PLATFORM_RELATIONSHIPS`
//! gives (`database.internal:5432`, an `ip` such as `169.254.x.y`, a `hostname`), and its logs
//! are files under `/var/log` (`app.log`, `access.log`, `error.log`, `deploy.log`…). The
//! simulator runs an app's commands as the current user on this machine, where none of those
//! names resolve and `/var/log` is the system's. So each container gets, first on its `PATH`,
//! a directory of stand-ins: links to the `tether-sim` binary named after the database
//! clients (`psql`, `pg_dump`, `mysql`, `mysqldump`, `mariadb`, `mariadb-dump`, `redis-cli`)
//! and the file readers (`tail`, `cat`, `head`, `less`). Called by one of those names (with
//! [`SERVICES_VAR`] set), the binary rewrites its arguments and runs the real program found
//! on the rest of the `PATH`:
//! - a service address (`host` and `port`, as a URL, `-h`/`-p`, `--host=`/`--port=`…) that is
//!   one of the container's relationships becomes the service's backend (`127.0.0.1:N`);
//! - a path under `/var/log/` becomes the same path under the container's `var/log`
//!   directory ([`LOG_DIR_VAR`]: `<scratch dir>/var/log`).
//!
//! Clients send the platform's command text unchanged; only this stand-in translates. Nothing
//! needs root. Without the `tether-sim` binary (a library user whose executable is something
//! else and no `tether-sim` next to it, nor `TETHER_SIM_BIN`), containers get no stand-ins and
//! run commands as they are.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The service map a stand-in reads: space-separated `HOST:PORT=BACKEND_HOST:BACKEND_PORT`.
pub const SERVICES_VAR: &str = "TETHER_SIM_SERVICES";
/// The container's log directory, which `/var/log` stands for.
pub const LOG_DIR_VAR: &str = "TETHER_SIM_VAR_LOG";
/// The directory of stand-ins, taken off the `PATH` to find the real programs.
pub const SHIM_DIR_VAR: &str = "TETHER_SIM_SHIM_DIR";

/// The database clients stood in for, with the port each assumes when none is given.
const CLIENTS: [(&str, u16); 8] = [
    ("psql", 5432),
    ("pg_dump", 5432),
    ("pg_restore", 5432),
    ("mysql", 3306),
    ("mysqldump", 3306),
    ("mariadb", 3306),
    ("mariadb-dump", 3306),
    ("redis-cli", 6379),
];
const FILE_READERS: [&str; 4] = ["tail", "cat", "head", "less"];

/// The log files a container starts with, and a few plausible lines for each.
pub const LOG_FILES: [(&str, &str); 6] = [
    (
        "app.log",
        "[2026-12-07T08:00:01Z] app.INFO: Application started\n\
         [2026-12-07T08:00:02Z] app.INFO: Connected to the database\n\
         [2026-12-07T08:05:13Z] app.WARNING: Slow query (812 ms): SELECT * FROM orders\n",
    ),
    (
        "access.log",
        "10.0.0.12 - - [07/Dec/2026:08:01:00 +0000] \"GET / HTTP/1.1\" 200 5120 \"-\" \"Mozilla/5.0\"\n\
         10.0.0.12 - - [07/Dec/2026:08:01:02 +0000] \"GET /cart HTTP/1.1\" 200 2210 \"-\" \"Mozilla/5.0\"\n\
         10.0.0.40 - - [07/Dec/2026:08:02:10 +0000] \"POST /checkout HTTP/1.1\" 302 0 \"-\" \"curl/8.5\"\n",
    ),
    (
        "error.log",
        "2026/12/07 08:03:44 [error] 42#0: *17 upstream timed out while reading response header\n",
    ),
    (
        "deploy.log",
        "[2026-12-07 07:59:50.101] Launching command 'bin/migrate'.\n\
         [2026-12-07 07:59:52.430] Migrations are up to date.\n",
    ),
    (
        "php.access.log",
        "2026-12-07T08:01:00Z GET 200 12.502 ms 2048 kB 80.00% /index.php\n",
    ),
    (
        "cron.log",
        "[2026-12-07 08:00:00] Running cron job 'cleanup'\n",
    ),
];

/// The `tether-sim` binary: this executable when it is one, else `TETHER_SIM_BIN`, else a
/// `tether-sim` next to this executable or one directory up (a test binary in
/// `target/debug/deps` finds `target/debug/tether-sim`).
pub fn sim_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TETHER_SIM_BIN").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    if exe.file_name().is_some_and(|n| n == "tether-sim") {
        return Some(exe);
    }
    let dir = exe.parent()?;
    [dir.join("tether-sim"), dir.parent()?.join("tether-sim")]
        .into_iter()
        .find(|p| p.is_file())
}

/// Makes (once) the directory of stand-ins under `root`: a link per program, for the database
/// clients this machine has (so `command -v mariadb` still fails where there is no
/// `mariadb`) and the file readers. `None` without the `tether-sim` binary.
pub fn install(root: &Path, path_var: &str) -> Option<PathBuf> {
    let binary = sim_binary()?;
    let dir = root.join(".tether-sim-shims");
    std::fs::create_dir_all(&dir).ok()?;
    let names = CLIENTS
        .iter()
        .map(|(n, _)| *n)
        .chain(FILE_READERS)
        .filter(|n| find_program(n, path_var, None).is_some());
    for name in names {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_ok() {
            continue;
        }
        #[cfg(unix)]
        if let Err(e) = std::os::unix::fs::symlink(&binary, &link) {
            if e.kind() != std::io::ErrorKind::AlreadyExists {
                return None;
            }
        }
    }
    Some(dir)
}

/// Creates `<dir>/var/log` with the [`LOG_FILES`] that are not there yet (a test's appended
/// lines are kept from one session to the next).
pub fn prepare_logs(dir: &Path) -> std::io::Result<PathBuf> {
    let logs = dir.join("var").join("log");
    std::fs::create_dir_all(&logs)?;
    for (name, text) in LOG_FILES {
        let file = logs.join(name);
        if !file.exists() {
            std::fs::write(file, text)?;
        }
    }
    Ok(logs)
}

/// The map for [`SERVICES_VAR`].
pub fn services_value(entries: &[(String, u16, std::net::SocketAddr)]) -> String {
    entries
        .iter()
        .map(|(host, port, backend)| format!("{host}:{port}={backend}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs as a stand-in when called by one of the stand-in names with [`SERVICES_VAR`] set:
/// never returns then (the real program replaces this process, or it exits 127).
pub fn run_if_called_as_shim() {
    let mut args = std::env::args_os();
    let Some(argv0) = args.next() else { return };
    let name = Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let known = CLIENTS.iter().any(|(n, _)| *n == name) || FILE_READERS.contains(&name.as_str());
    if !known || std::env::var_os(SERVICES_VAR).is_none() {
        return;
    }
    let args: Vec<String> = args.map(|a| a.to_string_lossy().into_owned()).collect();
    let services = parse_services(&std::env::var(SERVICES_VAR).unwrap_or_default());
    let logs = std::env::var_os(LOG_DIR_VAR).map(PathBuf::from);
    let rewritten = rewrite(&name, &args, &services, logs.as_deref());
    let path_var = std::env::var("PATH").unwrap_or_default();
    let skip = std::env::var_os(SHIM_DIR_VAR).map(PathBuf::from);
    let Some(program) = find_program(&name, &path_var, skip.as_deref()) else {
        eprintln!("{name}: command not found");
        std::process::exit(127);
    };
    let mut cmd = std::process::Command::new(&program);
    cmd.args(rewritten);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let e = cmd.arg0(&name).exec();
        eprintln!("{name}: {e}");
        std::process::exit(126);
    }
    #[cfg(not(unix))]
    {
        let status = cmd.status().map(|s| s.code().unwrap_or(1)).unwrap_or(126);
        std::process::exit(status);
    }
}

/// The first `name` on `path_var` that is not in `skip` and not a link to this binary.
fn find_program(name: &str, path_var: &str, skip: Option<&Path>) -> Option<PathBuf> {
    path_var
        .split(':')
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .filter(|d| skip.is_none_or(|s| d != s))
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

/// `host:port` → backend `host:port`.
type Services = BTreeMap<(String, u16), (String, u16)>;

fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_ascii_lowercase(), port.parse().ok()?))
}

fn parse_services(value: &str) -> Services {
    value
        .split_whitespace()
        .filter_map(|entry| {
            let (from, to) = entry.split_once('=')?;
            Some((split_host_port(from)?, split_host_port(to)?))
        })
        .collect()
}

/// The arguments `name` gets instead of `args`.
pub fn rewrite(
    name: &str,
    args: &[String],
    services: &Services,
    logs: Option<&Path>,
) -> Vec<OsString> {
    if FILE_READERS.contains(&name) {
        return args
            .iter()
            .map(|a| match (a.strip_prefix("/var/log/"), logs) {
                (Some(rest), Some(dir)) => dir.join(rest).into_os_string(),
                _ => OsString::from(a),
            })
            .collect();
    }
    let default_port = CLIENTS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(0, |(_, p)| *p);
    let mut out: Vec<String> = args.to_vec();
    // URLs carry both (`postgresql://u:p@host:port/db`, `redis://host:port`).
    for a in out.iter_mut() {
        if let Some(new) = rewrite_url(a, default_port, services) {
            *a = new;
        }
    }
    // Options: where the host and the port are, as (argument index, prefix kept).
    let (host_flag, port_flag): (&[&str], &[&str]) = match name {
        "redis-cli" => (&["-h"], &["-p"]),
        "psql" | "pg_dump" | "pg_restore" => (&["-h", "--host"], &["-p", "--port"]),
        _ => (&["-h", "--host"], &["-P", "--port"]),
    };
    let host = find_option(&out, host_flag);
    let port = find_option(&out, port_flag);
    if let Some((hi, hprefix, hval)) = &host {
        let port_value = port
            .as_ref()
            .and_then(|(_, _, v)| v.parse().ok())
            .unwrap_or(default_port);
        if let Some((bhost, bport)) = services.get(&(hval.to_ascii_lowercase(), port_value)) {
            out[*hi] = format!("{hprefix}{bhost}");
            match &port {
                Some((pi, pprefix, _)) => out[*pi] = format!("{pprefix}{bport}"),
                None => {
                    let at = *hi + 1;
                    out.splice(at..at, [port_flag[0].to_string(), bport.to_string()]);
                }
            }
        }
    }
    out.into_iter().map(OsString::from).collect()
}

/// The index of an option's value, the text kept before it (`--host=`, `-h` glued, or
/// nothing when the value is its own argument), and the value.
fn find_option(args: &[String], flags: &[&str]) -> Option<(usize, String, String)> {
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        for f in flags {
            if a == f {
                return args.get(i + 1).map(|v| (i + 1, String::new(), v.clone()));
            }
            if f.starts_with("--") {
                if let Some(v) = a.strip_prefix(&format!("{f}=")) {
                    return Some((i, format!("{f}="), v.to_string()));
                }
            } else if let Some(v) = a.strip_prefix(f).filter(|v| !v.is_empty()) {
                if !a.starts_with("--") {
                    return Some((i, f.to_string(), v.to_string()));
                }
            }
        }
        i += 1;
    }
    None
}

fn rewrite_url(arg: &str, default_port: u16, services: &Services) -> Option<String> {
    let (scheme, rest) = arg.split_once("://")?;
    if !matches!(
        scheme,
        "postgresql" | "postgres" | "redis" | "rediss" | "mysql" | "mariadb"
    ) {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (host, port) = match split_host_port(hostport) {
        Some(hp) if !hostport.ends_with(']') => hp,
        _ => (
            hostport
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase(),
            default_port,
        ),
    };
    let (bhost, bport) = services.get(&(host, port))?;
    let userinfo = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
    Some(format!("{scheme}://{userinfo}{bhost}:{bport}{tail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services() -> Services {
        parse_services(
            "database.internal:5432=127.0.0.1:41000 169.254.1.2:5432=127.0.0.1:41000 \
             rediscache.internal:6379=127.0.0.1:42000 mysql.internal:3306=127.0.0.1:43000",
        )
    }

    fn run(name: &str, args: &[&str]) -> Vec<String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        rewrite(name, &args, &services(), Some(Path::new("/s/app/var/log")))
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn postgres_urls_and_options_reach_the_backend() {
        assert_eq!(
            run(
                "psql",
                &[
                    "postgresql://main:main@database.internal:5432/main",
                    "-c",
                    "x"
                ]
            ),
            ["postgresql://main:main@127.0.0.1:41000/main", "-c", "x"]
        );
        assert_eq!(
            run("pg_dump", &["postgresql://main:main@169.254.1.2:5432"]),
            ["postgresql://main:main@127.0.0.1:41000"]
        );
        assert_eq!(
            run("psql", &["-h", "database.internal", "-p", "5432", "main"]),
            ["-h", "127.0.0.1", "-p", "41000", "main"]
        );
        assert_eq!(
            run("psql", &["--host=database.internal", "-U", "main"]),
            ["--host=127.0.0.1", "-p", "41000", "-U", "main"]
        );
        // Something that is no relationship is left alone.
        assert_eq!(
            run("psql", &["postgresql://a:b@elsewhere:5432/x"]),
            ["postgresql://a:b@elsewhere:5432/x"]
        );
    }

    #[test]
    fn mysql_and_redis_options_reach_the_backend() {
        assert_eq!(
            run(
                "mysql",
                &[
                    "--no-auto-rehash",
                    "--user=u",
                    "--password=p",
                    "--host=mysql.internal",
                    "--port=3306",
                    "main"
                ]
            ),
            [
                "--no-auto-rehash",
                "--user=u",
                "--password=p",
                "--host=127.0.0.1",
                "--port=43000",
                "main"
            ]
        );
        assert_eq!(
            run("mysqldump", &["-hmysql.internal", "-P", "3306"]),
            ["-h127.0.0.1", "-P", "43000"]
        );
        assert_eq!(
            run(
                "redis-cli",
                &["-h", "rediscache.internal", "-p", "6379", "PING"]
            ),
            ["-h", "127.0.0.1", "-p", "42000", "PING"]
        );
        assert_eq!(
            run(
                "redis-cli",
                &["-u", "redis://rediscache.internal:6379/0", "GET", "k"]
            ),
            ["-u", "redis://127.0.0.1:42000/0", "GET", "k"]
        );
    }

    #[test]
    fn var_log_paths_are_the_containers() {
        assert_eq!(
            run("tail", &["-n", "5", "/var/log/app.log", "/etc/hosts"]),
            ["-n", "5", "/s/app/var/log/app.log", "/etc/hosts"]
        );
    }
}
