//! The system `ssh` command line for a session, so that the user's own ssh settings, agent
//! and escape sequences work; and reading ssh's complaints (the MFA refusal).

use std::path::Path;

use crate::cert::CertFiles;
use crate::openssh::SshFiles;
use crate::profile::Profile;

use super::url::SshUrl;

fn option(name: &str, value: &Path) -> String {
    let v = value.display().to_string();
    if v.contains(char::is_whitespace) {
        format!("{name}=\"{v}\"")
    } else {
        format!("{name}={v}")
    }
}

/// Arguments for `ssh` (without the program name): the session's certificate, identity and
/// known hosts as `-o` options, so this works whether or not `~/.ssh/config` includes
/// Tether's block; then the destination and the remote command.
pub fn ssh_args(
    profile: &Profile,
    cert: &CertFiles,
    files: &SshFiles,
    url: &SshUrl,
    command: Option<&str>,
    force_tty: bool,
) -> Vec<String> {
    let mut args = vec![
        "-o".to_string(),
        option("CertificateFile", &cert.certificate()),
        "-o".to_string(),
        option("IdentityFile", &cert.key()),
    ];
    if let Some(ssh) = &profile.ssh {
        args.extend([
            "-o".into(),
            format!("HostName={}", ssh.hostname),
            "-o".into(),
            format!("Port={}", ssh.port),
        ]);
        if !ssh.host_keys.is_empty() {
            args.extend([
                "-o".into(),
                option("UserKnownHostsFile", &files.known_hosts),
                "-o".into(),
                "StrictHostKeyChecking=yes".into(),
            ]);
        }
    }
    if force_tty {
        args.push("-t".into());
    }
    args.push("--".into());
    args.push(url.to_string());
    if let Some(c) = command {
        args.push(c.to_string());
    }
    args
}

/// The authentication methods an SSH refusal asks for: the gateway's
/// `Error: Access denied … Parameters: {"amr":["mfa"]}`, or the older `reason: access requires MFA`.
pub fn required_amr(stderr: &str) -> Option<Vec<String>> {
    for line in stderr.lines() {
        if line.contains("reason: access requires MFA") {
            return Some(vec!["mfa".to_string()]);
        }
        if !line.contains("Access denied") {
            continue;
        }
        let Some((_, params)) = line.split_once("Parameters:") else {
            continue;
        };
        let params: serde_json::Value = match serde_json::from_str(params.trim()) {
            Ok(v) => v,
            Err(_) => continue,
        };
        let amr: Vec<String> = params["amr"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if !amr.is_empty() {
            return Some(amr);
        }
    }
    None
}

/// What to do about a gateway's MFA refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MfaRemedy {
    /// The session already satisfies what is asked; the certificate predates it: load a new
    /// certificate and retry once.
    NewCertificate,
    /// The session must be signed in again with these methods.
    SignIn(Vec<String>),
}

/// Decides from the refusal's `amr` and whether the current certificate carries MFA.
pub fn mfa_remedy(required: &[String], certificate_has_mfa: bool) -> MfaRemedy {
    if certificate_has_mfa && required.iter().all(|a| a == "mfa") {
        MfaRemedy::NewCertificate
    } else {
        MfaRemedy::SignIn(required.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_mfa_certificate_is_renewed_and_anything_else_needs_a_sign_in() {
        let mfa = vec!["mfa".to_string()];
        assert_eq!(mfa_remedy(&mfa, true), MfaRemedy::NewCertificate);
        assert_eq!(mfa_remedy(&mfa, false), MfaRemedy::SignIn(mfa.clone()));
        let sso = vec!["mfa".to_string(), "sso:acme".to_string()];
        assert_eq!(mfa_remedy(&sso, true), MfaRemedy::SignIn(sso.clone()));
    }

    #[test]
    fn mfa_refusals_are_recognized_in_both_forms() {
        let new = "Error: Access denied: this organization requires multi-factor authentication. Parameters: {\"amr\":[\"mfa\"]}\r\n";
        assert_eq!(required_amr(new), Some(vec!["mfa".to_string()]));
        assert_eq!(
            required_amr("hello\nreason: access requires MFA\n"),
            Some(vec!["mfa".to_string()])
        );
        assert_eq!(required_amr("Permission denied (publickey)."), None);
        assert_eq!(required_amr("Access denied. Parameters: not json"), None);
    }

    #[test]
    fn the_destination_comes_after_a_double_dash() {
        let paths = crate::context::Paths::under_home(Path::new("/home/u"), None);
        let p = Profile::platformsh();
        let url = SshUrl::parse("ssh://p-main--app@ssh.eu.platform.sh").unwrap();
        let args = ssh_args(
            &p,
            &CertFiles::new(paths.session_dir(&p)),
            &SshFiles::new(&paths, &p),
            &url,
            Some("ls -l"),
            false,
        );
        let n = args.len();
        assert_eq!(
            &args[n - 3..],
            ["--", "p-main--app@ssh.eu.platform.sh", "ls -l"]
        );
        assert!(args.iter().any(|a| a.starts_with("CertificateFile=")));
    }
}
