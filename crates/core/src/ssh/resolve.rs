//! From (environment, app, instance or worker) to the [`SshUrl`] the platform links, with an
//! error that lists what exists whenever the choice does not. Instances are chosen as the
//! official client chooses them: the one asked for, else the app's own `pf:ssh:<app>` link,
//! else its first instance in natural order. Every address the API gives must be on one of the
//! profile's SSH hosts, because the session's certificate is only ever offered to the
//! platform's own gateways.

use std::cmp::Ordering;

use crate::api::{AppName, Deployment, Environment};
use crate::profile::Profile;

use super::url::{SshUrl, SshUrlError};

/// What the user asked for, beyond project and environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub app: Option<AppName>,
    pub instance: Option<String>,
    pub worker: Option<AppName>,
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
    #[error(
        "environment {env} is paused, so it has no SSH: resume it on the platform, then try again"
    )]
    Paused { env: String },
    #[error("environment {env} is inactive, so it has no SSH: activate it on the platform, then try again")]
    Inactive { env: String },
    #[error("environment {env} has no current deployment: push code to it, then try again")]
    NoDeployment { env: String },
    #[error("this environment runs several apps: choose one; its apps: {}", list(.available))]
    ChooseApp { available: Vec<String> },
    #[error("environment {env} has no app {app:?}; its apps: {}", list(.available))]
    AppNotFound {
        env: String,
        app: String,
        available: Vec<String>,
    },
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
    #[error("the platform gave an SSH address on host {host}, which is not one of {platform}'s SSH hosts ({}); Tether only offers its certificate to the platform's gateways", .patterns.join(", "))]
    ForeignHost {
        host: String,
        platform: String,
        patterns: Vec<String>,
    },
    #[error(transparent)]
    BadLink(#[from] SshUrlError),
}

/// Compares instance names the way people count: `2` before `10`.
fn natural(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a, b);
    loop {
        let (da, db) = (
            a.len() - a.trim_start_matches(|c: char| c.is_ascii_digit()).len(),
            b.len() - b.trim_start_matches(|c: char| c.is_ascii_digit()).len(),
        );
        let order = match (da, db) {
            (0, 0) => match (a.chars().next(), b.chars().next()) {
                (None, None) => return Ordering::Equal,
                (x, y) => x.cmp(&y),
            },
            (0, _) => Ordering::Greater,
            (_, 0) => Ordering::Less,
            _ => {
                let (na, nb) = (
                    a[..da].trim_start_matches('0'),
                    b[..db].trim_start_matches('0'),
                );
                na.len().cmp(&nb.len()).then_with(|| na.cmp(nb))
            }
        };
        if order != Ordering::Equal {
            return order;
        }
        let step = |s: &str, digits: usize| {
            if digits > 0 {
                digits
            } else {
                s.chars().next().map_or(0, char::len_utf8)
            }
        };
        a = &a[step(a, da)..];
        b = &b[step(b, db)..];
    }
}

/// The instance names of an app (`pf:ssh:<app>:<n>` links), in natural order.
pub fn instances(env: &Environment, app: &str) -> Vec<String> {
    let prefix = format!("pf:ssh:{app}:");
    let mut out: Vec<String> = env
        .ssh_links
        .keys()
        .filter_map(|k| k.strip_prefix(&prefix).map(str::to_string))
        .collect();
    out.sort_by(|a, b| natural(a, b).then_with(|| a.cmp(b)));
    out
}

/// Whether `host` matches an OpenSSH host pattern: `*` stands for any run of characters, `?`
/// for exactly one; case does not matter.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let h: Vec<char> = host.to_lowercase().chars().collect();
    let (mut pi, mut hi) = (0, 0);
    // Where the last `*` was, and how much of the host it has taken so far.
    let mut star: Option<(usize, usize)> = None;
    while hi < h.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, hi));
                pi += 1;
            }
            Some(&c) if c == '?' || c == h[hi] => {
                pi += 1;
                hi += 1;
            }
            _ => match star {
                Some((sp, sh)) => {
                    pi = sp + 1;
                    hi = sh + 1;
                    star = Some((sp, sh + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Parses an SSH link from the API and refuses it unless its host is one of the profile's.
fn checked(href: &str, profile: &Profile) -> Result<SshUrl, ResolveError> {
    let url = SshUrl::parse(href)?;
    if profile
        .ssh_host_patterns
        .iter()
        .any(|p| host_matches(p, url.host()))
    {
        Ok(url)
    } else {
        Err(ResolveError::ForeignHost {
            host: url.host().to_string(),
            platform: profile.title.clone(),
            patterns: profile.ssh_host_patterns.clone(),
        })
    }
}

/// Fails unless the environment runs.
pub fn check_running(env: &Environment) -> Result<(), ResolveError> {
    match env.status.as_str() {
        "paused" => Err(ResolveError::Paused {
            env: env.id.to_string(),
        }),
        "inactive" => Err(ResolveError::Inactive {
            env: env.id.to_string(),
        }),
        _ => Ok(()),
    }
}

/// The address of what `sel` names in `env`, on one of `profile`'s SSH hosts.
pub fn resolve(
    env: &Environment,
    deployment: Option<&Deployment>,
    sel: &Selection,
    profile: &Profile,
) -> Result<SshUrl, ResolveError> {
    check_running(env)?;
    let deployment = deployment.ok_or_else(|| ResolveError::NoDeployment {
        env: env.id.to_string(),
    })?;
    let apps: Vec<String> = deployment.apps.iter().map(|a| a.name.clone()).collect();
    let workers: Vec<String> = deployment.workers.iter().map(|w| w.name.clone()).collect();
    let app = match (&sel.app, apps.as_slice()) {
        (Some(a), _) => a.to_string(),
        (None, [only]) => only.clone(),
        (None, _) => return Err(ResolveError::ChooseApp { available: apps }),
    };
    // `--app app--worker` names a worker directly.
    let (app, worker) = match (app.split_once("--"), &sel.worker) {
        (Some((a, w)), None) => (a.to_string(), Some(w.to_string())),
        _ => (app, sel.worker.as_ref().map(AppName::to_string)),
    };
    if !apps.contains(&app) {
        return Err(ResolveError::AppNotFound {
            env: env.id.to_string(),
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
            // The app's own link when the platform publishes one, else its first instance.
            None => {
                let own = format!("pf:ssh:{app}");
                match available.first() {
                    Some(first) if !env.ssh_links.contains_key(&own) => {
                        format!("pf:ssh:{app}:{first}")
                    }
                    _ => own,
                }
            }
        }
    };
    let href = env
        .ssh_links
        .get(&link)
        .ok_or_else(|| ResolveError::NoLink {
            env: env.id.to_string(),
            link: link.clone(),
        })?;
    checked(href, profile)
}

/// Every SSH link of the environment (for `ssh --all`), each checked.
pub fn all_urls(
    env: &Environment,
    profile: &Profile,
) -> Result<Vec<(String, SshUrl)>, ResolveError> {
    check_running(env)?;
    env.ssh_links
        .iter()
        .map(|(k, v)| {
            Ok((
                k.trim_start_matches("pf:ssh:").to_string(),
                checked(v, profile)?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::App;
    use crate::api::EnvironmentId;

    fn pf() -> Profile {
        Profile::platformsh()
    }

    fn env(status: &str, links: &[(&str, &str)]) -> Environment {
        Environment {
            id: EnvironmentId::parse("main").unwrap(),
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
            app: app.map(|a| AppName::parse(a).unwrap()),
            instance: instance.map(str::to_string),
            worker: worker.map(|w| AppName::parse(w).unwrap()),
        }
    }

    #[test]
    fn choices_resolve_to_the_linked_urls() {
        let e = env("active", LINKS);
        let d = deployment(&["app", "web"], &["app--queue"]);
        let r = |s| resolve(&e, Some(&d), &s, &pf()).map(|u| u.to_string());
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
        let r = |s| resolve(&e, Some(&d), &s, &pf()).unwrap_err().to_string();
        assert_eq!(
            r(sel(None, None, None)),
            "this environment runs several apps: choose one; its apps: app, web"
        );
        assert!(r(sel(Some("nope"), None, None)).contains("its apps: app, web"));
        assert_eq!(
            r(sel(Some("app"), Some("9"), None)),
            "app app has no instance \"9\"; its instances: 0, 1"
        );
        assert!(r(sel(Some("app"), None, Some("nope"))).contains("its workers: queue"));
        let err = resolve(&e, None, &sel(Some("app"), None, None), &pf())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no current deployment"), "{err}");
        let paused = env("paused", LINKS);
        let err = resolve(&paused, Some(&d), &sel(Some("web"), None, None), &pf())
            .unwrap_err()
            .to_string();
        assert!(err.contains("paused") && err.contains("resume"), "{err}");
        let inactive = env("inactive", &[]);
        assert!(
            resolve(&inactive, Some(&d), &sel(Some("web"), None, None), &pf())
                .unwrap_err()
                .to_string()
                .contains("activate")
        );
    }

    #[test]
    fn missing_or_hostile_links_are_errors() {
        let d = deployment(&["web"], &[]);
        let none = env("active", &[]);
        let err = resolve(&none, Some(&d), &Selection::default(), &pf())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no SSH link \"pf:ssh:web\""), "{err}");
        let hostile = env("active", &[("pf:ssh:web", "ssh://-oProxyCommand=x@host")]);
        let err = resolve(&hostile, Some(&d), &Selection::default(), &pf())
            .unwrap_err()
            .to_string();
        assert!(err.contains("-oProxyCommand=x"), "{err}");
    }

    #[test]
    fn without_an_instance_the_apps_own_link_is_used_else_the_first_instance() {
        let d = deployment(&["app", "web"], &["app--queue"]);
        let e = env("active", LINKS);
        let r = |e: &Environment, s| resolve(e, Some(&d), &s, &pf()).map(|u| u.to_string());
        assert_eq!(
            r(&e, sel(Some("app"), None, None)).unwrap(),
            "p-main-abc--app@ssh.eu.platform.sh",
            "the pf:ssh:app link"
        );
        // No pf:ssh:app: the first instance in natural order (2 before 10).
        let e = env(
            "active",
            &[
                (
                    "pf:ssh:app:10",
                    "ssh://p-main-abc--app--10@ssh.eu.platform.sh",
                ),
                (
                    "pf:ssh:app:2",
                    "ssh://p-main-abc--app--2@ssh.eu.platform.sh",
                ),
            ],
        );
        assert_eq!(instances(&e, "app"), ["2", "10"]);
        assert_eq!(
            r(&e, sel(Some("app"), None, None)).unwrap(),
            "p-main-abc--app--2@ssh.eu.platform.sh"
        );
        assert_eq!(
            r(&e, sel(Some("app"), Some("10"), None)).unwrap(),
            "p-main-abc--app--10@ssh.eu.platform.sh"
        );
        let err = r(&e, sel(Some("app"), Some("3"), None)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "app app has no instance \"3\"; its instances: 2, 10"
        );
    }

    #[test]
    fn natural_order_counts_numbers() {
        let mut v = vec!["10", "9", "a10", "a2", "b", "02", "1"];
        v.sort_by(|a, b| natural(a, b).then_with(|| a.cmp(b)));
        assert_eq!(v, ["1", "02", "9", "10", "a2", "a10", "b"]);
    }

    #[test]
    fn host_patterns_match_as_openssh_matches_them() {
        for (pattern, host, matches) in [
            ("*.platform.sh", "ssh.eu.platform.sh", true),
            ("*.platform.sh", "SSH.EU.Platform.SH", true),
            ("*.platform.sh", "platform.sh", false),
            ("*.platform.sh", "ssh.eu.platform.sh.evil.com", false),
            ("*.platform.sh", "evilplatform.sh", false),
            ("ssh.??.platform.sh", "ssh.eu.platform.sh", true),
            ("ssh.??.platform.sh", "ssh.eu-3.platform.sh", false),
            ("ssh.*.*.sh", "ssh.eu.platform.sh", true),
            ("*", "anything", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
            ("exact.host", "exact.host", true),
            ("exact.host", "exact.hos", false),
        ] {
            assert_eq!(host_matches(pattern, host), matches, "{pattern} {host}");
        }
    }

    #[test]
    fn an_address_outside_the_profiles_ssh_hosts_is_refused_by_name() {
        let d = deployment(&["web"], &[]);
        let e = env(
            "active",
            &[("pf:ssh:web", "ssh://p-main-abc--web@ssh.evil.example")],
        );
        let err = resolve(&e, Some(&d), &Selection::default(), &pf()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the platform gave an SSH address on host ssh.evil.example, which is not one of \
             Platform.sh's SSH hosts (*.platform.sh); Tether only offers its certificate to the \
             platform's gateways"
        );
        assert!(matches!(
            all_urls(&e, &pf()),
            Err(ResolveError::ForeignHost { .. })
        ));
        let ok = env("active", LINKS);
        assert_eq!(all_urls(&ok, &pf()).unwrap().len(), LINKS.len());
    }

    #[test]
    fn messages_name_no_command_or_flag() {
        let e = env("active", LINKS);
        let d = deployment(&["app", "web"], &["app--queue"]);
        let mut messages: Vec<String> = [
            sel(None, None, None),
            sel(Some("nope"), None, None),
            sel(Some("app"), Some("9"), None),
            sel(Some("app"), None, Some("nope")),
        ]
        .into_iter()
        .map(|s| resolve(&e, Some(&d), &s, &pf()).unwrap_err().to_string())
        .collect();
        for status in ["paused", "inactive"] {
            messages.push(check_running(&env(status, &[])).unwrap_err().to_string());
        }
        for m in messages {
            assert!(
                !m.contains("--") && !m.contains('`') && !m.contains("tether "),
                "{m}"
            );
        }
    }
}
