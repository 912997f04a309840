//! The desktop app's settings, and the apps a user pinned or used last: one JSON file in the
//! data directory (`desktop.json`), written atomically. Every value is checked before it is
//! saved, so a bad one is refused with words that say what to change and the file keeps the
//! last good settings.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::context::Paths;
use crate::tunnel::AppKey;

/// How many recently used apps the tray lists.
pub const RECENT_APPS: usize = 5;
/// The quick switcher's global shortcut unless the user chose another.
pub const DEFAULT_SWITCHER_SHORTCUT: &str = "Ctrl+Alt+Space";
/// The inactivity limits one may choose, in hours.
pub const INACTIVITY_HOURS: std::ops::RangeInclusive<u32> = 1..=720;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[serde(default)]
pub struct DesktopSettings {
    /// The terminal command line, `{}` standing for the ssh command; empty: detect one.
    pub terminal: String,
    /// The local address tunnels listen on.
    pub bind_address: String,
    /// Whether Tether keeps its marked block in `~/.ssh/config` (so plain `ssh` works).
    pub manage_ssh_config: bool,
    pub start_at_login: bool,
    /// Hours without use after which the session ends and asks for a new sign-in.
    pub inactivity_limit_hours: u32,
    /// The profile (`platformsh`, `upsun`, or a profile file); used at the next start.
    pub profile: String,
    /// Apps shown first in the tray, as `project/environment/app`.
    pub pinned: Vec<String>,
    /// Apps used last, newest first.
    pub recent: Vec<String>,
    /// The first-run welcome is under way: saved while it is (a change of platform restarts
    /// the app), so that the next start goes on with it rather than to the tray.
    pub welcome_under_way: bool,
    /// Projects (ids) whose production environment is entered without asking first: a
    /// terminal, a SQL shell, a dump or a tunnel there does not ask (see [`crate::guard`]).
    pub production_unguarded: Vec<String>,
    /// The global shortcut that opens the quick switcher, such as `Ctrl+Alt+Space`; empty:
    /// none (the switcher is still reachable from the window and `tether-desktop --switcher`).
    pub switcher_shortcut: String,
}

impl Default for DesktopSettings {
    fn default() -> Self {
        DesktopSettings {
            terminal: String::new(),
            bind_address: "127.0.0.1".into(),
            manage_ssh_config: true,
            start_at_login: false,
            inactivity_limit_hours: 8,
            profile: String::new(),
            pinned: Vec::new(),
            recent: Vec::new(),
            welcome_under_way: false,
            production_unguarded: Vec::new(),
            switcher_shortcut: DEFAULT_SWITCHER_SHORTCUT.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("the bind address {0:?} is not an IP address: use 127.0.0.1 (only this machine) or another address of this machine")]
    BindAddress(String),
    #[error("the inactivity limit must be between 1 and 720 hours (30 days); it is {0}")]
    Inactivity(u32),
    #[error("the terminal command {0:?} contains control characters: write it on one line, with {{}} where the ssh command goes")]
    Terminal(String),
    #[error("{0}")]
    Profile(String),
    #[error("the shortcut {0:?} is not one: write modifiers and a key joined by +, such as Ctrl+Alt+Space, or leave it empty for none")]
    Shortcut(String),
    #[error("cannot save the settings to {path}: {message}")]
    Write { path: PathBuf, message: String },
}

impl crate::problem::Classify for SettingsError {
    fn problem(&self) -> crate::problem::Problem {
        match self {
            SettingsError::Write { .. } => crate::problem::Problem::Other,
            _ => crate::problem::Problem::Usage,
        }
    }
}

impl DesktopSettings {
    fn file(paths: &Paths) -> PathBuf {
        paths.data_dir.join("desktop.json")
    }

    /// Whether settings were ever saved here: without them, the app is starting for the first
    /// time.
    pub fn saved(paths: &Paths) -> bool {
        Self::file(paths).exists()
    }

    /// The saved settings; the defaults when there are none or the file cannot be read (it is
    /// then kept, and replaced at the next save).
    /// A value that fails [`DesktopSettings::check`] (a hand-edited file) is replaced by its
    /// default, so one bad field neither applies nor blocks every later save.
    pub fn load(paths: &Paths) -> DesktopSettings {
        let file = Self::file(paths);
        let loaded = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(file = %file.display(), error = %e, "unreadable desktop settings; using the defaults");
                DesktopSettings::default()
            }),
            Err(_) => DesktopSettings::default(),
        };
        loaded.repaired()
    }

    fn repaired(mut self) -> DesktopSettings {
        let default = DesktopSettings::default();
        while let Err(e) = self.check() {
            tracing::warn!(error = %e, "a desktop setting is not valid; using its default");
            match e {
                SettingsError::BindAddress(_) => self.bind_address = default.bind_address.clone(),
                SettingsError::Inactivity(_) => {
                    self.inactivity_limit_hours = default.inactivity_limit_hours
                }
                SettingsError::Terminal(_) => self.terminal = default.terminal.clone(),
                SettingsError::Profile(_) => self.profile = default.profile.clone(),
                SettingsError::Shortcut(_) => {
                    self.switcher_shortcut = default.switcher_shortcut.clone()
                }
                SettingsError::Write { .. } => break,
            }
        }
        self
    }

    /// Checks every value (see [`SettingsError`]).
    pub fn check(&self) -> Result<(), SettingsError> {
        if self.bind_address.trim().parse::<IpAddr>().is_err() {
            return Err(SettingsError::BindAddress(self.bind_address.clone()));
        }
        if !INACTIVITY_HOURS.contains(&self.inactivity_limit_hours) {
            return Err(SettingsError::Inactivity(self.inactivity_limit_hours));
        }
        if self.terminal.chars().any(char::is_control) {
            return Err(SettingsError::Terminal(self.terminal.clone()));
        }
        if !self.profile.trim().is_empty() {
            crate::setup::profile(self.profile.trim())
                .map_err(|e| SettingsError::Profile(e.to_string()))?;
        }
        if !shortcut_is_well_formed(&self.switcher_shortcut) {
            return Err(SettingsError::Shortcut(self.switcher_shortcut.clone()));
        }
        Ok(())
    }

    /// Checks, then writes the settings.
    pub fn save(&self, paths: &Paths) -> Result<(), SettingsError> {
        self.check()?;
        let file = Self::file(paths);
        let write_error = |message: String| SettingsError::Write {
            path: file.clone(),
            message,
        };
        crate::private_files::create_private_dir(&paths.data_dir)
            .map_err(|e| write_error(e.to_string()))?;
        let json = serde_json::to_vec_pretty(self).map_err(|e| write_error(e.to_string()))?;
        crate::private_files::write_atomic(&file, &json, 0o600)
            .map_err(|e| write_error(e.to_string()))
    }

    /// The tunnels' bind address (loopback when the saved one is not an address).
    pub fn bind_ip(&self) -> IpAddr {
        self.bind_address
            .trim()
            .parse()
            .unwrap_or(IpAddr::from([127, 0, 0, 1]))
    }

    /// The inactivity limit as a duration.
    pub fn inactivity_limit(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.inactivity_limit_hours) * 3600)
    }

    pub fn is_pinned(&self, app: &AppKey) -> bool {
        self.pinned.contains(&app.to_string())
    }

    pub fn set_pinned(&mut self, app: &AppKey, pinned: bool) {
        let key = app.to_string();
        self.pinned.retain(|p| *p != key);
        if pinned {
            self.pinned.push(key);
        }
    }

    /// Records that the user used an app (newest first, at most [`RECENT_APPS`]).
    pub fn used(&mut self, app: &AppKey) {
        let key = app.to_string();
        self.recent.retain(|p| *p != key);
        self.recent.insert(0, key);
        self.recent.truncate(RECENT_APPS);
    }

    /// Whether entering this project's production environment asks first.
    pub fn guards_production(&self, project: &str) -> bool {
        !self.production_unguarded.iter().any(|p| p == project)
    }

    /// Turns the question before entering this project's production environment on or off.
    pub fn set_guards_production(&mut self, project: &str, guarded: bool) {
        self.production_unguarded.retain(|p| p != project);
        if !guarded {
            self.production_unguarded.push(project.to_string());
        }
    }

    /// Pinned apps, then recent ones not pinned, each parsed (unparseable entries skipped).
    pub fn shortcuts(&self) -> Vec<(AppKey, bool)> {
        let pinned = self.pinned.iter().filter_map(|p| AppKey::parse(p).ok());
        let recent = self
            .recent
            .iter()
            .filter(|r| !self.pinned.contains(r))
            .filter_map(|r| AppKey::parse(r).ok());
        pinned
            .map(|a| (a, true))
            .chain(recent.map(|a| (a, false)))
            .collect()
    }
}

/// A shortcut as the desktop's global-shortcut parser reads it: empty (none), or modifiers and
/// one key joined by `+`, each a plain word (`Ctrl+Alt+Space`, `Super+K`). The desktop parses
/// it again when it registers it and says so if the key is unknown.
fn shortcut_is_well_formed(shortcut: &str) -> bool {
    let shortcut = shortcut.trim();
    shortcut.is_empty()
        || (shortcut.len() <= 64
            && shortcut
                .split('+')
                .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(dir: &std::path::Path) -> Paths {
        Paths::under_home(dir, None)
    }

    fn key(s: &str) -> AppKey {
        AppKey::parse(s).unwrap()
    }

    #[test]
    fn settings_round_trip_and_bad_values_leave_the_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        assert_eq!(DesktopSettings::load(&p), DesktopSettings::default());
        let mut s = DesktopSettings {
            terminal: "xterm -e {}".into(),
            ..DesktopSettings::default()
        };
        s.save(&p).unwrap();
        assert_eq!(DesktopSettings::load(&p), s);

        for bad in [
            DesktopSettings {
                bind_address: "localhost:80".into(),
                ..s.clone()
            },
            DesktopSettings {
                inactivity_limit_hours: 0,
                ..s.clone()
            },
            DesktopSettings {
                terminal: "xterm\n-e".into(),
                ..s.clone()
            },
            DesktopSettings {
                profile: "no-such-profile".into(),
                ..s.clone()
            },
            DesktopSettings {
                switcher_shortcut: "Ctrl++".into(),
                ..s.clone()
            },
        ] {
            let e = bad.save(&p).unwrap_err();
            assert!(!e.to_string().is_empty());
            assert_eq!(DesktopSettings::load(&p), s, "{e}");
        }
        s.inactivity_limit_hours = 12;
        s.save(&p).unwrap();
        assert_eq!(
            DesktopSettings::load(&p).inactivity_limit().as_secs(),
            12 * 3600
        );
    }

    #[test]
    fn a_hand_edited_bad_value_falls_back_to_its_default_alone() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        std::fs::create_dir_all(&p.data_dir).unwrap();
        std::fs::write(
            p.data_dir.join("desktop.json"),
            r#"{"inactivity_limit_hours": 0, "bind_address": "nope", "terminal": "xterm -e {}", "pinned": ["a/b/c"]}"#,
        )
        .unwrap();
        let s = DesktopSettings::load(&p);
        assert_eq!(s.inactivity_limit_hours, 8);
        assert_eq!(s.bind_address, "127.0.0.1");
        assert_eq!(s.terminal, "xterm -e {}");
        assert_eq!(s.pinned, ["a/b/c"]);
        s.save(&p).unwrap();
    }

    #[test]
    fn pinned_apps_come_first_then_recent_ones_once() {
        let mut s = DesktopSettings::default();
        for a in ["p1/main/app", "p2/main/web", "p1/main/app", "p3/dev/api"] {
            s.used(&key(a));
        }
        assert_eq!(s.recent, ["p3/dev/api", "p1/main/app", "p2/main/web"]);
        s.set_pinned(&key("p2/main/web"), true);
        let order: Vec<_> = s
            .shortcuts()
            .into_iter()
            .map(|(k, pinned)| (k.to_string(), pinned))
            .collect();
        assert_eq!(
            order,
            [
                ("p2/main/web".to_string(), true),
                ("p3/dev/api".to_string(), false),
                ("p1/main/app".to_string(), false)
            ]
        );
        for i in 0..10 {
            s.used(&key(&format!("p{i}/main/app")));
        }
        assert_eq!(s.recent.len(), RECENT_APPS);
        s.set_pinned(&key("p2/main/web"), false);
        assert!(!s.is_pinned(&key("p2/main/web")));
    }
}
