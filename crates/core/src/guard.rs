//! Production guardrails: an environment's type as every label shows it, and whether an action
//! there asks first.
//!
//! The official client asks before tunnelling into production
//! (`legacy/src/Command/Tunnel/TunnelOpenCommand.php`, `execute`: "Are you sure you want to open
//! SSH tunnel(s) to the environment …?", default yes, `-y` answers it) and nowhere else. Tether
//! asks before every way in that can change data by mistake: a terminal, a SQL shell, a dump and
//! a tunnel, in the app and at a terminal alike, unless the project's question is turned off
//! ([`DesktopSettings::production_unguarded`], the app's Settings or
//! `tether config:production-guard`).

use serde::{Deserialize, Serialize};

use crate::settings::DesktopSettings;

/// An environment's type, as the API's `type` field says it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[serde(rename_all = "lowercase")]
pub enum EnvironmentType {
    Production,
    Staging,
    Development,
    /// A type this version does not know, or none given.
    Other,
}

impl EnvironmentType {
    /// Reads the API's `type` (`production`, `staging`, `development`); anything else is
    /// [`EnvironmentType::Other`].
    pub fn from_api(kind: &str) -> EnvironmentType {
        match kind.trim().to_ascii_lowercase().as_str() {
            "production" => EnvironmentType::Production,
            "staging" => EnvironmentType::Staging,
            "development" => EnvironmentType::Development,
            _ => EnvironmentType::Other,
        }
    }

    pub fn is_production(&self) -> bool {
        *self == EnvironmentType::Production
    }

    /// The type's word, or `None` for one not known.
    pub fn word(&self) -> Option<&'static str> {
        match self {
            EnvironmentType::Production => Some("production"),
            EnvironmentType::Staging => Some("staging"),
            EnvironmentType::Development => Some("development"),
            EnvironmentType::Other => None,
        }
    }
}

/// The mark every label of a production environment carries (tray, window, CLI listings).
pub const PRODUCTION_MARK: &str = "PRODUCTION";

/// An environment's name as labels show it: `main [PRODUCTION]` for production, the name alone
/// otherwise.
pub fn environment_label(name: &str, kind: &str) -> String {
    if EnvironmentType::from_api(kind).is_production() {
        format!("{name} [{PRODUCTION_MARK}]")
    } else {
        name.to_string()
    }
}

/// A way into an environment that asks first on production.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[serde(rename_all = "snake_case")]
pub enum Entry {
    Terminal,
    SqlShell,
    Dump,
    Tunnel,
}

impl Entry {
    fn doing(self) -> &'static str {
        match self {
            Entry::Terminal => "open a terminal on",
            Entry::SqlShell => "open a SQL shell on",
            Entry::Dump => "dump a database of",
            Entry::Tunnel => "open tunnels to",
        }
    }
}

/// What to ask before entering `environment` (of `project`, its API `type` in `kind`) this
/// way, or `None` when nothing needs asking: not production, or the project's question is
/// turned off.
pub fn question(
    settings: &DesktopSettings,
    project: &str,
    environment: &str,
    kind: &str,
    entry: Entry,
) -> Option<String> {
    if !EnvironmentType::from_api(kind).is_production() || !settings.guards_production(project) {
        return None;
    }
    Some(format!(
        "{environment} is the PRODUCTION environment of project {project}. Are you sure you want to {} it?",
        entry.doing()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_production_asks_and_the_project_switch_silences_it() {
        let mut s = DesktopSettings::default();
        let q = question(&s, "abc", "main", "production", Entry::SqlShell).unwrap();
        assert!(q.contains("PRODUCTION environment of project abc"), "{q}");
        assert!(q.contains("SQL shell"), "{q}");
        for kind in ["staging", "development", "", "something-new"] {
            assert_eq!(question(&s, "abc", "dev", kind, Entry::Terminal), None);
        }
        s.set_guards_production("abc", false);
        assert_eq!(question(&s, "abc", "main", "production", Entry::Dump), None);
        assert!(question(&s, "other", "main", "Production", Entry::Dump).is_some());
        s.set_guards_production("abc", true);
        assert!(question(&s, "abc", "main", "production", Entry::Tunnel).is_some());
        assert!(s.production_unguarded.is_empty());
    }

    #[test]
    fn production_labels_are_marked_and_others_are_not() {
        assert_eq!(environment_label("main", "production"), "main [PRODUCTION]");
        assert_eq!(environment_label("staging", "staging"), "staging");
        assert_eq!(EnvironmentType::from_api("Staging").word(), Some("staging"));
        assert_eq!(EnvironmentType::from_api("x").word(), None);
    }
}
