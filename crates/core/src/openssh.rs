//! Wiring the session into the user's OpenSSH: a per-profile config file (a `Match exec` hook
//! that renews the certificate before each connection, the certificate and its key offered
//! first, the user's own default keys after them, known hosts, and for local platforms where
//! the gateway really listens), a known-hosts file with the platform's host keys, and, with the
//! user's consent, a marked block in `~/.ssh/config` that includes them. Edits of
//! `~/.ssh/config` happen under a lock, are atomic, keep a backup of the file as it was before
//! Tether's first edit, follow a symlinked config to its target, and never touch a line outside
//! the block.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::cert::CertFiles;
use crate::context::Paths;
use crate::private_files::{create_private_dir, write_atomic, FileLock, WriteError};
use crate::profile::{FieldError, Profile};

pub const BLOCK_BEGIN: &str = "# BEGIN: Tether certificate configuration";
pub const BLOCK_END: &str = "# END: Tether certificate configuration";

/// The lock taken, in the user's OpenSSH directory, around every read-modify-write of
/// `~/.ssh/config`, so that two Tether processes never lose each other's edit.
const EDIT_LOCK: &str = "config.tether-lock";

/// The key files OpenSSH tries when no `IdentityFile` is configured, in its order. Naming the
/// session's key with `IdentityFile` turns these defaults off, so the session config names them
/// too: a user whose own key is registered with the platform keeps getting in.
const DEFAULT_IDENTITIES: &[&str] = &[
    "id_rsa",
    "id_ecdsa",
    "id_ecdsa_sk",
    "id_ed25519",
    "id_ed25519_sk",
    "id_xmss",
    "id_dsa",
];

#[derive(Debug, thiserror::Error)]
pub enum OpensshError {
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path} is not UTF-8 text; Tether will not edit it. Add Tether's block to it by hand")]
    NotText { path: PathBuf },
    #[error("{path} has a {found:?} line without its partner; fix or delete the Tether block by hand, then run this again")]
    BrokenBlock { path: PathBuf, found: String },
    #[error("{path} is not a regular file; Tether will not edit it")]
    NotAFile { path: PathBuf },
    #[error("{0}; Tether will not write it into an SSH configuration")]
    Profile(#[from] FieldError),
    #[error("the path {0:?} has something OpenSSH would read as syntax (a quote, a backslash, \"${{\", a control character, or a glob character in the directory Tether includes); Tether will not write it into an SSH configuration: use a data directory and home without them")]
    UnsafePath(PathBuf),
}

/// Where the session's OpenSSH files are.
#[derive(Debug, Clone)]
pub struct SshFiles {
    /// The directory the marked block includes (`Include <dir>/*.config`).
    pub include_dir: PathBuf,
    pub config: PathBuf,
    pub known_hosts: PathBuf,
    /// The user's own known-hosts files (`~/.ssh/known_hosts`, `known_hosts2`), read before
    /// Tether's.
    pub user_known_hosts: Vec<PathBuf>,
    /// The user's own keys under OpenSSH's default names (`~/.ssh/id_ed25519`…), offered after
    /// the certificate.
    pub default_identities: Vec<PathBuf>,
}

impl SshFiles {
    pub fn new(paths: &Paths, profile: &Profile) -> SshFiles {
        let include_dir = paths.data_dir.join("ssh");
        SshFiles {
            config: include_dir.join(format!("{}.config", profile.name)),
            known_hosts: include_dir.join(format!("{}.known_hosts", profile.name)),
            user_known_hosts: crate::ssh::trust::user_known_hosts_files(paths),
            include_dir,
            default_identities: DEFAULT_IDENTITIES
                .iter()
                .map(|n| paths.ssh_dir.join(n))
                .collect(),
        }
    }
}

/// The command the session config runs before each connection to the platform's hosts, so
/// that plain `ssh`, `scp`, `rsync` and `git` renew the certificate with no agent running:
/// `<program> --profile <profile_arg> ssh-cert:load --refresh-only --quiet`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshHook {
    /// The `tether` executable.
    pub program: PathBuf,
    /// What `--profile` selects this profile with (a built-in name or a profile file's path).
    pub profile_arg: String,
}

/// What no value Tether writes into an SSH config line may hold, whatever the line: what
/// would end or escape OpenSSH's quoting (double and single quotes, backslashes; OpenSSH 8.7+
/// reads all three) or the hook's shell quoting, `${`, which OpenSSH expands as an environment
/// variable with no way to escape it, and anything that is no printable text. `%` is allowed:
/// it is doubled where OpenSSH expands tokens ([`config_path`]).
fn unquotable(s: &str) -> bool {
    s.contains("${")
        || s.chars()
            .any(|c| matches!(c, '\'' | '"' | '\\') || c.is_control())
}

/// A path checked for every SSH config line: UTF-8 and nothing [`unquotable`]. The one check
/// every writer (session config, `~/.ssh/config` block, `ssh -o` options, hook) makes.
pub fn check_path(p: &Path) -> Result<&str, OpensshError> {
    p.to_str()
        .filter(|s| !unquotable(s))
        .ok_or_else(|| OpensshError::UnsafePath(p.to_path_buf()))
}

/// How OpenSSH reads a directive's argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directive {
    /// `%` tokens are expanded (`CertificateFile`, `IdentityFile`, `UserKnownHostsFile`):
    /// a literal `%` is written `%%`.
    Tokens,
    /// Neither tokens nor variables (`Include`, which globs instead): written as it is.
    Literal,
}

/// A path (checked with [`check_path`]) as one ssh_config argument: `%` doubled where the
/// directive expands tokens, in double quotes when it has whitespace or a `#` (which would
/// split it or start a comment). Used by every line and `-o` option that names a path.
pub fn config_path(p: &Path, directive: Directive) -> String {
    let s = p.display().to_string();
    let s = match directive {
        Directive::Tokens => s.replace('%', "%%"),
        Directive::Literal => s,
    };
    if s.contains(|c: char| c.is_whitespace() || c == '#') {
        format!("\"{s}\"")
    } else {
        s
    }
}

impl RefreshHook {
    /// The `exec` command, quoted for the shell OpenSSH runs it with and with `%` doubled
    /// (OpenSSH expands `%` tokens in it); `None`, with a warning, when a value cannot be
    /// quoted safely: the session then works until the certificate expires, as without a hook.
    fn command(&self) -> Option<String> {
        let Some(program) = self.program.to_str() else {
            tracing::warn!(program = ?self.program, "the tether executable's path is not UTF-8: plain ssh will not renew the certificate");
            return None;
        };
        for (what, value) in [
            ("executable path", program),
            ("profile", &*self.profile_arg),
        ] {
            if unquotable(value) {
                tracing::warn!(%what, value = ?value, "a quote, backslash, \"${{\" or control character cannot be written into the SSH config's refresh command: plain ssh will not renew the certificate");
                return None;
            }
        }
        // `test -x` first: with the program gone (the package removed, the binary moved) the
        // shell would print "not found" before every connection; this way the line is silently
        // no match, and ssh goes on as it does whatever the hook answers. `exec` spares the
        // shell's fork (dash forks for the last command of a list otherwise). Both read the
        // same in sh, bash, zsh, fish and csh, whichever `$SHELL` OpenSSH runs it with.
        Some(
            format!(
                "test -x '{program}' && exec '{program}' --profile '{}' ssh-cert:load --refresh-only --quiet",
                self.profile_arg
            )
            .replace('%', "%%"),
        )
    }

    /// The config's `Match … exec` line for this hook, as [`session_config`] writes it.
    fn match_line(&self, profile: &Profile) -> Option<String> {
        let command = self.command()?;
        Some(format!(
            "Match host \"{}\" exec \"{command}\"",
            profile.ssh_host_patterns.join(",")
        ))
    }
}

/// Rewrites the session's SSH config when its `Match exec` line is not the one `hook` gives:
/// it runs another `tether` (moved, installed elsewhere, removed) or is an older form of the
/// line. Every shell calls this at start with its own executable, so that the hook follows the
/// binary people use. Only a profile with a session config (signed in) is touched, and an
/// unquotable path leaves the file as it is. Best effort: a failure is logged and the command goes on, as with no
/// hook (the certificate is then renewed by the next command, not by plain ssh).
pub fn repoint_hook(paths: &Paths, profile: &Profile, hook: Option<&RefreshHook>) {
    let Some(hook) = hook else { return };
    let files = SshFiles::new(paths, profile);
    let Ok(text) = std::fs::read_to_string(&files.config) else {
        return;
    };
    let Some(wanted) = hook.match_line(profile) else {
        return;
    };
    if text.lines().any(|l| l == wanted) {
        return;
    }
    let cert = CertFiles::new(paths.session_dir(profile));
    match write_session_files(profile, &cert, &files, Some(hook)) {
        Ok(()) => {
            tracing::info!(program = %hook.program.display(), config = %files.config.display(), "the session's SSH config ran another tether before each connection: it now runs this one")
        }
        Err(e) => {
            tracing::warn!(error = %e, config = %files.config.display(), "cannot point the session's SSH config at this tether")
        }
    }
}

/// A file path for a directive that expands tokens.
fn ssh_path(p: &Path) -> String {
    config_path(p, Directive::Tokens)
}

/// The session's config file for a profile. With a hook, a `Match host … exec` line comes
/// first, used only to run the renewal (what it returns does not matter: the `Host` line after
/// it starts the wiring whatever the command answered). The certificate comes before any other
/// key, since OpenSSH offers `CertificateFile` certificates first; the user's default keys
/// follow, so a user whose own key is registered still gets in without a valid certificate.
pub fn session_config(
    profile: &Profile,
    cert: &CertFiles,
    files: &SshFiles,
    hook: Option<&RefreshHook>,
) -> String {
    let title: String = profile
        .title
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut out = format!(
        "# Written by Tether for {title}: the SSH certificate of your session.\n\
         # Tether rewrites this file; changes here are lost.\n"
    );
    if let Some(line) = hook.and_then(|h| h.match_line(profile)) {
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(&format!(
        "Host {hosts}\n  CertificateFile {cert}\n  IdentityFile {key}\n",
        hosts = profile.ssh_host_patterns.join(" "),
        cert = ssh_path(&cert.certificate()),
        key = ssh_path(&cert.key()),
    ));
    for identity in &files.default_identities {
        out.push_str(&format!("  IdentityFile {}\n", ssh_path(identity)));
    }
    if let Some(ssh) = &profile.ssh {
        out.push_str(&format!(
            "  HostName {}\n  Port {}\n",
            ssh.hostname, ssh.port
        ));
    }
    let known: Vec<String> = known_hosts_files(files)
        .iter()
        .map(|p| ssh_path(p))
        .collect();
    out.push_str(&format!(
        "  UserKnownHostsFile {}\n  StrictHostKeyChecking yes\n",
        known.join(" ")
    ));
    out
}

/// The known-hosts files OpenSSH reads for the platform's hosts: the user's own first (so
/// their additions and `@revoked` lines count), then Tether's, with the keys the profile
/// bundles, as the official client lists its own. Named by absolute path, since OpenSSH's `~`
/// is the passwd home and may not be the one Tether was given. Strict: a key that none of them
/// has is refused, as on the russh paths ([`crate::ssh::trust`]).
fn known_hosts_files(files: &SshFiles) -> Vec<PathBuf> {
    let mut all = files.user_known_hosts.clone();
    all.push(files.known_hosts.clone());
    all
}

/// The `-o` options that give a `tether ssh` run the session's host-key policy, whether or not
/// `~/.ssh/config` includes Tether's block.
pub fn host_key_options(files: &SshFiles) -> Vec<String> {
    let known: Vec<String> = known_hosts_files(files)
        .iter()
        .map(|p| ssh_path(p))
        .collect();
    vec![
        "-o".into(),
        format!("UserKnownHostsFile={}", known.join(" ")),
        "-o".into(),
        "StrictHostKeyChecking=yes".into(),
    ]
}

/// The session's known-hosts file: the bundled gateway keys and a local gateway's.
pub fn known_hosts(profile: &Profile) -> String {
    crate::ssh::trust::session_known_hosts(profile)
}

/// Writes the session's config and known-hosts files, once every value that goes into them
/// is known to be safe there.
pub fn write_session_files(
    profile: &Profile,
    cert: &CertFiles,
    files: &SshFiles,
    hook: Option<&RefreshHook>,
) -> Result<(), OpensshError> {
    profile.validate()?;
    let written = [cert.certificate(), cert.key(), files.known_hosts.clone()];
    for path in written
        .iter()
        .chain(&files.default_identities)
        .chain(&files.user_known_hosts)
    {
        check_path(path)?;
    }
    create_private_dir(&files.include_dir)?;
    write_atomic(
        &files.config,
        session_config(profile, cert, files, hook).as_bytes(),
        0o600,
    )?;
    write_atomic(&files.known_hosts, known_hosts(profile).as_bytes(), 0o600)?;
    Ok(())
}

/// Removes a profile's session files.
pub fn remove_session_files(files: &SshFiles) {
    let _ = std::fs::remove_file(&files.config);
    let _ = std::fs::remove_file(&files.known_hosts);
}

/// An `Include` line for `path`, quoted as the block's own.
pub fn include_line(path: &Path) -> String {
    format!("Include {}", config_path(path, Directive::Literal))
}

/// The home directory OpenSSH expands `~` to, and so where it reads `~/.ssh/config`: the
/// passwd entry's of the user running it (`getpwuid(getuid())` in `ssh.c`), not `$HOME`.
#[cfg(unix)]
#[allow(unsafe_code)]
pub fn passwd_home() -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let uid = rustix::process::getuid().as_raw();
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: getpwuid_r writes only into `entry` and `buf` (whose length it is given), and
    // `found` points at `entry` or is null; the strings read below live in `buf`.
    unsafe {
        let mut entry: libc::passwd = std::mem::zeroed();
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(
            uid,
            &mut entry,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut found,
        );
        if rc != 0 || found.is_null() || entry.pw_dir.is_null() {
            return None;
        }
        let dir = std::ffi::CStr::from_ptr(entry.pw_dir).to_bytes();
        (!dir.is_empty()).then(|| PathBuf::from(std::ffi::OsStr::from_bytes(dir)))
    }
}

/// Elsewhere (Windows), OpenSSH reads the profile directory's `.ssh\config`.
#[cfg(not(unix))]
pub fn passwd_home() -> Option<PathBuf> {
    std::env::var_os("USERPROFILE").map(PathBuf::from)
}

/// The marked block for `~/.ssh/config`.
pub fn block(patterns: &BTreeSet<String>, files: &SshFiles) -> String {
    let hosts: Vec<&str> = patterns.iter().map(String::as_str).collect();
    format!(
        "{BLOCK_BEGIN}\nHost {}\n  {}\nHost *\n{BLOCK_END}\n",
        hosts.join(" "),
        include_line(&files.include_dir.join("*.config"))
    )
}

/// The directory the block includes, checked as every path is, and free of glob characters
/// (`Include` globs its argument, so `[` in a home directory would change what it reads).
fn check_include_dir(files: &SshFiles) -> Result<(), OpensshError> {
    let dir = check_path(&files.include_dir)?;
    if dir.contains(['*', '?', '[', ']']) {
        return Err(OpensshError::UnsafePath(files.include_dir.clone()));
    }
    Ok(())
}

/// What the user's config looks like around the block.
struct Parsed {
    text: String,
    newline: &'static str,
    /// Byte range of the block's lines (including their line endings), if present.
    block: Option<(usize, usize)>,
    patterns: BTreeSet<String>,
}

fn parse(path: &Path, text: String) -> Result<Parsed, OpensshError> {
    let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut begin = None;
    let mut range = None;
    let mut patterns = BTreeSet::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed == BLOCK_BEGIN {
            if begin.is_some() || range.is_some() {
                return Err(OpensshError::BrokenBlock {
                    path: path.to_path_buf(),
                    found: BLOCK_BEGIN.into(),
                });
            }
            begin = Some(offset);
        } else if trimmed == BLOCK_END {
            let Some(b) = begin.take() else {
                return Err(OpensshError::BrokenBlock {
                    path: path.to_path_buf(),
                    found: BLOCK_END.into(),
                });
            };
            range = Some((b, offset + line.len()));
        } else if begin.is_some() {
            if let Some(hosts) = trimmed.strip_prefix("Host ") {
                patterns.extend(
                    hosts
                        .split_whitespace()
                        .filter(|h| *h != "*")
                        .map(str::to_string),
                );
            }
        }
        offset += line.len();
    }
    if begin.is_some() {
        return Err(OpensshError::BrokenBlock {
            path: path.to_path_buf(),
            found: BLOCK_BEGIN.into(),
        });
    }
    Ok(Parsed {
        text,
        newline,
        block: range,
        patterns,
    })
}

/// The file to edit: `~/.ssh/config`, or what it links to.
fn target(config: &Path) -> Result<PathBuf, OpensshError> {
    match std::fs::symlink_metadata(config) {
        Ok(m) if m.file_type().is_symlink() => {
            let resolved = std::fs::canonicalize(config).map_err(|e| OpensshError::Read {
                path: config.to_path_buf(),
                message: format!("it is a symbolic link that cannot be followed ({e})"),
            })?;
            if !resolved.is_file() {
                return Err(OpensshError::NotAFile { path: resolved });
            }
            Ok(resolved)
        }
        Ok(m) if !m.is_file() => Err(OpensshError::NotAFile {
            path: config.to_path_buf(),
        }),
        _ => Ok(config.to_path_buf()),
    }
}

fn read(path: &Path) -> Result<Option<String>, OpensshError> {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| OpensshError::NotText {
                path: path.to_path_buf(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(OpensshError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        }),
    }
}

fn file_mode(path: &Path) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path) {
            return m.permissions().mode() & 0o777;
        }
    }
    let _ = path;
    0o600
}

/// What an edit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    Unchanged,
    Written {
        path: PathBuf,
        backup: Option<PathBuf>,
    },
}

/// The backup of `~/.ssh/config` (or of what it links to), next to it.
fn backup_path(path: &Path) -> PathBuf {
    path.with_file_name(format!(
        "{}.tether-backup",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("config")
    ))
}

/// Writes `after` over `before`. The backup keeps the file as it was before Tether's first
/// edit: it is written only when none exists yet and the file has no Tether block, so later
/// edits never replace the user's own version with one of Tether's.
fn commit(path: &Path, before: Option<&Parsed>, after: &str) -> Result<Edit, OpensshError> {
    if before.map(|p| p.text.as_str()) == Some(after) {
        return Ok(Edit::Unchanged);
    }
    let mode = if before.is_some() {
        file_mode(path)
    } else {
        0o600
    };
    let backup = backup_path(path);
    let exists = |p: &Path| std::fs::symlink_metadata(p).is_ok();
    if let Some(old) = before.filter(|b| b.block.is_none()) {
        if !exists(&backup) {
            write_atomic(&backup, old.text.as_bytes(), 0o600)?;
        }
    }
    let backup = exists(&backup).then_some(backup);
    write_atomic(path, after.as_bytes(), mode)?;
    Ok(Edit::Written {
        path: path.to_path_buf(),
        backup,
    })
}

/// Holds the edit lock of `~/.ssh/config` (in the user's OpenSSH directory, which exists).
fn edit_lock(paths: &Paths) -> Result<FileLock, OpensshError> {
    Ok(FileLock::acquire(&paths.ssh_dir.join(EDIT_LOCK))?)
}

/// Adds or updates the marked block at the top of `~/.ssh/config`, covering `patterns` and
/// the patterns the block already covered.
pub fn install_block(
    paths: &Paths,
    files: &SshFiles,
    patterns: &[String],
) -> Result<Edit, OpensshError> {
    check_include_dir(files)?;
    if !paths.ssh_dir.exists() {
        create_private_dir(&paths.ssh_dir)?;
    }
    let _lock = edit_lock(paths)?;
    let path = target(&paths.ssh_config())?;
    let before = read(&path)?;
    let existed = before.is_some();
    let parsed = parse(&path, before.unwrap_or_default())?;
    let mut all = parsed.patterns.clone();
    all.extend(patterns.iter().cloned());
    let new_block = block(&all, files).replace('\n', parsed.newline);
    let after = match parsed.block {
        Some((start, end)) => format!(
            "{}{}{}",
            &parsed.text[..start],
            new_block,
            &parsed.text[end..]
        ),
        None if parsed.text.is_empty() => new_block,
        None => format!("{new_block}{}{}", parsed.newline, parsed.text),
    };
    commit(&path, existed.then_some(&parsed), &after)
}

/// Removes the marked block, leaving every other line as it was.
pub fn remove_block(paths: &Paths) -> Result<Edit, OpensshError> {
    if !paths.ssh_dir.is_dir() {
        return Ok(Edit::Unchanged);
    }
    let _lock = edit_lock(paths)?;
    let path = target(&paths.ssh_config())?;
    let Some(before) = read(&path)? else {
        return Ok(Edit::Unchanged);
    };
    let parsed = parse(&path, before)?;
    let Some((start, end)) = parsed.block else {
        return Ok(Edit::Unchanged);
    };
    let mut rest = &parsed.text[end..];
    // Drop the blank line install_block put after the block.
    if start == 0 {
        rest = rest.strip_prefix(parsed.newline).unwrap_or(rest);
    }
    let after = format!("{}{}", &parsed.text[..start], rest);
    commit(&path, Some(&parsed), &after)
}

/// Whether `~/.ssh/config` has the block.
pub fn block_installed(paths: &Paths) -> bool {
    target(&paths.ssh_config())
        .ok()
        .and_then(|p| read(&p).ok().flatten())
        .is_some_and(|t| t.lines().any(|l| l.trim() == BLOCK_BEGIN))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> (tempfile::TempDir, Paths, SshFiles) {
        let home = tempfile::tempdir().unwrap();
        let paths = Paths::under_home(home.path(), None);
        let files = SshFiles::new(&paths, &Profile::platformsh());
        (home, paths, files)
    }

    fn patterns() -> Vec<String> {
        vec!["*.platform.sh".to_string()]
    }

    #[test]
    fn a_missing_ssh_directory_and_config_are_created_private() {
        let (_home, paths, files) = fixture();
        let edit = install_block(&paths, &files, &patterns()).unwrap();
        assert!(matches!(edit, Edit::Written { backup: None, .. }));
        let text = std::fs::read_to_string(paths.ssh_config()).unwrap();
        assert!(text.starts_with(BLOCK_BEGIN));
        assert!(text.contains("Host *.platform.sh\n  Include "));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&paths.ssh_dir)
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o777,
                0o700
            );
            assert_eq!(
                std::fs::metadata(paths.ssh_config())
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o777,
                0o600
            );
        }
        // Installing again changes nothing.
        assert_eq!(
            install_block(&paths, &files, &patterns()).unwrap(),
            Edit::Unchanged
        );
    }

    #[test]
    fn lines_outside_the_block_are_kept_byte_for_byte_and_removal_restores_them() {
        let (_home, paths, files) = fixture();
        std::fs::create_dir_all(&paths.ssh_dir).unwrap();
        let original = "Host github.com\r\n\tUser git\r\n# a comment with ünïcode\r\nHost *\r\n  ServerAliveInterval 30";
        std::fs::write(paths.ssh_config(), original).unwrap();
        let edit = install_block(&paths, &files, &patterns()).unwrap();
        let Edit::Written {
            backup: Some(backup),
            ..
        } = edit
        else {
            panic!("{edit:?}")
        };
        assert_eq!(std::fs::read_to_string(backup).unwrap(), original);
        let text = std::fs::read_to_string(paths.ssh_config()).unwrap();
        assert!(text.ends_with(original), "{text:?}");
        assert!(
            text.contains(&format!("{BLOCK_END}\r\n")),
            "keeps the file's CRLF: {text:?}"
        );
        // A second profile widens the block instead of adding another.
        install_block(&paths, &files, &["*.upsun.com".to_string()]).unwrap();
        let text = std::fs::read_to_string(paths.ssh_config()).unwrap();
        assert_eq!(text.matches(BLOCK_BEGIN).count(), 1);
        assert!(text.contains("Host *.platform.sh *.upsun.com"), "{text}");
        remove_block(&paths).unwrap();
        assert_eq!(
            std::fs::read_to_string(paths.ssh_config()).unwrap(),
            original
        );
    }

    #[test]
    fn a_half_block_is_refused_and_the_file_left_alone() {
        let (_home, paths, files) = fixture();
        std::fs::create_dir_all(&paths.ssh_dir).unwrap();
        let broken = format!("Host a\n{BLOCK_BEGIN}\nHost *.platform.sh\n");
        std::fs::write(paths.ssh_config(), &broken).unwrap();
        let err = install_block(&paths, &files, &patterns())
            .unwrap_err()
            .to_string();
        assert!(err.contains("without its partner"), "{err}");
        assert_eq!(std::fs::read_to_string(paths.ssh_config()).unwrap(), broken);
        assert!(remove_block(&paths).is_err());
    }

    #[test]
    fn binary_content_is_not_edited() {
        let (_home, paths, files) = fixture();
        std::fs::create_dir_all(&paths.ssh_dir).unwrap();
        std::fs::write(paths.ssh_config(), b"Host a\n\xff\xfe\n").unwrap();
        let err = install_block(&paths, &files, &patterns())
            .unwrap_err()
            .to_string();
        assert!(err.contains("not UTF-8"), "{err}");
        assert_eq!(
            std::fs::read(paths.ssh_config()).unwrap(),
            b"Host a\n\xff\xfe\n"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_config_is_edited_at_its_target_and_stays_a_link() {
        let (home, paths, files) = fixture();
        std::fs::create_dir_all(&paths.ssh_dir).unwrap();
        let dotfiles = home.path().join("dotfiles");
        std::fs::create_dir_all(&dotfiles).unwrap();
        std::fs::write(dotfiles.join("ssh_config"), "Host x\n  User y\n").unwrap();
        std::os::unix::fs::symlink(dotfiles.join("ssh_config"), paths.ssh_config()).unwrap();
        install_block(&paths, &files, &patterns()).unwrap();
        assert!(std::fs::symlink_metadata(paths.ssh_config())
            .unwrap()
            .file_type()
            .is_symlink());
        let text = std::fs::read_to_string(dotfiles.join("ssh_config")).unwrap();
        assert!(
            text.starts_with(BLOCK_BEGIN) && text.ends_with("Host x\n  User y\n"),
            "{text}"
        );
    }

    #[test]
    fn the_session_config_wires_certificate_identity_and_local_gateways() {
        let (_home, paths, _) = fixture();
        let mut p = Profile::platformsh();
        p.ssh = Some(crate::profile::SshEndpoint {
            hostname: "127.0.0.1".into(),
            port: 2222,
            host_keys: vec!["ssh-ed25519 AAAAkey".into()],
        });
        let files = SshFiles::new(&paths, &p);
        let cert = CertFiles::new(paths.session_dir(&p));
        let text = session_config(&p, &cert, &files, None);
        assert!(text.contains("Host *.platform.sh\n"));
        assert!(text.contains("CertificateFile ") && text.contains("id_ed25519-cert.pub"));
        assert!(text.contains("HostName 127.0.0.1\n  Port 2222\n"));
        let known = format!(
            "  UserKnownHostsFile {} {} {}\n  StrictHostKeyChecking yes\n",
            paths.ssh_dir.join("known_hosts").display(),
            paths.ssh_dir.join("known_hosts2").display(),
            files.known_hosts.display()
        );
        assert!(text.contains(&known), "{text}");
        let bundled = known_hosts(&p);
        assert!(
            bundled.starts_with("git.au-2.platform.sh ssh-rsa "),
            "{bundled}"
        );
        assert!(bundled.ends_with("*.platform.sh,[127.0.0.1]:2222 ssh-ed25519 AAAAkey\n"));
        assert_eq!(
            bundled.lines().count(),
            p.gateway_host_keys.len() + 1,
            "{bundled}"
        );
    }

    #[test]
    fn ssh_reads_the_users_known_hosts_then_the_bundled_keys_and_refuses_others() {
        let (_home, paths, _) = fixture();
        let p = Profile::upsun();
        let files = SshFiles::new(&paths, &p);
        let cert = CertFiles::new(paths.session_dir(&p));
        write_session_files(&p, &cert, &files, None).unwrap();
        let g = ssh_g(&files.config, "ssh.eu-5.platform.sh");
        let wanted = format!(
            "userknownhostsfile {} {} {}",
            paths.ssh_dir.join("known_hosts").display(),
            paths.ssh_dir.join("known_hosts2").display(),
            files.known_hosts.display()
        );
        assert!(g.lines().any(|l| l == wanted), "{g}");
        assert!(g.lines().any(|l| l == "stricthostkeychecking true"), "{g}");
        // ssh-keygen finds a bundled gateway's key in the written file.
        let out = std::process::Command::new("ssh-keygen")
            .arg("-F")
            .arg("ssh.eu-5.platform.sh")
            .arg("-f")
            .arg(&files.known_hosts)
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("ssh.eu-5.platform.sh ssh-rsa "),
            "{out:?}"
        );
        // Upsun's gateways are *.platform.sh too.
        let g = ssh_g(&files.config, "ssh.us-3.platform.sh");
        assert!(g.contains("certificatefile"), "{g}");
    }

    #[test]
    fn the_certificate_comes_first_and_the_users_default_keys_follow_without_identities_only() {
        let (_home, paths, files) = fixture();
        let p = Profile::platformsh();
        let cert = CertFiles::new(paths.session_dir(&p));
        let text = session_config(&p, &cert, &files, None);
        assert!(!text.contains("IdentitiesOnly"), "{text}");
        let identities: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("IdentityFile "))
            .collect();
        assert_eq!(identities[0], cert.key().display().to_string());
        let own = paths.ssh_dir.join("id_ed25519").display().to_string();
        assert!(identities[1..].contains(&own.as_str()), "{text}");
        assert!(
            text.find("CertificateFile").unwrap() < text.find("IdentityFile").unwrap(),
            "{text}"
        );
    }

    fn hook(program: &str, profile_arg: &str) -> RefreshHook {
        RefreshHook {
            program: PathBuf::from(program),
            profile_arg: profile_arg.to_string(),
        }
    }

    #[test]
    fn the_refresh_hook_comes_before_the_host_block_quoted_with_percent_doubled() {
        let (_home, paths, files) = fixture();
        let mut p = Profile::platformsh();
        p.ssh_host_patterns = vec!["*.platform.sh".into(), "*.pf.test".into()];
        let cert = CertFiles::new(paths.session_dir(&p));
        let h = hook("/opt/my tether/bin/tether", "/home/u/100% sim.toml");
        let text = session_config(&p, &cert, &files, Some(&h));
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with('#') && lines[1].starts_with('#'),
            "{text}"
        );
        assert_eq!(
            lines[2],
            "Match host \"*.platform.sh,*.pf.test\" exec \"test -x '/opt/my tether/bin/tether' && exec '/opt/my tether/bin/tether' --profile '/home/u/100%% sim.toml' ssh-cert:load --refresh-only --quiet\""
        );
        assert_eq!(lines[3], "Host *.platform.sh *.pf.test");
    }

    #[test]
    fn a_hook_value_that_cannot_be_quoted_writes_no_hook_at_all() {
        let (_home, paths, files) = fixture();
        let p = Profile::platformsh();
        let cert = CertFiles::new(paths.session_dir(&p));
        for h in [
            hook("/opt/it's/tether", "platformsh"),
            hook("/opt/tether", "x\" exec \"touch /tmp/pwned"),
            hook("/opt/tether", "a\nProxyCommand x"),
            hook("/opt/tether", "a\\'b"),
            hook("/opt/te\u{1b}ther", "platformsh"),
        ] {
            let text = session_config(&p, &cert, &files, Some(&h));
            assert!(!text.contains("Match"), "{h:?}: {text}");
            assert!(!text.contains("ProxyCommand"), "{h:?}: {text}");
            assert!(
                text.contains("Host *.platform.sh\n  CertificateFile "),
                "{text}"
            );
        }
    }

    #[test]
    fn an_invalid_profile_writes_no_session_files() {
        let (_home, paths, _) = fixture();
        let mut p = Profile::platformsh();
        p.title = "Evil\nHost *\n  ProxyCommand touch /tmp/pwned".into();
        let files = SshFiles::new(&paths, &p);
        let cert = CertFiles::new(paths.session_dir(&p));
        let err = write_session_files(&p, &cert, &files, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("the field title "), "{err}");
        assert!(!files.config.exists());
        // Even unchecked, the title cannot leave its comment line.
        let text = session_config(&p, &cert, &files, None);
        assert!(
            text.lines().all(|l| !l.starts_with("  ProxyCommand")),
            "{text}"
        );
    }

    /// Runs the real `ssh -G` (which evaluates the config, `Match exec` included) for `host`.
    fn ssh_g(config: &Path, host: &str) -> String {
        let out = std::process::Command::new("ssh")
            .arg("-G")
            .arg("-F")
            .arg(config)
            .arg(host)
            .env_remove("SSH_AUTH_SOCK")
            .output()
            .expect("OpenSSH's ssh is installed (make test installs it)");
        assert!(
            out.status.success(),
            "ssh -G {host}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[cfg(unix)]
    #[test]
    fn openssh_parses_the_session_config_runs_the_hook_and_applies_the_host_block() {
        use std::os::unix::fs::PermissionsExt;
        let (home, paths, _) = fixture();
        let mut p = Profile::platformsh();
        p.ssh_host_patterns = vec!["*.platform.sh".into(), "*.pf.test".into()];
        p.ssh = Some(crate::profile::SshEndpoint {
            hostname: "127.0.0.1".into(),
            port: 2222,
            host_keys: vec![
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
                    .into(),
            ],
        });
        let files = SshFiles::new(&paths, &p);
        let cert = CertFiles::new(paths.session_dir(&p));
        // A stand-in for tether that records how it was called, then fails: the Host block
        // must apply whatever the hook answers.
        let bin = home.path().join("bin dir");
        std::fs::create_dir_all(&bin).unwrap();
        let program = bin.join("tether");
        let record = home.path().join("calls");
        std::fs::write(
            &program,
            format!(
                "#!/bin/sh\nprintf '%s|' \"$@\" >> '{}'\necho >> '{}'\nexit 1\n",
                record.display(),
                record.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        let h = RefreshHook {
            program,
            profile_arg: "50%off $HOME `id`".into(),
        };
        write_session_files(&p, &cert, &files, Some(&h)).unwrap();

        let g = ssh_g(&files.config, "app.pf.test");
        assert!(
            g.lines()
                .any(|l| l == format!("certificatefile {}", cert.certificate().display())),
            "{g}"
        );
        let first_identity = g.lines().find(|l| l.starts_with("identityfile ")).unwrap();
        assert_eq!(
            first_identity,
            format!("identityfile {}", cert.key().display())
        );
        assert!(g.lines().any(|l| l == "hostname 127.0.0.1"), "{g}");
        assert!(g.lines().any(|l| l == "port 2222"), "{g}");
        let calls = std::fs::read_to_string(&record).unwrap();
        assert_eq!(
            calls.lines().next(),
            Some("--profile|50%off $HOME `id`|ssh-cert:load|--refresh-only|--quiet|"),
            "the hook ran with its arguments intact: {calls}"
        );

        // Other hosts get neither the hook nor the certificate.
        std::fs::remove_file(&record).unwrap();
        let g = ssh_g(&files.config, "github.com");
        assert!(!g.contains("certificatefile"), "{g}");
        assert!(!record.exists(), "the hook ran for another host");
    }

    /// `ssh -G` for `host` through `config` with OpenSSH running `Match exec` commands in
    /// `shell`: its exit status, stdout and stderr.
    fn ssh_g_with_shell(config: &Path, host: &str, shell: &str) -> (bool, String, String) {
        let out = std::process::Command::new("ssh")
            .arg("-G")
            .arg("-F")
            .arg(config)
            .arg(host)
            .env("SHELL", shell)
            .env_remove("SSH_AUTH_SOCK")
            .output()
            .expect("OpenSSH's ssh is installed (make test installs it)");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    #[cfg(unix)]
    #[test]
    fn a_removed_tether_leaves_plain_ssh_working_and_silent() {
        let (home, paths, files) = fixture();
        let p = Profile::platformsh();
        let cert = CertFiles::new(paths.session_dir(&p));
        // The package was removed: the program the hook names is gone.
        let h = hook(
            &home.path().join("gone/tether").display().to_string(),
            "platformsh",
        );
        write_session_files(&p, &cert, &files, Some(&h)).unwrap();
        for shell in ["/bin/sh", "/bin/bash"] {
            let (ok, g, stderr) = ssh_g_with_shell(&files.config, "ssh.eu-3.platform.sh", shell);
            assert!(ok, "{shell}: {stderr}");
            // OpenSSH 9.2's `-G` says this about its own stdin whatever the config holds.
            let said: Vec<&str> = stderr
                .lines()
                .filter(|l| !l.starts_with("Pseudo-terminal will not be allocated"))
                .collect();
            assert!(
                said.is_empty(),
                "{shell}: ssh printed {said:?} for the missing hook"
            );
            assert!(g.contains("certificatefile"), "{shell}: {g}");
        }
    }

    #[test]
    fn a_session_config_running_another_tether_is_pointed_at_this_one() {
        let (home, paths, files) = fixture();
        let p = Profile::platformsh();
        let cert = CertFiles::new(paths.session_dir(&p));
        let here = hook("/usr/bin/tether", "platformsh");
        // Signed out: no session config, none is made.
        repoint_hook(&paths, &p, Some(&here));
        assert!(!files.config.exists());

        // Written by a tether since moved away.
        let moved = hook(
            &home.path().join("old/tether").display().to_string(),
            "platformsh",
        );
        write_session_files(&p, &cert, &files, Some(&moved)).unwrap();
        repoint_hook(&paths, &p, Some(&here));
        assert_eq!(
            std::fs::read_to_string(&files.config).unwrap(),
            session_config(&p, &cert, &files, Some(&here))
        );

        // The line already runs this one: the file is left alone.
        let before = std::fs::metadata(&files.config)
            .unwrap()
            .modified()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        repoint_hook(&paths, &p, Some(&here));
        assert_eq!(
            std::fs::metadata(&files.config)
                .unwrap()
                .modified()
                .unwrap(),
            before
        );

        // An older form of the line (before `test -x`) is rewritten too.
        let old = session_config(&p, &cert, &files, Some(&here)).replace(
            "exec \"test -x '/usr/bin/tether' && exec '/usr/bin/tether' ",
            "exec \"'/usr/bin/tether' ",
        );
        std::fs::write(&files.config, &old).unwrap();
        repoint_hook(&paths, &p, Some(&here));
        assert_eq!(
            std::fs::read_to_string(&files.config).unwrap(),
            session_config(&p, &cert, &files, Some(&here))
        );

        // A path that cannot be written into the line leaves the file as it is.
        std::fs::write(&files.config, &old).unwrap();
        repoint_hook(&paths, &p, Some(&hook("/opt/it's/tether", "platformsh")));
        assert_eq!(std::fs::read_to_string(&files.config).unwrap(), old);
    }

    #[test]
    fn paths_with_percent_space_and_hash_reach_openssh_as_they_are_everywhere() {
        let root = tempfile::tempdir().unwrap();
        let home = root.path().join("Ann 100% #1");
        std::fs::create_dir_all(&home).unwrap();
        let paths = Paths::under_home(&home, None);
        let p = Profile::platformsh();
        let files = SshFiles::new(&paths, &p);
        let cert = CertFiles::new(paths.session_dir(&p));
        write_session_files(&p, &cert, &files, None).unwrap();
        install_block(&paths, &files, &p.ssh_host_patterns).unwrap();
        // Through ~/.ssh/config: the block's Include finds the session config (no token
        // expansion there), and the known-hosts path comes back with its `%` (expanded there).
        let g = ssh_g(&paths.ssh_config(), "ssh.eu-3.platform.sh");
        let known = files.known_hosts.display().to_string();
        assert!(
            g.lines()
                .any(|l| l.starts_with("userknownhostsfile ") && l.ends_with(&known)),
            "{known} in {g}"
        );
        // `ssh -o` gets the same spelling as the config lines.
        let o = crate::openssh::host_key_options(&files);
        assert!(o[1].contains("Ann 100%% #1"), "{o:?}");
        assert!(o[1].starts_with("UserKnownHostsFile=\""), "{o:?}");
    }

    #[test]
    fn paths_openssh_would_read_as_syntax_are_refused_by_every_writer() {
        for bad in [
            "Ann ${HOME}",
            "O'Brien",
            "say \"hi\"",
            "back\\slash",
            "line\nbreak",
        ] {
            let root = tempfile::tempdir().unwrap();
            let home = root.path().join(bad);
            std::fs::create_dir_all(&home).unwrap();
            let paths = Paths::under_home(&home, None);
            let p = Profile::platformsh();
            let files = SshFiles::new(&paths, &p);
            let cert = CertFiles::new(paths.session_dir(&p));
            assert!(
                matches!(
                    write_session_files(&p, &cert, &files, None),
                    Err(OpensshError::UnsafePath(_))
                ),
                "{bad:?}: session files"
            );
            // The block's Include was written without a check before.
            assert!(
                matches!(
                    install_block(&paths, &files, &p.ssh_host_patterns),
                    Err(OpensshError::UnsafePath(_))
                ),
                "{bad:?}: ~/.ssh/config block"
            );
            assert!(!paths.ssh_config().exists(), "{bad:?}: nothing written");
            let hook = RefreshHook {
                program: home.join("tether"),
                profile_arg: "platformsh".into(),
            };
            assert_eq!(hook.command(), None, "{bad:?}: hook");
        }
        // `Include` globs: a `[` in the data directory would change what it reads.
        let root = tempfile::tempdir().unwrap();
        let paths = Paths::under_home(&root.path().join("a[1]"), None);
        let files = SshFiles::new(&paths, &Profile::platformsh());
        let e = install_block(&paths, &files, &["*.platform.sh".into()]).unwrap_err();
        assert!(e.to_string().contains("glob character"), "{e}");
    }

    #[test]
    fn the_backup_keeps_the_file_from_before_tethers_first_edit() {
        let (_home, paths, files) = fixture();
        std::fs::create_dir_all(&paths.ssh_dir).unwrap();
        let original = "Host mine\n  User me\n";
        std::fs::write(paths.ssh_config(), original).unwrap();
        let backup = paths.ssh_dir.join("config.tether-backup");
        install_block(&paths, &files, &patterns()).unwrap();
        assert_eq!(std::fs::read_to_string(&backup).unwrap(), original);
        // Later edits, with or without the block, leave the first backup alone.
        install_block(&paths, &files, &["*.upsun.com".to_string()]).unwrap();
        remove_block(&paths).unwrap();
        std::fs::write(paths.ssh_config(), "Host changed\n").unwrap();
        let edit = install_block(&paths, &files, &patterns()).unwrap();
        assert_eq!(
            edit,
            Edit::Written {
                path: paths.ssh_config(),
                backup: Some(backup.clone())
            }
        );
        assert_eq!(std::fs::read_to_string(&backup).unwrap(), original);
        // No temporary file is left in ~/.ssh.
        let names: Vec<String> = std::fs::read_dir(&paths.ssh_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp")), "{names:?}");
    }

    #[test]
    fn a_config_created_by_tether_gets_no_backup_of_tethers_own_block() {
        let (_home, paths, files) = fixture();
        install_block(&paths, &files, &patterns()).unwrap();
        let edit = install_block(&paths, &files, &["*.upsun.com".to_string()]).unwrap();
        assert!(
            matches!(edit, Edit::Written { backup: None, .. }),
            "{edit:?}"
        );
        assert!(!paths.ssh_dir.join("config.tether-backup").exists());
    }

    #[test]
    fn edits_wait_for_the_lock_and_concurrent_edits_are_all_kept() {
        let (_home, paths, files) = fixture();
        std::fs::create_dir_all(&paths.ssh_dir).unwrap();
        std::fs::write(paths.ssh_config(), "Host mine\n").unwrap();
        let held = FileLock::acquire(&paths.ssh_dir.join(EDIT_LOCK)).unwrap();
        let waiting = {
            let (paths, files) = (paths.clone(), files.clone());
            std::thread::spawn(move || install_block(&paths, &files, &patterns()).unwrap())
        };
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert_eq!(
            std::fs::read_to_string(paths.ssh_config()).unwrap(),
            "Host mine\n",
            "edited while another edit held the lock"
        );
        drop(held);
        waiting.join().unwrap();
        assert!(block_installed(&paths));

        let editors: Vec<_> = (0..8)
            .map(|i| {
                let (paths, files) = (paths.clone(), files.clone());
                std::thread::spawn(move || {
                    install_block(&paths, &files, &[format!("*.p{i}.test")]).unwrap()
                })
            })
            .collect();
        for e in editors {
            e.join().unwrap();
        }
        let text = std::fs::read_to_string(paths.ssh_config()).unwrap();
        for i in 0..8 {
            assert!(
                text.contains(&format!("*.p{i}.test")),
                "lost edit {i}: {text}"
            );
        }
        assert!(text.ends_with("Host mine\n"), "{text}");
    }

    mod roundtrip {
        use super::*;
        use proptest::prelude::*;

        fn line() -> impl Strategy<Value = String> {
            prop_oneof![
                Just(String::new()),
                Just("# a comment".to_string()),
                Just("  # indented comment, ünïcode ✓ 日本".to_string()),
                Just("Include ~/.ssh/config.d/*".to_string()),
                Just("Match host *.example.com exec \"test -f /tmp/x\"".to_string()),
                Just("Match all".to_string()),
                Just("Host github.com *.platform.sh".to_string()),
                Just("Host *".to_string()),
                Just("\tUser git".to_string()),
                Just("    IdentityFile ~/.ssh/id_ed25519".to_string()),
                Just("   ".to_string()),
                Just("# BEGIN: something else".to_string()),
                "[^\r\n]{0,30}",
            ]
            .prop_filter("no Tether marker line", |l| {
                l.trim() != BLOCK_BEGIN && l.trim() != BLOCK_END
            })
        }

        fn config() -> impl Strategy<Value = String> {
            (
                prop::collection::vec((line(), any::<bool>()), 0..12),
                any::<bool>(),
            )
                .prop_map(|(lines, final_newline)| {
                    let n = lines.len();
                    let mut out = String::new();
                    for (i, (l, crlf)) in lines.into_iter().enumerate() {
                        out.push_str(&l);
                        if i + 1 < n || final_newline {
                            out.push_str(if crlf { "\r\n" } else { "\n" });
                        }
                    }
                    out
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(200))]

            #[test]
            fn install_then_remove_gives_back_the_same_bytes(original in config()) {
                let (_home, paths, files) = fixture();
                std::fs::create_dir_all(&paths.ssh_dir).unwrap();
                std::fs::write(paths.ssh_config(), &original).unwrap();
                let edit = install_block(&paths, &files, &patterns()).unwrap();
                prop_assert!(matches!(edit, Edit::Written { .. }), "{:?}", edit);
                let installed = std::fs::read(paths.ssh_config()).unwrap();
                prop_assert!(block_installed(&paths));
                // Installing again changes nothing.
                prop_assert_eq!(install_block(&paths, &files, &patterns()).unwrap(), Edit::Unchanged);
                prop_assert_eq!(&std::fs::read(paths.ssh_config()).unwrap(), &installed);
                remove_block(&paths).unwrap();
                prop_assert_eq!(std::fs::read(paths.ssh_config()).unwrap(), original.as_bytes());
                prop_assert_eq!(
                    std::fs::read(paths.ssh_dir.join("config.tether-backup")).unwrap(),
                    original.as_bytes()
                );
                prop_assert_eq!(remove_block(&paths).unwrap(), Edit::Unchanged);
            }
        }
    }
}
