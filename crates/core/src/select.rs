//! Choosing the project, environment and app as the official client does, the parsing half:
//! what `-p` and `-e` say (an id, a console or site URL, `.` for the default environment), which
//! git remote names a project (`<id>@git.<region>.platform.sh:<id>.git`), and which environment
//! is a project's default. The shells gather what these read (flags, `PLATFORM_PROJECT`,
//! `PLATFORM_BRANCH`, `PLATFORM_APPLICATION_NAME`, the repository's remotes and branch) and ask
//! the catalog; the rules live here, read from the official client's
//! `legacy/src/Service/Identifier.php`, `legacy/src/Selector/Selector.php`,
//! `legacy/src/Local/LocalProject.php` and `legacy/src/Service/Api.php`.

use std::fmt;
use std::str::FromStr;

use crate::api::{AppName, Environment, EnvironmentId, IdError, ProjectId};
use crate::profile::Profile;

/// The variables the official clients read for the selection (their `service.env_prefix` is
/// `PLATFORM_` for both vendors, `internal/config/*-cli.yaml`).
pub const PROJECT_VARIABLE: &str = "PLATFORM_PROJECT";
pub const BRANCH_VARIABLE: &str = "PLATFORM_BRANCH";
pub const APP_VARIABLE: &str = "PLATFORM_APPLICATION_NAME";

/// The console's host: the official clients take it from `service.console_url`
/// (`https://console.upsun.com` for both). The older Platform.sh console is accepted too, so
/// links people saved keep working.
const CONSOLE_HOSTS: [&str; 2] = ["console.upsun.com", "console.platform.sh"];

/// Domains of the sites environments serve (`detection.site_domains`), both vendors' lists.
const SITE_DOMAINS: [&str; 5] = [
    "platform.sh",
    "platformsh.site",
    "tst.site",
    "upsunapp.com",
    "upsun.app",
];

/// The domain of the platform's git hosts (`detection.git_domain`).
const GIT_DOMAIN: &str = "platform.sh";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("cannot find a project id in {0:?}: give a project id or a console URL such as https://console.upsun.com/<organization>/<project>/<environment>")]
    NoProject(String),
    #[error(transparent)]
    Id(#[from] IdError),
}

/// What `-p` named: a project, and the environment and app when a URL says them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRef {
    pub project: ProjectId,
    pub environment: Option<EnvironmentId>,
    pub app: Option<AppName>,
}

impl ProjectRef {
    /// An id, a console URL (`https://console.upsun.com/<org>/<project>[/<environment>]`), a
    /// URL with `/projects/<project>[/environments/<environment>]`, or a site URL
    /// (`https://<environment>-<project>[--<app>].<region>.platformsh.site`).
    pub fn parse(value: &str) -> Result<ProjectRef, SelectError> {
        let value = value.trim();
        if !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Ok(ProjectRef {
                project: ProjectId::parse(value)?,
                environment: None,
                app: None,
            });
        }
        let no_project = || SelectError::NoProject(value.to_string());
        let Ok(url) = url::Url::parse(value) else {
            // Not a URL, so it was meant as an id: the id's own rule says what is wrong.
            return Ok(ProjectRef {
                project: ProjectId::parse(value)?,
                environment: None,
                app: None,
            });
        };
        let host = url.host_str().ok_or_else(no_project)?.to_ascii_lowercase();
        let env = |s: &str| -> Result<EnvironmentId, SelectError> {
            let decoded = percent_decode(s);
            Ok(EnvironmentId::parse(&decoded)?)
        };
        if let Some((project, environment, app)) = site(&host) {
            return Ok(ProjectRef {
                project: ProjectId::parse(project)?,
                environment: Some(env(environment)?),
                app: app.map(AppName::parse).transpose()?,
            });
        }
        let whole = format!("{}#{}", url.path(), url.fragment().unwrap_or_default());
        if let Some(rest) = whole.split_once("/projects/").map(|(_, r)| r) {
            let project: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let environment = rest
                .split_once("/environments/")
                .and_then(|(_, e)| e.split(['/', '?', '#']).next())
                .filter(|e| !e.is_empty())
                .map(env)
                .transpose()?;
            return Ok(ProjectRef {
                project: ProjectId::parse(&project).map_err(|_| no_project())?,
                environment,
                app: None,
            });
        }
        if CONSOLE_HOSTS.contains(&host.as_str()) {
            let mut parts = url.path().split('/').skip(1);
            let _organization = parts.next().filter(|o| !o.is_empty());
            let project = parts
                .next()
                .filter(|p| *p != "-" && !p.is_empty())
                .ok_or_else(no_project)?;
            let environment = parts
                .next()
                .filter(|e| *e != "-" && !e.is_empty())
                .map(env)
                .transpose()?;
            return Ok(ProjectRef {
                project: ProjectId::parse(project).map_err(|_| no_project())?,
                environment,
                app: None,
            });
        }
        Err(no_project())
    }
}

impl FromStr for ProjectRef {
    type Err = SelectError;

    fn from_str(s: &str) -> Result<ProjectRef, SelectError> {
        ProjectRef::parse(s)
    }
}

impl fmt::Display for ProjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.project)
    }
}

/// `<environment>-<project>[--<app>]` as the first label of a site host, optionally after a
/// `<something>---` prefix, on a `.<region>.<site domain>` host.
fn site(host: &str) -> Option<(&str, &str, Option<&str>)> {
    let (first, rest) = host.split_once('.')?;
    let (region, domain) = rest.split_once('.')?;
    let region_ok = region.len() >= 2
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && region.starts_with(|c: char| c.is_ascii_lowercase());
    if !region_ok || !SITE_DOMAINS.contains(&domain) {
        return None;
    }
    let label = first.rsplit_once("---").map_or(first, |(_, l)| l);
    let (env_project, app) = match label.rsplit_once("--") {
        Some((ep, app)) => (ep, Some(app)),
        None => (label, None),
    };
    let (environment, project) = env_project.rsplit_once('-')?;
    (!environment.is_empty() && !project.is_empty()).then_some((project, environment, app))
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

/// What `-e` named: an environment, or `.` for the project's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvironmentRef {
    Default,
    Id(EnvironmentId),
}

impl EnvironmentRef {
    pub fn parse(value: &str) -> Result<EnvironmentRef, SelectError> {
        if value == "." {
            return Ok(EnvironmentRef::Default);
        }
        Ok(EnvironmentRef::Id(EnvironmentId::parse(value)?))
    }

    /// The id, when one was named.
    pub fn id(&self) -> Option<&EnvironmentId> {
        match self {
            EnvironmentRef::Default => None,
            EnvironmentRef::Id(id) => Some(id),
        }
    }
}

impl FromStr for EnvironmentRef {
    type Err = SelectError;

    fn from_str(s: &str) -> Result<EnvironmentRef, SelectError> {
        EnvironmentRef::parse(s)
    }
}

impl fmt::Display for EnvironmentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvironmentRef::Default => f.write_str("."),
            EnvironmentRef::Id(id) => write!(f, "{id}"),
        }
    }
}

/// The git remotes that may name the project, in order: the vendor's (`platform` for
/// Platform.sh, `upsun` for Upsun, `detection.git_remote_name`), then `origin`. A profile file
/// counts as Upsun when its token variable starts with `UPSUN_`, else as Platform.sh.
pub fn git_remote_names(profile: &Profile) -> [&'static str; 2] {
    let vendor = if profile.name == "upsun" || profile.token_env_var.starts_with("UPSUN_") {
        "upsun"
    } else {
        "platform"
    };
    [vendor, "origin"]
}

/// The project a git remote URL names: `<id>@git.[<region>.]platform.sh:<id>.git`, the id at
/// least 12 lowercase letters and digits, the same on both sides.
pub fn project_of_git_remote(url: &str) -> Option<ProjectId> {
    let (user, rest) = url.trim().split_once('@')?;
    let (host, path) = rest.split_once(':')?;
    let id_ok = user.len() >= 12
        && user
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let host = host.strip_prefix("git.")?;
    let host_ok = host == GIT_DOMAIN
        || host.strip_suffix(GIT_DOMAIN).is_some_and(|region| {
            region.ends_with('.')
                && region[..region.len() - 1]
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && region.len() > 1
        });
    (id_ok && host_ok && path == format!("{user}.git"))
        .then(|| ProjectId::parse(user).ok())
        .flatten()
}

/// The project's default environment among its environments: the one named after its default
/// branch; else the only one; else the only production one (the official client's
/// `getDefaultEnvironment`). `default_branch` is `None` when the project's record lacks it.
pub fn default_environment<'a>(
    environments: &'a [Environment],
    default_branch: Option<&str>,
) -> Option<&'a Environment> {
    if let Some(e) = default_branch.and_then(|b| environments.iter().find(|e| e.id == b)) {
        return Some(e);
    }
    if let [only] = environments {
        return Some(only);
    }
    let mut production = environments.iter().filter(|e| e.kind == "production");
    match (production.next(), production.next()) {
        (Some(p), None) => Some(p),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(project: &str, env: Option<&str>, app: Option<&str>) -> ProjectRef {
        ProjectRef {
            project: ProjectId::parse(project).unwrap(),
            environment: env.map(|e| EnvironmentId::parse(e).unwrap()),
            app: app.map(|a| AppName::parse(a).unwrap()),
        }
    }

    #[test]
    fn project_ids_and_console_urls() {
        assert_eq!(
            ProjectRef::parse("jyu7waly36ncj").unwrap(),
            r("jyu7waly36ncj", None, None)
        );
        assert_eq!(
            ProjectRef::parse("https://console.upsun.com/acme/jyu7waly36ncj").unwrap(),
            r("jyu7waly36ncj", None, None)
        );
        assert_eq!(
            ProjectRef::parse("https://console.upsun.com/acme/jyu7waly36ncj/feature%2Dx/").unwrap(),
            r("jyu7waly36ncj", Some("feature-x"), None)
        );
        assert_eq!(
            ProjectRef::parse("https://console.platform.sh/acme/jyu7waly36ncj/main").unwrap(),
            r("jyu7waly36ncj", Some("main"), None)
        );
        // `/-/` marks the console's own pages, not a project.
        assert!(ProjectRef::parse("https://console.upsun.com/acme/-/settings").is_err());
        assert!(ProjectRef::parse("https://example.com/acme/jyu7waly36ncj").is_err());
        assert!(ProjectRef::parse("not a project").is_err());
    }

    #[test]
    fn api_and_site_urls() {
        assert_eq!(
            ProjectRef::parse(
                "https://api.upsun.com/projects/jyu7waly36ncj/environments/main/deployments"
            )
            .unwrap(),
            r("jyu7waly36ncj", Some("main"), None)
        );
        assert_eq!(
            ProjectRef::parse("https://main-bvxea6i-jyu7waly36ncj.eu-5.platformsh.site/").unwrap(),
            r("jyu7waly36ncj", Some("main-bvxea6i"), None)
        );
        assert_eq!(
            ProjectRef::parse("https://www---main-bvxea6i-jyu7waly36ncj--app.eu.upsun.app")
                .unwrap(),
            r("jyu7waly36ncj", Some("main-bvxea6i"), Some("app"))
        );
    }

    #[test]
    fn a_dot_is_the_default_environment() {
        assert_eq!(EnvironmentRef::parse(".").unwrap(), EnvironmentRef::Default);
        assert_eq!(
            EnvironmentRef::parse("main")
                .unwrap()
                .id()
                .map(|e| e.to_string()),
            Some("main".to_string())
        );
        assert!(EnvironmentRef::parse("a b").is_err());
    }

    #[test]
    fn git_remotes_name_a_project_only_in_the_platform_shape() {
        let id = |u: &str| project_of_git_remote(u).map(|p| p.to_string());
        assert_eq!(
            id("jyu7waly36ncj@git.eu-5.platform.sh:jyu7waly36ncj.git").as_deref(),
            Some("jyu7waly36ncj")
        );
        assert_eq!(
            id("abcdefghijkl@git.platform.sh:abcdefghijkl.git").as_deref(),
            Some("abcdefghijkl")
        );
        assert_eq!(
            id("jyu7waly36ncj@git.eu-5.platform.sh:other12345678.git"),
            None
        );
        assert_eq!(id("git@github.com:acme/shop.git"), None);
        assert_eq!(id("short@git.eu.platform.sh:short.git"), None);
        assert_eq!(
            id("jyu7waly36ncj@git.eu.platform.sh.evil.com:jyu7waly36ncj.git"),
            None
        );
    }

    #[test]
    fn each_vendor_has_its_remote_name() {
        assert_eq!(
            git_remote_names(&Profile::platformsh()),
            ["platform", "origin"]
        );
        assert_eq!(git_remote_names(&Profile::upsun()), ["upsun", "origin"]);
    }

    fn env(id: &str, kind: &str) -> Environment {
        Environment {
            id: EnvironmentId::parse(id).unwrap(),
            name: id.into(),
            machine_name: id.into(),
            status: "active".into(),
            kind: kind.into(),
            head_commit: None,
            ssh_links: Default::default(),
        }
    }

    #[test]
    fn the_default_environment() {
        let envs = [env("main", "production"), env("dev", "development")];
        assert_eq!(default_environment(&envs, Some("dev")).unwrap().id, "dev");
        assert_eq!(default_environment(&envs, None).unwrap().id, "main");
        let two = [env("a", "production"), env("b", "production")];
        assert!(default_environment(&two, None).is_none());
        assert_eq!(default_environment(&two[..1], None).unwrap().id, "a");
    }
}
