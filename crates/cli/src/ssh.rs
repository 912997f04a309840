//! `tether ssh`: print the address (`--pipe`, `--all`), run the system `ssh` with the
//! session's certificate and the user's options, or open the session in the user's terminal.
//! What to do after ssh failed (new certificate, sign in with MFA, give up) is core's decision;
//! a remote command is never run a second time by Tether: after a remedy the user is told to
//! run it again, and only an interactive session reconnects (once).

use std::process::Stdio;

use anyhow::{Context, Result};
use serde_json::json;
use tether_core::access::{AccessError, AfterRefusal};
use tether_core::api::ApiError;
use tether_core::guard::Entry;
use tether_core::select::{EnvironmentRef, ProjectRef};
use tether_core::ssh::terminal::TerminalSettings;
use tether_core::ssh::{remote_command, Selection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::browse::{address, choose_environment, choose_project, named_app};
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
    pub project: Option<ProjectRef>,
    pub environment: Option<EnvironmentRef>,
    pub selection: Selection,
    pub pipe: bool,
    pub all: bool,
    pub terminal: bool,
    /// Do not ask before a shell on a production environment.
    pub yes: bool,
    /// ssh options from `-o`, in ssh_config form.
    pub options: Vec<String>,
    pub command: Vec<String>,
}

pub async fn ssh(ctx: &Ctx, req: SshRequest) -> Result<()> {
    match ssh_once(ctx, &req).await {
        // Only a step-up the API asked for before ssh ran (an `AccessError`) is retried here:
        // nothing remote ran yet. After ssh, `after_failure` decides.
        Err(e) if e.downcast_ref::<RemoteExit>().is_none() => {
            let step_up = e
                .chain()
                .find_map(|c| c.downcast_ref::<AccessError>()?.step_up());
            match step_up {
                Some(s) if offer_step_up(ctx, &s).await? => ssh_once(ctx, &req).await,
                _ => Err(e),
            }
        }
        other => other,
    }
}

/// The options for ssh: those of the profile's `*_SSH_OPTIONS` variable, then `-o`'s.
fn ssh_options(ctx: &Ctx, given: &[String]) -> Vec<String> {
    let mut options = env_nonempty(&ctx.access.ssh_options_variable())
        .map(|v| ctx.access.ssh_options_from(&v))
        .unwrap_or_default();
    options.extend(given.iter().cloned());
    options
}

async fn ssh_once(ctx: &Ctx, req: &SshRequest) -> Result<()> {
    let chosen = choose_project(ctx, req.project.as_ref()).await?;
    let env = choose_environment(ctx, &chosen, req.environment.as_ref()).await?;
    let project = chosen.project.clone();
    let mut selection = req.selection.clone();
    selection.app = named_app(&chosen, selection.app.as_ref())?;
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
    let url = address(ctx, &project, &env, selection).await?;
    if req.pipe {
        println!("{url}");
        return Ok(());
    }
    let command = remote_command(&req.command);
    if command.is_none() {
        crate::guard::confirm_in(ctx, &project, &env, Entry::Terminal, req.yes)?;
    }
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
    let options = ssh_options(ctx, &req.options);
    let mut retried = false;
    loop {
        let argv = ctx
            .access
            .ssh_argv(&url, command.as_deref(), false, &options);
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
        after_failure(ctx, code, &stderr, retried, command.is_some()).await?;
        retried = true;
    }
}

/// What to do after ssh ended with `code`: `Ok` to reconnect (an interactive session, once),
/// else the error to end with: ssh's status ([`RemoteExit`]), or the step-up the user declined
/// or cannot take here (exit code 4).
async fn after_failure(
    ctx: &Ctx,
    code: u8,
    stderr: &str,
    retried: bool,
    has_command: bool,
) -> Result<()> {
    match ctx.access.after_ssh(code, stderr, retried) {
        AfterRefusal::GiveUp => Err(RemoteExit(code).into()),
        AfterRefusal::NewCertificate => {
            ctx.access
                .ready(true)
                .await
                .context("the SSH certificate is out of date and a new one could not be loaded")?;
            if has_command {
                progress(
                    ctx.format,
                    "The SSH certificate was out of date; a new one is loaded. Please run the command again.",
                );
                return Err(RemoteExit(code).into());
            }
            progress(
                ctx.format,
                "The SSH certificate was out of date; a new one is loaded. Connecting again…",
            );
            Ok(())
        }
        AfterRefusal::SignIn(step_up) => {
            if !offer_step_up(ctx, &step_up).await? {
                return Err(ApiError::StepUp(step_up).into());
            }
            if has_command {
                progress(ctx.format, "Signed in. Please run the command again.");
                return Err(RemoteExit(code).into());
            }
            Ok(())
        }
    }
}

/// Runs the system ssh with the caller's terminal, passing its stderr through while keeping a
/// copy to diagnose refusals. Returns the exit status and what ssh printed on stderr.
async fn run_ssh(ctx: &Ctx, argv: &[String]) -> Result<(u8, String)> {
    run_passing_stderr(ctx.access.ssh_command(argv), "ssh: is OpenSSH installed?").await
}

/// Runs a program with the caller's terminal, passing its stderr through while keeping a
/// copy (up to 64 KiB) to diagnose a refusal from. Returns its exit status (255 when a signal
/// ended it) and that copy. `what` completes "cannot run …" when it cannot start.
pub(crate) async fn run_passing_stderr(
    cmd: std::process::Command,
    what: &str,
) -> Result<(u8, String)> {
    let mut child = tokio::process::Command::from(cmd)
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {what}"))?;
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
