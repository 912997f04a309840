//! The system `ssh` command line for a session, so that the user's own ssh settings, agent
//! and escape sequences work; and reading ssh's complaints (the MFA refusal).

use std::path::Path;

use crate::cert::CertFiles;
use crate::openssh::SshFiles;
use crate::profile::Profile;

use super::url::SshUrl;

/// `-o Name=path`, written as the session config writes it (`ssh -o` reads config lines).
fn option(name: &str, value: &Path) -> String {
    format!(
        "{name}={}",
        crate::openssh::config_path(value, crate::openssh::Directive::Tokens)
    )
}

/// Arguments for `ssh` (without the program name): the session's certificate, identity and
/// known hosts as `-o` options, so this works whether or not `~/.ssh/config` includes
/// Tether's block; then the user's own options (`-o`, in `ssh_config` form: `Name value` or
/// `Name=value`), the destination and the remote command.
pub fn ssh_args(
    profile: &Profile,
    cert: &CertFiles,
    files: &SshFiles,
    url: &SshUrl,
    command: Option<&str>,
    force_tty: bool,
    options: &[String],
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
    }
    args.extend(crate::openssh::host_key_options(files));
    for o in options {
        args.extend(["-o".to_string(), o.clone()]);
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

/// The environment variable that holds extra ssh options for a profile: the vendor's prefix
/// (its token variable without `TOKEN`) and `SSH_OPTIONS`, so `PLATFORMSH_CLI_SSH_OPTIONS` and
/// `UPSUN_CLI_SSH_OPTIONS` as the official clients read them (`env_prefix` in
/// `internal/config/*-cli.yaml`, `SSH_OPTIONS` in `legacy/src/Service/Config.php`), and
/// `TETHER_SIM_SSH_OPTIONS` for a profile file whose token variable is `TETHER_SIM_TOKEN`.
pub fn ssh_options_variable(profile: &Profile) -> String {
    let var = &profile.token_env_var;
    let prefix = var.strip_suffix("TOKEN").unwrap_or(var);
    if prefix.is_empty() || prefix.ends_with('_') {
        format!("{prefix}SSH_OPTIONS")
    } else {
        format!("{prefix}_SSH_OPTIONS")
    }
}

/// The options in that variable's value: one per line, as the official client splits its
/// `ssh.options` (`legacy/src/Service/Ssh.php`); blank lines are skipped.
pub fn split_ssh_options(value: &str) -> Vec<String> {
    value
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// The exit status of `ssh` itself failing (refused, unreachable, host key), as opposed to a
/// remote command's own status, which ssh passes on. Only this status is diagnosed, as the
/// official client does (`legacy/src/Service/SshDiagnostics.php`, `_SSH_ERROR_EXIT_CODE`).
pub const SSH_FAILED: u8 = 255;

/// What a gateway's refusal asks for: authentication methods (`mfa`, `sso:acme`) and a
/// maximum age of the sign-in, in seconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refusal {
    pub amr: Vec<String>,
    pub max_age: Option<u64>,
}

#[derive(serde::Deserialize)]
struct Parameters {
    #[serde(default)]
    amr: Vec<String>,
    #[serde(default)]
    max_age: Option<u64>,
}

/// Reads the gateway's refusal from ssh's stderr, as the official client does: `Error: Access
/// denied` anywhere, and a line of its own that starts with `Parameters:` and holds JSON; or
/// the older `reason: access requires MFA`. `None` when the text is no such refusal.
pub fn refusal(stderr: &str) -> Option<Refusal> {
    if stderr.contains("Error: Access denied") {
        let found = stderr.lines().find_map(|line| {
            let json = line.trim_end_matches('\r').strip_prefix("Parameters:")?;
            let p: Parameters = serde_json::from_str(json.trim()).ok()?;
            (!p.amr.is_empty() || p.max_age.is_some()).then_some(Refusal {
                amr: p.amr,
                max_age: p.max_age,
            })
        });
        if found.is_some() {
            return found;
        }
    }
    stderr
        .to_ascii_lowercase()
        .contains("reason: access requires mfa")
        .then(|| Refusal {
            amr: vec!["mfa".to_string()],
            max_age: None,
        })
}

/// What to do about a gateway's refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remedy {
    /// The session already satisfies what is asked; the certificate predates it: load a new
    /// certificate.
    NewCertificate,
    /// The session must be signed in again with these methods (and this recency).
    SignIn(Refusal),
}

/// Decides from the refusal and the authentication methods the current certificate carries
/// (its `token-claims@platform.sh`, or `mfa` from `has-mfa@platform.sh`). A demand for a recent
/// sign-in is met only by signing in: a new certificate from the same session is no younger.
pub fn remedy(refusal: &Refusal, certificate_amr: &[String]) -> Remedy {
    if refusal.max_age.is_none()
        && !refusal.amr.is_empty()
        && methods_match(&refusal.amr, certificate_amr)
    {
        Remedy::NewCertificate
    } else {
        Remedy::SignIn(refusal.clone())
    }
}

/// Whether every demanded method is among the current ones; a current `sso:*` stands for any
/// single sign-on provider (as in `SshDiagnostics.php`'s `authMethodsMatch`).
fn methods_match(demanded: &[String], current: &[String]) -> bool {
    let any_sso = current.iter().any(|c| c == "sso:*");
    demanded
        .iter()
        .all(|d| current.contains(d) || (any_sso && d.starts_with("sso:")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_certificate_that_meets_the_demand_is_renewed_and_anything_else_needs_a_sign_in() {
        let mfa = Refusal {
            amr: strings(&["mfa"]),
            max_age: None,
        };
        assert_eq!(
            remedy(&mfa, &strings(&["pwd", "mfa"])),
            Remedy::NewCertificate
        );
        assert_eq!(
            remedy(&mfa, &strings(&["pwd"])),
            Remedy::SignIn(mfa.clone())
        );
        let sso = Refusal {
            amr: strings(&["mfa", "sso:acme"]),
            max_age: None,
        };
        assert_eq!(
            remedy(&sso, &strings(&["mfa"])),
            Remedy::SignIn(sso.clone())
        );
        assert_eq!(
            remedy(&sso, &strings(&["mfa", "sso:*"])),
            Remedy::NewCertificate
        );
        let recent = Refusal {
            amr: strings(&["mfa"]),
            max_age: Some(300),
        };
        assert_eq!(
            remedy(&recent, &strings(&["mfa"])),
            Remedy::SignIn(recent.clone())
        );
    }

    #[test]
    fn the_two_line_refusal_is_recognized() {
        let real = "Hello Jane Doe, you successfully authenticated, but ...\r\nError: Access denied\r\nParameters: {\"amr\":[\"mfa\"]}\r\n";
        assert_eq!(
            refusal(real),
            Some(Refusal {
                amr: strings(&["mfa"]),
                max_age: None
            })
        );
        let recent = "Error: Access denied\nParameters: {\"amr\":[\"mfa\"],\"max_age\":600}\n";
        assert_eq!(refusal(recent).and_then(|r| r.max_age), Some(600));
        let age_only = "x\nError: Access denied\nParameters: {\"max_age\":60}";
        assert_eq!(
            refusal(age_only),
            Some(Refusal {
                amr: Vec::new(),
                max_age: Some(60)
            })
        );
    }

    #[test]
    fn parameters_count_only_at_the_start_of_a_line_and_with_access_denied() {
        // The one-line form this module once wanted is not the gateway's.
        let one_line = "Error: Access denied: MFA. Parameters: {\"amr\":[\"mfa\"]}\n";
        assert_eq!(refusal(one_line), None);
        assert_eq!(refusal("Parameters: {\"amr\":[\"mfa\"]}\n"), None);
        assert_eq!(refusal("Error: Access denied\nParameters: not json"), None);
        assert_eq!(refusal("Permission denied (publickey)."), None);
    }

    #[test]
    fn the_older_mfa_refusal_is_recognized() {
        let old = "Hello Jane, you successfully authenticated, but could not connect to service abc--app (reason: access requires MFA)\n";
        assert_eq!(refusal(old).map(|r| r.amr), Some(strings(&["mfa"])));
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
            &["SetEnv LC_X=1".to_string()],
        );
        let n = args.len();
        assert_eq!(
            &args[n - 3..],
            ["--", "p-main--app@ssh.eu.platform.sh", "ls -l"]
        );
        assert!(args.iter().any(|a| a.starts_with("CertificateFile=")));
        assert_eq!(&args[n - 5..n - 3], ["-o", "SetEnv LC_X=1"]);
    }

    #[test]
    fn each_vendor_reads_its_own_ssh_options_variable() {
        assert_eq!(
            ssh_options_variable(&Profile::platformsh()),
            "PLATFORMSH_CLI_SSH_OPTIONS"
        );
        assert_eq!(
            ssh_options_variable(&Profile::upsun()),
            "UPSUN_CLI_SSH_OPTIONS"
        );
        assert_eq!(
            split_ssh_options("LogLevel QUIET\n\n SetEnv LC_A=1 \n"),
            ["LogLevel QUIET", "SetEnv LC_A=1"]
        );
    }
}
