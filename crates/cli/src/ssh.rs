//! `tether ssh`: print the address (`--pipe`, `--all`), run the system `ssh` with the
//! session's certificate, or open the session in the user's terminal. What to do after a
//! refusal (new certificate, sign in with MFA, give up) is core's decision.

use std::process::Stdio;

use anyhow::{Context, Result};
use serde_json::json;
use tether_core::access::{AccessError, AfterRefusal};
use tether_core::api::{ApiError, EnvironmentId, ProjectId};
use tether_core::ssh::terminal::TerminalSettings;
use tether_core::ssh::{remote_command, Selection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::browse::{address, pick_environment, pick_project};
use crate::context::{env_nonempty, Ctx};
use crate::output::{print, progress};
use crate::session::offer_step_up;
use crate::Format;

/// A remote command's exit status, passed on as tether's own.
#[derive(Debug)]
pub struct RemoteExit(pub u8);

impl std::fmt::Display for RemoteExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the remote command exited with status {}", self.0)
    }
}

impl std::error::Error for RemoteExit {}

pub struct SshRequest {
    pub project: Option<ProjectId>,
    pub environment: Option<EnvironmentId>,
    pub selection: Selection,
    pub pipe: bool,
    pub all: bool,
    pub terminal: bool,
    pub command: Vec<String>,
}

pub async fn ssh(ctx: &Ctx, req: SshRequest) -> Result<()> {
    match ssh_once(ctx, &req).await {
        Err(e) => {
            let step_up = e
                .chain()
                .find_map(|c| c.downcast_ref::<AccessError>()?.step_up());
            match step_up {
                Some(s) if offer_step_up(ctx, &s).await? => ssh_once(ctx, &req).await,
                _ => Err(e),
            }
        }
        ok => ok,
    }
}

async fn ssh_once(ctx: &Ctx, req: &SshRequest) -> Result<()> {
    let cat = ctx.access.catalog();
    let project = pick_project(cat, req.project.clone()).await?;
    let env = pick_environment(cat, &project, req.environment.clone()).await?;
    if req.all {
        let urls = ctx.access.addresses(&project, &env.id).await?;
        let map: serde_json::Map<String, serde_json::Value> = urls
            .iter()
            .map(|(k, u)| (k.clone(), json!(u.to_string())))
            .collect();
        print(ctx.format, &map, || {
            urls.iter()
                .map(|(k, u)| format!("{k}: {u}"))
                .collect::<Vec<_>>()
                .join("\n")
        });
        return Ok(());
    }
    let url = address(ctx, &project, &env, req.selection.clone()).await?;
    if req.pipe {
        println!("{url}");
        return Ok(());
    }
    let command = remote_command(&req.command);
    let ready = ctx.access.ready(false).await?;
    if ready.renewed {
        progress(ctx.format, "Loaded a new SSH certificate.");
    }
    if req.terminal {
        let settings = TerminalSettings {
            configured: env_nonempty("TETHER_TERMINAL"),
            env_terminal: env_nonempty("TERMINAL"),
        };
        let path = std::env::var_os("PATH");
        let launch =
            ctx.access
                .open_terminal(&url, command.as_deref(), &settings, path.as_deref())?;
        progress(
            ctx.format,
            &format!("Opened {} in a new terminal ({}).", url, launch.program),
        );
        if ctx.format == Format::Json {
            println!(
                "{}",
                json!({ "terminal": launch.program, "args": launch.args })
            );
        }
        return Ok(());
    }
    let mut retried = false;
    loop {
        let argv = ctx.access.ssh_argv(&url, command.as_deref(), false);
        let span = tracing::info_span!(
            "ssh_connection",
            project = %project,
            environment = %env.id,
            address = %url,
            retried
        );
        let (code, stderr) = tracing::Instrument::instrument(run_ssh(ctx, &argv), span).await?;
        tracing::info!(code, "ssh ended");
        if code == 0 {
            return Ok(());
        }
        match ctx.access.after_refusal(&stderr, retried) {
            AfterRefusal::GiveUp => return Err(RemoteExit(code).into()),
            AfterRefusal::RetryWithNewCertificate => {
                progress(
                    ctx.format,
                    "The environment requires MFA; loading a new certificate and trying again…",
                );
                ctx.access.ready(true).await?;
            }
            AfterRefusal::SignIn(step_up) => {
                if !offer_step_up(ctx, &step_up).await? {
                    return Err(ApiError::StepUp(step_up).into());
                }
            }
        }
        retried = true;
    }
}

/// Runs the system ssh with the caller's terminal, passing its stderr through while keeping a
/// copy to diagnose refusals. Returns the exit status and what ssh printed on stderr.
async fn run_ssh(ctx: &Ctx, argv: &[String]) -> Result<(u8, String)> {
    let mut child = tokio::process::Command::from(ctx.access.ssh_command(argv))
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run ssh: is OpenSSH installed?")?;
    let mut pipe = child.stderr.take().context("no stderr")?;
    let mut copy = Vec::new();
    let mut out = tokio::io::stderr();
    let mut buf = [0u8; 8192];
    loop {
        let n = pipe.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]).await?;
        out.flush().await?;
        if copy.len() < 64 * 1024 {
            copy.extend_from_slice(&buf[..n]);
        }
    }
    let status = child.wait().await?;
    let code = status
        .code()
        .and_then(|c| u8::try_from(c).ok())
        .unwrap_or(255);
    Ok((code, String::from_utf8_lossy(&copy).into_owned()))
}
