//! The agent's log file: readable only by its user (it names projects, apps and hosts), and
//! bounded, because a headless agent may run for months. When the file reaches half the
//! budget it becomes `<name>.1` (replacing the previous one) and a new file starts, so at most
//! [`MAX_KEPT`] bytes are kept.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The most the log keeps on disk, both parts together.
pub const MAX_KEPT: u64 = 10 * 1024 * 1024;

/// An append-only log file that rotates at half of [`MAX_KEPT`].
#[derive(Debug)]
pub struct AgentLog {
    path: PathBuf,
    file: File,
    written: u64,
    part: u64,
}

fn open_private(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    // A log written by an older version may be readable by others.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(file)
}

impl AgentLog {
    /// Opens (or creates) the log at `path`, mode 0600.
    pub fn open(path: &Path) -> std::io::Result<AgentLog> {
        AgentLog::with_part_size(path, MAX_KEPT / 2)
    }

    fn with_part_size(path: &Path, part: u64) -> std::io::Result<AgentLog> {
        let file = open_private(path)?;
        let written = file.metadata()?.len();
        let mut log = AgentLog {
            path: path.to_path_buf(),
            file,
            written,
            part,
        };
        if log.written >= log.part {
            log.rotate()?;
        }
        Ok(log)
    }

    /// The previous part of a log.
    pub fn previous(path: &Path) -> PathBuf {
        let mut name = path.as_os_str().to_owned();
        name.push(".1");
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        std::fs::rename(&self.path, AgentLog::previous(&self.path))?;
        self.file = open_private(&self.path)?;
        self.written = 0;
        Ok(())
    }
}

impl Write for AgentLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.written > 0 && self.written.saturating_add(buf.len() as u64) > self.part {
            self.rotate()?;
        }
        let n = self.file.write(buf)?;
        self.written = self.written.saturating_add(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_log_is_private_and_keeps_at_most_two_parts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.log");
        std::fs::write(&path, "from an older version\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut log = AgentLog::with_part_size(&path, 100).unwrap();
        assert_eq!(mode(&path), 0o600);
        for i in 0..50 {
            writeln!(log, "line {i:04} of the log").unwrap();
        }
        let previous = AgentLog::previous(&path);
        assert_eq!(mode(&previous), 0o600);
        assert_eq!(mode(&path), 0o600);
        let kept =
            std::fs::metadata(&path).unwrap().len() + std::fs::metadata(&previous).unwrap().len();
        assert!(kept <= 200, "{kept} bytes kept");
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains("line 0049"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_full_log_is_rotated_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.log");
        std::fs::write(&path, vec![b'x'; 150]).unwrap();
        let _log = AgentLog::with_part_size(&path, 100).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        assert_eq!(
            std::fs::metadata(AgentLog::previous(&path)).unwrap().len(),
            150
        );
    }
}
