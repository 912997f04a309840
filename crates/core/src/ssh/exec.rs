//! Running a command on an app in-process over russh (for reading relationships and quick
//! actions), authenticated with the session's certificate.

use std::sync::Arc;
use std::time::Duration;

use russh::{client, ChannelMsg};
use ssh_key::{Certificate, PrivateKey};

use super::connect::{command_config, connect, Client};
pub use super::connect::{ConnectError as ExecError, Endpoint};
use super::url::SshUrl;

/// The output of a remote command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub status: Option<u32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Runs `command` on an open connection (a session channel of its own) and collects what it
/// printed and its exit status.
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
        match msg {
            ChannelMsg::Data { data } => out.stdout.extend_from_slice(&data),
            ChannelMsg::ExtendedData { data, ext: 1 } => out.stderr.extend_from_slice(&data),
            ChannelMsg::ExitStatus { exit_status } => out.status = Some(exit_status),
            _ => {}
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
