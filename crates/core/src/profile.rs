//! Vendor profiles: where a platform's API, authorization server and SSH hosts are. Platform.sh
//! and Upsun are built in (the reference's table); any other platform, such as a local
//! `tether-sim`, is a profile file (`tether-sim --profile-out` writes one).
//!
//! A profile file is input like any other: its values end up in SSH configuration lines,
//! known-hosts lines and file names, so [`Profile::validate`] refuses, naming the field, any
//! value that could break out of its place there (a line break in a title would otherwise add
//! a `ProxyCommand` to the session's SSH config).

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

/// A profile value that cannot be used safely, with the field it came from (as named in a
/// profile file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the field {field} {problem}")]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

fn field_error(field: impl Into<String>, problem: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        problem: problem.into(),
    }
}

/// Refuses line breaks and other control characters, which would start a new line (or worse)
/// in an SSH config, a known-hosts file or a terminal.
fn printable(field: &str, value: &str) -> Result<(), FieldError> {
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        let what = if matches!(c, '\n' | '\r') {
            "a line break"
        } else {
            "a control character"
        };
        return Err(field_error(
            field,
            format!("contains {what} ({c:?}), which is not allowed: {value:?}"),
        ));
    }
    if value.trim().is_empty() {
        return Err(field_error(field, "is empty"));
    }
    Ok(())
}

/// Checks that a value is made only of the given characters.
fn only(
    field: &str,
    value: &str,
    allowed: impl Fn(char) -> bool,
    described: &str,
) -> Result<(), FieldError> {
    printable(field, value)?;
    match value.chars().find(|c| !allowed(*c)) {
        Some(c) => Err(field_error(
            field,
            format!("has {c:?} in {value:?}: only {described} are allowed"),
        )),
        None => Ok(()),
    }
}

/// Whether `data` is the base64 of an OpenSSH key blob of type `kind` (the blob starts with
/// its own type name).
fn key_blob_of(kind: &str, data: &str) -> bool {
    use base64::Engine;
    let Ok(blob) = base64::engine::general_purpose::STANDARD.decode(data) else {
        return false;
    };
    let Some((len, rest)) = blob.split_first_chunk::<4>() else {
        return false;
    };
    let len = u32::from_be_bytes(*len) as usize;
    rest.get(..len) == Some(kind.as_bytes())
}

/// An OpenSSH public key line: `<type> <base64>` and an optional comment.
fn public_key(field: &str, value: &str) -> Result<(), FieldError> {
    printable(field, value)?;
    let mut parts = value.split_whitespace();
    let kind = parts.next().unwrap_or_default();
    let data = parts.next().unwrap_or_default();
    if !key_blob_of(kind, data) {
        return Err(field_error(
            field,
            format!("is not an OpenSSH public key (\"ssh-ed25519 AAAA…\"): {value:?}"),
        ));
    }
    Ok(())
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
    /// The gateways' public host keys as known-hosts lines (`host[,host…] key-type key`), as
    /// the official client bundles them: trusted for the hosts they name, on every SSH path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateway_host_keys: Vec<String>,
    /// The platform's SSH certificate authority keys, when known: certificates signed by
    /// anything else are refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_ca_keys: Vec<String>,
    /// Present for local platforms whose SSH host names do not resolve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshEndpoint>,
}

/// The gateway keys the built-in profiles bundle (`crates/core/data/gateway-host-keys`).
fn bundled_gateway_keys() -> Vec<String> {
    crate::ssh::trust::BUNDLED_GATEWAY_KEYS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Whether a URL's host is this machine: the only place plain `http` may go, since tokens
/// and codes travel in it.
fn is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// A host pattern so broad that it would send the session's certificate (and the refresh
/// hook) to hosts of other parties: `*`, `*.*`, `*.com`, `ssh*`. A pattern with a wildcard
/// must end in at least two labels without one (`*.platform.sh`).
fn too_broad(pattern: &str) -> bool {
    if !pattern.contains(['*', '?']) {
        return false;
    }
    let fixed = pattern
        .rsplit('.')
        .take_while(|label| !label.is_empty() && !label.contains(['*', '?']))
        .count();
    fixed < 2
}

/// Built-in URLs are literals, checked by the tests below.
#[allow(clippy::expect_used)]
fn url(s: &str) -> Url {
    Url::parse(s).expect("built-in profile URLs parse")
}

impl Profile {
    /// Platform.sh as the official `platform` command reaches it since January 2026: Upsun's
    /// API and sign-in with its own client id (upsun/cli `internal/config/platformsh-cli.yaml`).
    pub fn platformsh() -> Profile {
        Profile {
            name: "platformsh".into(),
            title: "Platform.sh".into(),
            api_url: url("https://api.upsun.com"),
            auth_url: url("https://auth.upsun.com"),
            client_id: "platform-cli".into(),
            token_env_var: "PLATFORMSH_CLI_TOKEN".into(),
            ssh_host_patterns: vec!["*.platform.sh".into()],
            gateway_host_keys: bundled_gateway_keys(),
            ssh_ca_keys: Vec::new(),
            ssh: None,
        }
    }

    /// Upsun (upsun/cli `internal/config/upsun-cli.yaml`): its gateways are
    /// `ssh.<region>.platform.sh`, so both wildcards are its hosts.
    pub fn upsun() -> Profile {
        Profile {
            name: "upsun".into(),
            title: "Upsun".into(),
            api_url: url("https://api.upsun.com"),
            auth_url: url("https://auth.upsun.com"),
            client_id: "upsun-cli".into(),
            token_env_var: "UPSUN_CLI_TOKEN".into(),
            ssh_host_patterns: vec!["*.platform.sh".into(), "*.upsun.com".into()],
            gateway_host_keys: bundled_gateway_keys(),
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
        profile.validate().map_err(|e| invalid(e.to_string()))?;
        if Profile::builtins().iter().any(|b| b.name == profile.name) {
            return Err(invalid(format!(
                "the field name {:?} is a built-in profile's name (its session and tokens are \
                 kept under that name): choose another name",
                profile.name
            )));
        }
        Ok(profile)
    }

    /// Checks every value that reaches a file name, an SSH config or known-hosts line, or an
    /// environment lookup; the error names the field.
    pub fn validate(&self) -> Result<(), FieldError> {
        let name_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        only(
            "name",
            &self.name,
            name_char,
            "letters, digits, - and _ (it names files and keyring entries)",
        )?;
        if self.name.starts_with('-') || self.name.len() > 64 {
            return Err(field_error(
                "name",
                format!(
                    "{:?} must not start with - and must be at most 64 characters",
                    self.name
                ),
            ));
        }
        printable("title", &self.title)?;
        printable("client_id", &self.client_id)?;
        only(
            "token_env_var",
            &self.token_env_var,
            |c| c.is_ascii_alphanumeric() || c == '_',
            "letters, digits and _",
        )?;
        if self.token_env_var.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(field_error(
                "token_env_var",
                format!("{:?} must not start with a digit", self.token_env_var),
            ));
        }
        for (field, u) in [("api_url", &self.api_url), ("auth_url", &self.auth_url)] {
            match u.scheme() {
                "https" => {}
                "http" if is_loopback(u) => {}
                "http" => {
                    return Err(field_error(
                        field,
                        format!(
                            "{u} is plain http to another machine: tokens would cross the \
                             network unencrypted; use https (http is only for 127.0.0.1, ::1 \
                             and localhost)"
                        ),
                    ))
                }
                _ => return Err(field_error(field, format!("{u} is not an http(s) URL"))),
            }
        }
        if self.ssh_host_patterns.is_empty() {
            return Err(field_error(
                "ssh_host_patterns",
                "must name at least one host pattern",
            ));
        }
        for (i, pattern) in self.ssh_host_patterns.iter().enumerate() {
            only(
                &format!("ssh_host_patterns[{i}]"),
                pattern,
                |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '*' | '?'),
                "letters, digits, '.', '-', '_' and the wildcards '*' and '?'",
            )?;
            if too_broad(pattern) {
                return Err(field_error(
                    format!("ssh_host_patterns[{i}]"),
                    format!(
                        "{pattern:?} is too broad: it would send your SSH certificate to hosts \
                         that are not the platform's; name the platform's domain, such as \
                         \"*.platform.sh\""
                    ),
                ));
            }
        }
        for (i, line) in self.gateway_host_keys.iter().enumerate() {
            let field = format!("gateway_host_keys[{i}]");
            printable(&field, line)?;
            crate::ssh::trust::parse_known_hosts_line(line)
                .map_err(|problem| field_error(&field, problem))?;
        }
        for (i, key) in self.ssh_ca_keys.iter().enumerate() {
            public_key(&format!("ssh_ca_keys[{i}]"), key)?;
        }
        if let Some(ssh) = &self.ssh {
            only(
                "ssh.hostname",
                &ssh.hostname,
                |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'),
                "letters, digits, '.', '-', '_' and ':'",
            )?;
            if ssh.hostname.starts_with('-') {
                return Err(field_error(
                    "ssh.hostname",
                    format!("{:?} must not start with -", ssh.hostname),
                ));
            }
            for (i, key) in ssh.host_keys.iter().enumerate() {
                public_key(&format!("ssh.host_keys[{i}]"), key)?;
            }
        }
        Ok(())
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
        assert_eq!(p.api_url.as_str(), "https://api.upsun.com/");
        assert_eq!(p.auth_url.as_str(), "https://auth.upsun.com/");
        assert_eq!(p.client_id, "platform-cli");
        assert_eq!(p.token_env_var, "PLATFORMSH_CLI_TOKEN");
        assert_eq!(p.ssh_host_patterns, vec!["*.platform.sh"]);
        assert!(p.ssh.is_none());
        let u = Profile::upsun();
        assert_eq!(u.api_url.as_str(), "https://api.upsun.com/");
        assert_eq!(u.auth_url.as_str(), "https://auth.upsun.com/");
        assert_eq!(u.client_id, "upsun-cli");
        assert_eq!(u.token_env_var, "UPSUN_CLI_TOKEN");
        assert_eq!(u.ssh_host_patterns, vec!["*.platform.sh", "*.upsun.com"]);
        assert!(u.ssh.is_none());
        for b in [p, u] {
            assert!(b.gateway_host_keys.len() >= 32, "{}", b.name);
            assert!(b
                .gateway_host_keys
                .iter()
                .any(|l| l.starts_with("ssh.eu-5.platform.sh ssh-rsa ")));
        }
    }

    #[test]
    fn a_profile_file_may_not_take_a_builtin_name() {
        for name in ["platformsh", "upsun"] {
            let err = refused("name = \"local\"", &format!("name = {name:?}"));
            assert!(err.contains("built-in"), "{err}");
        }
    }

    #[test]
    fn plain_http_is_only_for_loopback() {
        for ok in [
            "http://127.0.0.1:1",
            "http://[::1]:8",
            "http://localhost:9",
            "https://a.example",
        ] {
            let text = GOOD.replacen("http://127.0.0.1:1", ok, 1);
            Profile::from_toml(&text, Path::new("p.toml")).unwrap();
        }
        let err = refused("\"http://127.0.0.1:1\"", "\"http://auth.example.com\"");
        assert!(err.contains("api_url") && err.contains("https"), "{err}");
        let err = refused("\"http://127.0.0.1:2\"", "\"http://10.0.0.1:2\"");
        assert!(err.contains("auth_url"), "{err}");
    }

    #[test]
    fn over_broad_host_patterns_are_refused() {
        for bad in ["*", "*.*", "*.com", "ssh*", "*.sh", "?.x"] {
            let err = refused("[\"*.local.test\"]", &format!("[{bad:?}]"));
            assert!(err.contains("too broad"), "{bad}: {err}");
        }
        for ok in [
            "*.platform.sh",
            "ssh.*.platform.sh",
            "gateway.example",
            "localhost",
        ] {
            let text = GOOD.replacen("*.local.test", ok, 1);
            Profile::from_toml(&text, Path::new("p.toml")).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn gateway_host_keys_must_be_known_hosts_lines() {
        let good = "gateway_host_keys = [\"ssh.eu-5.platform.sh ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\"]\n";
        let text = GOOD.replacen("ssh_ca_keys", &format!("{good}ssh_ca_keys"), 1);
        let p = Profile::from_toml(&text, Path::new("p.toml")).unwrap();
        assert_eq!(p.gateway_host_keys.len(), 1);
        for bad in [
            "ssh-ed25519 AAAAC3Nz",
            "ssh.x.sh ssh-ed25519 AAAA\\nProxyCommand x",
        ] {
            let text = GOOD.replacen(
                "ssh_ca_keys",
                &format!("gateway_host_keys = [{bad:?}]\nssh_ca_keys"),
                1,
            );
            let err = Profile::from_toml(&text, Path::new("p.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("gateway_host_keys[0]"), "{bad}: {err}");
        }
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

    const GOOD: &str = "name = \"local\"\ntitle = \"Local\"\napi_url = \"http://127.0.0.1:1\"\n\
        auth_url = \"http://127.0.0.1:2\"\nclient_id = \"tether\"\ntoken_env_var = \"LOCAL_TOKEN\"\n\
        ssh_host_patterns = [\"*.local.test\"]\nssh_ca_keys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ca\"]\n\
        [ssh]\nhostname = \"127.0.0.1\"\nport = 2222\nhost_keys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\"]\n";

    /// The error for a profile file where `field = "<old>"` became `field = <new>` (TOML).
    fn refused(old: &str, new: &str) -> String {
        let text = GOOD.replacen(old, new, 1);
        assert_ne!(text, GOOD, "{old} is not in the profile");
        match Profile::from_toml(&text, Path::new("p.toml")) {
            Ok(p) => panic!("accepted {p:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_good_profile_file_and_the_builtins_validate() {
        Profile::from_toml(GOOD, Path::new("p.toml")).unwrap();
        for p in Profile::builtins() {
            p.validate().unwrap();
        }
    }

    #[test]
    fn a_line_break_in_any_field_that_reaches_ssh_config_is_refused_by_name() {
        for (old, new, field) in [
            (
                "title = \"Local\"",
                "title = \"Local\\nProxyCommand sh -c 'touch /tmp/pwned'\"",
                "title",
            ),
            ("name = \"local\"", "name = \"lo\\ncal\"", "name"),
            (
                "client_id = \"tether\"",
                "client_id = \"te\\rther\"",
                "client_id",
            ),
            (
                "token_env_var = \"LOCAL_TOKEN\"",
                "token_env_var = \"LOCAL\\nTOKEN\"",
                "token_env_var",
            ),
            (
                "[\"*.local.test\"]",
                "[\"*.local.test\\n  ProxyCommand x\"]",
                "ssh_host_patterns[0]",
            ),
            (
                "[\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ca\"]",
                "[\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ca\\u0007\"]",
                "ssh_ca_keys[0]",
            ),
            (
                "hostname = \"127.0.0.1\"",
                "hostname = \"127.0.0.1\\n  ProxyCommand x\"",
                "ssh.hostname",
            ),
            (
                "[\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\"]",
                "[\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\\n* ssh-ed25519 AAAAevil\"]",
                "ssh.host_keys[0]",
            ),
        ] {
            let err = refused(old, new);
            assert!(
                err.contains(&format!("the field {field} ")),
                "{field}: {err}"
            );
            assert!(
                err.contains("line break") || err.contains("control character"),
                "{field}: {err}"
            );
        }
    }

    #[test]
    fn values_that_would_split_or_escape_their_ssh_config_line_are_refused() {
        for (old, new, field) in [
            (
                "[\"*.local.test\"]",
                "[\"*.local.test host.evil\"]",
                "ssh_host_patterns[0]",
            ),
            (
                "[\"*.local.test\"]",
                "[\"*.local.test\\\",*\"]",
                "ssh_host_patterns[0]",
            ),
            ("[\"*.local.test\"]", "[]", "ssh_host_patterns"),
            (
                "hostname = \"127.0.0.1\"",
                "hostname = \"-oProxyCommand=x\"",
                "ssh.hostname",
            ),
            (
                "hostname = \"127.0.0.1\"",
                "hostname = \"127.0.0.1 x\"",
                "ssh.hostname",
            ),
            (
                "[\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\"]",
                "[\"not a key\"]",
                "ssh.host_keys[0]",
            ),
            (
                "token_env_var = \"LOCAL_TOKEN\"",
                "token_env_var = \"A=B\"",
                "token_env_var",
            ),
            ("title = \"Local\"", "title = \" \"", "title"),
        ] {
            let err = refused(old, new);
            assert!(
                err.contains(&format!("the field {field} ")),
                "{field}: {err}"
            );
        }
    }

    #[test]
    fn names_are_safe_file_names() {
        for bad in ["", ".", "..", "../x", "a/b", "a\\\\b", "-x", "a.b", "café"] {
            let err = refused("name = \"local\"", &format!("name = {bad:?}"));
            assert!(err.contains("the field name "), "{bad:?}: {err}");
        }
        let long = "x".repeat(65);
        let err = refused("name = \"local\"", &format!("name = {long:?}"));
        assert!(err.contains("at most 64"), "{err}");
    }
}
