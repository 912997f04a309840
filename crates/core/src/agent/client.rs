//! A shell's side of the control socket.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::protocol::{self, Reply, Request};
use super::server::read_reply;
use super::AgentError;

/// How long a request may take: a renewal goes to the platform and back.
const REPLY_TIMEOUT: Duration = Duration::from_secs(90);

/// A connection left unused this long is made again before the next request: the agent
/// closes connections that stay silent ([`super::server`]'s idle timeout), and a shell may
/// wait between two requests (a question at the terminal).
const REUSE_WITHIN: Duration = Duration::from_secs(3);

/// A connection to a running agent.
pub struct AgentClient {
    stream: BufReader<UnixStream>,
    socket: PathBuf,
    last_used: Instant,
}

impl AgentClient {
    /// Connects to the agent listening on `socket`; `None` when none is running there (no
    /// socket, or a dead agent's).
    pub async fn connect(socket: &Path) -> Result<Option<AgentClient>, AgentError> {
        match UnixStream::connect(socket).await {
            Ok(stream) => Ok(Some(AgentClient {
                stream: BufReader::new(stream),
                socket: socket.to_path_buf(),
                last_used: Instant::now(),
            })),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(AgentError::io(socket, e)),
        }
    }

    /// Sends a request and waits for its reply. An error reply becomes
    /// [`AgentError::Remote`], classified as core classified it in the agent.
    pub async fn request(&mut self, request: &Request) -> Result<Reply, AgentError> {
        if self.last_used.elapsed() >= REUSE_WITHIN {
            let stream = UnixStream::connect(&self.socket)
                .await
                .map_err(|e| AgentError::io(&self.socket, e))?;
            self.stream = BufReader::new(stream);
        }
        // An agent that refuses the connection may answer and hang up before the request is
        // written: its answer is still read.
        let _ = self
            .stream
            .get_mut()
            .write_all(&protocol::encode(request))
            .await;
        let reply = tokio::time::timeout(REPLY_TIMEOUT, self.next())
            .await
            .map_err(|_| AgentError::Timeout)??
            .ok_or(AgentError::Closed)?;
        self.last_used = Instant::now();
        match reply {
            Reply::Error {
                code,
                message,
                step_up,
            } => Err(AgentError::Remote {
                code,
                message,
                step_up,
            }),
            other => Ok(other),
        }
    }

    /// Asks the agent, which keeps the session, to be ready to connect (see
    /// [`crate::access::Access::ready`]).
    pub async fn ready(&mut self, new: bool) -> Result<crate::access::Ready, AgentError> {
        match self.request(&Request::Ready { new }).await? {
            Reply::Ready(ready) => Ok(ready),
            other => Err(unexpected(&other)),
        }
    }

    /// Asks the agent to sign out (see [`crate::access::Access::sign_out`]).
    pub async fn sign_out(
        &mut self,
        all: bool,
    ) -> Result<crate::access::SignOutReport, AgentError> {
        match self.request(&Request::SignOut { all }).await? {
            Reply::SignedOut(report) => Ok(report),
            other => Err(unexpected(&other)),
        }
    }

    /// The next line the agent sends (events after a subscription); `None` when it hangs up.
    pub async fn next(&mut self) -> Result<Option<Reply>, AgentError> {
        read_reply(&mut self.stream).await
    }
}

/// The error for a reply of the wrong kind, named as the protocol names it.
fn unexpected(reply: &Reply) -> AgentError {
    let name = serde_json::to_value(reply)
        .ok()
        .and_then(|v| v["reply"].as_str().map(str::to_string))
        .unwrap_or_default();
    AgentError::Unexpected(name)
}
