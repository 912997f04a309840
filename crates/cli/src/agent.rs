//! `tether agent` (the agent in the foreground), `agent:status` and `events`.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use tether_core::agent::{self, AgentClient, Bound, Reply, Request, SessionState, Status};

use crate::context::{self, Ctx};
use crate::output::{self, print, progress};
use crate::{Cli, Format};

/// The agent's log, `<data>/logs/agent-<profile>.log`.
pub fn log_path(cli: &Cli) -> Result<std::path::PathBuf> {
    let (profile, _) = context::profile(cli)?;
    Ok(context::paths()?.agent_log(&profile))
}

/// The agent's log file, appended to.
pub fn log_file(cli: &Cli) -> Option<agent::AgentLog> {
    let path = log_path(cli).ok()?;
    tether_core::private_files::create_private_dir(path.parent()?).ok()?;
    agent::AgentLog::open(&path).ok()
}

/// Runs the agent until SIGINT or SIGTERM, or `agent:stop`.
pub async fn run(ctx: Ctx) -> Result<()> {
    let bound = Bound::bind(ctx.access.paths(), ctx.profile())?;
    progress(
        ctx.format,
        &format!(
            "Agent for {} running (pid {}), listening on {}. Stop it with Ctrl-C.",
            ctx.profile().title,
            std::process::id(),
            bound.socket().display()
        ),
    );
    // A headless agent outlives the terminal that started it: a hangup is not a stop.
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    tokio::spawn(async move { while hangup.recv().await.is_some() {} });
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let mut server = tokio::spawn(agent::serve(bound, Arc::new(ctx.access), shutdown));
    tokio::select! {
        r = wait_for_signal() => {
            r?;
            tracing::info!("stopping");
            let _ = stop.send(true);
            (&mut server).await.context("the agent failed")?;
        }
        r = &mut server => r.context("the agent failed")?,
    }
    Ok(())
}

/// Waits for Ctrl-C or SIGTERM.
pub async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

/// Asks the running agent to close its tunnels and stop.
pub async fn stop(ctx: &Ctx) -> Result<()> {
    let socket = agent::socket_path(ctx.access.paths(), ctx.profile());
    let Some(mut client) = AgentClient::connect(&socket).await? else {
        progress(ctx.format, "No agent is running.");
        return Ok(());
    };
    let pid = match client.request(&Request::Status).await? {
        Reply::Status(status) => Some(status.pid),
        _ => None,
    };
    client.request(&Request::Stop).await?;
    // It is gone when its socket no longer answers, or another agent answers there (the
    // desktop app takes over when the headless agent it used stops).
    // Closing tunnels is bounded (a connect gives up within 10 s), so 15 s is enough for an
    // agent that works; one still finishing after that is said to be so, by its pid.
    for _ in 0..600 {
        let gone = match AgentClient::connect(&socket).await {
            Ok(Some(mut c)) => match c.request(&Request::Status).await {
                Ok(Reply::Status(status)) => Some(status.pid) != pid,
                // Still there, finishing (closing tunnels, saving their ports).
                _ => false,
            },
            _ => true,
        };
        if gone {
            progress(ctx.format, "The agent stopped.");
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    match pid {
        Some(pid) => bail!(
            "the agent (pid {pid}) is still finishing after 15 s (closing its tunnels, saving their ports); `tether agent:status` shows when it is gone, and `kill {pid}` ends it"
        ),
        None => bail!("the agent did not stop within 15 s"),
    }
}

async fn connect(ctx: &Ctx) -> Result<AgentClient> {
    let socket = agent::socket_path(ctx.access.paths(), ctx.profile());
    match AgentClient::connect(&socket).await? {
        Some(c) => Ok(c),
        None => bail!(agent::AgentError::NotRunning {
            profile: ctx.profile().title.clone(),
        }),
    }
}

pub async fn status(ctx: &Ctx, follow: bool) -> Result<()> {
    let mut client = connect(ctx).await?;
    let Reply::Status(status) = client.request(&Request::Status).await? else {
        bail!("the agent did not answer with its status");
    };
    print(ctx.format, &status, || status_text(&status));
    if follow {
        stream(ctx, client).await?;
    }
    Ok(())
}

fn status_text(s: &Status) -> String {
    let session = match s.session {
        SessionState::Active => "active: the certificate is kept fresh",
        SessionState::NeedsSignIn => "needs a new sign-in (tether login)",
        SessionState::SignedOut => "signed out (tether login)",
    };
    let certificate = s.certificate.as_ref().map_or("none".to_string(), |c| {
        format!("valid until {}", output::when(c.valid_before))
    });
    let tunnels = match (s.tunnels, s.tunnels_down) {
        (0, _) => "none".to_string(),
        (n, 0) => format!("{n} open"),
        (n, down) => format!("{n} open, {down} not working (tether tunnel:list)"),
    };
    format!(
        "Agent {} (pid {}) for {} since {}\n  session:     {session}\n  certificate: {certificate}\n  tunnels:     {tunnels}\n  last used:   {}\n  signs out after {} s without activity",
        s.version,
        s.pid,
        s.profile,
        output::when(s.started_at),
        s.last_activity
            .map_or("never".to_string(), output::when),
        s.inactivity_limit_secs
    )
}

pub async fn events(ctx: &Ctx) -> Result<()> {
    let client = connect(ctx).await?;
    stream(ctx, client).await
}

/// Prints events as they come (a line each, or JSON lines), until the agent stops.
async fn stream(ctx: &Ctx, mut client: AgentClient) -> Result<()> {
    if !matches!(
        client.request(&Request::Subscribe).await?,
        Reply::Subscribed
    ) {
        bail!("the agent did not accept the subscription");
    }
    use std::io::Write;
    while let Some(reply) = client.next().await? {
        let Reply::Event(event) = reply else { continue };
        let mut out = std::io::stdout().lock();
        match ctx.format {
            Format::Json => writeln!(out, "{}", serde_json::to_string(&event)?)?,
            Format::Text => writeln!(
                out,
                "{}  {}",
                output::utc(output::now()),
                // Events carry names and reasons that come from the platform.
                tether_core::escape::terminal(&agent::describe(&event, output::when))
            )?,
        }
        out.flush()?;
    }
    progress(ctx.format, "The agent stopped.");
    Ok(())
}
