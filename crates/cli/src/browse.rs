//! Browsing: `projects`, `environments`, `apps`, and choosing a project, environment, app or
//! instance as the official client does: from flags (an id or a console URL in `-p`, `-e .` for
//! the default environment), then `PLATFORM_PROJECT` / `PLATFORM_BRANCH` /
//! `PLATFORM_APPLICATION_NAME`, then the git repository the command runs in (its platform
//! remote, its current branch), then a list when a person is at the terminal. The rules are
//! core's (`tether_core::select`); this module gathers what they read.

use std::io::{BufRead, IsTerminal, Write};
use std::process::Stdio;

use anyhow::{anyhow, bail, Result};
use serde_json::json;
use tether_core::access::AccessError;
use tether_core::api::{AppName, Deployment, Environment, EnvironmentId, ProjectId};
use tether_core::catalog::{Catalog, CatalogError};
use tether_core::escape::Shown;
use tether_core::guard::environment_label;
use tether_core::select::{
    default_environment, git_remote_names, project_of_git_remote, EnvironmentRef, ProjectRef,
    APP_VARIABLE, BRANCH_VARIABLE, PROJECT_VARIABLE,
};
use tether_core::ssh::resolve::instances;
use tether_core::ssh::{ResolveError, Selection, SshUrl};

use crate::context::{env_nonempty, Ctx};
use crate::output::print;

/// Asks the person at the terminal to pick one; `None` when nobody is there to ask.
pub fn choose<T: Clone>(what: &str, options: &[(String, T)]) -> Result<Option<T>> {
    if !std::io::stdin().is_terminal() || options.is_empty() {
        return Ok(None);
    }
    if let [(_, only)] = options {
        return Ok(Some(only.clone()));
    }
    let mut err = std::io::stderr();
    writeln!(err, "Choose {what}:")?;
    for (i, (label, _)) in options.iter().enumerate() {
        writeln!(err, "  [{}] {}", i + 1, Shown(label))?;
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

pub async fn pick_project(cat: &Catalog, given: Option<ProjectId>) -> Result<ProjectId> {
    if let Some(p) = given {
        return Ok(p);
    }
    let projects = cat.projects().await?;
    let options: Vec<(String, ProjectId)> = projects
        .iter()
        .map(|p| {
            (
                format!("{} ({}, {})", Shown(&p.title), p.id, Shown(&p.region)),
                p.id.clone(),
            )
        })
        .collect();
    choose("a project", &options)?.ok_or_else(|| {
        anyhow!(
            "choose a project with -p: {}",
            projects
                .iter()
                .map(|p| format!("{} ({})", p.id, Shown(&p.title)))
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

pub async fn pick_environment(
    cat: &Catalog,
    project: &ProjectId,
    given: Option<EnvironmentId>,
) -> Result<Environment> {
    if let Some(e) = given {
        return Ok(cat.environment(project, &e).await?);
    }
    let envs = cat.environments(project).await?;
    let options: Vec<(String, EnvironmentId)> = envs
        .iter()
        .map(|e| {
            (
                format!(
                    "{} ({}, {})",
                    environment_label(e.id.as_str(), &e.kind),
                    Shown(&e.status),
                    Shown(&e.kind)
                ),
                e.id.clone(),
            )
        })
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

/// What the git repository the command runs in says: the project its platform remote names
/// and its current branch. Nothing when git is missing or this is no repository.
#[derive(Debug, Default)]
struct Repository {
    project: Option<ProjectId>,
    branch: Option<String>,
}

fn git(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn repository(ctx: &Ctx) -> Repository {
    let project = git_remote_names(ctx.profile()).iter().find_map(|name| {
        let url = git(&["config", "--get", &format!("remote.{name}.url")])?;
        project_of_git_remote(&url)
    });
    if project.is_none() {
        return Repository::default();
    }
    Repository {
        project,
        branch: git(&["symbolic-ref", "--quiet", "--short", "HEAD"]),
    }
}

/// The project, and what a URL in `-p` said of the environment and app.
pub struct Chosen {
    pub project: ProjectId,
    pub environment: Option<EnvironmentRef>,
    pub app: Option<AppName>,
    repository: Repository,
}

/// The project: `-p` (an id or URL), `PLATFORM_PROJECT`, the repository's platform remote, or a
/// choice at the terminal.
pub async fn choose_project(ctx: &Ctx, given: Option<&ProjectRef>) -> Result<Chosen> {
    let repository = repository(ctx);
    if let Some(r) = given {
        return Ok(Chosen {
            project: r.project.clone(),
            environment: r.environment.clone().map(EnvironmentRef::Id),
            app: r.app.clone(),
            repository,
        });
    }
    let from_env = env_nonempty(PROJECT_VARIABLE)
        .map(|v| {
            ProjectId::parse(&v).map_err(|e| anyhow!("{PROJECT_VARIABLE} is not a project id: {e}"))
        })
        .transpose()?;
    if let Some(project) = from_env.or_else(|| repository.project.clone()) {
        tracing::info!(%project, "project from the surroundings");
        return Ok(Chosen {
            project,
            environment: None,
            app: None,
            repository,
        });
    }
    let project = pick_project(ctx.access.catalog(), None).await?;
    Ok(Chosen {
        project,
        environment: None,
        app: None,
        repository,
    })
}

/// The environment: `-e` (`.` for the project's default), the URL's, `PLATFORM_BRANCH`, the
/// repository's current branch when the repository is this project's and the branch is an
/// environment, or a choice at the terminal.
pub async fn choose_environment(
    ctx: &Ctx,
    chosen: &Chosen,
    given: Option<&EnvironmentRef>,
) -> Result<Environment> {
    let cat = ctx.access.catalog();
    let wanted = given
        .cloned()
        .or_else(|| chosen.environment.clone())
        .map(Ok)
        .or_else(|| {
            env_nonempty(BRANCH_VARIABLE).map(|v| {
                EnvironmentRef::parse(&v)
                    .map_err(|e| anyhow!("{BRANCH_VARIABLE} is not an environment id: {e}"))
            })
        })
        .transpose()?;
    match wanted {
        Some(EnvironmentRef::Id(id)) => return Ok(cat.environment(&chosen.project, &id).await?),
        Some(EnvironmentRef::Default) => {
            let envs = cat.environments(&chosen.project).await?;
            let default_branch = cat.default_branch(&chosen.project).await?;
            return default_environment(&envs, default_branch.as_deref())
                .cloned()
                .ok_or_else(|| {
                    anyhow!(
                        "project {} has no single default environment: choose one with -e",
                        chosen.project
                    )
                });
        }
        None => {}
    }
    if chosen.repository.project.as_ref() == Some(&chosen.project) {
        if let Some(branch) = &chosen.repository.branch {
            let envs = cat.environments(&chosen.project).await?;
            if let Some(env) = envs.iter().find(|e| e.id == branch.as_str()) {
                tracing::info!(environment = %env.id, "environment from the current git branch");
                return Ok(cat.environment(&chosen.project, &env.id).await?);
            }
        }
    }
    pick_environment(cat, &chosen.project, None).await
}

/// The app the flags, the URL or `PLATFORM_APPLICATION_NAME` name, if any.
pub fn named_app(chosen: &Chosen, given: Option<&AppName>) -> Result<Option<AppName>> {
    if let Some(a) = given.or(chosen.app.as_ref()) {
        return Ok(Some(a.clone()));
    }
    env_nonempty(APP_VARIABLE)
        .map(|v| AppName::parse(&v).map_err(|e| anyhow!("{APP_VARIABLE} is not an app name: {e}")))
        .transpose()
}

pub async fn projects(ctx: &Ctx) -> Result<()> {
    let list = ctx.access.catalog().projects().await?;
    print(ctx.format, &list, || {
        let mut t = format!("{:<16} {:<10} {}", "ID", "REGION", "TITLE");
        for p in &list {
            t.push_str(&format!(
                "\n{:<16} {:<10} {}",
                p.id,
                Shown(&p.region),
                Shown(&p.title)
            ));
        }
        t
    });
    Ok(())
}

fn project_ref(project: Option<ProjectId>) -> Option<ProjectRef> {
    project.map(|project| ProjectRef {
        project,
        environment: None,
        app: None,
    })
}

pub async fn environments(ctx: &Ctx, project: Option<ProjectId>) -> Result<()> {
    let cat = ctx.access.catalog();
    let project = choose_project(ctx, project_ref(project).as_ref())
        .await?
        .project;
    let list = cat.environments(&project).await?;
    print(ctx.format, &list, || {
        let mut t = format!(
            "{:<20} {:<28} {:<10} {}",
            "ID", "MACHINE NAME", "STATUS", "TYPE"
        );
        for e in &list {
            t.push_str(&format!(
                "\n{:<20} {:<28} {:<10} {}",
                environment_label(e.id.as_str(), &e.kind),
                Shown(&e.machine_name),
                Shown(&e.status),
                Shown(&e.kind)
            ));
        }
        t
    });
    Ok(())
}

fn no_deployment(env: &Environment) -> anyhow::Error {
    CatalogError::Resolve(ResolveError::NoDeployment {
        env: env.id.to_string(),
    })
    .into()
}

pub async fn apps(
    ctx: &Ctx,
    project: Option<ProjectId>,
    environment: Option<EnvironmentId>,
) -> Result<()> {
    let cat = ctx.access.catalog();
    let chosen = choose_project(ctx, project_ref(project).as_ref()).await?;
    let env =
        choose_environment(ctx, &chosen, environment.map(EnvironmentRef::Id).as_ref()).await?;
    let project = chosen.project;
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
                Shown(r["name"].as_str().unwrap_or_default()),
                Shown(r["kind"].as_str().unwrap_or_default()),
                Shown(r["type"].as_str().unwrap_or_default()),
                Shown(r["size"].as_str().unwrap_or_default()),
                r["instances"]
            ));
        }
        t
    });
    Ok(())
}

/// The app to use: the one named, the only one, or one chosen by the person at the terminal.
pub async fn pick_app(
    ctx: &Ctx,
    project: &ProjectId,
    env: &Environment,
    given: Option<AppName>,
) -> Result<AppName> {
    let cat = ctx.access.catalog();
    let deployment: Deployment = cat
        .deployment(project, env)
        .await?
        .ok_or_else(|| no_deployment(env))?;
    let names: Vec<String> = deployment.apps.iter().map(|a| a.name.to_string()).collect();
    if let Some(app) = given {
        if names.iter().any(|n| *n == app.as_str()) {
            return Ok(app);
        }
        return Err(
            AccessError::from(CatalogError::Resolve(ResolveError::AppNotFound {
                env: env.id.to_string(),
                app: app.to_string(),
                available: names,
            }))
            .into(),
        );
    }
    let options: Vec<(String, AppName)> = names
        .iter()
        .filter_map(|a| Some((a.clone(), AppName::parse(a).ok()?)))
        .collect();
    if let [(_, only)] = options.as_slice() {
        return Ok(only.clone());
    }
    match choose("an app", &options)? {
        Some(app) => Ok(app),
        None => Err(
            AccessError::from(CatalogError::Resolve(ResolveError::ChooseApp {
                available: names,
            }))
            .into(),
        ),
    }
}

/// The address of the chosen app, asking for the app when a person is there to choose and the
/// flags did not say.
pub async fn address(
    ctx: &Ctx,
    project: &ProjectId,
    env: &Environment,
    mut selection: Selection,
) -> Result<SshUrl> {
    loop {
        let err = match ctx.access.address(project, &env.id, &selection).await {
            Ok(url) => return Ok(url),
            Err(AccessError::Catalog(CatalogError::Resolve(e))) => e,
            Err(e) => return Err(e.into()),
        };
        let picked = match &err {
            ResolveError::ChooseApp { available } => {
                let options: Vec<(String, AppName)> = available
                    .iter()
                    .filter_map(|a| Some((a.clone(), AppName::parse(a).ok()?)))
                    .collect();
                choose("an app", &options)?.map(|a| selection.app = Some(a))
            }
            _ => None,
        };
        if picked.is_none() {
            return Err(AccessError::from(CatalogError::Resolve(err)).into());
        }
    }
}
