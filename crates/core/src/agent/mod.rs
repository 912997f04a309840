//! The agent: the one long-running host of a profile's session. It keeps the certificate
//! fresh while the user is active (the [`CertKeeper`]), ends the session after the inactivity
//! limit, publishes what happens as [`Event`]s, and answers the shells over a control socket
//! that only its own user can reach. `tether agent` runs it headless; the desktop app runs the
//! same code in-process. Without an agent everything still works: each `tether` command and
//! the `Match exec` hook do their part alone.
//!
//! [`CertKeeper`]: crate::cert::CertKeeper

mod client;
pub mod log;
pub mod protocol;
mod server;

use std::path::PathBuf;

pub use client::AgentClient;
pub use log::AgentLog;
pub use protocol::{EndpointFields, Reply, Request, SessionState, Status};
pub use server::{serve, Bound};

use crate::cert::Event;
use crate::context::Paths;
use crate::problem::{Classify, Problem};
use crate::profile::Profile;

/// The longest path a Unix socket address holds (`sun_path`, 108 bytes on Linux, 104 on
/// macOS, with its terminating NUL).
const MAX_SOCKET_PATH: usize = 103;

/// Where a profile's agent listens.
pub fn socket_path(paths: &Paths, profile: &Profile) -> PathBuf {
    paths.runtime_dir.join(format!("{}.sock", profile.name))
}

/// The lock a running agent holds; it records the agent's pid.
fn lock_path(paths: &Paths, profile: &Profile) -> PathBuf {
    paths.runtime_dir.join(format!("{}.pid", profile.name))
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("an agent for {profile} is already running{}: stop it first, or use it", .pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    AlreadyRunning { profile: String, pid: Option<u32> },
    #[error("no agent is running for {profile}")]
    NotRunning { profile: String },
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("the socket path {path} is too long for a Unix socket ({len} bytes, at most {MAX_SOCKET_PATH}): set XDG_RUNTIME_DIR to a shorter directory")]
    PathTooLong { path: PathBuf, len: usize },
    #[error("the agent's reply was not understood: {0}")]
    Protocol(#[from] protocol::ProtocolError),
    #[error("the agent could not start ({status}); its log is {}", .log.display())]
    StartFailed { status: String, log: PathBuf },
    #[error("the agent did not answer in time")]
    Timeout,
    #[error("the agent went away before answering")]
    Closed,
    #[error("the agent answered {0} where another reply was expected")]
    Unexpected(String),
    /// What the agent reported failing, with core's classification.
    #[error("{message}")]
    Remote {
        code: String,
        message: String,
        step_up: Option<crate::api::StepUp>,
    },
}

impl AgentError {
    fn io(path: &std::path::Path, e: std::io::Error) -> AgentError {
        AgentError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}

impl Classify for AgentError {
    fn problem(&self) -> Problem {
        match self {
            AgentError::Remote { code, .. } => Problem::from_code(code).unwrap_or(Problem::Other),
            AgentError::AlreadyRunning { .. } | AgentError::PathTooLong { .. } => Problem::Usage,
            _ => Problem::Other,
        }
    }
}

/// Lets the agent hold as many connections as the system allows this user: a tunnel host
/// holds two descriptors per tunnelled connection, and the usual soft limit (1024) would
/// refuse connections long before the machine is busy. Returns the new limit.
pub fn raise_open_files_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let limit = getrlimit(Resource::Nofile);
    let max = limit.maximum;
    if limit.current < max {
        let raised = rustix::process::Rlimit {
            current: max,
            maximum: max,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return max;
        }
    }
    limit.current
}

/// How long a new headless agent may take to listen.
const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Starts `program args…` (a `tether agent` command line) as a headless agent in its own
/// process group, so that it outlives the shell command that needed it and a Ctrl-C there,
/// and connects to it once it listens. When another process won the race to start one, that
/// agent is used.
pub async fn start_headless(
    program: &std::path::Path,
    args: &[std::ffi::OsString],
    paths: &Paths,
    profile: &Profile,
    log: &std::path::Path,
) -> Result<AgentClient, AgentError> {
    start_headless_within(program, args, paths, profile, log, START_TIMEOUT).await
}

async fn start_headless_within(
    program: &std::path::Path,
    args: &[std::ffi::OsString],
    paths: &Paths,
    profile: &Profile,
    log: &std::path::Path,
    timeout: std::time::Duration,
) -> Result<AgentClient, AgentError> {
    use std::os::unix::process::CommandExt;
    let socket = socket_path(paths, profile);
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| AgentError::io(program, e))?;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(client) = AgentClient::connect(&socket).await? {
            // Reap it when it ends, whenever that is.
            std::thread::spawn(move || child.wait());
            return Ok(client);
        }
        if let Ok(Some(status)) = child.try_wait() {
            // Lost a race to another agent, which then listens; or failed: see its log.
            if let Some(client) = AgentClient::connect(&socket).await? {
                return Ok(client);
            }
            return Err(AgentError::StartFailed {
                status: status.to_string(),
                log: log.to_path_buf(),
            });
        }
        if tokio::time::Instant::now() > deadline {
            // Given up on: stopped and reaped, so that neither a zombie nor an agent nobody
            // knows about (one that would start listening later) is left behind.
            let _ = child.kill();
            let _ = tokio::task::spawn_blocking(move || child.wait()).await;
            return Err(AgentError::StartFailed {
                status: format!("not listening after {} s", timeout.as_secs_f32()),
                log: log.to_path_buf(),
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// Text for an event, for people (`tether events`, notifications).
pub fn describe(event: &Event, when: impl Fn(u64) -> String) -> String {
    match event {
        Event::SignedIn => "signed in".to_string(),
        Event::Renewed {
            valid_before,
            has_mfa,
        } => format!(
            "certificate renewed, valid until {}{}",
            when(*valid_before),
            if *has_mfa { ", with MFA" } else { "" }
        ),
        Event::RenewalFailed { reason } => format!("renewal failed (will retry): {reason}"),
        Event::MfaNeeded { reason } => format!("sign in again: {reason}"),
        Event::SignedOut { reason, .. } => format!("signed out: {reason}"),
        Event::Tunnel {
            app,
            relationship,
            port,
            state,
            ..
        } => format!("tunnel {relationship} of {app} on port {port}: {state}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_headless_agent_that_never_listens_is_stopped_and_reaped_after_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under_home(dir.path(), None);
        let pid_file = dir.path().join("pid");
        let args: Vec<std::ffi::OsString> = vec![
            "-c".into(),
            format!("echo $$ > {}; exec sleep 600", pid_file.display()).into(),
        ];
        let started = start_headless_within(
            std::path::Path::new("/bin/sh"),
            &args,
            &paths,
            &Profile::platformsh(),
            &dir.path().join("agent.log"),
            std::time::Duration::from_millis(500),
        )
        .await;
        let Err(e) = started else {
            panic!("`sh` became an agent")
        };
        assert!(matches!(e, AgentError::StartFailed { .. }), "{e}");
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        // Reaped: not even a zombie is left under /proc.
        let proc_dir = std::path::PathBuf::from(format!("/proc/{}", pid.trim()));
        assert!(
            !proc_dir.exists(),
            "the agent that never listened is still there: {:?}",
            std::fs::read_to_string(proc_dir.join("stat"))
        );
    }
}
