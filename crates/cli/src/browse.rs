//! Browsing and `tether ssh`: choose a project, environment and app (from flags, or from a
//! list when a person is at the terminal), then print the address, run `ssh`, or open the
//! user's terminal. MFA refusals from the gateway lead to an MFA sign-in and one retry.

use std::io::{BufRead, IsTerminal, Write};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use tether_core::api::{Deployment, Environment};
use tether_core::catalog::{Catalog, CatalogError};
use tether_core::cert::{CertKeeper, RenewalPolicy};
use tether_core::openssh::{self, SshFiles};
use tether_core::ssh::command::{mfa_remedy, required_amr, ssh_args, MfaRemedy};
use tether_core::ssh::resolve::{all_urls, instances};
use tether_core::ssh::terminal::{self, TerminalSettings};
use tether_core::ssh::{remote_command, ResolveError, Selection, SshUrl};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::commands::{env_nonempty, Ctx, RemoteExit};
use crate::output::{print, progress};
use crate::Format;

/// How long listings are reused within one run.
const CACHE_TTL: Duration = Duration::from_secs(60);

pub fn catalog(ctx: &Ctx) -> Catalog {
    Catalog::new(ctx.session.clone(), ctx.api.clone(), CACHE_TTL)
}

/// Asks the person at the terminal to pick one; `None` when nobody is there to ask.
fn choose(what: &str, options: &[(String, String)]) -> Result<Option<String>> {
    if !std::io::stdin().is_terminal() || options.is_empty() {
        return Ok(None);
    }
    if let [(_, only)] = options {
        return Ok(Some(only.clone()));
    }
    let mut err = std::io::stderr();
    writeln!(err, "Choose {what}:")?;
    for (i, (label, _)) in options.iter().enumerate() {
        writeln!(err, "  [{}] {label}", i + 1)?;
    }
    loop {
        write!(err, "Number (1-{}): ", options.len())?;
        err.flush()?;
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line)? == 0 {
            bail!("no choice made");
        }
        if let Some((_, v)) = line
            .trim()
            .parse::<usize>()
            .ok()
            .and_then(|n| options.get(n.wrapping_sub(1)))
        {
            return Ok(Some(v.clone()));
        }
    }
}

pub async fn pick_project(cat: &Catalog, given: Option<String>) -> Result<String> {
    if let Some(p) = given {
        return Ok(p);
    }
    let projects = cat.projects().await?;
    let options: Vec<(String, String)> = projects
        .iter()
        .map(|p| {
            (
                format!("{} ({}, {})", p.title, p.id, p.region),
                p.id.clone(),
            )
        })
        .collect();
    choose("a project", &options)?.ok_or_else(|| {
        anyhow!(
            "choose a project with -p: {}",
            projects
                .iter()
                .map(|p| format!("{} ({})", p.id, p.title))
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

pub async fn pick_environment(
    cat: &Catalog,
    project: &str,
    given: Option<String>,
) -> Result<Environment> {
    if let Some(e) = given {
        return Ok(cat.environment(project, &e).await?);
    }
    let envs = cat.environments(project).await?;
    let options: Vec<(String, String)> = envs
        .iter()
        .map(|e| (format!("{} ({}, {})", e.id, e.status, e.kind), e.id.clone()))
        .collect();
    let id = choose("an environment", &options)?.ok_or_else(|| {
        anyhow!(
            "choose an environment with -e: {}",
            envs.iter()
                .map(|e| e.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    Ok(cat.environment(project, &id).await?)
}

pub async fn projects(ctx: &Ctx) -> Result<()> {
    let list = catalog(ctx).projects().await?;
    print(ctx.format, &list, || {
        let mut t = format!("{:<16} {:<10} {}", "ID", "REGION", "TITLE");
        for p in &list {
            t.push_str(&format!("\n{:<16} {:<10} {}", p.id, p.region, p.title));
        }
        t
    });
    Ok(())
}

pub async fn environments(ctx: &Ctx, project: Option<String>) -> Result<()> {
    let cat = catalog(ctx);
    let project = pick_project(&cat, project).await?;
    let list = cat.environments(&project).await?;
    print(ctx.format, &list, || {
        let mut t = format!(
            "{:<20} {:<28} {:<10} {}",
            "ID", "MACHINE NAME", "STATUS", "TYPE"
        );
        for e in &list {
            t.push_str(&format!(
                "\n{:<20} {:<28} {:<10} {}",
                e.id, e.machine_name, e.status, e.kind
            ));
        }
        t
    });
    Ok(())
}

fn no_deployment(env: &Environment) -> anyhow::Error {
    CatalogError::Resolve(ResolveError::NoDeployment {
        env: env.id.clone(),
    })
    .into()
}

pub async fn apps(ctx: &Ctx, project: Option<String>, environment: Option<String>) -> Result<()> {
    let cat = catalog(ctx);
    let project = pick_project(&cat, project).await?;
    let env = pick_environment(&cat, &project, environment).await?;
    let deployment: Deployment = cat
        .deployment(&project, &env)
        .await?
        .ok_or_else(|| no_deployment(&env))?;
    let rows: Vec<serde_json::Value> = deployment
        .apps
        .iter()
        .map(|a| json!({ "name": a.name, "type": a.kind, "size": a.size, "kind": "app", "instances": instances(&env, &a.name).len().max(1) }))
        .chain(deployment.workers.iter().map(|w| {
            json!({ "name": w.name, "type": w.kind, "size": w.size, "kind": "worker", "instances": 1 })
        }))
        .collect();
    print(ctx.format, &rows, || {
        let mut t = format!(
            "{:<24} {:<8} {:<14} {:<6} {}",
            "NAME", "KIND", "TYPE", "SIZE", "INSTANCES"
        );
        for r in &rows {
            t.push_str(&format!(
                "\n{:<24} {:<8} {:<14} {:<6} {}",
                r["name"].as_str().unwrap_or_default(),
                r["kind"].as_str().unwrap_or_default(),
                r["type"].as_str().unwrap_or_default(),
                r["size"].as_str().unwrap_or_default(),
                r["instances"]
            ));
        }
        t
    });
    Ok(())
}

pub struct SshRequest {
    pub project: Option<String>,
    pub environment: Option<String>,
    pub selection: Selection,
    pub pipe: bool,
    pub all: bool,
    pub terminal: bool,
    pub command: Vec<String>,
}

/// Resolves the choice, asking for what is missing when a person is there.
async fn resolve(
    cat: &Catalog,
    project: &str,
    env: &Environment,
    mut selection: Selection,
) -> Result<SshUrl> {
    loop {
        match cat.resolve(project, &env.id, &selection).await {
            Ok(url) => return Ok(url),
            Err(CatalogError::Resolve(ResolveError::ChooseApp { available })) => {
                let options: Vec<(String, String)> =
                    available.iter().map(|a| (a.clone(), a.clone())).collect();
                match choose("an app", &options)? {
                    Some(a) => selection.app = Some(a),
                    None => {
                        return Err(
                            CatalogError::Resolve(ResolveError::ChooseApp { available }).into()
                        )
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// On a terminal, offers the sign-in a step-up asks for; true when the user signed in again.
async fn offer_step_up(ctx: &Ctx, step_up: &tether_core::api::StepUp) -> Result<bool> {
    if !std::io::stdin().is_terminal() || ctx.session.uses_env_token() {
        return Ok(false);
    }
    eprint!(
        "{} Sign in again now? [Y/n] ",
        step_up
            .message(false)
            .split(" Sign in again")
            .next()
            .unwrap_or_default()
    );
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if !matches!(answer.trim().to_lowercase().as_str(), "" | "y" | "yes") {
        return Ok(false);
    }
    crate::commands::login(
        ctx,
        step_up.login_request(),
        false,
        false,
        Duration::from_secs(300),
    )
    .await?;
    Ok(true)
}

pub async fn ssh(ctx: &Ctx, req: SshRequest) -> Result<()> {
    match ssh_once(ctx, &req).await {
        Err(e) => {
            let step_up = e
                .chain()
                .find_map(|c| match c.downcast_ref::<CatalogError>() {
                    Some(CatalogError::Api(tether_core::api::ApiError::StepUp(s))) => {
                        Some(s.clone())
                    }
                    _ => None,
                });
            match step_up {
                Some(s) if offer_step_up(ctx, &s).await? => ssh_once(ctx, &req).await,
                _ => Err(e),
            }
        }
        ok => ok,
    }
}

async fn ssh_once(ctx: &Ctx, req: &SshRequest) -> Result<()> {
    let cat = catalog(ctx);
    let project = pick_project(&cat, req.project.clone()).await?;
    let env = pick_environment(&cat, &project, req.environment.clone()).await?;
    if req.all {
        let urls = all_urls(&env, &ctx.profile)?;
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
    let url = resolve(&cat, &project, &env, req.selection.clone()).await?;
    if req.pipe {
        println!("{url}");
        return Ok(());
    }
    let command = remote_command(&req.command);
    let keeper = load_certificate(ctx).await?;
    if req.terminal {
        return open_terminal(ctx, &keeper, &url, command.as_deref());
    }
    let mut retried = false;
    loop {
        let args = ssh_args(
            &ctx.profile,
            keeper.files(),
            &SshFiles::new(&ctx.paths, &ctx.profile),
            &url,
            command.as_deref(),
            false,
        );
        let (code, stderr) = run_ssh(&args).await?;
        if code == 0 {
            return Ok(());
        }
        let Some(amr) = required_amr(&stderr).filter(|_| !retried) else {
            return Err(RemoteExit(code).into());
        };
        retried = true;
        let has_mfa = keeper
            .files()
            .read_certificate()
            .is_some_and(|c| c.extensions().contains_key("has-mfa@platform.sh"));
        let amr = match mfa_remedy(&amr, has_mfa) {
            MfaRemedy::NewCertificate => {
                progress(
                    ctx.format,
                    "The environment requires MFA; loading a new certificate and trying again…",
                );
                keeper.ensure(true).await?;
                continue;
            }
            MfaRemedy::SignIn(amr) => amr,
        };
        let step_up = tether_core::api::StepUp::for_amr(amr, None);
        if !offer_step_up(ctx, &step_up).await? {
            return Err(tether_core::api::ApiError::StepUp(step_up).into());
        }
    }
}

/// Makes sure a usable certificate and the session's SSH files are in place.
pub async fn load_certificate(ctx: &Ctx) -> Result<CertKeeper> {
    let keeper = CertKeeper::new(ctx.session.clone(), RenewalPolicy::default());
    let ensured = keeper.ensure(false).await?;
    if ensured.renewed {
        progress(ctx.format, "Loaded a new SSH certificate.");
    }
    openssh::write_session_files(
        &ctx.profile,
        keeper.files(),
        &SshFiles::new(&ctx.paths, &ctx.profile),
        None,
    )?;
    Ok(keeper)
}

/// Runs the system ssh with the caller's terminal, passing its stderr through while keeping a
/// copy to diagnose refusals. Returns the exit status and what ssh printed on stderr.
async fn run_ssh(args: &[String]) -> Result<(u8, String)> {
    let mut child = tokio::process::Command::new("ssh")
        .args(args)
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

fn open_terminal(
    ctx: &Ctx,
    keeper: &CertKeeper,
    url: &SshUrl,
    command: Option<&str>,
) -> Result<()> {
    let mut argv = vec!["ssh".to_string()];
    argv.extend(ssh_args(
        &ctx.profile,
        keeper.files(),
        &SshFiles::new(&ctx.paths, &ctx.profile),
        url,
        command,
        command.is_some(),
    ));
    let settings = TerminalSettings {
        configured: env_nonempty("TETHER_TERMINAL"),
        env_terminal: env_nonempty("TERMINAL"),
    };
    let path = std::env::var_os("PATH");
    let launch = terminal::launch_for(&settings, &argv, |n| {
        terminal::find_on_path(path.as_deref(), n)
    })?;
    terminal::spawn(&launch)?;
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
    Ok(())
}
