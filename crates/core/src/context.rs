//! What the shells pass into core instead of core looking it up: where files live and what
//! time it is. Tests pass temporary directories and a clock they control.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::profile::Profile;

/// The directories Tether uses, chosen by the shell (the platform's standard directories).
#[derive(Debug, Clone)]
pub struct Paths {
    /// Per-user data: one directory per profile with the session's key, certificate and SSH
    /// configuration.
    pub data_dir: PathBuf,
    /// The user's OpenSSH directory (`~/.ssh`), whose `config` gets the marked block.
    pub ssh_dir: PathBuf,
    /// Where agents put their control sockets: `$XDG_RUNTIME_DIR/tether` where there is one,
    /// else `run` in the data directory. Made 0700.
    pub runtime_dir: PathBuf,
}

impl Paths {
    /// Where a profile's session files live.
    pub fn session_dir(&self, profile: &Profile) -> PathBuf {
        self.data_dir.join("sessions").join(&profile.name)
    }

    pub fn ssh_config(&self) -> PathBuf {
        self.ssh_dir.join("config")
    }

    /// The headless agent's log file for a profile (`logs/agent-<profile>.log`).
    pub fn agent_log(&self, profile: &Profile) -> PathBuf {
        self.data_dir
            .join("logs")
            .join(format!("agent-{}.log", profile.name))
    }

    /// Standard locations under a home directory (`~/.local/share/tether`, `~/.ssh`).
    pub fn under_home(home: &Path, data_dir: Option<PathBuf>) -> Paths {
        let data_dir = data_dir.unwrap_or_else(|| home.join(".local/share/tether"));
        Paths {
            runtime_dir: data_dir.join("run"),
            data_dir,
            ssh_dir: home.join(".ssh"),
        }
    }
}

/// How far apart two clocks may drift between two looks before time counts as having
/// jumped.
pub const CLOCK_JUMP: Duration = Duration::from_secs(5);

/// Whether time jumped between two looks at the clocks, `mono` (monotonic) and `wall` (the
/// wall clock) apart, when they were meant to be `meant` apart: the monotonic gap is late when
/// the process was stopped (SIGSTOP), the wall clock runs ahead when the machine slept (the
/// monotonic clock stops during a suspend), and behind when the clock was set back.
pub fn clock_jumped(meant: Duration, mono: Duration, wall: Duration) -> bool {
    mono.saturating_sub(meant) >= CLOCK_JUMP
        || wall.saturating_sub(mono) >= CLOCK_JUMP
        || mono.saturating_sub(wall) >= CLOCK_JUMP
}

/// The time, injected so that renewal, expiry and backoff can be tested without sleeping.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> SystemTime;

    fn unix(&self) -> u64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<SystemTime>>);

impl ManualClock {
    pub fn new(start: SystemTime) -> Self {
        ManualClock(Arc::new(Mutex::new(start)))
    }

    pub fn advance(&self, by: Duration) {
        if let Ok(mut t) = self.0.lock() {
            *t += by;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        self.0.lock().map(|t| *t).unwrap_or(UNIX_EPOCH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_set_back_during_a_nap_is_a_jump() {
        let s = Duration::from_secs;
        // A five-second nap after which the wall clock shows no time passed (it was set back).
        assert!(clock_jumped(s(5), s(5), Duration::ZERO));
        assert!(!clock_jumped(s(5), s(5), s(5)));
    }
}
