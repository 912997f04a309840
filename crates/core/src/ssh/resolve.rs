//! From (environment, app, instance or worker) to the [`SshUrl`] the platform links, with an
//! error that lists what exists whenever the choice does not.

use crate::api::{Deployment, Environment};

use super::url::{SshUrl, SshUrlError};

/// What the user asked for, beyond project and environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub app: Option<String>,
    pub instance: Option<String>,
    pub worker: Option<String>,
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("no project {id:?} is available to you; your projects: {}", list(.available))]
    ProjectNotFound { id: String, available: Vec<String> },
    #[error("project {project} has no environment {id:?}; its environments: {}", list(.available))]
    EnvironmentNotFound {
        project: String,
        id: String,
        available: Vec<String>,
    },
    #[error("environment {env} is paused, so it has no SSH: resume it (for example `platform environment:resume -e {env}`) and try again")]
    Paused { env: String },
    #[error("environment {env} is inactive, so it has no SSH: activate it (for example `platform environment:activate -e {env}`) and try again")]
    Inactive { env: String },
    #[error("environment {env} has no current deployment: push code to it, then try again")]
    NoDeployment { env: String },
    #[error("choose an app with --app: {}", list(.available))]
    ChooseApp { available: Vec<String> },
    #[error("environment {env} has no app {app:?}; its apps: {}", list(.available))]
    AppNotFound {
        env: String,
        app: String,
        available: Vec<String>,
    },
    #[error("app {app} has several instances: choose one with --instance: {}", list(.available))]
    ChooseInstance { app: String, available: Vec<String> },
    #[error("app {app} has no instance {instance:?}; its instances: {}", list(.available))]
    InstanceNotFound {
        app: String,
        instance: String,
        available: Vec<String>,
    },
    #[error("app {app} has no worker {worker:?}; its workers: {}", list(.available))]
    WorkerNotFound {
        app: String,
        worker: String,
        available: Vec<String>,
    },
    #[error("the platform publishes no SSH link {link:?} for environment {env}")]
    NoLink { env: String, link: String },
    #[error(transparent)]
    BadLink(#[from] SshUrlError),
}

/// The instance numbers of an app (`pf:ssh:<app>:<n>` links), in order.
pub fn instances(env: &Environment, app: &str) -> Vec<String> {
    let prefix = format!("pf:ssh:{app}:");
    let mut out: Vec<String> = env
        .ssh_links
        .keys()
        .filter_map(|k| k.strip_prefix(&prefix).map(str::to_string))
        .collect();
    out.sort_by_key(|i| (i.parse::<u64>().unwrap_or(u64::MAX), i.clone()));
    out
}

/// Fails unless the environment runs.
pub fn check_running(env: &Environment) -> Result<(), ResolveError> {
    match env.status.as_str() {
        "paused" => Err(ResolveError::Paused {
            env: env.id.clone(),
        }),
        "inactive" => Err(ResolveError::Inactive {
            env: env.id.clone(),
        }),
        _ => Ok(()),
    }
}

pub fn resolve(
    env: &Environment,
    deployment: Option<&Deployment>,
    sel: &Selection,
) -> Result<SshUrl, ResolveError> {
    check_running(env)?;
    let deployment = deployment.ok_or_else(|| ResolveError::NoDeployment {
        env: env.id.clone(),
    })?;
    let apps: Vec<String> = deployment.apps.iter().map(|a| a.name.clone()).collect();
    let workers: Vec<String> = deployment.workers.iter().map(|w| w.name.clone()).collect();
    let app = match (&sel.app, apps.as_slice()) {
        (Some(a), _) => a.clone(),
        (None, [only]) => only.clone(),
        (None, _) => return Err(ResolveError::ChooseApp { available: apps }),
    };
    // `--app app--worker` names a worker directly.
    let (app, worker) = match (app.split_once("--"), &sel.worker) {
        (Some((a, w)), None) => (a.to_string(), Some(w.to_string())),
        _ => (app, sel.worker.clone()),
    };
    if !apps.contains(&app) {
        return Err(ResolveError::AppNotFound {
            env: env.id.clone(),
            app,
            available: apps,
        });
    }
    let link = if let Some(w) = worker {
        let name = if w.contains("--") {
            w.clone()
        } else {
            format!("{app}--{w}")
        };
        if !workers.contains(&name) {
            let mine = workers
                .iter()
                .filter_map(|n| n.strip_prefix(&format!("{app}--")).map(str::to_string))
                .collect();
            return Err(ResolveError::WorkerNotFound {
                app,
                worker: w,
                available: mine,
            });
        }
        format!("pf:ssh:{name}")
    } else {
        let available = instances(env, &app);
        match &sel.instance {
            Some(i) if available.contains(i) => format!("pf:ssh:{app}:{i}"),
            Some(i) => {
                return Err(ResolveError::InstanceNotFound {
                    app,
                    instance: i.clone(),
                    available,
                })
            }
            None if available.len() > 1 => {
                return Err(ResolveError::ChooseInstance { app, available })
            }
            None => format!("pf:ssh:{app}"),
        }
    };
    let href = env
        .ssh_links
        .get(&link)
        .ok_or_else(|| ResolveError::NoLink {
            env: env.id.clone(),
            link: link.clone(),
        })?;
    Ok(SshUrl::parse(href)?)
}

/// Every SSH link of the environment (for `ssh --all`), each checked.
pub fn all_urls(env: &Environment) -> Result<Vec<(String, SshUrl)>, ResolveError> {
    check_running(env)?;
    env.ssh_links
        .iter()
        .map(|(k, v)| {
            Ok((
                k.trim_start_matches("pf:ssh:").to_string(),
                SshUrl::parse(v)?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::App;

    fn env(status: &str, links: &[(&str, &str)]) -> Environment {
        Environment {
            id: "main".into(),
            name: "main".into(),
            machine_name: "main-abc".into(),
            status: status.into(),
            kind: "production".into(),
            head_commit: None,
            ssh_links: links
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn app(name: &str) -> App {
        App {
            name: name.into(),
            kind: "php:8.3".into(),
            size: "S".into(),
            worker_of: None,
        }
    }

    fn deployment(apps: &[&str], workers: &[&str]) -> Deployment {
        Deployment {
            apps: apps.iter().map(|a| app(a)).collect(),
            workers: workers.iter().map(|w| app(w)).collect(),
            services: vec![],
        }
    }

    const LINKS: &[(&str, &str)] = &[
        ("pf:ssh:app", "ssh://p-main-abc--app@ssh.eu.platform.sh"),
        (
            "pf:ssh:app:0",
            "ssh://p-main-abc--app--0@ssh.eu.platform.sh",
        ),
        (
            "pf:ssh:app:1",
            "ssh://p-main-abc--app--1@ssh.eu.platform.sh",
        ),
        (
            "pf:ssh:app--queue",
            "ssh://p-main-abc--app--queue@ssh.eu.platform.sh",
        ),
        ("pf:ssh:web", "ssh://p-main-abc--web@ssh.eu.platform.sh"),
    ];

    fn sel(app: Option<&str>, instance: Option<&str>, worker: Option<&str>) -> Selection {
        Selection {
            app: app.map(str::to_string),
            instance: instance.map(str::to_string),
            worker: worker.map(str::to_string),
        }
    }

    #[test]
    fn choices_resolve_to_the_linked_urls() {
        let e = env("active", LINKS);
        let d = deployment(&["app", "web"], &["app--queue"]);
        let r = |s| resolve(&e, Some(&d), &s).map(|u| u.to_string());
        assert_eq!(
            r(sel(Some("web"), None, None)).unwrap(),
            "p-main-abc--web@ssh.eu.platform.sh"
        );
        assert_eq!(
            r(sel(Some("app"), Some("1"), None)).unwrap(),
            "p-main-abc--app--1@ssh.eu.platform.sh"
        );
        assert_eq!(
            r(sel(Some("app"), None, Some("queue"))).unwrap(),
            "p-main-abc--app--queue@ssh.eu.platform.sh"
        );
        assert_eq!(
            r(sel(Some("app--queue"), None, None)).unwrap(),
            "p-main-abc--app--queue@ssh.eu.platform.sh"
        );
    }

    #[test]
    fn every_wrong_choice_lists_what_exists() {
        let e = env("active", LINKS);
        let d = deployment(&["app", "web"], &["app--queue"]);
        let r = |s| resolve(&e, Some(&d), &s).unwrap_err().to_string();
        assert_eq!(
            r(sel(None, None, None)),
            "choose an app with --app: app, web"
        );
        assert!(r(sel(Some("nope"), None, None)).contains("its apps: app, web"));
        assert_eq!(
            r(sel(Some("app"), None, None)),
            "app app has several instances: choose one with --instance: 0, 1"
        );
        assert!(r(sel(Some("app"), Some("9"), None)).contains("its instances: 0, 1"));
        assert!(r(sel(Some("app"), None, Some("nope"))).contains("its workers: queue"));
        let err = resolve(&e, None, &sel(Some("app"), None, None))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no current deployment"), "{err}");
        let paused = env("paused", LINKS);
        let err = resolve(&paused, Some(&d), &sel(Some("web"), None, None))
            .unwrap_err()
            .to_string();
        assert!(err.contains("paused") && err.contains("resume"), "{err}");
        let inactive = env("inactive", &[]);
        assert!(resolve(&inactive, Some(&d), &sel(Some("web"), None, None))
            .unwrap_err()
            .to_string()
            .contains("activate"));
    }

    #[test]
    fn missing_or_hostile_links_are_errors() {
        let d = deployment(&["web"], &[]);
        let none = env("active", &[]);
        let err = resolve(&none, Some(&d), &Selection::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no SSH link \"pf:ssh:web\""), "{err}");
        let hostile = env("active", &[("pf:ssh:web", "ssh://-oProxyCommand=x@host")]);
        let err = resolve(&hostile, Some(&d), &Selection::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("-oProxyCommand=x"), "{err}");
    }
}
