//! `tether doctor`: what could keep Tether from working on this machine, checked for real
//! (the system `ssh`, the user's `~/.ssh/config`, the keyring, the clock against the
//! platform's, the agent, the tray host, the tunnel ports, the hook's binary), each check with
//! its status, what it means and the one command or click that fixes it. The CLI prints the
//! [`Report`] (or its JSON) and the desktop app shows the same report in its Settings; a
//! support bundle ([`bundle`]) packs it with the versions and the agent's scrubbed log.

pub mod bundle;
pub mod scrub;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::access::Access;
use crate::cert::CertFiles;
use crate::context::Paths;
use crate::openssh::{SshFiles, BLOCK_BEGIN};
use crate::profile::Profile;
use crate::ssh::resolve::host_matches;
use crate::tunnel::ports::FIRST_PORT;

/// How far the local clock may be from the platform's: certificates are valid from the
/// moment they are signed, and a clock further off makes a fresh one look not yet valid (or
/// already expired) to OpenSSH and to the gateway.
pub const CLOCK_TOLERANCE: Duration = Duration::from_secs(60);

/// The well-known name of the StatusNotifierWatcher, which passes tray icons to a panel
/// (KDE's, or GNOME's AppIndicator extension).
pub const TRAY_WATCHER: &str = "org.kde.StatusNotifierWatcher";

/// The first OpenSSH release with each feature Tether's SSH configuration relies on.
const OPENSSH_FEATURES: [(&str, (u32, u32)); 3] = [
    ("Match exec", (6, 5)),
    ("CertificateFile", (7, 2)),
    ("Include", (7, 3)),
];

/// How long one outside answer (ssh, the keyring, the platform, the bus) may take.
const PATIENCE: Duration = Duration::from_secs(15);

/// Whether a check passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    /// Works, but something is missing or may bite later.
    Warning,
    /// Something Tether needs is broken.
    Problem,
}

/// Which check; stable names for scripts and for the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[serde(rename_all = "snake_case")]
pub enum CheckId {
    OpensshVersion,
    SshConfigBlock,
    SshResolution,
    SshHome,
    Keyring,
    Clock,
    Agent,
    TrayHost,
    TunnelPorts,
    HookBinary,
}

/// What fixes a check: what to do, and the command that does it when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct Fix {
    /// For people: what to run or click.
    pub text: String,
    /// A shell command that fixes it, when one does.
    pub command: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct Check {
    pub id: CheckId,
    pub status: Status,
    /// One line: what was checked and what was found.
    pub title: String,
    /// What it means.
    pub detail: String,
    /// `None` when there is nothing to fix.
    pub fix: Option<Fix>,
}

/// What the report was made with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct Versions {
    pub tether: String,
    /// `ssh -V`, when there is an `ssh`.
    pub openssh: Option<String>,
    pub os: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct Report {
    /// The profile's name.
    pub profile: String,
    pub versions: Versions,
    pub checks: Vec<Check>,
}

impl Report {
    /// The worst status of any check.
    pub fn worst(&self) -> Status {
        self.checks
            .iter()
            .map(|c| c.status)
            .max()
            .unwrap_or(Status::Ok)
    }

    pub fn check(&self, id: CheckId) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }
}

fn check(
    id: CheckId,
    status: Status,
    title: impl Into<String>,
    detail: impl Into<String>,
) -> Check {
    Check {
        id,
        status,
        title: title.into(),
        detail: detail.into(),
        fix: None,
    }
}

impl Check {
    fn fix(mut self, text: impl Into<String>, command: Option<String>) -> Check {
        self.fix = Some(Fix {
            text: text.into(),
            command,
        });
        self
    }
}

/// Runs every check for `access`'s profile. `tether_version` is the shell's own version line.
/// Never fails: a check that cannot run says so in its status.
pub async fn run(access: &Access, tether_version: &str) -> Report {
    let paths = access.paths();
    let profile = access.profile();
    let (openssh_line, openssh) = openssh_version().await;
    let session_config = read_session_config(paths, profile);
    let checks = vec![
        openssh,
        config_block(paths, profile),
        ssh_resolution(paths, profile, session_config.as_deref()).await,
        ssh_home(paths, profile).await,
        keyring(access).await,
        clock(access).await,
        agent(paths, profile).await,
        tray_host().await,
        tunnel_ports(paths).await,
        hook_binary(session_config.as_deref()),
    ];
    Report {
        profile: profile.name.clone(),
        versions: Versions {
            tether: tether_version.to_string(),
            openssh: openssh_line,
            os: os_version(),
        },
        checks,
    }
}

/// The session's SSH config (written at sign-in), if there is one.
fn read_session_config(paths: &Paths, profile: &Profile) -> Option<String> {
    std::fs::read_to_string(SshFiles::new(paths, profile).config).ok()
}

/// Runs a program with a deadline; `None` when it cannot start or does not finish.
async fn output(mut cmd: tokio::process::Command) -> Option<std::process::Output> {
    cmd.stdin(std::process::Stdio::null()).kill_on_drop(true);
    tokio::time::timeout(PATIENCE, cmd.output())
        .await
        .ok()?
        .ok()
}

/// `OpenSSH_9.2p1 …` as (9, 2).
fn parse_openssh_version(line: &str) -> Option<(u32, u32)> {
    let rest = &line[line.find("OpenSSH_")? + "OpenSSH_".len()..];
    let mut parts = rest.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

async fn openssh_version() -> (Option<String>, Check) {
    let id = CheckId::OpensshVersion;
    let install = || {
        (
            "Install OpenSSH's client 7.3 or later (Debian and Ubuntu: sudo apt install openssh-client)",
            Some("sudo apt install openssh-client".to_string()),
        )
    };
    let mut cmd = tokio::process::Command::new("ssh");
    cmd.arg("-V");
    let Some(out) = output(cmd).await else {
        let (text, command) = install();
        return (
            None,
            check(
                id,
                Status::Problem,
                "No OpenSSH client (ssh) found",
                "Tether runs the system ssh for terminals, and plain ssh, scp, rsync and git use the configuration Tether writes.",
            )
            .fix(text, command),
        );
    };
    // `ssh -V` prints on stderr.
    let line = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let line = if line.is_empty() {
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    } else {
        line
    };
    let features = OPENSSH_FEATURES
        .iter()
        .map(|(f, (a, b))| format!("{f} since {a}.{b}"))
        .collect::<Vec<_>>()
        .join(", ");
    let Some(version) = parse_openssh_version(&line) else {
        return (
            Some(line.clone()),
            check(
                id,
                Status::Warning,
                format!("ssh is not OpenSSH, or its version is unclear ({line})"),
                format!("Tether's SSH configuration needs OpenSSH ({features})."),
            ),
        );
    };
    let missing: Vec<String> = OPENSSH_FEATURES
        .iter()
        .filter(|(_, since)| version < *since)
        .map(|(f, (a, b))| format!("{f} (OpenSSH {a}.{b})"))
        .collect();
    let shown = format!("{}.{}", version.0, version.1);
    let c = if missing.is_empty() {
        check(
            id,
            Status::Ok,
            format!("OpenSSH {shown} supports certificates, Include and Match exec"),
            format!("Tether's SSH configuration uses {features}."),
        )
    } else {
        let (text, command) = install();
        check(
            id,
            Status::Problem,
            format!(
                "OpenSSH {shown} is too old: it lacks {}",
                missing.join(", ")
            ),
            format!("Tether's SSH configuration uses {features}; plain ssh will not read it."),
        )
        .fix(text, command)
    };
    (Some(line), c)
}

/// A host each of the profile's host patterns stands for: a gateway whose key the profile
/// bundles when one matches, else the pattern with its wildcards filled in.
fn sample_hosts(profile: &Profile) -> Vec<String> {
    let known: Vec<String> = profile
        .gateway_host_keys
        .iter()
        .filter_map(|l| l.split_whitespace().next())
        .flat_map(|hosts| hosts.split(','))
        .filter(|h| !h.starts_with('|') && !h.starts_with('[') && !h.contains(['*', '?']))
        .map(str::to_string)
        .collect();
    profile
        .ssh_host_patterns
        .iter()
        .map(|p| {
            known
                .iter()
                .find(|h| host_matches(p, h))
                .cloned()
                .unwrap_or_else(|| p.replace('*', "ssh").replace('?', "x"))
        })
        .collect()
}

/// The options Tether's session config sets: an earlier section that sets one of them wins
/// for the platform's hosts (OpenSSH keeps the first value it obtains), or, for keys and
/// certificates, is offered first.
const TETHER_OPTIONS: [&str; 8] = [
    "certificatefile",
    "identityfile",
    "identitiesonly",
    "hostname",
    "port",
    "userknownhostsfile",
    "stricthostkeychecking",
    "include",
];

/// Whether a section header applies to `host`: `Some(true)` when it does, `Some(false)`
/// when it does not, `None` when it cannot be told here (a `Match` on more than hosts).
fn section_applies(keyword: &str, args: &[&str], host: &str) -> Option<bool> {
    let matches_list = |list: &[&str]| {
        let mut any = false;
        for pattern in list.iter().flat_map(|a| a.split(',')) {
            let pattern = pattern.trim_matches('"');
            if let Some(neg) = pattern.strip_prefix('!') {
                if host_matches(neg, host) {
                    return false;
                }
            } else if host_matches(pattern, host) {
                any = true;
            }
        }
        any
    };
    if keyword == "host" {
        return Some(matches_list(args));
    }
    // Match: `all`, or criteria of which only `host`/`originalhost` can be evaluated here.
    let lowered: Vec<String> = args.iter().map(|a| a.to_lowercase()).collect();
    if lowered.first().map(String::as_str) == Some("all") {
        return Some(true);
    }
    let mut i = 0;
    let mut decided = true;
    while i < lowered.len() {
        let criterion = lowered[i].trim_start_matches('!');
        match criterion {
            "host" | "originalhost" if i + 1 < args.len() => {
                let negated = lowered[i].starts_with('!');
                if matches_list(&args[i + 1..i + 2]) == negated {
                    return Some(false);
                }
                i += 2;
            }
            "canonical" | "final" => i += 1,
            _ => {
                decided = false;
                i += 2;
            }
        }
    }
    decided.then_some(true)
}

/// One line of an ssh_config: its keyword (lowercase) and arguments.
fn config_words(line: &str) -> Option<(String, Vec<&str>)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (keyword, rest) = match line.find(|c: char| c.is_whitespace() || c == '=') {
        Some(i) => (
            &line[..i],
            line[i..].trim_start_matches(|c: char| c.is_whitespace() || c == '='),
        ),
        None => (line, ""),
    };
    Some((keyword.to_lowercase(), rest.split_whitespace().collect()))
}

/// Options whose value before the block does not take the session's place: an identity is
/// offered before the session's (which usually still gets in), and an included file may set
/// nothing for the platform's hosts (`ssh -G` tells).
const UNCERTAIN_OPTIONS: [&str; 2] = ["identityfile", "include"];

/// What in `~/.ssh/config` before Tether's block applies to `host` and sets an option Tether
/// sets: (line number, the section's header, the option), and whether it surely wins over the
/// session's; the first sure one, else the first that may.
fn shadowing(text: &str, host: &str) -> Option<(usize, String, String, bool)> {
    // Before any Host or Match line, settings apply to every host.
    let mut section: (String, Option<bool>) = ("the top of the file".to_string(), Some(true));
    let mut maybe = None;
    for (n, line) in text.lines().enumerate() {
        if line.trim() == BLOCK_BEGIN {
            break;
        }
        let Some((keyword, args)) = config_words(line) else {
            continue;
        };
        if keyword == "host" || keyword == "match" {
            section = (
                line.trim().to_string(),
                section_applies(&keyword, &args, host),
            );
            continue;
        }
        if TETHER_OPTIONS.contains(&keyword.as_str()) && section.1 != Some(false) {
            let sure = section.1 == Some(true) && !UNCERTAIN_OPTIONS.contains(&keyword.as_str());
            let found = (n + 1, section.0.clone(), keyword, sure);
            if sure {
                return Some(found);
            }
            maybe.get_or_insert(found);
        }
    }
    maybe
}

/// The command that puts Tether's block at the top of `~/.ssh/config`.
const MOVE_BLOCK: &str = "tether config:ssh --remove && tether config:ssh --write";

fn config_block(paths: &Paths, profile: &Profile) -> Check {
    let id = CheckId::SshConfigBlock;
    let config = paths.ssh_config();
    let shown = config.display().to_string();
    let write = || Some("tether config:ssh --write".to_string());
    let text = match std::fs::read_to_string(&config) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return check(
                id,
                Status::Problem,
                format!("{shown} cannot be read: {e}"),
                "OpenSSH reads it before every plain ssh, scp, rsync and git connection.",
            )
            .fix(format!("Make {shown} readable by you (chmod 600)"), None)
        }
    };
    if !text.lines().any(|l| l.trim() == BLOCK_BEGIN) {
        return check(
            id,
            Status::Problem,
            format!("Tether's block is not in {shown}"),
            "Plain ssh, scp, rsync and git do not use the session's certificate (tether ssh still works).",
        )
        .fix("Add Tether's block (what the app's welcome offers as \"Let plain ssh use Tether?\")", write());
    }
    for host in sample_hosts(profile) {
        if let Some((line, header, option, certain)) = shadowing(&text, &host) {
            let option = crate::escape::terminal(&option).into_owned();
            let header = crate::escape::terminal(&header).into_owned();
            let c = check(
                id,
                if certain { Status::Problem } else { Status::Warning },
                format!(
                    "Line {line} of {shown} ({header}) {} {option} for {host} before Tether's block",
                    if certain { "sets" } else { "may set" }
                ),
                "OpenSSH uses the first value it reads for an option (and offers keys and certificates in the order it reads them), so what comes before Tether's block wins over the session's certificate, keys and known hosts.",
            );
            return c.fix(
                "Move Tether's block to the top of the file",
                Some(MOVE_BLOCK.to_string()),
            );
        }
    }
    check(
        id,
        Status::Ok,
        format!(
            "Tether's block is in {shown}, before anything that applies to the platform's hosts"
        ),
        "Plain ssh, scp, rsync and git use the session's certificate.",
    )
}

/// The `Match … exec "COMMAND"` line's command as OpenSSH runs it (`%%` read as `%`).
fn hook_command(session_config: &str) -> Option<String> {
    let line = session_config.lines().find(|l| l.starts_with("Match "))?;
    let start = line.find(" exec \"")? + " exec \"".len();
    let end = line.rfind('"')?;
    (end > start).then(|| line[start..end].replace("%%", "%"))
}

/// The program the hook runs (`test -x '<program>' && …`).
fn hook_program(session_config: &str) -> Option<PathBuf> {
    let command = hook_command(session_config)?;
    let rest = command.strip_prefix("test -x '")?;
    Some(PathBuf::from(&rest[..rest.find('\'')?]))
}

async fn ssh_resolution(paths: &Paths, profile: &Profile, session_config: Option<&str>) -> Check {
    let id = CheckId::SshResolution;
    let Some(session_config) = session_config else {
        return check(
            id,
            Status::Warning,
            "Not signed in: there is no session for ssh to use",
            "Tether writes the session's SSH configuration at sign-in.",
        )
        .fix(
            "Sign in: tether login (or Sign in in the app)",
            Some("tether login".into()),
        );
    };
    let certificate = CertFiles::new(paths.session_dir(profile)).certificate();
    let hook = hook_command(session_config);
    let config = paths.ssh_config();
    if !config.exists() {
        return check(
            id,
            Status::Problem,
            format!("There is no {}: plain ssh does not use the session", config.display()),
            "OpenSSH reads Tether's block from it before every plain ssh, scp, rsync and git connection.",
        )
        .fix(
            "Add Tether's block: tether config:ssh --write",
            Some("tether config:ssh --write".to_string()),
        );
    }
    let mut found = Vec::new();
    for host in sample_hosts(profile) {
        let mut cmd = tokio::process::Command::new("ssh");
        cmd.args(["-G", "-v", "-F"]).arg(&config).arg(&host);
        let Some(out) = output(cmd).await else {
            return check(
                id,
                Status::Problem,
                format!("ssh -G {host} did not run"),
                "ssh is missing or did not answer in time.",
            );
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            let said = crate::escape::terminal(stderr.lines().last().unwrap_or("")).into_owned();
            return check(
                id,
                Status::Problem,
                format!("ssh -G {host} fails: {said}"),
                format!("OpenSSH cannot read {}.", config.display()),
            )
            .fix(
                format!("Fix the line ssh names in {}", config.display()),
                None,
            );
        }
        let certs = certificate_files(&stdout);
        let wanted = certificate.display().to_string();
        let position = certs.iter().position(|c| *c == wanted);
        let ran = hook
            .as_ref()
            .is_none_or(|h| stderr.contains(&format!("Executing command: '{h}'")));
        match position {
            None => {
                return check(
                    id,
                    Status::Problem,
                    format!("ssh -G {host} does not use the session's certificate"),
                    format!("Plain ssh to the platform offers no certificate of Tether's ({wanted})."),
                )
                .fix(
                    "Add Tether's block at the top of ~/.ssh/config",
                    Some(MOVE_BLOCK.to_string()),
                )
            }
            Some(p) if p > 0 => {
                return check(
                    id,
                    Status::Problem,
                    format!("ssh -G {host} offers {} before the session's certificate", certs[0]),
                    "Something before Tether's block in ~/.ssh/config applies to the platform's hosts first.",
                )
                .fix(
                    "Move Tether's block to the top of ~/.ssh/config",
                    Some(MOVE_BLOCK.to_string()),
                )
            }
            Some(_) if !ran => {
                return check(
                    id,
                    Status::Problem,
                    format!("ssh -G {host} does not run the renewal hook"),
                    "Plain ssh uses the certificate but does not renew it: connections fail once it expires.",
                )
                .fix(
                    "Write the session's SSH configuration again",
                    Some("tether ssh-cert:load".to_string()),
                )
            }
            Some(_) => found.push(host),
        }
    }
    check(
        id,
        Status::Ok,
        format!(
            "ssh -G {} uses the session's certificate{}",
            found.join(", "),
            if hook.is_some() {
                " and runs the renewal hook"
            } else {
                ""
            }
        ),
        "Plain ssh, scp, rsync and git connect with the session.",
    )
}

/// The certificates `ssh -G` printed, in the order OpenSSH offers them.
fn certificate_files(ssh_g: &str) -> Vec<&str> {
    ssh_g
        .lines()
        .filter_map(|l| l.strip_prefix("certificatefile "))
        .collect()
}

/// Whether plain `ssh` reads the `~/.ssh/config` Tether wrote. OpenSSH takes `~` from the
/// passwd entry of the user who runs it, not from `$HOME` (`ssh.c`: `getpwuid(getuid())`), so
/// with `HOME` pointing elsewhere (a sandbox, `sudo -E`, a container's bind-mounted home)
/// Tether's block sits in a file plain ssh never opens, unless the config it does read
/// includes it. The other checks pass `-F` and cannot see this.
async fn ssh_home(paths: &Paths, profile: &Profile) -> Check {
    let id = CheckId::SshHome;
    let written = paths.ssh_config();
    let Some(home) = crate::openssh::passwd_home() else {
        return check(
            id,
            Status::Warning,
            "This user has no passwd entry",
            "OpenSSH takes ~ from the passwd entry: without one, plain ssh may not read ~/.ssh/config.",
        );
    };
    let read = home.join(".ssh").join("config");
    let same = |a: &Path, b: &Path| {
        a == b
            || std::fs::canonicalize(a)
                .is_ok_and(|a| std::fs::canonicalize(b).is_ok_and(|b| a == b))
    };
    if same(&home.join(".ssh"), &paths.ssh_dir) {
        return check(
            id,
            Status::Ok,
            format!("ssh reads {}, where Tether's block goes", written.display()),
            "OpenSSH takes ~ from the passwd entry, and here that is the home Tether uses.",
        );
    }
    // Another home: fine if the config ssh reads reaches the session anyway (an `Include` of
    // Tether's file or of its block).
    let certificate = CertFiles::new(paths.session_dir(profile)).certificate();
    if let Some(host) = sample_hosts(profile).into_iter().next() {
        let mut cmd = tokio::process::Command::new("ssh");
        cmd.arg("-G").arg(&host);
        if let Some(out) = output(cmd).await {
            let wanted = certificate.display().to_string();
            if certificate_files(&String::from_utf8_lossy(&out.stdout)).contains(&wanted.as_str()) {
                return check(
                    id,
                    Status::Ok,
                    format!(
                        "ssh reads {}, which reaches the session's certificate",
                        read.display()
                    ),
                    format!(
                        "OpenSSH takes ~ from the passwd entry ({}), not from $HOME, and that configuration leads to Tether's.",
                        home.display()
                    ),
                );
            }
        }
    }
    check(
        id,
        Status::Warning,
        format!(
            "ssh reads {}, not {} where Tether's block is",
            read.display(),
            written.display()
        ),
        format!(
            "OpenSSH takes ~ from the passwd entry ({}), not from $HOME ({}): plain ssh, scp, rsync and git do not use the session here; tether ssh and the app do.",
            home.display(),
            paths.ssh_dir.parent().unwrap_or(&paths.ssh_dir).display()
        ),
    )
    .fix(
        format!(
            "Add the line `{}` at the top of {}, or run ssh with -F {}",
            crate::openssh::include_line(&written),
            read.display(),
            written.display()
        ),
        None,
    )
}

async fn keyring(access: &Access) -> Check {
    let id = CheckId::Keyring;
    let session = access.session();
    if session.uses_env_token() {
        return check(
            id,
            Status::Ok,
            "An API token in the environment is used; nothing is kept in a store",
            "The token store is not used while the variable is set.",
        );
    }
    let store = &session.store;
    let place = store.describe();
    let checked = tokio::time::timeout(PATIENCE, store.check()).await;
    let error = match checked {
        Ok(Ok(())) if store.in_file() => {
            return check(
                id,
                Status::Ok,
                format!("Sign-ins are kept in {place}, as chosen"),
                format!("The file store was chosen on purpose ({} or the app's choice): it is readable only by you, but not encrypted by a keyring.", crate::setup::STORE_ENV),
            )
        }
        Ok(Ok(())) => {
            return check(
                id,
                Status::Ok,
                "The OS keyring answers and keeps secrets",
                "Sign-ins are kept in the keyring.",
            )
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("it did not answer within {} s (locked, waiting on its unlock prompt?)", PATIENCE.as_secs()),
    };
    let error = crate::escape::terminal(&error).into_owned();
    if store.in_file() {
        return check(
            id,
            Status::Problem,
            format!("The token file cannot be written: {error}"),
            "Sign-ins cannot be kept.",
        )
        .fix("Make the data directory writable by you", None);
    }
    check(
        id,
        Status::Problem,
        format!("The keyring does not answer: {error}"),
        "A sign-in cannot be kept: every command would ask you to sign in again.",
    )
    .fix(
        "Start and unlock a Secret Service: a desktop session starts one (unlock it when asked); elsewhere, run this and type your password, then Ctrl-D. Or keep sign-ins in a file only you can read: TETHER_TOKEN_STORE=file (the app offers this too)",
        Some("gnome-keyring-daemon --unlock --components=secrets".to_string()),
    )
}

/// The platform's time from its `Date` header, and the local time halfway through the request.
async fn platform_time(access: &Access) -> Result<(SystemTime, SystemTime), String> {
    let before = access.session().clock().now();
    let resp = access
        .session()
        .http()
        .get(access.profile().api_url.clone())
        .timeout(PATIENCE)
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    let after = access.session().clock().now();
    let date = resp
        .headers()
        .get(reqwest::header::DATE)
        .and_then(|d| d.to_str().ok())
        .ok_or("the API's answer had no Date header")?;
    let theirs = httpdate::parse_http_date(date).map_err(|e| format!("its Date header: {e}"))?;
    let half = after.duration_since(before).unwrap_or_default() / 2;
    Ok((theirs, before + half))
}

fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

async fn clock(access: &Access) -> Check {
    let id = CheckId::Clock;
    let api = access.profile().api_url.to_string();
    match platform_time(access).await {
        Err(e) => check(
            id,
            Status::Warning,
            format!(
                "The platform's clock could not be read: {}",
                crate::escape::terminal(&e)
            ),
            format!("Its API ({api}) did not answer; the clock was not compared."),
        )
        .fix("Check the network, then run tether doctor again", None),
        Ok((theirs, ours)) => {
            let skew = unix(ours) - unix(theirs);
            let tolerance = CLOCK_TOLERANCE.as_secs() as i64;
            let (ahead, by) = (skew > 0, skew.unsigned_abs());
            let relation = if ahead { "ahead of" } else { "behind" };
            if skew.abs() <= tolerance {
                check(
                    id,
                    Status::Ok,
                    format!("This machine's clock is within {tolerance} s of the platform's ({by} s {relation})"),
                    "Certificates are valid from the moment they are signed; the clocks agree.",
                )
            } else {
                check(
                    id,
                    Status::Problem,
                    format!("This machine's clock is {by} s {relation} the platform's"),
                    format!("More than {tolerance} s off: fresh certificates look not yet valid or already expired, and sign-ins may be refused."),
                )
                .fix(
                    "Set the clock from the network",
                    Some("sudo timedatectl set-ntp true".to_string()),
                )
            }
        }
    }
}

#[cfg(unix)]
async fn agent(paths: &Paths, profile: &Profile) -> Check {
    use std::os::unix::fs::MetadataExt;
    let id = CheckId::Agent;
    let socket = crate::agent::socket_path(paths, profile);
    let shown = socket.display().to_string();
    let start = || {
        (
            "Start it: open the Tether app, or run tether agent (tether tunnel:open starts one too)",
            Some("tether agent".to_string()),
        )
    };
    let connected = crate::agent::AgentClient::connect(&socket).await;
    let mut client = match connected {
        Ok(Some(c)) => c,
        Ok(None) => {
            let (text, command) = start();
            return check(
                id,
                Status::Warning,
                "No agent is running",
                "Everything works without it, but nobody keeps the certificate fresh between commands or keeps tunnels open.",
            )
            .fix(text, command);
        }
        Err(e) => {
            return check(
                id,
                Status::Problem,
                format!("The agent's socket cannot be reached: {e}"),
                "Commands cannot hand their work to the agent.",
            )
            .fix(
                format!("Stop what holds {shown}, then start the agent again"),
                None,
            )
        }
    };
    let status =
        tokio::time::timeout(PATIENCE, client.request(&crate::agent::Request::Status)).await;
    let pid = match status {
        Ok(Ok(crate::agent::Reply::Status(s))) => s.pid,
        _ => {
            return check(
                id,
                Status::Problem,
                "The agent does not answer",
                "Commands that hand their work to it wait, then fail.",
            )
            .fix(
                "Restart it: tether agent:stop, then start it again",
                Some("tether agent:stop".to_string()),
            )
        }
    };
    let me = rustix::process::geteuid().as_raw();
    let open = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.uid() != me || m.mode() & 0o077 != 0)
            .unwrap_or(true)
    };
    let dir = &paths.runtime_dir;
    if open(&socket) || open(dir) {
        return check(
            id,
            Status::Problem,
            format!("The agent (pid {pid}) listens on a socket others may reach ({shown})"),
            "Whoever reaches the socket can use your session.",
        )
        .fix(
            "Make the socket and its directory yours alone",
            Some(format!(
                "chmod 700 '{}' && chmod 600 '{shown}'",
                dir.display()
            )),
        );
    }
    check(
        id,
        Status::Ok,
        format!("The agent is running (pid {pid}) and its socket is yours alone"),
        format!("It keeps the certificate fresh and the tunnels open ({shown})."),
    )
}

#[cfg(not(unix))]
async fn agent(_paths: &Paths, _profile: &Profile) -> Check {
    check(
        CheckId::Agent,
        Status::Warning,
        "The agent is not available on this system",
        "Each command does its part alone.",
    )
}

/// Whether a StatusNotifierWatcher owns its name on the session bus; `Err` when there is no
/// bus to ask.
#[cfg(target_os = "linux")]
pub fn tray_host_present() -> Result<bool, String> {
    let conn = dbus::blocking::Connection::new_session().map_err(|e| e.to_string())?;
    let proxy = conn.with_proxy(
        "org.freedesktop.DBus",
        "/org/freedesktop/DBus",
        Duration::from_secs(5),
    );
    let (owned,): (bool,) = proxy
        .method_call("org.freedesktop.DBus", "NameHasOwner", (TRAY_WATCHER,))
        .map_err(|e| e.to_string())?;
    Ok(owned)
}

#[cfg(not(target_os = "linux"))]
pub fn tray_host_present() -> Result<bool, String> {
    Ok(true)
}

async fn tray_host() -> Check {
    let id = CheckId::TrayHost;
    let answer = tokio::task::spawn_blocking(tray_host_present)
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
    let enable = || {
        (
            "Add a tray to the desktop: on GNOME, install and enable the AppIndicator extension; KDE, XFCE, Cinnamon and MATE have one",
            Some("gnome-extensions enable ubuntu-appindicators@ubuntu.com".to_string()),
        )
    };
    match answer {
        Ok(true) => check(
            id,
            Status::Ok,
            "A tray host is present (StatusNotifierWatcher on the session bus)",
            "The desktop app shows its tray icon.",
        ),
        Ok(false) => {
            let (text, command) = enable();
            check(
                id,
                Status::Warning,
                "No tray host on the session bus",
                "The desktop app has no tray icon; its window is its surface instead (the command line is not affected).",
            )
            .fix(text, command)
        }
        Err(e) => check(
            id,
            Status::Warning,
            format!(
                "No session bus to ask for a tray host: {}",
                crate::escape::terminal(&e)
            ),
            "Outside a desktop session there is no tray; the command line is not affected.",
        ),
    }
}

/// The address of a `/proc/net/tcp{,6}` line's local field (`0100007F:7530`): its bytes are
/// 32-bit words in the host's order.
#[cfg(target_os = "linux")]
fn proc_address(hex: &str) -> Option<(std::net::IpAddr, u16)> {
    let (addr, port) = hex.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let mut bytes = Vec::with_capacity(16);
    for i in (0..addr.len()).step_by(8) {
        let word = u32::from_str_radix(addr.get(i..i + 8)?, 16).ok()?;
        bytes.extend(word.to_ne_bytes());
    }
    let ip = match bytes.len() {
        4 => std::net::IpAddr::from([bytes[0], bytes[1], bytes[2], bytes[3]]),
        16 => {
            let b: [u8; 16] = bytes.try_into().ok()?;
            let v6 = std::net::Ipv6Addr::from(b);
            v6.to_ipv4_mapped()
                .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4)
        }
        _ => return None,
    };
    Some((ip, port))
}

/// The ports a listener holds for `ip` (on it, or on every address), from the kernel's
/// tables: what makes a tunnel's bind on `ip` fail. Read rather than probed by binding each
/// port, which would take every port of the range for a moment from whoever wants it then.
#[cfg(target_os = "linux")]
fn listening_ports(ip: std::net::IpAddr) -> std::collections::BTreeSet<u16> {
    const LISTEN: &str = "0A";
    let mut taken = std::collections::BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.get(3) != Some(&LISTEN) {
                continue;
            }
            if let Some((local, port)) = cols.get(1).and_then(|c| proc_address(c)) {
                if local == ip || local.is_unspecified() {
                    taken.insert(port);
                }
            }
        }
    }
    taken
}

#[cfg(not(target_os = "linux"))]
fn listening_ports(ip: std::net::IpAddr) -> std::collections::BTreeSet<u16> {
    (FIRST_PORT..=u16::MAX)
        .filter(|p| std::net::TcpListener::bind((ip, *p)).is_err())
        .collect()
}

/// How many ports from [`FIRST_PORT`] up are free on `ip`, and the first that a real bind
/// takes (and gives back at once).
fn free_ports(ip: std::net::IpAddr) -> (usize, Option<u16>) {
    let taken = listening_ports(ip);
    let mut candidates = (FIRST_PORT..=u16::MAX).filter(|p| !taken.contains(p));
    let free = candidates.clone().count();
    let first = candidates
        .by_ref()
        .take(64)
        .find(|p| std::net::TcpListener::bind((ip, *p)).is_ok());
    (free, first)
}

async fn tunnel_ports(paths: &Paths) -> Check {
    let id = CheckId::TunnelPorts;
    let ip = crate::settings::DesktopSettings::load(paths).bind_ip();
    let total = usize::from(u16::MAX - FIRST_PORT) + 1;
    let (free, first) = tokio::task::spawn_blocking(move || free_ports(ip))
        .await
        .unwrap_or((0, None));
    let range = format!("{FIRST_PORT}-{}", u16::MAX);
    match first {
        None => check(
            id,
            Status::Problem,
            format!("No free port on {ip} in {range}"),
            "Tunnels choose their port from this range: no tunnel can open without --port.",
        )
        .fix(
            "Close tunnels you no longer use, or stop what holds these ports",
            Some("tether tunnel:close --all --yes".to_string()),
        ),
        Some(port) => check(
            id,
            Status::Ok,
            format!("{free} of {total} ports in {range} are free on {ip} (the first: {port})"),
            "Tunnels choose their port from this range.",
        ),
    }
}

fn hook_binary(session_config: Option<&str>) -> Check {
    let id = CheckId::HookBinary;
    let Some(config) = session_config else {
        return check(
            id,
            Status::Ok,
            "No session: no hook to check",
            "The renewal hook is written at sign-in.",
        );
    };
    let repoint = || Some("tether ssh-cert:load".to_string());
    let Some(program) = hook_program(config) else {
        return check(
            id,
            Status::Warning,
            "The session's SSH configuration has no renewal hook",
            "Plain ssh uses the certificate until it expires, then fails until a tether command renews it.",
        )
        .fix("Run any tether command from the tether you use: it writes the hook", repoint());
    };
    let shown = program.display().to_string();
    let runnable = {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(&program)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        }
        #[cfg(not(unix))]
        {
            program.is_file()
        }
    };
    if runnable {
        check(
            id,
            Status::Ok,
            format!("The renewal hook's binary exists ({shown})"),
            "Plain ssh renews the certificate before each connection.",
        )
    } else {
        check(
            id,
            Status::Problem,
            format!("The renewal hook runs {shown}, which is gone"),
            "Plain ssh no longer renews the certificate (the package was removed, or the binary moved): connections fail once it expires.",
        )
        .fix(
            "Run any tether command from the tether you use: it points the hook at itself",
            repoint(),
        )
    }
}

/// The system's name and version.
fn os_version() -> String {
    let pretty = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|k| k.trim().to_string());
    let mut parts = vec![format!(
        "{} {}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )];
    parts.extend(pretty);
    parts.extend(kernel.map(|k| format!("kernel {k}")));
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openssh_versions_are_read_from_ssh_v() {
        assert_eq!(
            parse_openssh_version("OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.15"),
            Some((9, 2))
        );
        assert_eq!(parse_openssh_version("OpenSSH_for_Windows_8.1p1"), None);
        assert_eq!(parse_openssh_version("OpenSSH_7.2p2 Ubuntu"), Some((7, 2)));
        assert!((7, 2) < (7, 3));
    }

    #[test]
    fn a_host_star_with_a_certificate_before_the_block_shadows_it() {
        let block = format!("{BLOCK_BEGIN}\nHost *.platform.sh\n  Include /x/*.config\n");
        let host = "ssh.eu-5.platform.sh";
        let shadowed = format!("Host *\n  CertificateFile ~/.ssh/other-cert.pub\n\n{block}");
        let found = shadowing(&shadowed, host).unwrap();
        assert_eq!(
            (found.0, found.2.as_str(), found.3),
            (2, "certificatefile", true)
        );
        // Other hosts' sections, and what Tether does not set, shadow nothing.
        let fine = format!("Host github.com\n  IdentityFile ~/.ssh/gh\nHost *\n  ServerAliveInterval 60\n{block}Host *\n  IdentityFile ~/.ssh/late\n");
        assert_eq!(shadowing(&fine, host), None);
        // An identity offered first, or an included file, may shadow: not certain.
        assert!(
            !shadowing(&format!("IdentityFile ~/.ssh/top\n{block}"), host)
                .unwrap()
                .3
        );
        assert!(
            !shadowing(&format!("Include ~/.orbstack/ssh/config\n\n{block}"), host)
                .unwrap()
                .3
        );
        // A sure one after an unsure one is the one named.
        let both = format!("Include ~/.x\nHost *\n  Port 2222\n{block}");
        assert_eq!(shadowing(&both, host).unwrap().0, 3);
        assert!(shadowing(
            &format!("Host * !*.platform.sh\n  Port 2222\n{block}"),
            host
        )
        .is_none());
        assert!(
            shadowing(&format!("Match all\n  Port=2222\n{block}"), host)
                .unwrap()
                .3
        );
        // A Match this cannot evaluate may apply: not certain.
        let unsure = shadowing(&format!("Match user bob\n  Port 2222\n{block}"), host).unwrap();
        assert!(!unsure.3);
        assert!(shadowing(
            &format!("Match host \"*.github.com\"\n  Port 2222\n{block}"),
            host
        )
        .is_none());
    }

    #[test]
    fn the_hook_program_is_read_from_the_match_line() {
        let config = "# x\nMatch host \"*.a\" exec \"test -x '/opt/100%%/tether' && exec '/opt/100%%/tether' --profile 'p' ssh-cert:load --refresh-only --quiet\"\nHost *.a\n";
        assert_eq!(
            hook_program(config),
            Some(PathBuf::from("/opt/100%/tether"))
        );
        assert!(hook_command(config)
            .unwrap()
            .starts_with("test -x '/opt/100%/tether'"));
        assert_eq!(hook_program("Host *.a\n"), None);
    }

    #[test]
    fn sample_hosts_prefer_a_bundled_gateway() {
        let p = Profile::platformsh();
        let hosts = sample_hosts(&p);
        assert_eq!(hosts.len(), p.ssh_host_patterns.len());
        for (h, pattern) in hosts.iter().zip(&p.ssh_host_patterns) {
            assert!(host_matches(pattern, h), "{h} {pattern}");
            assert!(!h.contains('*'));
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_kernels_listeners_are_read_for_the_port_range() {
        assert_eq!(
            proc_address("0100007F:7530"),
            Some((std::net::IpAddr::from([127, 0, 0, 1]), 30000))
        );
        assert_eq!(
            proc_address("0000000000000000FFFF00000100007F:7531"),
            Some((std::net::IpAddr::from([127, 0, 0, 1]), 30001))
        );
        let ip = std::net::IpAddr::from([127, 0, 0, 1]);
        let held = std::net::TcpListener::bind((ip, 0)).unwrap();
        let port = held.local_addr().unwrap().port();
        assert!(listening_ports(ip).contains(&port));
        let (free, first) = free_ports(ip);
        assert!(free > 0 && first.is_some());
    }
}
