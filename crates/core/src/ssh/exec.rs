//! Running a command on an app in-process over russh (for reading relationships and quick
//! actions), authenticated with the session's certificate. What the app prints is bounded:
//! an app (or its login scripts) can print without end, and Tether keeps what it reads in
//! memory, so past [`OUTPUT_LIMIT`] the command is abandoned with an error that says so.

use std::sync::Arc;
use std::time::Duration;

use russh::{client, ChannelMsg};
use ssh_key::{Certificate, PrivateKey};

pub use super::connect::Endpoint;
use super::connect::{command_config, connect, Client, ConnectError};
use super::url::SshUrl;

/// The most a remote command's standard output and error may hold together (4 MiB): an
/// app's relationships are a few kilobytes; anything near this is not an answer.
pub const OUTPUT_LIMIT: usize = 4 * 1024 * 1024;

/// Why a remote command could not be run or read.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot connect to {addr}: {message}")]
    Connect { addr: String, message: String },
    #[error(transparent)]
    HostKey(#[from] super::trust::HostKeyRefused),
    #[error("the SSH server refused the certificate: load a new certificate, or sign in again")]
    AuthFailed,
    #[error("SSH failed: {0}")]
    Ssh(String),
    #[error("the command did not finish within {} s", .0.as_secs())]
    Timeout(Duration),
    #[error(
        "the app answered with more than {} MiB, more than Tether reads: check what its login \
         scripts (.environment, .bashrc) print, and how large its variables are",
        OUTPUT_LIMIT / (1024 * 1024)
    )]
    OutputTooLarge,
}

impl From<ConnectError> for ExecError {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::Connect { addr, message } => ExecError::Connect { addr, message },
            ConnectError::HostKey(refused) => ExecError::HostKey(refused),
            ConnectError::AuthFailed => ExecError::AuthFailed,
            ConnectError::Ssh(message) => ExecError::Ssh(message),
            ConnectError::Timeout(after) => ExecError::Timeout(after),
        }
    }
}

impl From<russh::Error> for ExecError {
    fn from(e: russh::Error) -> Self {
        ExecError::Ssh(e.to_string())
    }
}

/// The output of a remote command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub status: Option<u32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// Adds a piece of output, or says the limit is passed.
    fn take(&mut self, data: &[u8], stderr: bool) -> Result<(), ExecError> {
        let held = self.stdout.len().saturating_add(self.stderr.len());
        if held.saturating_add(data.len()) > OUTPUT_LIMIT {
            return Err(ExecError::OutputTooLarge);
        }
        if stderr {
            self.stderr.extend_from_slice(data);
        } else {
            self.stdout.extend_from_slice(data);
        }
        Ok(())
    }
}

/// Runs `command` on an open connection (a session channel of its own) and collects what it
/// printed and its exit status. Past [`OUTPUT_LIMIT`] the channel is closed (the connection
/// stays usable for others) and [`ExecError::OutputTooLarge`] returned.
pub async fn run_on(
    handle: &client::Handle<Client>,
    command: &str,
) -> Result<ExecOutput, ExecError> {
    let mut channel = handle.channel_open_session().await?;
    channel.exec(true, command.as_bytes()).await?;
    let mut out = ExecOutput {
        status: None,
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    while let Some(msg) = channel.wait().await {
        let taken = match msg {
            ChannelMsg::Data { data } => out.take(&data, false),
            ChannelMsg::ExtendedData { data, ext: 1 } => out.take(&data, true),
            ChannelMsg::ExitStatus { exit_status } => {
                out.status = Some(exit_status);
                Ok(())
            }
            _ => Ok(()),
        };
        if let Err(e) = taken {
            let _ = channel.close().await;
            return Err(e);
        }
    }
    Ok(out)
}

pub async fn exec(
    endpoint: &Endpoint,
    url: &SshUrl,
    key: PrivateKey,
    cert: Certificate,
    command: &str,
    timeout: Duration,
) -> Result<ExecOutput, ExecError> {
    let config = Arc::new(command_config(timeout));
    let run = async {
        let handle = connect(config, endpoint, url, key, cert).await?.handle;
        let out = run_on(&handle, command).await?;
        let _ = handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
        Ok(out)
    };
    tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| ExecError::Timeout(timeout))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_past_four_mib_is_refused_whichever_stream_carries_it() {
        let mut out = ExecOutput {
            status: None,
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        let mib = vec![b'x'; 1024 * 1024];
        for i in 0..4 {
            out.take(&mib, i % 2 == 1).unwrap();
        }
        let err = out.take(b"!", false).unwrap_err();
        assert!(matches!(err, ExecError::OutputTooLarge), "{err:?}");
        assert!(out.take(b"!", true).is_err());
        assert_eq!(out.stdout.len() + out.stderr.len(), OUTPUT_LIMIT);
        assert!(err.to_string().contains("more than 4 MiB"), "{err}");
    }
}
