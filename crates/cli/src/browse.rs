//! Browsing: `projects`, `environments`, `apps`, and choosing a project, environment, app or
//! instance from flags, or from a list when a person is at the terminal.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{anyhow, bail, Result};
use serde_json::json;
use tether_core::access::AccessError;
use tether_core::api::{AppName, Deployment, Environment, EnvironmentId, ProjectId};
use tether_core::catalog::{Catalog, CatalogError};
use tether_core::ssh::resolve::instances;
use tether_core::ssh::{ResolveError, Selection, SshUrl};

use crate::context::Ctx;
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

pub async fn pick_project(cat: &Catalog, given: Option<ProjectId>) -> Result<ProjectId> {
    if let Some(p) = given {
        return Ok(p);
    }
    let projects = cat.projects().await?;
    let options: Vec<(String, ProjectId)> = projects
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
    project: &ProjectId,
    given: Option<EnvironmentId>,
) -> Result<Environment> {
    if let Some(e) = given {
        return Ok(cat.environment(project, &e).await?);
    }
    let envs = cat.environments(project).await?;
    let options: Vec<(String, EnvironmentId)> = envs
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
    let list = ctx.access.catalog().projects().await?;
    print(ctx.format, &list, || {
        let mut t = format!("{:<16} {:<10} {}", "ID", "REGION", "TITLE");
        for p in &list {
            t.push_str(&format!("\n{:<16} {:<10} {}", p.id, p.region, p.title));
        }
        t
    });
    Ok(())
}

pub async fn environments(ctx: &Ctx, project: Option<ProjectId>) -> Result<()> {
    let cat = ctx.access.catalog();
    let project = pick_project(cat, project).await?;
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
    let project = pick_project(cat, project).await?;
    let env = pick_environment(cat, &project, environment).await?;
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
