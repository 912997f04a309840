//! The platform's JSON, as Tether uses it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An id that is not safe to put in a URL path or a file name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} is not valid: {rule}")]
pub struct IdError {
    pub what: &'static str,
    pub value: String,
    pub rule: &'static str,
}

/// Ids that reach URL paths, SSH usernames and file names: checked once, where they enter
/// (a command line, an API answer), so that nothing downstream can be steered by a `/`, a `..`,
/// a `%` or a control character.
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $rule:literal, $valid:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: &str) -> Result<$name, IdError> {
                let valid: fn(&str) -> bool = $valid;
                if valid(value) {
                    Ok($name(value.to_string()))
                } else {
                    Err(IdError {
                        what: $what,
                        value: value.chars().take(80).collect(),
                        rule: $rule,
                    })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<$name, IdError> {
                $name::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<$name, IdError> {
                $name::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

fn charset(s: &str, max: usize, extra: &[char]) -> bool {
    !s.is_empty()
        && s.len() <= max
        && !s.starts_with(['.', '-'])
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
}

id_type!(
    /// A project id (`jyu7waly36ncj`).
    ProjectId,
    "project id",
    "use letters and digits only",
    |s| charset(s, 64, &[])
);

id_type!(
    /// An environment id (`main`, `feature-x`, `pr-12`).
    EnvironmentId,
    "environment id",
    "use letters, digits, '-', '_' and '.', not first",
    |s| charset(s, 128, &['-', '_', '.'])
);

id_type!(
    /// An app or worker name (`app`, `app--queue`).
    AppName,
    "app name",
    "use letters, digits, '-', '_' and '.', not first",
    |s| charset(s, 128, &['-', '_', '.'])
);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub username: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    #[serde(default)]
    pub mfa_enabled: bool,
    #[serde(default)]
    pub sso_enabled: bool,
}

/// A project the user can reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    pub id: ProjectId,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub organization_id: Option<String>,
    /// The environment `-e .` means (the official client's `getDefaultEnvironment`).
    #[serde(default)]
    pub default_branch: Option<String>,
}

/// An environment, with the SSH links the platform publishes for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    pub id: EnvironmentId,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub machine_name: String,
    pub status: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub head_commit: Option<String>,
    /// `pf:ssh:*` link name to `href`, as published (not yet validated).
    #[serde(default)]
    pub ssh_links: std::collections::BTreeMap<String, String>,
}

/// One app (or worker) of the current deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub size: String,
    /// For workers: the app they belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_of: Option<String>,
}

/// The current deployment's apps and workers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    pub apps: Vec<App>,
    pub workers: Vec<App>,
    pub services: Vec<String>,
}

#[derive(Deserialize)]
pub(super) struct RawEnvironment {
    id: EnvironmentId,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    machine_name: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    head_commit: Option<String>,
    #[serde(rename = "_links", default)]
    links: serde_json::Map<String, serde_json::Value>,
}

impl From<RawEnvironment> for Environment {
    fn from(r: RawEnvironment) -> Environment {
        let ssh_links = r
            .links
            .iter()
            .filter(|(k, _)| k.starts_with("pf:ssh:"))
            .filter_map(|(k, v)| Some((k.clone(), v.get("href")?.as_str()?.to_string())))
            .collect();
        Environment {
            name: r.name.unwrap_or_else(|| r.id.to_string()),
            machine_name: r.machine_name.unwrap_or_default(),
            status: r.status.unwrap_or_else(|| "unknown".into()),
            kind: r.kind.unwrap_or_default(),
            head_commit: r.head_commit,
            id: r.id,
            ssh_links,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_take_what_the_platform_uses_and_nothing_that_steers_a_path() {
        assert!(ProjectId::parse("jyu7waly36ncj").is_ok());
        for env in ["main", "feature-x", "pr-12", "release_1.2"] {
            assert!(EnvironmentId::parse(env).is_ok(), "{env}");
        }
        assert!(AppName::parse("app--queue").is_ok());
        for bad in [
            "", "..", ".hidden", "a/b", "a%2Fb", "a b", "a\nb", "-rf", "é", "a?b",
        ] {
            assert!(ProjectId::parse(bad).is_err(), "{bad:?}");
            assert!(EnvironmentId::parse(bad).is_err(), "{bad:?}");
            assert!(AppName::parse(bad).is_err(), "{bad:?}");
        }
        let e = EnvironmentId::parse("../etc").unwrap_err();
        assert_eq!(
            e.to_string(),
            "environment id \"../etc\" is not valid: use letters, digits, '-', '_' and '.', not first"
        );
        // JSON from the API is checked the same way.
        assert!(serde_json::from_str::<ProjectId>("\"abc\"").is_ok());
        assert!(serde_json::from_str::<ProjectId>("\"a/b\"").is_err());
        assert_eq!(
            serde_json::to_string(&ProjectId::parse("abc").unwrap()).unwrap(),
            "\"abc\""
        );
    }

    proptest! {
        #[test]
        fn parsing_never_panics_and_accepts_only_safe_text(s in "\\PC{0,40}") {
            for ok in [
                ProjectId::parse(&s).is_ok(),
                EnvironmentId::parse(&s).is_ok(),
                AppName::parse(&s).is_ok(),
            ] {
                if ok {
                    prop_assert!(!s.contains(['/', '%', '\\', ' ']) && !s.starts_with('.'));
                    prop_assert!(s.chars().all(|c| c.is_ascii_graphic()));
                }
            }
        }

        #[test]
        fn valid_ids_round_trip(s in "[a-z0-9][a-z0-9._-]{0,30}") {
            let id = EnvironmentId::parse(&s).unwrap();
            prop_assert_eq!(id.as_str(), s.as_str());
            let json = serde_json::to_string(&id).unwrap();
            prop_assert_eq!(serde_json::from_str::<EnvironmentId>(&json).unwrap(), id);
        }
    }
}
