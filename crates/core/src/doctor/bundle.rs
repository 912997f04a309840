//! The support bundle `tether doctor --bundle FILE` writes: a gzipped tar (read by `tar xzf`
//! everywhere, and written here with the gzip Tether already links, no archive library) of the
//! report as JSON and as text, the versions, and the last lines of the agent's log, scrubbed
//! ([`super::scrub`]). The file is 0600 and is never written over unless asked.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{scrub::scrub, Report, Status};

/// How many of the log's last lines go into the bundle.
pub const LOG_LINES: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{0} already exists: choose another file, or pass --force to replace it")]
    Exists(PathBuf),
    #[error("{path} has no directory to write into: create it first")]
    NoDirectory { path: PathBuf },
    #[error("cannot write {path}: {message}")]
    Write { path: PathBuf, message: String },
}

/// The log's previous part (see [`crate::agent::AgentLog`]).
fn previous_part(path: &Path) -> PathBuf {
    #[cfg(unix)]
    return crate::agent::AgentLog::previous(path);
    #[cfg(not(unix))]
    return path.with_extension("log.1");
}

/// The last `n` lines of the log at `path`, reaching into its previous part when the current
/// one has fewer; empty when there is no log.
pub fn last_lines(path: &Path, n: usize) -> String {
    let read = |p: &Path| std::fs::read(p).map(|b| String::from_utf8_lossy(&b).into_owned());
    let current = read(path).unwrap_or_default();
    let mut lines: Vec<&str> = current.lines().collect();
    let previous;
    if lines.len() < n {
        previous = read(&previous_part(path)).unwrap_or_default();
        let mut all: Vec<&str> = previous.lines().collect();
        all.extend(lines);
        lines = all;
    }
    let start = lines.len().saturating_sub(n);
    let mut out = lines[start..].join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// The report for people: one block per check.
pub fn report_text(report: &Report) -> String {
    let mut out = String::new();
    for c in &report.checks {
        let mark = match c.status {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Problem => "PROBLEM",
        };
        out.push_str(&format!("[{mark}] {}\n    {}\n", c.title, c.detail));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("    Fix: {}\n", fix.text));
            if let Some(cmd) = &fix.command {
                out.push_str(&format!("      $ {cmd}\n"));
            }
        }
    }
    out
}

/// One ustar entry: a regular file, mode 0600, owned by nobody in particular.
fn tar_entry(out: &mut Vec<u8>, name: &str, data: &[u8], mtime: u64) {
    let mut h = [0u8; 512];
    let field = |h: &mut [u8; 512], at: usize, len: usize, value: &[u8]| {
        let n = value.len().min(len);
        h[at..at + n].copy_from_slice(&value[..n]);
    };
    let octal = |value: u64, width: usize| format!("{value:0w$o}\0", w = width - 1).into_bytes();
    field(&mut h, 0, 100, name.as_bytes());
    field(&mut h, 100, 8, &octal(0o600, 8));
    field(&mut h, 108, 8, &octal(0, 8));
    field(&mut h, 116, 8, &octal(0, 8));
    field(&mut h, 124, 12, &octal(data.len() as u64, 12));
    field(&mut h, 136, 12, &octal(mtime, 12));
    h[156] = b'0';
    field(&mut h, 257, 6, b"ustar\0");
    field(&mut h, 263, 2, b"00");
    // The checksum is computed with its own field as spaces.
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    field(&mut h, 148, 8, format!("{sum:06o}\0 ").as_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

/// The bundle's bytes: `tether-doctor/report.json`, `report.txt`, `versions.txt` and
/// `agent.log` (its last [`LOG_LINES`] lines, scrubbed).
pub fn archive(report: &Report, log: &str, mtime: u64) -> Result<Vec<u8>, std::io::Error> {
    let json = serde_json::to_vec_pretty(report).map_err(std::io::Error::other)?;
    let v = &report.versions;
    let versions = format!(
        "tether {}\nssh {}\nos {}\n",
        v.tether,
        v.openssh.as_deref().unwrap_or("(no ssh found)"),
        v.os
    );
    let mut tar = Vec::new();
    for (name, data) in [
        ("report.json", json.as_slice()),
        ("report.txt", scrub(&report_text(report)).as_bytes()),
        ("versions.txt", versions.as_bytes()),
        ("agent.log", scrub(log).as_bytes()),
    ] {
        tar_entry(&mut tar, &format!("tether-doctor/{name}"), data, mtime);
    }
    tar.extend_from_slice(&[0u8; 1024]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar)?;
    gz.finish()
}

/// Writes the bundle for `report` with the agent's log at `log` to `out`, mode 0600;
/// refuses to replace an existing file unless `overwrite`.
pub fn write(report: &Report, log: &Path, out: &Path, overwrite: bool) -> Result<(), BundleError> {
    let err = |e: std::io::Error| BundleError::Write {
        path: out.to_path_buf(),
        message: e.to_string(),
    };
    let dir = match out.parent() {
        Some(d) if d.as_os_str().is_empty() => Path::new("."),
        Some(d) => d,
        None => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(BundleError::NoDirectory {
            path: out.to_path_buf(),
        });
    }
    if !overwrite && std::fs::symlink_metadata(out).is_ok() {
        return Err(BundleError::Exists(out.to_path_buf()));
    }
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let bytes = archive(report, &last_lines(log, LOG_LINES), mtime).map_err(err)?;
    if overwrite {
        crate::private_files::write_atomic(out, &bytes, 0o600).map_err(|e| BundleError::Write {
            path: out.to_path_buf(),
            message: e.to_string(),
        })
    } else {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(out).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                BundleError::Exists(out.to_path_buf())
            } else {
                err(e)
            }
        })?;
        file.write_all(&bytes).map_err(err)?;
        file.sync_all().map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_lines_reach_into_the_previous_part() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("agent.log");
        std::fs::write(previous_part(&log), "a\nb\nc\n").unwrap();
        std::fs::write(&log, "d\ne\n").unwrap();
        assert_eq!(last_lines(&log, 3), "c\nd\ne\n");
        assert_eq!(last_lines(&log, 1), "e\n");
        assert_eq!(last_lines(&dir.path().join("none.log"), 5), "");
    }
}
