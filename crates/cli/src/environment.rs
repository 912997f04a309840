//! `environment:url`, `environment:logs` and `environment:scp`: the official client's
//! commands for an environment's public URLs, its app's logs and copying files with scp
//! (`legacy/src/Command/Environment/Environment{Url,Log,Scp}Command.php`). The routes, the log
//! file and the scp command line are core's (`tether_core::{routes, transfer}`); this module
//! chooses the environment and app, runs the system tools and renders.
//!
//! Also what the mount commands share with these: the app (container) the flags choose, and
//! running a tool over the session's ssh with the same remedies as `tether ssh`.

use std::io::{IsTerminal, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tether_core::access::AfterRefusal;
use tether_core::api::{AppName, Environment, ProjectId};
use tether_core::escape::Shown;
use tether_core::guard::environment_label;
use tether_core::routes::{self, Route, ROUTES_VARIABLE};
use tether_core::select::{BRANCH_VARIABLE, PROJECT_VARIABLE};
use tether_core::ssh::{Selection, SshUrl};
use tether_core::transfer::{self, Verbosity};

use crate::browse::{address, choose, choose_environment, choose_project, named_app, pick_app};
use crate::context::{env_nonempty, Ctx};
use crate::output::{print, progress};
use crate::ssh::RemoteExit;
use crate::tunnel::AppFlags;
use crate::Format;

/// The app, worker or instance a command acts on (the official client's remote container
/// options).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ContainerFlags {
    #[command(flatten)]
    pub app: AppFlags,
    /// A worker of the app.
    #[arg(long)]
    pub worker: Option<AppName>,
    /// An instance of a multi-instance app.
    #[arg(short = 'I', long)]
    pub instance: Option<String>,
}

/// The chosen container: its environment, its name in the deployment (`app`, `app--worker`)
/// and its SSH address.
pub struct Container {
    pub project: ProjectId,
    pub env: Environment,
    pub name: String,
    pub url: SshUrl,
}

impl Container {
    /// `environment main [PRODUCTION], app app`, as the commands' messages name it.
    pub fn label(&self) -> String {
        let kind = if self.name.contains("--") {
            "worker"
        } else {
            "app"
        };
        format!(
            "environment {}, {kind} {}",
            environment_label(self.env.id.as_str(), &self.env.kind),
            self.name
        )
    }
}

/// Whether a local `PLATFORM_*` variable may stand in for the platform: only when no flag names
/// another project, environment or app than the variables of the container it is set in (the
/// official client's `LocalHost::conflictsWithCommandLineOptions`).
pub fn local_variables_apply(flags: &AppFlags) -> bool {
    let differs = |given: Option<&str>, var: &str| {
        given.is_some_and(|g| env_nonempty(var).as_deref() != Some(g))
    };
    !(differs(
        flags.project.as_ref().map(|p| p.project.as_str()),
        PROJECT_VARIABLE,
    ) || differs(
        flags
            .environment
            .as_ref()
            .and_then(|e| e.id())
            .map(|e| e.as_str()),
        BRANCH_VARIABLE,
    ) || differs(
        flags.app.as_ref().map(|a| a.as_str()),
        tether_core::select::APP_VARIABLE,
    ))
}

/// The project and environment the flags choose.
pub async fn environment(ctx: &Ctx, flags: &AppFlags) -> Result<(ProjectId, Environment)> {
    let chosen = choose_project(ctx, flags.project.as_ref()).await?;
    let env = choose_environment(ctx, &chosen, flags.environment.as_ref()).await?;
    Ok((chosen.project, env))
}

/// The container the flags choose, asking for the app when a person is there.
pub async fn container(ctx: &Ctx, flags: &ContainerFlags) -> Result<Container> {
    let chosen = choose_project(ctx, flags.app.project.as_ref()).await?;
    let env = choose_environment(ctx, &chosen, flags.app.environment.as_ref()).await?;
    let named = named_app(&chosen, flags.app.app.as_ref())?;
    // `-A app--worker` names a worker directly.
    let (named, worker) = match named.as_ref().and_then(|a| a.as_str().split_once("--")) {
        Some((a, w)) if flags.worker.is_none() => {
            (Some(AppName::parse(a)?), Some(AppName::parse(w)?))
        }
        _ => (named, flags.worker.clone()),
    };
    let app = pick_app(ctx, &chosen.project, &env, named).await?;
    let name = match &worker {
        Some(w) if w.as_str().contains("--") => w.to_string(),
        Some(w) => format!("{app}--{w}"),
        None => app.to_string(),
    };
    let selection = Selection {
        app: Some(app),
        instance: flags.instance.clone(),
        worker,
    };
    let url = address(ctx, &chosen.project, &env, selection).await?;
    Ok(Container {
        project: chosen.project,
        env,
        name,
        url,
    })
}

/// The session's ssh options for a tool that adds the destination itself (rsync, scp): the
/// certificate, identity and known hosts, then the profile's `*_SSH_OPTIONS`.
pub fn ssh_options(ctx: &Ctx, url: &SshUrl) -> Vec<String> {
    let user_options = env_nonempty(&ctx.access.ssh_options_variable())
        .map(|v| ctx.access.ssh_options_from(&v))
        .unwrap_or_default();
    let argv = ctx.access.ssh_argv(url, None, false, &user_options);
    transfer::ssh_options(&argv, url)
}

/// Runs a tool that connects through ssh (ssh, rsync, scp) with the caller's terminal, after
/// making sure the certificate is usable. When the gateway refuses an out-of-date certificate,
/// a new one is loaded and the tool runs once more (these commands can be repeated: a copy, a
/// log read); a demand for MFA or SSO is offered as `tether ssh` offers it. The tool's failure
/// becomes tether's exit status.
pub async fn run_tool(ctx: &Ctx, program: &str, args: &[String]) -> Result<()> {
    let ready = ctx.access.ready(false).await?;
    if ready.renewed {
        progress(ctx.format, "Loaded a new SSH certificate.");
    }
    let mut retried = false;
    loop {
        let mut cmd = std::process::Command::new(program);
        cmd.args(args);
        for var in tether_core::access::TOKEN_VARIABLES
            .iter()
            .copied()
            .chain([ctx.profile().token_env_var.as_str()])
        {
            cmd.env_remove(var);
        }
        tracing::debug!(program, ?args, "running");
        let what = format!("{program}: is it installed?");
        let (code, stderr) = crate::ssh::run_passing_stderr(cmd, &what).await?;
        if code == 0 {
            return Ok(());
        }
        // rsync reports ssh's failure as its own status 255 too (its code 12 is a broken
        // stream); scp passes ssh's 255 on as 1, so the refusal's text is what tells.
        let diagnosed = if program == "ssh" {
            ctx.access.after_ssh(code, &stderr, retried)
        } else {
            ctx.access.after_refusal(&stderr, retried)
        };
        match diagnosed {
            AfterRefusal::GiveUp => return Err(RemoteExit(code).into()),
            AfterRefusal::NewCertificate => {
                ctx.access.ready(true).await.context(
                    "the SSH certificate is out of date and a new one could not be loaded",
                )?;
                progress(
                    ctx.format,
                    "The SSH certificate was out of date; a new one is loaded. Trying again…",
                );
            }
            AfterRefusal::SignIn(step_up) => {
                if !crate::session::offer_step_up(ctx, &step_up).await? {
                    return Err(tether_core::api::ApiError::StepUp(step_up).into());
                }
            }
        }
        retried = true;
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct UrlArgs {
    /// The project: an id or a console URL; else PLATFORM_PROJECT, else the git repository's
    /// platform remote.
    #[arg(short = 'p', long, value_name = "PROJECT")]
    pub project: Option<tether_core::select::ProjectRef>,
    /// The environment, `.` for the project's default; else PLATFORM_BRANCH, else the
    /// repository's current branch when it is an environment.
    #[arg(short = 'e', long, value_name = "ENVIRONMENT")]
    pub environment: Option<tether_core::select::EnvironmentRef>,
    /// Only the URL of the primary route.
    #[arg(short = '1', long)]
    pub primary: bool,
    /// The browser to open the URL with (a command); `0` for none. Without it: $BROWSER, else
    /// the system's opener (xdg-open).
    #[arg(long, value_name = "BROWSER")]
    pub browser: Option<String>,
    /// Print the URLs, one per line (the primary first), and open nothing.
    #[arg(long)]
    pub pipe: bool,
}

/// `environment:url`: the environment's URLs, primary first; one opened in the browser when
/// there is a display and a browser, else printed.
pub async fn url(ctx: &Ctx, args: UrlArgs) -> Result<()> {
    let flags = AppFlags {
        project: args.project.clone(),
        environment: args.environment.clone(),
        app: None,
    };
    let routes: Vec<Route> = match env_nonempty(ROUTES_VARIABLE) {
        Some(value) if local_variables_apply(&flags) => {
            tracing::debug!("reading URLs from {ROUTES_VARIABLE}");
            routes::from_variable(&value)?
        }
        _ => {
            let (project, env) = environment(ctx, &flags).await?;
            routes::environment_routes(&ctx.access, &project, &env).await?
        }
    };
    if routes.is_empty() {
        bail!("no URLs found: the environment has no routes");
    }
    let chosen: Vec<&Route> = if args.primary {
        vec![routes::primary(&routes).ok_or_else(|| {
            anyhow!("no primary route found: run without --primary to see every URL")
        })?]
    } else {
        routes.iter().collect()
    };
    let urls: Vec<String> = chosen.iter().map(|r| r.url.clone()).collect();
    if ctx.format == Format::Json {
        print(ctx.format, &chosen, String::new);
        return Ok(());
    }
    let interactive = std::io::stdin().is_terminal();
    if args.pipe || args.browser.as_deref() == Some("0") {
        print_urls(&urls);
        return Ok(());
    }
    // Without a person to choose, one URL only, as the official client prints.
    let shown = if interactive { &urls[..] } else { &urls[..1] };
    let display = routes::has_display(
        std::env::var("DISPLAY").ok().as_deref(),
        std::env::var("WAYLAND_DISPLAY").ok().as_deref(),
    );
    if !display {
        tracing::info!("not opening a URL: no display");
        print_urls(shown);
        return Ok(());
    }
    let url = if urls.len() == 1 {
        urls[0].clone()
    } else {
        let options: Vec<(String, String)> = urls.iter().map(|u| (u.clone(), u.clone())).collect();
        choose("a URL to open", &options)?.unwrap_or_else(|| urls[0].clone())
    };
    let browser_var = env_nonempty("BROWSER");
    let Some((program, argv)) =
        routes::browser_command(args.browser.as_deref(), browser_var.as_deref(), &url)
    else {
        print_urls(shown);
        return Ok(());
    };
    if !on_path(&program) {
        if args.browser.is_some() {
            eprintln!("Command not found: {}", Shown(&program));
        } else {
            tracing::info!(%program, "not opening a URL: no browser found");
        }
        print_urls(shown);
        return Ok(());
    }
    open(&program, &argv)?;
    print_urls(std::slice::from_ref(&url));
    Ok(())
}

fn print_urls(urls: &[String]) {
    print(Format::Text, &urls, || urls.join("\n"));
}

/// Whether a program can be started: a path that exists, or a name found on PATH.
fn on_path(program: &str) -> bool {
    if program.contains('/') {
        return std::path::Path::new(program).exists();
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Starts the browser and gives it a moment to fail; one still running (a browser that stays in
/// the foreground) is left to run and reaped when it ends.
fn open(program: &str, args: &[String]) -> Result<()> {
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot open the browser ({program})"))?;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                bail!("the browser ({program}) failed ({status}): choose one with --browser");
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::spawn(move || child.wait());
    Ok(())
}

#[derive(clap::Args, Debug, Clone)]
pub struct LogsArgs {
    /// The log type: app, access, error, cron, deploy… (`access.log` works too).
    #[arg(value_name = "TYPE")]
    pub log_type: Option<String>,
    #[command(flatten)]
    pub container: ContainerFlags,
    /// How many lines to show.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub lines: u32,
    /// Keep showing what is appended, until interrupted (Ctrl+C).
    #[arg(long)]
    pub tail: bool,
}

/// `environment:logs`: `tail` of a log file on the app, over the session's ssh.
pub async fn logs(ctx: &Ctx, args: LogsArgs) -> Result<()> {
    let c = container(ctx, &args.container).await?;
    let log_type = match args.log_type {
        Some(t) => t,
        None => choose_log(ctx, &c).await?,
    };
    let file = transfer::log_file(&c.url, &log_type)?;
    let command = transfer::log_command(&file, args.lines, args.tail);
    progress(
        ctx.format,
        &format!("Reading log file {}:{file} ({})", c.url, c.label()),
    );
    let argv = ctx.access.ssh_argv(&c.url, Some(&command), false, &[]);
    run_tool(ctx, "ssh", &argv).await
}

/// The log to read, chosen by the person at the terminal from the app's log files.
async fn choose_log(ctx: &Ctx, c: &Container) -> Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!("no log type given: name one, such as `tether logs app` (or access, error, cron, deploy)");
    }
    ctx.access.ready(false).await?;
    let argv = ctx.access.ssh_argv(
        &c.url,
        Some(&transfer::log_list_command(&c.url)),
        false,
        &[],
    );
    let out = ctx
        .access
        .ssh_command(&argv)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .context("cannot run ssh: is OpenSSH installed?")?;
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().rsplit('/').next())
        .filter_map(|n| n.strip_suffix(".log"))
        .map(str::to_string)
        .collect();
    if names.is_empty() {
        names = vec!["access".into(), "error".into()];
    }
    let options: Vec<(String, String)> = names.iter().map(|n| (n.clone(), n.clone())).collect();
    let _ = std::io::stderr().flush();
    choose("a log", &options)?.ok_or_else(|| anyhow!("no log chosen"))
}

#[derive(clap::Args, Debug, Clone)]
pub struct ScpArgs {
    /// Files to copy; `remote:PATH` names a file on the app (relative to its directory).
    #[arg(value_name = "FILES")]
    pub files: Vec<String>,
    #[command(flatten)]
    pub container: ContainerFlags,
    /// Copy directories and what they hold.
    #[arg(short = 'r', long)]
    pub recursive: bool,
}

/// `environment:scp`: the system scp with the session's ssh options; `remote:` names the app.
pub async fn scp(ctx: &Ctx, args: ScpArgs) -> Result<()> {
    // Refused before anything is asked of the platform.
    let placeholder = SshUrl::parse("ssh://check@check.invalid")?;
    transfer::scp_args(&[], &placeholder, &args.files, false, Verbosity::Normal)?;
    let c = container(ctx, &args.container).await?;
    let verbosity = if ctx.format == Format::Json {
        Verbosity::Quiet
    } else {
        Verbosity::Normal
    };
    let argv = transfer::scp_args(
        &ssh_options(ctx, &c.url),
        &c.url,
        &args.files,
        args.recursive,
        verbosity,
    )?;
    progress(ctx.format, &format!("Copying with scp ({}).", c.label()));
    run_tool(ctx, "scp", &argv).await
}
