//! Copying files to and from an app, and reading its logs, with the system's tools run through
//! the system OpenSSH with the session's options, so the user's configuration, the `Match exec`
//! refresh hook and the certificate apply as they do to `tether ssh`:
//! - `rsync` for mounts (`legacy/src/Service/Rsync.php` in the official client: `--archive
//!   --compress --human-readable`, `-v` unless quiet, a trailing slash on the source, includes
//!   before excludes), with `-e` carrying Tether's ssh command line;
//! - `scp` for `environment:scp` (`legacy/src/Command/Environment/EnvironmentScpCommand.php`:
//!   the `remote:` prefix names the app's files);
//! - `tail` for `environment:logs` (`legacy/src/Command/Environment/EnvironmentLogCommand.php`).
//!
//! Remote paths are relative to the app's directory, which is the SSH session's home there.

use std::path::Path;

use crate::ssh::SshUrl;

/// The prefix that names a file on the app in `environment:scp`.
pub const REMOTE_PREFIX: &str = "remote:";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    #[error("at least one argument needs the \"remote:\" prefix (such as remote:var/files), to say which files are on the app")]
    NoRemote,
    #[error("no files given: name what to copy, such as `a.txt remote:var/files` or `remote:var/files/a.txt .`")]
    NoFiles,
    #[error("the log type {0:?} is not a name: give one such as app, access or error")]
    LogType(String),
}

/// How much the tool says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verbosity {
    Quiet,
    #[default]
    Normal,
    Verbose,
}

/// The ssh options of a session's argv ([`crate::access::Access::ssh_argv`] without a
/// command): everything before its `--` and destination, for tools that add the destination
/// themselves (`rsync -e`, `scp`).
pub fn ssh_options(ssh_argv: &[String], url: &SshUrl) -> Vec<String> {
    let dest = url.to_string();
    match ssh_argv {
        [options @ .., dd, d] if dd == "--" && *d == dest => options.to_vec(),
        other => other.to_vec(),
    }
}

/// One word for rsync's `-e` (its own splitting: spaces separate words, single quotes keep
/// spaces, a doubled single quote inside them is one).
fn rsync_word(word: &str) -> String {
    format!("'{}'", word.replace('\'', "''"))
}

/// The value of rsync's `-e`: `ssh` and the session's options.
pub fn rsync_shell(options: &[String]) -> String {
    std::iter::once("ssh".to_string())
        .chain(options.iter().map(|o| rsync_word(o)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A local path as an argument that rsync or scp cannot read as an option or as `host:path`:
/// `./` before a relative path that starts with `-` or has a `:` before any `/`.
pub fn local_arg(path: &Path) -> String {
    let text = path.to_string_lossy().into_owned();
    let first = text.split('/').next().unwrap_or_default();
    if !path.is_absolute() && (text.starts_with('-') || first.contains(':')) {
        format!("./{text}")
    } else {
        text
    }
}

/// Which way rsync copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sync<'a> {
    /// A local directory's contents into a mount.
    Up { local: &'a Path, mount: &'a str },
    /// A mount's contents into a local directory.
    Down { mount: &'a str, local: &'a Path },
}

/// What rsync is asked besides the copy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RsyncOptions {
    /// Delete files at the destination that the source does not have.
    pub delete: bool,
    /// Patterns not to exclude (placed before the excludes: rsync's first matching rule wins).
    pub include: Vec<String>,
    /// Patterns to leave out.
    pub exclude: Vec<String>,
    pub verbosity: Verbosity,
    /// Show the whole transfer's progress (bytes, rate), for a person at a terminal.
    pub progress: bool,
}

/// The `rsync` argv (without the program) for a sync through the session's ssh options.
pub fn rsync_args(
    ssh_options: &[String],
    url: &SshUrl,
    sync: &Sync<'_>,
    options: &RsyncOptions,
) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--archive".into(),
        "--compress".into(),
        "--human-readable".into(),
    ];
    match options.verbosity {
        Verbosity::Verbose => args.push("-vv".into()),
        Verbosity::Normal => args.push("-v".into()),
        Verbosity::Quiet => args.push("--quiet".into()),
    }
    if options.progress && options.verbosity != Verbosity::Quiet {
        args.push("--info=progress2".into());
    }
    if options.delete {
        args.push("--delete".into());
    }
    args.extend(options.include.iter().map(|p| format!("--include={p}")));
    args.extend(options.exclude.iter().map(|p| format!("--exclude={p}")));
    args.push("-e".into());
    args.push(rsync_shell(ssh_options));
    args.push("--".into());
    let remote = |mount: &str| format!("{url}:{}", crate::mounts::normalize_path(mount));
    match sync {
        Sync::Up { local, mount } => {
            // The trailing slash copies the directory's contents, not the directory.
            args.push(format!("{}/", local_arg(local).trim_end_matches('/')));
            args.push(remote(mount));
        }
        Sync::Down { mount, local } => {
            args.push(format!("{}/", remote(mount)));
            args.push(local_arg(local));
        }
    }
    args
}

/// The `scp` argv (without the program): the session's ssh options, `-r`, `-q`/`-v`, then the
/// files, where `remote:PATH` becomes the app's `user@host:PATH`. At least one must be remote.
pub fn scp_args(
    ssh_options: &[String],
    url: &SshUrl,
    files: &[String],
    recursive: bool,
    verbosity: Verbosity,
) -> Result<Vec<String>, TransferError> {
    if files.is_empty() {
        return Err(TransferError::NoFiles);
    }
    if !files.iter().any(|f| f.starts_with(REMOTE_PREFIX)) {
        return Err(TransferError::NoRemote);
    }
    let mut args = ssh_options.to_vec();
    if recursive {
        args.push("-r".into());
    }
    match verbosity {
        Verbosity::Verbose => args.push("-v".into()),
        Verbosity::Quiet => args.push("-q".into()),
        Verbosity::Normal => {}
    }
    args.push("--".into());
    for f in files {
        match f.strip_prefix(REMOTE_PREFIX) {
            Some(path) => args.push(format!("{url}:{path}")),
            None => args.push(local_arg(Path::new(f))),
        }
    }
    Ok(args)
}

/// A word for a POSIX shell: single-quoted unless it is plainly safe.
fn shell_word(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Where an app's logs are: `/var/log`, or on Dedicated Generation 2 hosts (an SSH address
/// with `ent-` after its start or a dot), the user's directory under `/var/log/platform`.
pub fn log_dir(url: &SshUrl) -> &'static str {
    let host = url.to_string();
    let dedicated = host.match_indices("ent-").any(|(i, _)| {
        (i == 0 || matches!(host.as_bytes()[i - 1], b'.' | b'/' | b'@'))
            && host[i + 4..]
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    if dedicated {
        "/var/log/platform/\"$USER\""
    } else {
        "/var/log"
    }
}

/// The log file for a type (`app`, `access`, `error`…; a `.log` ending is dropped), as the
/// remote shell reads it.
pub fn log_file(url: &SshUrl, log_type: &str) -> Result<String, TransferError> {
    let name = log_type.strip_suffix(".log").unwrap_or(log_type);
    if name.is_empty() || name.contains('/') || name.contains('\0') {
        return Err(TransferError::LogType(log_type.to_string()));
    }
    Ok(format!(
        "{}/{}",
        log_dir(url),
        shell_word(&format!("{name}.log"))
    ))
}

/// The remote command that reads a log: its last `lines` lines, then (with `follow`) what is
/// appended, until the connection ends.
pub fn log_command(file: &str, lines: u32, follow: bool) -> String {
    let mut command = format!("tail -n {lines} {file}");
    if follow {
        command.push_str(" -f");
    }
    command
}

/// The remote command that lists the log files there are (one per line), for a choice.
pub fn log_list_command(url: &SshUrl) -> String {
    format!("ls -1 {}/*.log", log_dir(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> SshUrl {
        SshUrl::parse(s).unwrap()
    }

    #[test]
    fn the_destination_is_taken_off_the_ssh_argv() {
        let u = url("ssh://p-main--app@ssh.eu-3.platform.sh");
        let argv: Vec<String> = [
            "-o",
            "CertificateFile=/c",
            "--",
            "p-main--app@ssh.eu-3.platform.sh",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(ssh_options(&argv, &u), ["-o", "CertificateFile=/c"]);
    }

    #[test]
    fn rsync_gets_the_session_ssh_includes_before_excludes_and_safe_paths() {
        let u = url("ssh://p-main--app@ssh.eu-3.platform.sh");
        let opts = vec!["-o".to_string(), "IdentityFile=/home/a b/it's".to_string()];
        let args = rsync_args(
            &opts,
            &u,
            &Sync::Up {
                local: Path::new("-dir:x"),
                mount: "/web/uploads/",
            },
            &RsyncOptions {
                delete: true,
                include: vec!["*.jpg".into()],
                exclude: vec!["*".into()],
                ..Default::default()
            },
        );
        assert_eq!(
            args,
            [
                "--archive",
                "--compress",
                "--human-readable",
                "-v",
                "--delete",
                "--include=*.jpg",
                "--exclude=*",
                "-e",
                "ssh '-o' 'IdentityFile=/home/a b/it''s'",
                "--",
                "./-dir:x/",
                "p-main--app@ssh.eu-3.platform.sh:web/uploads",
            ]
        );
        let down = rsync_args(
            &[],
            &u,
            &Sync::Down {
                mount: "var/cache",
                local: Path::new("/tmp/t"),
            },
            &RsyncOptions {
                progress: true,
                ..Default::default()
            },
        );
        assert_eq!(
            &down[down.len() - 2..],
            ["p-main--app@ssh.eu-3.platform.sh:var/cache/", "/tmp/t"]
        );
        assert!(down.contains(&"--info=progress2".to_string()));
    }

    #[test]
    fn scp_needs_a_remote_and_keeps_local_names_local() {
        let u = url("ssh://p-main--app@h.example");
        let files = ["a:b.txt".to_string(), "remote:var/files".to_string()];
        let args = scp_args(&[], &u, &files, true, Verbosity::Quiet).unwrap();
        assert_eq!(
            args,
            [
                "-r",
                "-q",
                "--",
                "./a:b.txt",
                "p-main--app@h.example:var/files"
            ]
        );
        assert_eq!(
            scp_args(&[], &u, &["a".into(), "b".into()], false, Verbosity::Normal),
            Err(TransferError::NoRemote)
        );
        assert_eq!(
            scp_args(&[], &u, &[], false, Verbosity::Normal),
            Err(TransferError::NoFiles)
        );
    }

    #[test]
    fn log_files_and_commands() {
        let u = url("ssh://p-main--app@ssh.eu-3.platform.sh");
        assert_eq!(log_file(&u, "access.log").unwrap(), "/var/log/access.log");
        assert_eq!(log_file(&u, "a b").unwrap(), "/var/log/'a b.log'");
        assert!(log_file(&u, "../../etc/passwd").is_err());
        assert!(log_file(&u, ".log").is_err());
        assert_eq!(
            log_command("/var/log/app.log", 5, true),
            "tail -n 5 /var/log/app.log -f"
        );
        let dedicated = url("ssh://1.ent-abc-main-xyz@ssh.eu-3.platform.sh");
        assert_eq!(
            log_file(&dedicated, "app").unwrap(),
            "/var/log/platform/\"$USER\"/app.log"
        );
        let not = url("ssh://p-parent-x@ssh.eu-3.platform.sh");
        assert_eq!(log_dir(&not), "/var/log");
    }
}
