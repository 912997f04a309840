//! Wiring the session into the user's OpenSSH: a per-profile config file (certificate,
//! identity, known hosts, and for local platforms where the gateway really listens), a
//! known-hosts file with the platform's host keys, and, with the user's consent, a marked block
//! in `~/.ssh/config` that includes them. Edits are atomic, keep a backup, follow a symlinked
//! config to its target, and never touch a line outside the block.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::cert::CertFiles;
use crate::context::Paths;
use crate::fsutil::{create_private_dir, write_atomic, WriteError};
use crate::profile::Profile;

pub const BLOCK_BEGIN: &str = "# BEGIN: Tether certificate configuration";
pub const BLOCK_END: &str = "# END: Tether certificate configuration";

#[derive(Debug, thiserror::Error)]
pub enum OpensshError {
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path} is not UTF-8 text; Tether will not edit it. Add the lines shown by `tether config:ssh` by hand")]
    NotText { path: PathBuf },
    #[error("{path} has a {found:?} line without its partner; fix or delete the Tether block by hand, then run this again")]
    BrokenBlock { path: PathBuf, found: String },
    #[error("{path} is not a regular file; Tether will not edit it")]
    NotAFile { path: PathBuf },
}

/// Where the session's OpenSSH files are.
#[derive(Debug, Clone)]
pub struct SshFiles {
    /// The directory the marked block includes (`Include <dir>/*.config`).
    pub include_dir: PathBuf,
    pub config: PathBuf,
    pub known_hosts: PathBuf,
}

impl SshFiles {
    pub fn new(paths: &Paths, profile: &Profile) -> SshFiles {
        let include_dir = paths.data_dir.join("ssh");
        SshFiles {
            config: include_dir.join(format!("{}.config", profile.name)),
            known_hosts: include_dir.join(format!("{}.known_hosts", profile.name)),
            include_dir,
        }
    }
}

/// Quotes a path for ssh_config when it has spaces.
fn ssh_path(p: &Path) -> String {
    let s = p.display().to_string();
    if s.contains(char::is_whitespace) {
        format!("\"{s}\"")
    } else {
        s
    }
}

/// The session's config file for a profile.
pub fn session_config(profile: &Profile, cert: &CertFiles, files: &SshFiles) -> String {
    let mut out = format!(
        "# Written by Tether for {title}: the SSH certificate of your session.\n\
         # Tether rewrites this file; changes here are lost.\n\
         Host {hosts}\n  CertificateFile {cert}\n  IdentityFile {key}\n  IdentitiesOnly yes\n",
        title = profile.title,
        hosts = profile.ssh_host_patterns.join(" "),
        cert = ssh_path(&cert.certificate()),
        key = ssh_path(&cert.key()),
    );
    if let Some(ssh) = &profile.ssh {
        out.push_str(&format!(
            "  HostName {}\n  Port {}\n",
            ssh.hostname, ssh.port
        ));
    }
    if has_host_keys(profile) {
        out.push_str(&format!(
            "  UserKnownHostsFile {}\n  StrictHostKeyChecking yes\n",
            ssh_path(&files.known_hosts)
        ));
    }
    out
}

fn has_host_keys(profile: &Profile) -> bool {
    profile
        .ssh
        .as_ref()
        .is_some_and(|s| !s.host_keys.is_empty())
}

/// Known-hosts lines for the platform's host keys: under the host patterns, and under the
/// gateway's real address for local platforms (OpenSSH looks up the address it connects to).
pub fn known_hosts(profile: &Profile) -> String {
    let Some(ssh) = &profile.ssh else {
        return String::new();
    };
    let mut names = profile.ssh_host_patterns.clone();
    names.push(if ssh.port == 22 {
        ssh.hostname.clone()
    } else {
        format!("[{}]:{}", ssh.hostname, ssh.port)
    });
    ssh.host_keys
        .iter()
        .map(|k| format!("{} {}\n", names.join(","), k.trim()))
        .collect()
}

/// Writes the session's config and known-hosts files.
pub fn write_session_files(
    profile: &Profile,
    cert: &CertFiles,
    files: &SshFiles,
) -> Result<(), OpensshError> {
    create_private_dir(&files.include_dir)?;
    write_atomic(
        &files.config,
        session_config(profile, cert, files).as_bytes(),
        0o600,
    )?;
    if has_host_keys(profile) {
        write_atomic(&files.known_hosts, known_hosts(profile).as_bytes(), 0o600)?;
    }
    Ok(())
}

/// Removes a profile's session files.
pub fn remove_session_files(files: &SshFiles) {
    let _ = std::fs::remove_file(&files.config);
    let _ = std::fs::remove_file(&files.known_hosts);
}

/// The marked block for `~/.ssh/config`.
pub fn block(patterns: &BTreeSet<String>, files: &SshFiles) -> String {
    let hosts: Vec<&str> = patterns.iter().map(String::as_str).collect();
    format!(
        "{BLOCK_BEGIN}\nHost {}\n  Include {}\nHost *\n{BLOCK_END}\n",
        hosts.join(" "),
        ssh_path(&files.include_dir.join("*.config"))
    )
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

fn commit(path: &Path, before: Option<&str>, after: &str) -> Result<Edit, OpensshError> {
    if before == Some(after) {
        return Ok(Edit::Unchanged);
    }
    let mode = if before.is_some() {
        file_mode(path)
    } else {
        0o600
    };
    let backup = match before {
        Some(old) => {
            let b = path.with_file_name(format!(
                "{}.tether-backup",
                path.file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("config")
            ));
            write_atomic(&b, old.as_bytes(), 0o600)?;
            Some(b)
        }
        None => None,
    };
    write_atomic(path, after.as_bytes(), mode)?;
    Ok(Edit::Written {
        path: path.to_path_buf(),
        backup,
    })
}

/// Adds or updates the marked block at the top of `~/.ssh/config`, covering `patterns` and
/// the patterns the block already covered.
pub fn install_block(
    paths: &Paths,
    files: &SshFiles,
    patterns: &[String],
) -> Result<Edit, OpensshError> {
    if !paths.ssh_dir.exists() {
        create_private_dir(&paths.ssh_dir)?;
    }
    let path = target(&paths.ssh_config())?;
    let before = read(&path)?;
    let parsed = parse(&path, before.clone().unwrap_or_default())?;
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
    commit(&path, before.as_deref(), &after)
}

/// Removes the marked block, leaving every other line as it was.
pub fn remove_block(paths: &Paths) -> Result<Edit, OpensshError> {
    let path = target(&paths.ssh_config())?;
    let Some(before) = read(&path)? else {
        return Ok(Edit::Unchanged);
    };
    let parsed = parse(&path, before.clone())?;
    let Some((start, end)) = parsed.block else {
        return Ok(Edit::Unchanged);
    };
    let mut rest = parsed.text[end..].to_string();
    // Drop the blank line install_block put after the block.
    if start == 0 {
        if let Some(stripped) = rest.strip_prefix(parsed.newline) {
            rest = stripped.to_string();
        }
    }
    let after = format!("{}{}", &parsed.text[..start], rest);
    commit(&path, Some(&before), &after)
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
        let text = session_config(&p, &cert, &files);
        assert!(text.contains("Host *.platform.sh\n"));
        assert!(text.contains("CertificateFile ") && text.contains("id_ed25519-cert.pub"));
        assert!(text.contains("HostName 127.0.0.1\n  Port 2222\n"));
        assert!(text.contains("UserKnownHostsFile "));
        assert_eq!(
            known_hosts(&p),
            "*.platform.sh,[127.0.0.1]:2222 ssh-ed25519 AAAAkey\n"
        );
    }
}
