//! Vendor profiles: where a platform's API, authorization server and SSH hosts are. Platform.sh
//! and Upsun are built in (the reference's table); any other platform, such as a local
//! `tether-sim`, is a profile file (`tether-sim --profile-out` writes one).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read the profile {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the profile {path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("no profile named {0:?}: use platformsh, upsun, or the path of a profile file")]
    Unknown(String),
}

/// Where a local platform's SSH gateway really listens, when its host names do not resolve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshEndpoint {
    pub hostname: String,
    pub port: u16,
    /// The gateway's host keys (`ssh-ed25519 AAAA…`), trusted for the profile's host patterns.
    #[serde(default)]
    pub host_keys: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Short name, used in file names and the keyring (`platformsh`, `upsun`, `tether-sim`).
    pub name: String,
    /// What people call it (`Platform.sh`).
    pub title: String,
    pub api_url: Url,
    pub auth_url: Url,
    pub client_id: String,
    /// The environment variable that carries an API token for automation.
    pub token_env_var: String,
    /// Host patterns of the platform's SSH gateways (`*.platform.sh`).
    pub ssh_host_patterns: Vec<String>,
    /// The platform's SSH certificate authority keys, when known: certificates signed by
    /// anything else are refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_ca_keys: Vec<String>,
    /// Present for local platforms whose SSH host names do not resolve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshEndpoint>,
}

/// Built-in URLs are literals, checked by the tests below.
#[allow(clippy::expect_used)]
fn url(s: &str) -> Url {
    Url::parse(s).expect("built-in profile URLs parse")
}

impl Profile {
    pub fn platformsh() -> Profile {
        Profile {
            name: "platformsh".into(),
            title: "Platform.sh".into(),
            api_url: url("https://api.platform.sh"),
            auth_url: url("https://auth.api.platform.sh"),
            client_id: "platform-cli".into(),
            token_env_var: "PLATFORMSH_CLI_TOKEN".into(),
            ssh_host_patterns: vec!["*.platform.sh".into()],
            ssh_ca_keys: Vec::new(),
            ssh: None,
        }
    }

    pub fn upsun() -> Profile {
        Profile {
            name: "upsun".into(),
            title: "Upsun".into(),
            api_url: url("https://api.upsun.com"),
            auth_url: url("https://auth.upsun.com"),
            client_id: "upsun-cli".into(),
            token_env_var: "UPSUN_CLI_TOKEN".into(),
            ssh_host_patterns: vec!["*.upsun.com".into()],
            ssh_ca_keys: Vec::new(),
            ssh: None,
        }
    }

    pub fn builtins() -> Vec<Profile> {
        vec![Profile::platformsh(), Profile::upsun()]
    }

    pub fn from_toml(text: &str, path: &Path) -> Result<Profile, ProfileError> {
        let invalid = |message: String| ProfileError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let profile: Profile =
            toml::from_str(text).map_err(|e| invalid(e.message().to_string()))?;
        if profile.name.is_empty()
            || !profile
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(format!(
                "name {:?} must be letters, digits, - and _",
                profile.name
            )));
        }
        for u in [&profile.api_url, &profile.auth_url] {
            if !matches!(u.scheme(), "https" | "http") {
                return Err(invalid(format!("{u} is not an http(s) URL")));
            }
        }
        if profile.ssh_host_patterns.is_empty() {
            return Err(invalid(
                "ssh_host_patterns must name at least one host pattern".into(),
            ));
        }
        Ok(profile)
    }

    pub fn from_file(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Profile::from_toml(&text, path)
    }

    /// A built-in name, or else the path of a profile file (relative to `cwd`).
    pub fn select(selector: &str, cwd: &Path) -> Result<Profile, ProfileError> {
        if let Some(p) = Profile::builtins().into_iter().find(|p| p.name == selector) {
            return Ok(p);
        }
        let path = cwd.join(selector);
        if path.is_file() {
            return Profile::from_file(&path);
        }
        Err(ProfileError::Unknown(selector.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_match_the_reference_table() {
        let p = Profile::platformsh();
        assert_eq!(p.api_url.as_str(), "https://api.platform.sh/");
        assert_eq!(p.auth_url.as_str(), "https://auth.api.platform.sh/");
        assert_eq!(p.client_id, "platform-cli");
        assert_eq!(p.token_env_var, "PLATFORMSH_CLI_TOKEN");
        let u = Profile::upsun();
        assert_eq!(u.auth_url.as_str(), "https://auth.upsun.com/");
        assert_eq!(u.client_id, "upsun-cli");
        assert_eq!(u.ssh_host_patterns, vec!["*.upsun.com"]);
    }

    #[test]
    fn select_takes_names_then_paths_and_says_what_exists() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Profile::select("upsun", dir.path()).unwrap().name, "upsun");
        let err = Profile::select("nope", dir.path()).unwrap_err().to_string();
        assert!(err.contains("platformsh") && err.contains("upsun"), "{err}");
    }

    #[test]
    fn a_bad_profile_file_names_the_problem() {
        let path = Path::new("p.toml");
        let err = Profile::from_toml("name = \"x y\"\ntitle=\"t\"\napi_url=\"https://a\"\nauth_url=\"https://b\"\nclient_id=\"c\"\ntoken_env_var=\"T\"\nssh_host_patterns=[\"*.x\"]", path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("name"), "{err}");
        let err = Profile::from_toml("name = \"x\"", path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field"), "{err}");
    }
}
