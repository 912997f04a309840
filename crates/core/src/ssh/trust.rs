//! Which SSH host keys Tether trusts for the platform's gateways: one policy for every SSH path
//! (the system `ssh` through the session's config, and russh for tunnels, relationships and
//! connection details).
//!
//! A key is trusted when it is bundled for that host (the gateways' keys the official client
//! ships, or a profile file's `gateway_host_keys`), when the profile file's `[ssh].host_keys`
//! has it (a local platform), or when the user's own `~/.ssh/known_hosts` or `known_hosts2`
//! does: plain and hashed names, `[host]:port`, wildcards and negations, `@cert-authority`
//! for host certificates, and `@revoked`, which refuses a key whatever else says. The user's
//! files are read at each check, so a key added to them is used by the next reconnection.
//!
//! Nothing is trusted on first use: an unknown, changed or revoked key is refused with the host,
//! the key's type and SHA256 fingerprint, and what to do.

use std::path::PathBuf;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use ssh_key::known_hosts::{Entry, HostPatterns, Marker};
use ssh_key::{Certificate, HashAlg, PublicKey};

use crate::context::{Clock, Paths};
use crate::profile::Profile;

/// The bundled keys of the platform's gateways (`host key-type key` lines).
pub const BUNDLED_GATEWAY_KEYS: &str = include_str!("../../data/gateway-host-keys");

/// The user's own known-hosts files, in the order OpenSSH reads them by default.
pub fn user_known_hosts_files(paths: &Paths) -> Vec<PathBuf> {
    vec![
        paths.ssh_dir.join("known_hosts"),
        paths.ssh_dir.join("known_hosts2"),
    ]
}

/// Why a host key was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No trusted source knows a key for this host.
    Unknown,
    /// Keys are known for this host, and this is none of them.
    Changed { known_in: String },
    /// A `@revoked` line names this key.
    Revoked { revoked_in: String },
    /// A host certificate that no `@cert-authority` line vouches for (or that is invalid).
    Certificate { why: String },
}

/// A refused host key, with what a person needs to decide what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct HostKeyRefused {
    /// The name looked up, `host` or `[host]:port`.
    pub host: String,
    /// `ssh-rsa`, `ssh-ed25519`…
    pub key_type: String,
    /// `SHA256:…`
    pub fingerprint: String,
    pub refusal: Refusal,
}

impl HostKeyRefused {
    fn message(&self) -> String {
        let key = format!("{} key {}", self.key_type, self.fingerprint);
        match &self.refusal {
            Refusal::Unknown => format!(
                "the SSH server {} offered the host key {key}, which no trusted source knows \
                 (Tether's bundled gateway keys, your ~/.ssh/known_hosts, the profile); refusing \
                 to connect. If you trust it, check the fingerprint with the platform's \
                 documentation and add the key to ~/.ssh/known_hosts",
                self.host
            ),
            Refusal::Changed { known_in } => format!(
                "the SSH server {} offered the host key {key}, but {known_in} has other keys for \
                 it: the key changed, or someone is intercepting the connection; refusing to \
                 connect. If the platform announced new keys, remove the old line from \
                 {known_in} (ssh-keygen -R {}) and add the new key",
                self.host, self.host
            ),
            Refusal::Revoked { revoked_in } => format!(
                "the SSH server {} offered the host key {key}, which {revoked_in} marks as \
                 revoked; refusing to connect",
                self.host
            ),
            Refusal::Certificate { why } => format!(
                "the SSH server {} offered a host certificate ({key}) that is not trusted: \
                 {why}; refusing to connect",
                self.host
            ),
        }
    }
}

/// Where a trusted line came from, for messages.
#[derive(Debug, Clone)]
enum Source {
    Bundled,
    Profile,
    File(PathBuf),
}

impl Source {
    fn describe(&self) -> String {
        match self {
            Source::Bundled => "Tether's bundled gateway keys".to_string(),
            Source::Profile => "the profile".to_string(),
            Source::File(p) => p.display().to_string(),
        }
    }
}

#[derive(Debug, Clone)]
struct Line {
    source: Source,
    entry: Entry,
}

/// Parses known-hosts text, skipping what does not parse (as OpenSSH does).
fn parse_lines(text: &str, source: &Source) -> Vec<Line> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                return None;
            }
            l.parse::<Entry>().ok().map(|entry| Line {
                source: source.clone(),
                entry,
            })
        })
        .collect()
}

/// Parses bundled-style `host[,host…] key-type key` lines; the error names the bad line.
pub fn parse_known_hosts_line(line: &str) -> Result<Entry, String> {
    line.trim()
        .parse::<Entry>()
        .map_err(|e| format!("{e}: {line:?} is not a known_hosts line (\"host key-type key\")"))
}

/// OpenSSH's `match_pattern`: `*` and `?` wildcards, case-insensitive for host names.
fn glob(pattern: &str, name: &str) -> bool {
    fn inner(p: &[u8], n: &[u8]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((b'*', rest)) => (0..=n.len()).any(|i| inner(rest, &n[i..])),
            Some((b'?', rest)) => !n.is_empty() && inner(rest, &n[1..]),
            Some((c, rest)) => n
                .split_first()
                .is_some_and(|(m, nrest)| c.eq_ignore_ascii_case(m) && inner(rest, nrest)),
        }
    }
    inner(pattern.as_bytes(), name.as_bytes())
}

/// Whether a host-pattern list matches `name` (`host` or `[host]:port`): some positive pattern
/// matches and no negated one does.
fn patterns_match(patterns: &HostPatterns, name: &str) -> bool {
    match patterns {
        HostPatterns::Patterns(list) => {
            let mut hit = false;
            for p in list {
                if let Some(negated) = p.strip_prefix('!') {
                    if glob(negated, name) {
                        return false;
                    }
                } else if glob(p, name) {
                    hit = true;
                }
            }
            hit
        }
        HostPatterns::HashedName { salt, hash } => {
            let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(salt) else {
                return false;
            };
            mac.update(name.as_bytes());
            mac.verify_slice(hash).is_ok()
        }
    }
}

/// The name OpenSSH looks up for a host and port.
pub fn lookup_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// What a server presented.
pub enum Presented<'a> {
    Key(&'a PublicKey),
    Certificate(&'a Certificate),
}

/// The trust policy of one profile, for the gateways it reaches.
#[derive(Debug, Clone)]
pub struct HostKeyPolicy {
    /// Bundled and profile lines: fixed for the policy's life.
    fixed: Arc<Vec<Line>>,
    /// The user's known-hosts files, read at each check.
    user_files: Vec<PathBuf>,
    clock: Arc<dyn Clock>,
}

impl HostKeyPolicy {
    /// The policy for a profile: its bundled gateway keys, its `[ssh].host_keys` (trusted for
    /// its host patterns and its gateway's address), and the user's known-hosts files.
    pub fn for_profile(profile: &Profile, paths: &Paths, clock: Arc<dyn Clock>) -> HostKeyPolicy {
        let mut fixed = parse_lines(&profile.gateway_host_keys.join("\n"), &Source::Bundled);
        fixed.extend(parse_lines(&local_gateway_lines(profile), &Source::Profile));
        HostKeyPolicy {
            fixed: Arc::new(fixed),
            user_files: user_known_hosts_files(paths),
            clock,
        }
    }

    fn user_lines(&self) -> Vec<Line> {
        self.user_files
            .iter()
            .filter_map(|path| {
                let text = std::fs::read_to_string(path).ok()?;
                Some(parse_lines(&text, &Source::File(path.clone())))
            })
            .flatten()
            .collect()
    }

    /// Whether what the server at `names` (the names it is known by, such as the gateway's
    /// host name and the address dialled) presented is trusted.
    pub fn check(&self, names: &[String], presented: Presented<'_>) -> Result<(), HostKeyRefused> {
        let lines: Vec<Line> = self
            .fixed
            .iter()
            .cloned()
            .chain(self.user_lines())
            .filter(|l| {
                names
                    .iter()
                    .any(|n| patterns_match(l.entry.host_patterns(), n))
            })
            .collect();
        let host = names.first().cloned().unwrap_or_default();
        let (key_data, key_type, fingerprint) = match &presented {
            Presented::Key(k) => (
                k.key_data().clone(),
                k.algorithm().to_string(),
                k.fingerprint(HashAlg::Sha256).to_string(),
            ),
            Presented::Certificate(c) => (
                c.public_key().clone(),
                c.algorithm().to_string(),
                c.public_key().fingerprint(HashAlg::Sha256).to_string(),
            ),
        };
        let refused = |refusal| HostKeyRefused {
            host: host.clone(),
            key_type: key_type.clone(),
            fingerprint: fingerprint.clone(),
            refusal,
        };
        // A revoked key, or a certificate signed by a revoked CA, is refused whatever else says.
        let signer = match &presented {
            Presented::Certificate(c) => Some(c.signature_key().clone()),
            Presented::Key(_) => None,
        };
        if let Some(revoked) = lines.iter().find(|l| {
            l.entry.marker() == Some(&Marker::Revoked)
                && (l.entry.public_key().key_data() == &key_data
                    || signer.as_ref() == Some(l.entry.public_key().key_data()))
        }) {
            return Err(refused(Refusal::Revoked {
                revoked_in: revoked.source.describe(),
            }));
        }
        match presented {
            Presented::Key(_) => {
                let plain: Vec<&Line> = lines
                    .iter()
                    .filter(|l| l.entry.marker().is_none())
                    .collect();
                if plain
                    .iter()
                    .any(|l| l.entry.public_key().key_data() == &key_data)
                {
                    return Ok(());
                }
                match plain.first() {
                    None => Err(refused(Refusal::Unknown)),
                    Some(l) => Err(refused(Refusal::Changed {
                        known_in: l.source.describe(),
                    })),
                }
            }
            Presented::Certificate(cert) => {
                let cas: Vec<ssh_key::Fingerprint> = lines
                    .iter()
                    .filter(|l| l.entry.marker() == Some(&Marker::CertAuthority))
                    .map(|l| l.entry.public_key().fingerprint(HashAlg::Sha256))
                    .collect();
                if cas.is_empty() {
                    return Err(refused(Refusal::Certificate {
                        why: "no @cert-authority line in your known_hosts names this host".into(),
                    }));
                }
                if cert.cert_type() != ssh_key::certificate::CertType::Host {
                    return Err(refused(Refusal::Certificate {
                        why: "it is not a host certificate".into(),
                    }));
                }
                let bare: Vec<String> = names.iter().map(|n| bare_host(n)).collect();
                if !cert
                    .valid_principals()
                    .iter()
                    .any(|p| bare.iter().any(|n| n.eq_ignore_ascii_case(p)))
                {
                    return Err(refused(Refusal::Certificate {
                        why: format!("it is not issued for {host}"),
                    }));
                }
                cert.validate_at(self.clock.unix(), &cas).map_err(|e| {
                    refused(Refusal::Certificate {
                        why: format!(
                            "it is not signed by a trusted authority or not valid now ({e})"
                        ),
                    })
                })
            }
        }
    }
}

impl HostKeyPolicy {
    /// The host-key algorithms this policy has keys for under `names`, and whether a
    /// `@cert-authority` line covers them: a client offers those first (as OpenSSH's
    /// `order_hostkeyalgs` does), so that a gateway with several host keys presents the one
    /// that is known. The bundled keys are RSA; a gateway that also holds an Ed25519 key would
    /// otherwise present that one and be refused as changed.
    pub fn known_algorithms(&self, names: &[String]) -> (Vec<ssh_key::Algorithm>, bool) {
        let mut algorithms = Vec::new();
        let mut certificates = false;
        for l in self.fixed.iter().cloned().chain(self.user_lines()) {
            if !names
                .iter()
                .any(|n| patterns_match(l.entry.host_patterns(), n))
            {
                continue;
            }
            match l.entry.marker() {
                Some(Marker::CertAuthority) => certificates = true,
                Some(Marker::Revoked) => {}
                None => {
                    let algorithm = l.entry.public_key().algorithm();
                    let variants = match algorithm {
                        ssh_key::Algorithm::Rsa { .. } => vec![
                            ssh_key::Algorithm::Rsa {
                                hash: Some(ssh_key::HashAlg::Sha512),
                            },
                            ssh_key::Algorithm::Rsa {
                                hash: Some(ssh_key::HashAlg::Sha256),
                            },
                            ssh_key::Algorithm::Rsa { hash: None },
                        ],
                        other => vec![other],
                    };
                    for v in variants {
                        if !algorithms.contains(&v) {
                            algorithms.push(v);
                        }
                    }
                }
            }
        }
        (algorithms, certificates)
    }
}

/// `host` from `[host]:port` or `host`.
fn bare_host(name: &str) -> String {
    name.strip_prefix('[')
        .and_then(|r| r.split_once("]:"))
        .map(|(h, _)| h.to_string())
        .unwrap_or_else(|| name.to_string())
}

/// Known-hosts lines for a profile file's local gateway (`[ssh].host_keys`): under the host
/// patterns, and under the gateway's real address (OpenSSH looks up the address it connects
/// to when a `HostName` is configured).
pub fn local_gateway_lines(profile: &Profile) -> String {
    let Some(ssh) = &profile.ssh else {
        return String::new();
    };
    let mut names = profile.ssh_host_patterns.clone();
    names.push(lookup_name(&ssh.hostname, ssh.port));
    ssh.host_keys
        .iter()
        .map(|k| format!("{} {}\n", names.join(","), k.trim()))
        .collect()
}

/// The known-hosts file Tether writes for the session: the bundled keys, then the profile's.
pub fn session_known_hosts(profile: &Profile) -> String {
    let mut out = String::new();
    for line in &profile.gateway_host_keys {
        out.push_str(line.trim());
        out.push('\n');
    }
    out.push_str(&local_gateway_lines(profile));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::ManualClock;
    use base64::Engine;

    fn key(seed: u8) -> PublicKey {
        ssh_key::PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&[seed; 32]))
            .public_key()
            .clone()
    }

    fn line(hosts: &str, k: &PublicKey) -> String {
        format!("{hosts} {}", k.to_openssh().unwrap_or_default())
    }

    fn fixture(known_hosts: &str) -> (tempfile::TempDir, HostKeyPolicy) {
        let home = tempfile::tempdir().unwrap();
        let paths = Paths::under_home(home.path(), None);
        std::fs::create_dir_all(&paths.ssh_dir).unwrap();
        std::fs::write(paths.ssh_dir.join("known_hosts"), known_hosts).unwrap();
        let mut profile = Profile::platformsh();
        profile.gateway_host_keys =
            vec![line("ssh.eu-5.platform.sh,git.eu-5.platform.sh", &key(1))];
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(std::time::UNIX_EPOCH));
        let policy = HostKeyPolicy::for_profile(&profile, &paths, clock);
        (home, policy)
    }

    fn names(host: &str) -> Vec<String> {
        vec![host.to_string()]
    }

    #[test]
    fn every_bundled_line_parses_and_names_an_ssh_or_git_gateway() {
        let mut count = 0;
        for l in BUNDLED_GATEWAY_KEYS.lines() {
            if l.starts_with('#') || l.trim().is_empty() {
                continue;
            }
            let entry = parse_known_hosts_line(l).unwrap();
            let HostPatterns::Patterns(hosts) = entry.host_patterns() else {
                panic!("hashed name in the bundle: {l}")
            };
            for h in hosts {
                let region = h
                    .strip_prefix("ssh.")
                    .or_else(|| h.strip_prefix("git."))
                    .and_then(|r| r.strip_suffix(".platform.sh"))
                    .unwrap_or_else(|| panic!("{h} is not an ssh./git. gateway"));
                assert!(!region.is_empty() && !region.contains('.'), "{h}");
            }
            assert!(entry.marker().is_none(), "{l}");
            count += 1;
        }
        assert!(count >= 32, "{count} lines");
        assert!(BUNDLED_GATEWAY_KEYS.contains("ssh.eu-5.platform.sh "));
    }

    #[test]
    fn a_bundled_key_is_trusted_for_its_host_only() {
        let (_home, policy) = fixture("");
        assert!(policy
            .check(&names("ssh.eu-5.platform.sh"), Presented::Key(&key(1)))
            .is_ok());
        let err = policy
            .check(&names("ssh.eu-5.platform.sh"), Presented::Key(&key(2)))
            .unwrap_err();
        assert!(matches!(err.refusal, Refusal::Changed { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("ssh.eu-5.platform.sh")
                && msg.contains("SHA256:")
                && msg.contains("ssh-ed25519"),
            "{msg}"
        );
        let err = policy
            .check(&names("ssh.us-9.platform.sh"), Presented::Key(&key(1)))
            .unwrap_err();
        assert_eq!(err.refusal, Refusal::Unknown, "{err}");
        assert!(err.to_string().contains("known_hosts"), "{err}");
    }

    #[test]
    fn the_users_known_hosts_counts_plain_hashed_with_port_and_wildcards() {
        let salt = [7u8; 20];
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&salt).unwrap();
        mac.update(b"[ssh.xx-1.platform.sh]:2222");
        let b64 = base64::engine::general_purpose::STANDARD;
        let hashed = format!(
            "|1|{}|{}",
            b64.encode(salt),
            b64.encode(mac.finalize().into_bytes())
        );
        let text = format!(
            "# mine\n{}\n{}\n{}\nnot a line\n",
            line("ssh.zz-1.platform.sh", &key(3)),
            line(&hashed, &key(4)),
            line("*.yy.example,!bad.yy.example", &key(5)),
        );
        let (_home, policy) = fixture(&text);
        assert!(policy
            .check(&names("ssh.zz-1.platform.sh"), Presented::Key(&key(3)))
            .is_ok());
        assert!(policy
            .check(
                &names("[ssh.xx-1.platform.sh]:2222"),
                Presented::Key(&key(4))
            )
            .is_ok());
        assert!(policy
            .check(&names("ssh.xx-1.platform.sh"), Presented::Key(&key(4)))
            .is_err());
        assert!(policy
            .check(&names("a.yy.example"), Presented::Key(&key(5)))
            .is_ok());
        assert!(policy
            .check(&names("bad.yy.example"), Presented::Key(&key(5)))
            .is_err());
        // The user's own line for a bundled host adds a key; it does not replace the bundle.
        assert!(policy
            .check(&names("ssh.eu-5.platform.sh"), Presented::Key(&key(1)))
            .is_ok());
    }

    #[test]
    fn revoked_wins_over_every_other_source() {
        let text = format!("@revoked {}\n", line("*.platform.sh", &key(1)));
        let (_home, policy) = fixture(&text);
        let err = policy
            .check(&names("ssh.eu-5.platform.sh"), Presented::Key(&key(1)))
            .unwrap_err();
        assert!(matches!(err.refusal, Refusal::Revoked { .. }), "{err}");
        assert!(err.to_string().contains("revoked"), "{err}");
    }

    #[test]
    fn host_certificates_need_a_cert_authority_line_the_principal_and_validity() {
        use ssh_key::certificate::{Builder, CertType};
        let ca = ssh_key::PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&[9; 32]));
        let host = key(6);
        let make = |principal: &str, kind: CertType| {
            let mut b = Builder::new([0u8; 16], host.key_data().clone(), 0, 4_000_000_000).unwrap();
            b.cert_type(kind).unwrap();
            b.valid_principal(principal).unwrap();
            b.sign(&ca).unwrap()
        };
        let text = format!(
            "@cert-authority {}\n",
            line("*.platform.sh", ca.public_key())
        );
        let (_home, policy) = fixture(&text);
        let n = names("ssh.ca-9.platform.sh");
        let good = make("ssh.ca-9.platform.sh", CertType::Host);
        assert!(policy.check(&n, Presented::Certificate(&good)).is_ok());
        for bad in [
            make("other.platform.sh", CertType::Host),
            make("ssh.ca-9.platform.sh", CertType::User),
        ] {
            let err = policy.check(&n, Presented::Certificate(&bad)).unwrap_err();
            assert!(matches!(err.refusal, Refusal::Certificate { .. }), "{err}");
        }
        // The CA's key as a plain host key is not trusted, nor is a CA for other hosts.
        assert!(policy.check(&n, Presented::Key(ca.public_key())).is_err());
        assert!(policy
            .check(&names("ssh.x.upsun.com"), Presented::Certificate(&good))
            .is_err());
    }

    #[test]
    fn the_known_key_types_come_first_so_the_gateway_presents_a_known_key() {
        let rsa = "AAAAB3NzaC1yc2EAAAADAQABAAABAQC3GhkAUQ/+wx9oBekSKqCIQZqKBh4MaqrdguK0poqwEBMzbKGo5WtQSwN2nx0RWDNTJFJ0ipaC9XszJBc53O+cNncvj9OyFNh9zBclxRFt1bgAs+upORs5GXAaA2Xzfx6VCfBLG/uN65etZLV+klP9yAqgyRjOQqJG8IUejeuGb+TA+aXBupm1SHIffqQm/TMLqdfKn5Uz9MkVXYfkVMM2oQyVRvAKsqS9DiZs/kkubBhetaAt03lpjXm69jm9rCusw/GTODwd3LESzPe9fl38wkVbTJ9M9ia+5bxZMbF0oScNeV0CpQ0VU34dv9prGSlekVM7i6Ww06Cn9QEtTIhX";
        let text = format!(
            "ssh.rsa.example ssh-rsa {rsa}\n@cert-authority *.ca.example {}\n",
            key(8).to_openssh().unwrap()
        );
        let (_home, policy) = fixture(&text);
        let (algs, certs) = policy.known_algorithms(&names("ssh.rsa.example"));
        assert_eq!(
            algs.first(),
            Some(&ssh_key::Algorithm::Rsa {
                hash: Some(ssh_key::HashAlg::Sha512)
            })
        );
        assert!(!certs);
        let (algs, certs) = policy.known_algorithms(&names("ssh.eu-5.platform.sh"));
        assert_eq!(algs, vec![ssh_key::Algorithm::Ed25519]);
        assert!(!certs);
        let (algs, certs) = policy.known_algorithms(&names("x.ca.example"));
        assert!(algs.is_empty() && certs);
    }

    #[test]
    fn glob_follows_openssh() {
        assert!(glob("*.platform.sh", "ssh.EU-5.platform.sh"));
        assert!(!glob("*.platform.sh", "platform.sh"));
        assert!(glob("ssh.??-5.platform.sh", "ssh.eu-5.platform.sh"));
        assert!(glob("[ssh.*]:2222", "[ssh.a]:2222"));
        assert!(!glob("ssh.a", "ssh.ab"));
    }
}
