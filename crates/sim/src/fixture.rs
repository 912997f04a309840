//! The fixture: the organizations, users, tokens, projects, environments, apps and services the
//! simulated platform serves. Loaded from TOML and checked once, so that every other module can
//! look things up without re-validating references.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

/// The demo fixture shipped with the simulator (`tether-sim --demo`).
pub const DEMO_FIXTURE: &str = include_str!("../fixtures/demo.toml");

#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("cannot read fixture {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("fixture is not valid TOML: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("fixture is inconsistent: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// Domain of the SSH hosts: apps are reached at `ssh.<region>.<ssh_domain>`.
    #[serde(default = "default_ssh_domain")]
    pub ssh_domain: String,
    /// Credentials the demo prints so that a person can try it.
    #[serde(default)]
    pub demo: Option<Demo>,
    /// Named backends (`name = "host:port"`) that services forward to.
    #[serde(default)]
    pub backends: BTreeMap<String, String>,
    /// Redirect URIs accepted besides the loopback range 5000–5010 (the desktop app's own).
    #[serde(default)]
    pub extra_redirect_uris: Vec<String>,
    /// OAuth2 client ids accepted besides the vendors' CLI ids.
    #[serde(default = "default_clients")]
    pub clients: Vec<String>,
    #[serde(default)]
    pub organizations: Vec<Organization>,
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub api_tokens: Vec<ApiToken>,
    #[serde(default)]
    pub projects: Vec<Project>,
}

fn default_ssh_domain() -> String {
    "tether.test".to_string()
}

fn default_clients() -> Vec<String> {
    ["platform-cli", "upsun-cli", "tether"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Demo {
    pub username: String,
    pub password: String,
    pub api_token: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub label: String,
    #[serde(default)]
    pub mfa_required: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub id: String,
    pub username: String,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    #[serde(default)]
    pub email: String,
    pub password: String,
    /// Base32 TOTP secret; a user with one is asked for a code at every login, unless
    /// `mfa_only_when_required` says to ask only when the client demands `amr=mfa`.
    #[serde(default)]
    pub totp_secret: Option<String>,
    #[serde(default)]
    pub mfa_only_when_required: bool,
}

impl User {
    /// The `access_id` claim and certificate extension: stable per user.
    pub fn access_id(&self) -> String {
        format!("acc-{}", &self.id.replace('-', "")[..12.min(self.id.len())])
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    pub user: String,
    pub token: String,
    /// Whether the token was created after MFA was enabled (its sessions then count as MFA).
    #[serde(default)]
    pub mfa: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    pub id: String,
    pub title: String,
    pub region: String,
    /// Organization `name`.
    pub organization: String,
    /// Usernames that may reach the project.
    #[serde(default)]
    pub members: Vec<String>,
    #[serde(default)]
    pub apps: Vec<App>,
    #[serde(default)]
    pub services: Vec<Service>,
    #[serde(default)]
    pub environments: Vec<Environment>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default = "default_size")]
    pub size: String,
    #[serde(default = "one")]
    pub instances: u32,
    #[serde(default)]
    pub mounts: Vec<String>,
    #[serde(default)]
    pub workers: Vec<String>,
    /// Relationship name to `service:endpoint`.
    #[serde(default)]
    pub relationships: BTreeMap<String, String>,
    /// The literal `PLATFORM_RELATIONSHIPS` value the app's processes see, instead of the one
    /// built from `relationships` (which still decide what the gateway forwards): for testing
    /// clients against a platform that sends something broken.
    #[serde(default)]
    pub relationships_variable: Option<String>,
    /// Text the app's login scripts print on stdout before every command and in every shell,
    /// as `.environment` or `.bashrc` output does on the real platform (a version manager's
    /// notice, a banner). Clients that read a command's output, such as the relationships
    /// between the official client's markers, must ignore it; `ssh` users see it.
    #[serde(default)]
    pub login_output: Option<String>,
    /// Text printed on stdout once a command or shell has ended, as an `EXIT` trap set in
    /// `.environment` does on the real platform (`trap 'echo bye' EXIT`).
    #[serde(default)]
    pub exit_output: Option<String>,
}

fn default_size() -> String {
    "AUTO".to_string()
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Name of an entry of `[backends]`.
    pub backend: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvStatus {
    Active,
    Inactive,
    Paused,
    Dirty,
}

impl EnvStatus {
    /// Whether the environment runs and so can be reached over SSH.
    pub fn is_running(self) -> bool {
        matches!(self, EnvStatus::Active | EnvStatus::Dirty)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EnvStatus::Active => "active",
            EnvStatus::Inactive => "inactive",
            EnvStatus::Paused => "paused",
            EnvStatus::Dirty => "dirty",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvType {
    Production,
    Staging,
    Development,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    pub id: String,
    pub machine_name: String,
    pub status: EnvStatus,
    #[serde(rename = "type")]
    pub kind: EnvType,
    #[serde(default)]
    pub head_commit: Option<String>,
    /// Bytes of filler the API adds to this environment's record (in `_filler`), for testing
    /// clients against a platform that answers more than they should read.
    #[serde(default)]
    pub api_filler: usize,
}

impl Fixture {
    pub fn from_toml(text: &str) -> Result<Self, FixtureError> {
        let fixture: Fixture = toml::from_str(text)?;
        fixture.check()?;
        Ok(fixture)
    }

    pub fn from_file(path: &Path) -> Result<Self, FixtureError> {
        let text = std::fs::read_to_string(path).map_err(|source| FixtureError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text)
    }

    pub fn demo() -> Result<Self, FixtureError> {
        Self::from_toml(DEMO_FIXTURE)
    }

    pub fn user_by_name(&self, username: &str) -> Option<&User> {
        self.users.iter().find(|u| u.username == username)
    }

    pub fn user_by_id(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    pub fn project(&self, id: &str) -> Option<&Project> {
        self.projects.iter().find(|p| p.id == id)
    }

    pub fn organization(&self, name: &str) -> Option<&Organization> {
        self.organizations.iter().find(|o| o.name == name)
    }

    /// Every reference must resolve and every name must be plain, so that nothing the
    /// simulator serves is malformed by accident (hostile data is made on purpose in tests).
    fn check(&self) -> Result<(), FixtureError> {
        let bad = |msg: String| Err(FixtureError::Invalid(msg));
        for (name, addr) in &self.backends {
            if addr.parse::<SocketAddr>().is_err() {
                return bad(format!("backend {name}: {addr:?} is not HOST:PORT"));
            }
        }
        for t in &self.api_tokens {
            if self.user_by_name(&t.user).is_none() {
                return bad(format!("api token for unknown user {:?}", t.user));
            }
        }
        for p in &self.projects {
            if !p
                .id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            {
                return bad(format!(
                    "project id {:?} must be lowercase letters and digits",
                    p.id
                ));
            }
            if self.organization(&p.organization).is_none() {
                return bad(format!(
                    "project {}: unknown organization {:?}",
                    p.id, p.organization
                ));
            }
            for m in &p.members {
                if self.user_by_name(m).is_none() {
                    return bad(format!("project {}: unknown member {m:?}", p.id));
                }
            }
            for s in &p.services {
                if !self.backends.contains_key(&s.backend) {
                    return bad(format!(
                        "project {}: service {} uses unknown backend {:?}",
                        p.id, s.name, s.backend
                    ));
                }
            }
            for a in &p.apps {
                if a.name.contains("--") || a.instances == 0 {
                    return bad(format!("project {}: app {:?} is malformed", p.id, a.name));
                }
                for (rel, target) in &a.relationships {
                    let service = target.split(':').next().unwrap_or_default();
                    if !p.services.iter().any(|s| s.name == service) {
                        return bad(format!(
                            "project {}: relationship {rel} of {} names unknown service {service:?}",
                            p.id, a.name
                        ));
                    }
                }
            }
            for e in &p.environments {
                if e.machine_name.contains("--") {
                    return bad(format!(
                        "environment machine name {:?} contains --",
                        e.machine_name
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_fixture_loads_and_has_what_the_demo_promises() {
        let f = Fixture::demo().unwrap();
        assert!(f.organizations.iter().any(|o| o.mfa_required));
        assert!(f.organizations.iter().any(|o| !o.mfa_required));
        assert!(f.projects.len() >= 3);
        let envs: Vec<_> = f.projects.iter().flat_map(|p| &p.environments).collect();
        assert!(envs.iter().any(|e| e.status == EnvStatus::Paused));
        assert!(envs.iter().any(|e| e.status == EnvStatus::Active));
        let apps: Vec<_> = f.projects.iter().flat_map(|p| &p.apps).collect();
        assert!(apps.iter().any(|a| a.instances > 1));
        assert!(apps.iter().any(|a| !a.workers.is_empty()));
        let types: Vec<_> = f
            .projects
            .iter()
            .flat_map(|p| &p.services)
            .map(|s| s.kind.as_str())
            .collect();
        assert!(types.iter().any(|t| t.starts_with("postgresql")));
        assert!(types.iter().any(|t| t.starts_with("redis")));
    }

    #[test]
    fn dangling_references_are_refused() {
        let text = DEMO_FIXTURE.replace("members = [\"alice\"]", "members = [\"mallory\"]");
        let err = Fixture::from_toml(&text).unwrap_err().to_string();
        assert!(err.contains("mallory"), "{err}");
    }
}
