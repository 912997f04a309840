//! When the user last used the session, shared by every Tether process of a profile: the agent,
//! the desktop app, `tether` commands and the `Match exec` refresh hook that runs before each
//! plain `ssh`. The certificate keeper ends the session after a long time without any of them.
//!
//! The record is a small file in the session directory holding Unix seconds. It is rewritten
//! with a rename (never half-written) and without `fsync`: it is a hint, and the hook that
//! writes it runs before every connection, so it must stay cheap.
//!
//! The inactivity limit is stored with the session too, so that every process measures the
//! same session against the same limit: the one that keeps the session (the running agent, or
//! the command that signed in when none runs) records it, and the others read it instead of
//! applying their own.

use std::io::Write;
use std::path::{Path, PathBuf};

const FILE: &str = "last-activity";
const LIMIT_FILE: &str = "inactivity-limit";

fn path(session_dir: &Path) -> PathBuf {
    session_dir.join(FILE)
}

/// Records activity at `now` (Unix seconds). Failures are ignored: a missing record only makes
/// the session end sooner, never later.
pub fn touch(session_dir: &Path, now: u64) {
    if last(session_dir).is_some_and(|t| t >= now) {
        return;
    }
    let tmp = session_dir.join(format!(".{FILE}.{}", std::process::id()));
    let mut written = write_private(&tmp, now);
    if written
        .as_ref()
        .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
        && crate::private_files::create_private_dir(session_dir).is_ok()
    {
        written = write_private(&tmp, now);
    }
    if written.is_ok() && std::fs::rename(&tmp, path(session_dir)).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// Writes `value` to a new file readable only by its owner, whatever the umask.
fn write_private(path: &Path, value: u64) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    writeln!(file, "{value}")
}

fn read_number(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The last recorded activity, if any.
pub fn last(session_dir: &Path) -> Option<u64> {
    read_number(&path(session_dir))
}

/// Records the session's inactivity limit (seconds).
pub fn set_limit(session_dir: &Path, secs: u64) -> Result<(), crate::private_files::WriteError> {
    if limit(session_dir) == Some(secs) {
        return Ok(());
    }
    crate::private_files::create_private_dir(session_dir)?;
    crate::private_files::write_atomic(
        &session_dir.join(LIMIT_FILE),
        format!("{secs}\n").as_bytes(),
        0o600,
    )
}

/// The session's inactivity limit (seconds), when one was recorded.
pub fn limit(session_dir: &Path) -> Option<u64> {
    read_number(&session_dir.join(LIMIT_FILE)).filter(|s| *s > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_touch_wins_and_time_never_goes_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(last(dir.path()), None);
        touch(dir.path(), 100);
        assert_eq!(last(dir.path()), Some(100));
        touch(dir.path(), 90);
        assert_eq!(last(dir.path()), Some(100));
        touch(dir.path(), 150);
        assert_eq!(last(dir.path()), Some(150));
        // Nothing but the record is left behind, and only its owner reads it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn the_session_keeps_one_limit() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(limit(dir.path()), None);
        set_limit(dir.path(), 12 * 3600).unwrap();
        assert_eq!(limit(dir.path()), Some(12 * 3600));
        set_limit(dir.path(), 30).unwrap();
        assert_eq!(limit(dir.path()), Some(30));
    }

    #[test]
    fn a_missing_directory_is_made_and_an_unwritable_one_is_no_error() {
        let dir = tempfile::tempdir().unwrap();
        let session = dir.path().join("sessions/p");
        touch(&session, 7);
        assert_eq!(last(&session), Some(7));
        touch(Path::new("/proc/tether/session"), 1);
        assert_eq!(last(Path::new("/proc/tether/session")), None);
    }
}
