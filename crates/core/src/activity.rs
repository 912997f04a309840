//! When the user last used the session, shared by every Tether process of a profile: the agent,
//! the desktop app, `tether` commands and the `Match exec` refresh hook that runs before each
//! plain `ssh`. The certificate keeper ends the session after a long time without any of them.
//!
//! The record is a small file in the session directory holding Unix seconds. It is rewritten
//! with a rename (never half-written) and without `fsync`: it is a hint, and the hook that
//! writes it runs before every connection, so it must stay cheap.

use std::path::{Path, PathBuf};

const FILE: &str = "last-activity";

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
    let mut written = std::fs::write(&tmp, format!("{now}\n"));
    if written
        .as_ref()
        .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
        && crate::private_files::create_private_dir(session_dir).is_ok()
    {
        written = std::fs::write(&tmp, format!("{now}\n"));
    }
    if written.is_ok() && std::fs::rename(&tmp, path(session_dir)).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// The last recorded activity, if any.
pub fn last(session_dir: &Path) -> Option<u64> {
    std::fs::read_to_string(path(session_dir))
        .ok()?
        .trim()
        .parse()
        .ok()
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
        // Nothing but the record is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
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
