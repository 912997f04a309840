//! `tunnel:open`, `tunnel:single`, `tunnel:list`, `tunnel:info`, `tunnel:close`: the official
//! client's tunnel commands. Tunnels live in the agent (started headless when none runs), so
//! they outlive the command, reconnect by themselves and show in the tray; `tunnel:single`
//! runs one in the foreground without an agent.

use std::io::{BufRead, IsTerminal, Write};
use std::net::IpAddr;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use tether_core::agent::{self, AgentClient, Reply, Request};
use tether_core::api::AppName;
use tether_core::escape::Shown;
use tether_core::guard::Entry;
use tether_core::select::{EnvironmentRef, ProjectRef};
use tether_core::tunnel::{
    local_relationships, AppKey, CloseRequest, OpenReport, OpenRequest, TunnelHost, TunnelInfo,
    TunnelState,
};

use crate::browse::{choose, choose_environment, choose_project, named_app, pick_app};
use crate::context::Ctx;
use crate::output::{self, print, progress};
use crate::Cli;

/// Which app, as the flags say (each may be left out): chosen as the official client chooses
/// (see [`crate::browse`]).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct AppFlags {
    /// The project: an id or a console URL (which may name the environment); else
    /// PLATFORM_PROJECT, else the git repository's platform remote.
    #[arg(short = 'p', long, value_name = "PROJECT")]
    pub project: Option<ProjectRef>,
    /// The environment, `.` for the project's default; else PLATFORM_BRANCH, else the
    /// repository's current branch when it is an environment.
    #[arg(short = 'e', long, value_name = "ENVIRONMENT")]
    pub environment: Option<EnvironmentRef>,
    /// The app; else PLATFORM_APPLICATION_NAME, else the only one.
    #[arg(short = 'A', long)]
    pub app: Option<AppName>,
}

impl AppFlags {
    /// The app, asking for what the flags and surroundings did not say when a person is there.
    pub(crate) async fn resolve(&self, ctx: &Ctx) -> Result<AppKey> {
        let chosen = choose_project(ctx, self.project.as_ref()).await?;
        let env = choose_environment(ctx, &chosen, self.environment.as_ref()).await?;
        let named = named_app(&chosen, self.app.as_ref())?;
        let app = pick_app(ctx, &chosen.project, &env, named).await?;
        Ok(AppKey {
            project: chosen.project,
            environment: env.id,
            app,
        })
    }

    /// The project, asking for it when the flags and surroundings did not say and a person is
    /// there.
    pub(crate) async fn project(&self, ctx: &Ctx) -> Result<tether_core::api::ProjectId> {
        Ok(choose_project(ctx, self.project.as_ref()).await?.project)
    }

    /// The tunnels the flags name (a URL's environment and app included); `-e .` names no
    /// particular environment here.
    fn filter(&self, relationships: Vec<String>) -> CloseRequest {
        let url = self.project.as_ref();
        CloseRequest {
            project: url.map(|p| p.project.clone()),
            environment: self
                .environment
                .as_ref()
                .and_then(|e| e.id().cloned())
                .or_else(|| url.and_then(|p| p.environment.clone())),
            app: self.app.clone().or_else(|| url.and_then(|p| p.app.clone())),
            relationships,
        }
    }
}

/// The running agent, or a new headless one.
async fn agent(ctx: &Ctx, cli: &Cli) -> Result<AgentClient> {
    let paths = ctx.access.paths();
    let socket = agent::socket_path(paths, ctx.profile());
    if let Some(client) = AgentClient::connect(&socket).await? {
        return Ok(client);
    }
    let program = std::env::current_exe().context("cannot find the tether executable")?;
    let args: Vec<std::ffi::OsString> = vec![
        "--profile".into(),
        cli.profile.clone().into(),
        "--inactivity-limit".into(),
        format!("{}s", cli.inactivity_limit.as_secs()).into(),
        "agent".into(),
    ];
    let log = crate::agent::log_path(cli)?;
    let client = agent::start_headless(&program, &args, paths, ctx.profile(), &log).await?;
    progress(
        ctx.format,
        &format!(
            "Started the Tether agent in the background (log: {}).",
            log.display()
        ),
    );
    Ok(client)
}

/// The running agent; `None` when there is none (so there are no tunnels).
async fn running_agent(ctx: &Ctx) -> Result<Option<AgentClient>> {
    let socket = agent::socket_path(ctx.access.paths(), ctx.profile());
    Ok(AgentClient::connect(&socket).await?)
}

async fn all_tunnels(ctx: &Ctx) -> Result<Vec<TunnelInfo>> {
    let Some(mut client) = running_agent(ctx).await? else {
        return Ok(Vec::new());
    };
    match client.request(&Request::TunnelList).await? {
        Reply::Tunnels { tunnels } => Ok(tunnels),
        other => bail!("the agent answered {other:?} to tunnel:list"),
    }
}

/// Where tunnels listen, and whether to open them on a production environment without asking.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct OpenFlags {
    /// Listen on this address instead of 127.0.0.1 (anyone who can reach it can use the
    /// tunnel).
    #[arg(long, value_name = "ADDRESS")]
    pub bind: Option<IpAddr>,
    /// Do not ask before opening tunnels to a production environment, or before listening on
    /// every address (--bind 0.0.0.0 or ::).
    #[arg(short = 'y', long)]
    pub yes: bool,
}

pub struct OpenArgs {
    pub app: AppFlags,
    pub relationships: Vec<String>,
    pub port: Option<u16>,
    pub bind: OpenFlags,
}

pub async fn open(ctx: &Ctx, cli: &Cli, args: OpenArgs) -> Result<()> {
    let app = args.app.resolve(ctx).await?;
    crate::guard::confirm(ctx, &app, Entry::Tunnel, args.bind.yes).await?;
    let bind = args.bind.bind;
    confirm_wildcard(bind, args.bind.yes)?;
    warn_about_bind(ctx, bind);
    let mut client = agent(ctx, cli).await?;
    let request = OpenRequest {
        app,
        relationships: args.relationships,
        port: args.port,
        bind,
    };
    let report = match client
        .request(&Request::TunnelOpen(request.clone()))
        .await?
    {
        Reply::Opened(report) => report,
        other => bail!("the agent answered {other:?} to tunnel:open"),
    };
    print(ctx.format, &report, || opened_text(&report, cli));
    if report.tunnels.is_empty() {
        bail!(
            "no tunnel could be opened for {}: {}",
            request.app,
            report
                .failed
                .iter()
                .map(|f| f.message.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    Ok(())
}

/// Asks the person at a terminal before listening on every address (`0.0.0.0`, `::`): the
/// tunnels then carry anyone on any network this machine is on to the service, with its
/// credentials. Default no. Without a terminal (a script) the warning below is all, as for a
/// production environment; `-y` answers yes.
fn confirm_wildcard(bind: Option<IpAddr>, yes: bool) -> Result<()> {
    let Some(ip) = bind.filter(IpAddr::is_unspecified) else {
        return Ok(());
    };
    if yes || !std::io::stdin().is_terminal() {
        return Ok(());
    }
    let mut err = std::io::stderr();
    write!(
        err,
        "Listen on every address ({ip})? Anyone who can reach this machine on any network could          use the tunnels, with the services' credentials. [y/N] "
    )?;
    err.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    match line.trim() {
        "y" | "Y" | "yes" | "Yes" => Ok(()),
        _ => bail!(UsageError(format!(
            "nothing opened: you chose not to listen on {ip}; leave out --bind to listen on              127.0.0.1 only"
        ))),
    }
}

fn warn_about_bind(ctx: &Ctx, bind: Option<IpAddr>) {
    if let Some(ip) = bind.filter(|ip| !ip.is_loopback()) {
        progress(
            ctx.format,
            &format!(
                "Warning: the tunnels listen on {ip}, so anyone who can reach that address can use them, with the service's credentials."
            ),
        );
    }
}

fn opened_text(report: &OpenReport, cli: &Cli) -> String {
    let mut t = String::new();
    for tunnel in &report.tunnels {
        t.push_str(&format!(
            "SSH tunnel opened to {} at: {}\n  local address: {}\n",
            tunnel.relationship_label(),
            Shown(&tunnel.url),
            tunnel.local
        ));
        if let Some(displaced) = &tunnel.displaced {
            t.push_str(&format!("  Note: {displaced}.\n"));
        }
    }
    for f in &report.failed {
        t.push_str(&format!(
            "Not opened: {}: {}\n",
            Shown(&f.relationship),
            Shown(&f.message)
        ));
    }
    if report.tunnels.is_empty() {
        return t.trim_end().to_string();
    }
    let log = crate::agent::log_path(cli)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "the data directory's logs/".into());
    t.push_str(&format!(
        "\nThe tunnels are kept by the Tether agent: they reconnect by themselves and show in the tray.\n\
         List tunnels with:  tether tunnel:list\n\
         View tunnel details with:  tether tunnel:info\n\
         Close tunnels with:  tether tunnel:close\n\
         The agent's log:  {log}\n\n\
         Save encoded tunnel details to the PLATFORM_RELATIONSHIPS variable using:\n  \
         export PLATFORM_RELATIONSHIPS=\"$(tether tunnel:info --encode)\""
    ));
    t
}

trait Label {
    fn relationship_label(&self) -> String;
}

impl Label for TunnelInfo {
    /// `database` of `proj/main/app`, as a person reads it.
    fn relationship_label(&self) -> String {
        format!("{} of {}", Shown(&self.endpoint_id().to_string()), self.app)
    }
}

pub struct SingleArgs {
    pub app: AppFlags,
    pub relationship: Option<String>,
    pub port: Option<u16>,
    pub bind: OpenFlags,
}

/// One tunnel in the foreground, hosted by this process; Ctrl-C closes it.
pub async fn single(ctx: Ctx, args: SingleArgs) -> Result<()> {
    let app = args.app.resolve(&ctx).await?;
    let yes = args.bind.yes;
    let bind = args.bind.bind;
    crate::guard::confirm(&ctx, &app, Entry::Tunnel, yes).await?;
    confirm_wildcard(bind, yes)?;
    warn_about_bind(&ctx, bind);
    let format = ctx.format;
    let access = Arc::new(ctx.access);
    let host = TunnelHost::new(access.clone());
    let relationship = match args.relationship {
        Some(r) => r,
        None => {
            let relationships = host.relationships(&app).await?;
            let names: Vec<String> = relationships
                .endpoints()
                .map(|e| e.id().to_string())
                .collect();
            match names.as_slice() {
                [only] => only.clone(),
                [] => bail!(tether_core::tunnel::TunnelError::NoRelationships { app }),
                _ => choose_relationship(&names)?,
            }
        }
    };
    let report = host
        .open(&OpenRequest {
            app,
            relationships: vec![relationship],
            port: args.port,
            bind,
        })
        .await?;
    let Some(tunnel) = report.tunnels.first() else {
        let why = report
            .failed
            .first()
            .map(|f| f.message.clone())
            .unwrap_or_default();
        bail!("the tunnel could not be opened: {why}");
    };
    print(format, tunnel, || {
        format!(
            "SSH tunnel opened to {} at: {}\n  local address: {}\n{}\nQuit with Ctrl+C.",
            tunnel.relationship_label(),
            Shown(&tunnel.url),
            tunnel.local,
            tunnel
                .displaced
                .as_ref()
                .map(|d| format!("  Note: {d}.\n"))
                .unwrap_or_default()
        )
    });
    let _ = std::io::stdout().flush();
    crate::agent::wait_for_signal().await?;
    host.close_all().await;
    progress(format, "Tunnel closed.");
    Ok(())
}

fn choose_relationship(names: &[String]) -> Result<String> {
    let options: Vec<(String, String)> = names.iter().map(|n| (n.clone(), n.clone())).collect();
    match choose("a relationship", &options)? {
        Some(name) => Ok(name),
        None => bail!(
            "this app has several relationships: choose one with -r ({})",
            names
                .iter()
                .map(|n| Shown(n).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

pub async fn list(ctx: &Ctx, app: AppFlags, all: bool) -> Result<()> {
    let filter = if all {
        CloseRequest::default()
    } else {
        app.filter(Vec::new())
    };
    let tunnels: Vec<TunnelInfo> = all_tunnels(ctx)
        .await?
        .into_iter()
        .filter(|t| filter.matches(t))
        .collect();
    print(ctx.format, &tunnels, || list_text(&tunnels));
    Ok(())
}

fn list_text(tunnels: &[TunnelInfo]) -> String {
    if tunnels.is_empty() {
        return "No tunnels are open. Open them with: tether tunnel:open".to_string();
    }
    let mut t = format!(
        "{:<22} {:<14} {:<12} {:<14} {:<40} {:>6} {:>10} {:>10}  {}",
        "LOCAL",
        "PROJECT",
        "ENVIRONMENT",
        "APP",
        "RELATIONSHIP → REMOTE",
        "CONNS",
        "SENT",
        "RECEIVED",
        "STATE"
    );
    for x in tunnels {
        t.push_str(&format!(
            "\n{:<22} {:<14} {:<12} {:<14} {:<40} {:>6} {:>10} {:>10}  {}",
            x.local.to_string(),
            x.app.project.as_str(),
            x.app.environment.as_str(),
            x.app.app.as_str(),
            format!(
                "{} → {}",
                Shown(&x.endpoint_id().to_string()),
                Shown(&x.remote)
            ),
            x.counters.connections,
            bytes(x.counters.bytes_sent),
            bytes(x.counters.bytes_received),
            state_text(&x.state, x.last_error.as_deref()),
        ));
    }
    t
}

fn state_text(state: &TunnelState, last_error: Option<&str>) -> String {
    match (state, last_error) {
        (TunnelState::Open, Some(e)) => format!("open (last connection failed: {})", Shown(e)),
        _ => state.to_string(),
    }
}

/// A tunnel's byte count, in binary units (`1.5 KiB`).
fn bytes(n: u64) -> String {
    tether_core::size::binary(n as f64)
}

pub async fn info(
    ctx: &Ctx,
    app: AppFlags,
    relationships: Vec<String>,
    property: Option<String>,
    encode: bool,
) -> Result<()> {
    let filter = app.filter(relationships);
    let tunnels: Vec<TunnelInfo> = all_tunnels(ctx)
        .await?
        .into_iter()
        .filter(|t| filter.matches(t))
        .collect();
    if tunnels.is_empty() {
        bail!(NoTunnels);
    }
    // Every app's tunnels in one object, as the official client's tunnel:info gives them.
    let local = local_relationships(&tunnels);
    if encode {
        println!("{}", local.encode().expose());
        return Ok(());
    }
    match property {
        Some(path) => output::property(ctx.format, local.property(&path)?),
        None => print(ctx.format, local.as_json(), || {
            serde_json::to_string_pretty(local.as_json()).unwrap_or_default()
        }),
    }
    Ok(())
}

pub async fn close(
    ctx: &Ctx,
    app: AppFlags,
    relationships: Vec<String>,
    all: bool,
    yes: bool,
) -> Result<()> {
    let filter = if all {
        CloseRequest::default()
    } else {
        app.filter(relationships)
    };
    if !all && filter == CloseRequest::default() && !yes && !std::io::stdin().is_terminal() {
        bail!(UsageError(
            "say which tunnels to close: --all, or -p/-e/-A and -r".into()
        ));
    }
    let Some(mut client) = running_agent(ctx).await? else {
        progress(ctx.format, "No tunnels are open.");
        print(ctx.format, &Vec::<TunnelInfo>::new(), String::new);
        return Ok(());
    };
    let chosen: Vec<TunnelInfo> = match client.request(&Request::TunnelList).await? {
        Reply::Tunnels { tunnels } => tunnels.into_iter().filter(|t| filter.matches(t)).collect(),
        other => bail!("the agent answered {other:?} to tunnel:list"),
    };
    if chosen.is_empty() {
        progress(ctx.format, "No open tunnel matches.");
        print(ctx.format, &chosen, String::new);
        return Ok(());
    }
    if !yes && std::io::stdin().is_terminal() && !confirm(&chosen)? {
        bail!("nothing closed");
    }
    let closed = match client.request(&Request::TunnelClose(filter)).await? {
        Reply::Tunnels { tunnels } => tunnels,
        other => bail!("the agent answered {other:?} to tunnel:close"),
    };
    print(ctx.format, &closed, || {
        closed
            .iter()
            .map(|t| {
                format!(
                    "Closed the tunnel to {} on {}.",
                    t.relationship_label(),
                    t.local
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

fn confirm(tunnels: &[TunnelInfo]) -> Result<bool> {
    let mut err = std::io::stderr();
    writeln!(err, "Close these tunnels?")?;
    for t in tunnels {
        writeln!(err, "  {} on {}", t.relationship_label(), t.local)?;
    }
    write!(err, "[y/N] ")?;
    err.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "Yes"))
}

/// `tunnel:info` with nothing open.
#[derive(Debug)]
struct NoTunnels;

impl std::fmt::Display for NoTunnels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no tunnels are open: open them with `tether tunnel:open`")
    }
}

impl std::error::Error for NoTunnels {}

/// A request that cannot be served as asked (exit code 1, like the official client).
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}
