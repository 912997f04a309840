//! The session's SSH certificate: an ed25519 key generated in-process, a certificate from the
//! platform's certifier (`POST {auth}/ssh`), checked with the official client's four rules,
//! written 0600 atomically under a lock, and kept fresh by [`CertKeeper`] while the session is
//! active. After long inactivity the keeper stops and ends the session, so the next command
//! asks to sign in again, as the platform's documentation promises.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;
use serde::Serialize;
use ssh_key::private::Ed25519Keypair;
use ssh_key::{Certificate, HashAlg, LineEnding, PrivateKey, PublicKey};
use tokio::sync::{broadcast, watch};
use tracing::{info, warn};

use crate::auth::{AuthError, Claims, Session};
use crate::fsutil::{create_private_dir, write_atomic, FileLock, WriteError};
use crate::secret::Sensitive;

/// A key pair is reused for up to a day, then replaced.
const KEY_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("the certificate the platform returned is not usable: {0}; try `tether ssh-cert:load --new`, and report it if it persists")]
    Invalid(#[from] CertProblem),
    #[error("the certifier refused (HTTP {status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the certifier answered something that is not a certificate: {0}")]
    Protocol(String),
    #[error("cannot reach the certifier at {url}: {message}")]
    Network { url: String, message: String },
    #[error("{}", .0.message(false))]
    StepUp(crate::api::StepUp),
    #[error(transparent)]
    Files(#[from] WriteError),
    #[error("the stored key {path} is unreadable ({message}); run `tether ssh-cert:load --new`")]
    BadKey { path: PathBuf, message: String },
    #[error("the session was signed out after {} without activity: sign in again with `tether login`", human(*.0))]
    Inactive(Duration),
}

/// "8 hours", "5 minutes", "30 seconds".
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        7200.. => format!("{} hours", s / 3600),
        120.. => format!("{} minutes", s / 60),
        _ => format!("{s} seconds"),
    }
}

/// Why a certificate is not usable (the official client's rules, and sanity).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertProblem {
    #[error("it is for another key")]
    WrongKey,
    #[error("its signature does not verify")]
    BadSignature,
    #[error("it is signed by {0}, which is not the platform's certificate authority")]
    UnknownCa(String),
    #[error("it expires too soon (valid until {valid_before}, now {now})")]
    ExpiresSoon { valid_before: u64, now: u64 },
    #[error("it is not valid yet")]
    NotYetValid,
    #[error("its key id {found:?} is not the user id {expected:?}")]
    WrongUser { found: String, expected: String },
    #[error("its access-id@platform.sh does not match the session")]
    WrongAccessId,
    #[error("its token-id@platform.sh does not match the session")]
    WrongTokenId,
    #[error("its token-claims@platform.sh do not match the session")]
    WrongClaims,
    #[error("it is not an OpenSSH certificate: {0}")]
    Malformed(String),
}

/// What is needed to judge a certificate.
#[derive(Debug, Clone)]
pub struct Expectations<'a> {
    pub key: &'a PublicKey,
    pub claims: &'a Claims,
    pub now: u64,
    /// Seconds of validity an hour-long certificate must still have (120 in the official
    /// client); shorter certificates need proportionally less (see [`usable_margin`]).
    pub margin: u64,
    /// The platform's CA keys when the profile knows them; otherwise any signer is accepted
    /// as long as the signature verifies.
    pub ca_keys: &'a [PublicKey],
}

/// Applies the official client's rules: expires more than `margin` from now; key id = user id;
/// `access-id@platform.sh` = the token's `access_id`; and unless `amr` is just `pwd`,
/// `token-id@platform.sh` = `jti` and `token-claims@platform.sh` matches the token.
pub fn check(cert: &Certificate, e: &Expectations<'_>) -> Result<(), CertProblem> {
    if cert.public_key() != e.key.key_data() {
        return Err(CertProblem::WrongKey);
    }
    let signer = cert.signature_key();
    if !e.ca_keys.is_empty() && !e.ca_keys.iter().any(|k| k.key_data() == signer) {
        return Err(CertProblem::UnknownCa(
            signer.fingerprint(HashAlg::Sha256).to_string(),
        ));
    }
    // Signature and window, trusting the signer checked above.
    let fingerprint = signer.fingerprint(HashAlg::Sha256);
    if cert.valid_after() > e.now {
        return Err(CertProblem::NotYetValid);
    }
    if cert.valid_before() <= e.now + usable_margin(e.margin, cert) {
        return Err(CertProblem::ExpiresSoon {
            valid_before: cert.valid_before(),
            now: e.now,
        });
    }
    cert.validate_at(e.now, [&fingerprint])
        .map_err(|_| CertProblem::BadSignature)?;
    if cert.key_id() != e.claims.sub {
        return Err(CertProblem::WrongUser {
            found: cert.key_id().to_string(),
            expected: e.claims.sub.clone(),
        });
    }
    let ext = cert.extensions();
    if ext.get("access-id@platform.sh").map(String::as_str) != e.claims.access_id.as_deref() {
        return Err(CertProblem::WrongAccessId);
    }
    if e.claims.amr != ["pwd"] {
        if ext.get("token-id@platform.sh").map(String::as_str) != e.claims.jti.as_deref() {
            return Err(CertProblem::WrongTokenId);
        }
        let found: Option<serde_json::Value> = ext
            .get("token-claims@platform.sh")
            .and_then(|v| serde_json::from_str(v).ok());
        if !claims_match(found.as_ref(), &e.claims.certificate_claims()) {
            return Err(CertProblem::WrongClaims);
        }
    }
    Ok(())
}

/// The validity a certificate must keep to be used: the official client's fixed margin for
/// hour-long certificates, a tenth of the lifetime for short ones. A fixed 120 s would make a
/// certificate of two minutes or less unusable the moment it is issued.
pub fn usable_margin(cap: u64, cert: &Certificate) -> u64 {
    let lifetime = cert.valid_before().saturating_sub(cert.valid_after());
    cap.min(lifetime.div_ceil(10))
}

/// Compares claim objects, treating a missing key like `null`.
fn claims_match(found: Option<&serde_json::Value>, expected: &serde_json::Value) -> bool {
    let (Some(found), Some(expected)) = (found.and_then(|f| f.as_object()), expected.as_object())
    else {
        return false;
    };
    let keys: std::collections::BTreeSet<&String> = found.keys().chain(expected.keys()).collect();
    keys.into_iter().all(|k| {
        let null = serde_json::Value::Null;
        found.get(k).unwrap_or(&null) == expected.get(k).unwrap_or(&null)
    })
}

/// The session's key and certificate files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub dir: PathBuf,
}

impl CertFiles {
    pub fn new(dir: PathBuf) -> CertFiles {
        CertFiles { dir }
    }
    pub fn key(&self) -> PathBuf {
        self.dir.join("id_ed25519")
    }
    pub fn public_key(&self) -> PathBuf {
        self.dir.join("id_ed25519.pub")
    }
    pub fn certificate(&self) -> PathBuf {
        self.dir.join("id_ed25519-cert.pub")
    }
    fn lock(&self) -> PathBuf {
        self.dir.join("cert.lock")
    }

    fn read_key(&self) -> Result<Option<(PrivateKey, bool)>, CertError> {
        let path = self.key();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(CertError::BadKey {
                    path,
                    message: e.to_string(),
                })
            }
        };
        let key = PrivateKey::from_openssh(text.as_bytes()).map_err(|e| CertError::BadKey {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let young = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < KEY_MAX_AGE);
        Ok(Some((key, young)))
    }

    /// The stored certificate, if there is one that parses.
    pub fn read_certificate(&self) -> Option<Certificate> {
        let text = std::fs::read_to_string(self.certificate()).ok()?;
        Certificate::from_openssh(text.trim()).ok()
    }

    fn write(&self, key: &PrivateKey, cert: &Certificate) -> Result<(), CertError> {
        let protocol = |e: ssh_key::Error| CertError::Protocol(e.to_string());
        let key_text = key.to_openssh(LineEnding::LF).map_err(protocol)?;
        let public = key.public_key().to_openssh().map_err(protocol)?;
        let cert_text = cert.to_openssh().map_err(protocol)?;
        write_atomic(&self.key(), key_text.as_bytes(), 0o600)?;
        write_atomic(&self.public_key(), format!("{public}\n").as_bytes(), 0o600)?;
        write_atomic(
            &self.certificate(),
            format!("{cert_text}\n").as_bytes(),
            0o600,
        )?;
        Ok(())
    }
}

fn new_key() -> Result<PrivateKey, CertError> {
    let mut seed = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut seed);
    let mut key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    key.set_comment("tether");
    Ok(key)
}

/// What `ssh-cert:info` shows.
#[derive(Debug, Clone, Serialize)]
pub struct CertInfo {
    pub path: PathBuf,
    pub key_id: String,
    pub principals: Vec<String>,
    pub valid_after: u64,
    pub valid_before: u64,
    pub has_mfa: bool,
    pub extensions: Vec<String>,
    pub fingerprint: String,
}

impl CertInfo {
    pub fn of(cert: &Certificate, path: &Path) -> CertInfo {
        CertInfo {
            path: path.to_path_buf(),
            key_id: cert.key_id().to_string(),
            principals: cert.valid_principals().to_vec(),
            valid_after: cert.valid_after(),
            valid_before: cert.valid_before(),
            has_mfa: cert.extensions().contains_key("has-mfa@platform.sh"),
            extensions: cert.extensions().keys().cloned().collect(),
            fingerprint: PublicKey::from(cert.public_key().clone())
                .fingerprint(HashAlg::Sha256)
                .to_string(),
        }
    }
}

/// When to renew and when to give up.
#[derive(Debug, Clone)]
pub struct RenewalPolicy {
    /// A certificate must keep this much validity to be used (120 s in the official client).
    pub margin: Duration,
    /// Renew when this fraction of the certificate's lifetime has passed.
    pub renew_at: f64,
    /// Stop renewing (and end the session) after this long without activity.
    pub inactivity_limit: Duration,
    /// Wait before retrying a failed renewal (doubles up to 16×).
    pub retry: Duration,
}

impl Default for RenewalPolicy {
    fn default() -> Self {
        RenewalPolicy {
            margin: Duration::from_secs(120),
            renew_at: 0.75,
            inactivity_limit: Duration::from_secs(8 * 60 * 60),
            retry: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertEvent {
    Renewed { valid_before: u64, has_mfa: bool },
    RenewalFailed { message: String },
    NeedsLogin { message: String },
    Expired { message: String },
}

/// A usable certificate, and whether it was just issued.
#[derive(Debug, Clone)]
pub struct Ensured {
    pub cert: Certificate,
    pub renewed: bool,
}

/// Keeps the session's certificate valid.
#[derive(Clone)]
pub struct CertKeeper {
    session: Session,
    files: CertFiles,
    policy: RenewalPolicy,
    ca_keys: Vec<PublicKey>,
    events: broadcast::Sender<CertEvent>,
    last_activity: Arc<AtomicU64>,
}

#[derive(serde::Deserialize)]
struct CertResponse {
    certificate: String,
}

impl CertKeeper {
    pub fn new(session: Session, policy: RenewalPolicy) -> CertKeeper {
        let ca_keys = session
            .profile
            .ssh_ca_keys
            .iter()
            .filter_map(|k| PublicKey::from_openssh(k).ok())
            .collect();
        let files = CertFiles::new(session.session_dir());
        let (events, _) = broadcast::channel(32);
        let now = session.clock().unix();
        CertKeeper {
            session,
            files,
            policy,
            ca_keys,
            events,
            last_activity: Arc::new(AtomicU64::new(now)),
        }
    }

    pub fn files(&self) -> &CertFiles {
        &self.files
    }

    pub fn subscribe(&self) -> broadcast::Receiver<CertEvent> {
        self.events.subscribe()
    }

    /// Marks the session as in use (a command ran, a connection was opened).
    pub fn touch(&self) {
        self.last_activity
            .store(self.session.clock().unix(), Ordering::Relaxed);
    }

    fn emit(&self, e: CertEvent) {
        let _ = self.events.send(e);
    }

    /// A usable certificate: the stored one if it passes the rules, else a new one. `new`
    /// asks for a new certificate and a new key regardless.
    pub async fn ensure(&self, new: bool) -> Result<Ensured, CertError> {
        self.obtain(new, new).await
    }

    async fn obtain(&self, force_cert: bool, force_key: bool) -> Result<Ensured, CertError> {
        let token = self.session.access_token().await?;
        let claims =
            Claims::from_jwt(token.expose()).map_err(|e| CertError::Protocol(e.to_string()))?;
        let files = self.files.clone();
        create_private_dir(&files.dir)?;
        let lock_path = files.lock();
        let _lock = tokio::task::spawn_blocking(move || FileLock::acquire(&lock_path))
            .await
            .map_err(|e| CertError::Protocol(e.to_string()))??;
        let stored_key = self.files.read_key()?;
        if !force_cert {
            if let (Some((key, _)), Some(cert)) = (&stored_key, self.files.read_certificate()) {
                if check(&cert, &self.expectations(key.public_key(), &claims)).is_ok() {
                    return Ok(Ensured {
                        cert,
                        renewed: false,
                    });
                }
            }
        }
        let key = match stored_key {
            Some((key, true)) if !force_key => key,
            _ => new_key()?,
        };
        let cert = self.request(&token, key.public_key()).await?;
        check(&cert, &self.expectations(key.public_key(), &claims))?;
        self.files.write(&key, &cert)?;
        info!(valid_before = cert.valid_before(), "new SSH certificate");
        Ok(Ensured {
            cert,
            renewed: true,
        })
    }

    fn expectations<'a>(&'a self, key: &'a PublicKey, claims: &'a Claims) -> Expectations<'a> {
        Expectations {
            key,
            claims,
            now: self.session.clock().unix(),
            margin: self.policy.margin.as_secs(),
            ca_keys: &self.ca_keys,
        }
    }

    async fn request(
        &self,
        token: &Sensitive<String>,
        key: &PublicKey,
    ) -> Result<Certificate, CertError> {
        let url = self
            .session
            .profile
            .auth_url
            .join("ssh")
            .map_err(|e| CertError::Protocol(e.to_string()))?;
        let network = |e: reqwest::Error| CertError::Network {
            url: url.to_string(),
            message: e.to_string(),
        };
        let public = key
            .to_openssh()
            .map_err(|e| CertError::Protocol(e.to_string()))?;
        let resp = self
            .session
            .http()
            .post(url.clone())
            .bearer_auth(token.expose())
            .json(&serde_json::json!({ "key": public }))
            .send()
            .await
            .map_err(network)?;
        let crate::api::Reply {
            status,
            www_authenticate: header,
            body,
        } = crate::api::Reply::read(resp).await.map_err(network)?;
        if !(200..300).contains(&status) {
            if let Some(s) = crate::api::parse_step_up(header.as_deref(), &body) {
                return Err(CertError::StepUp(s));
            }
            if status == 401 {
                return Err(CertError::Auth(AuthError::SessionEnded(
                    "the certifier refused the token".into(),
                )));
            }
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| "no explanation".to_string());
            return Err(CertError::Refused { status, message });
        }
        let parsed: CertResponse = serde_json::from_slice(&body)
            .map_err(|e| CertError::Protocol(format!("not JSON with a \"certificate\" ({e})")))?;
        Certificate::from_openssh(parsed.certificate.trim())
            .map_err(|e| CertError::Invalid(CertProblem::Malformed(e.to_string())))
    }

    /// How long until the certificate should be renewed.
    fn renew_in(&self, cert: &Certificate) -> Duration {
        let now = self.session.clock().unix();
        let lifetime = cert.valid_before().saturating_sub(cert.valid_after()) as f64;
        let renew_at = cert.valid_after() + (lifetime * self.policy.renew_at) as u64;
        let latest = cert
            .valid_before()
            .saturating_sub(usable_margin(self.policy.margin.as_secs(), cert) + 1);
        Duration::from_secs(renew_at.min(latest).saturating_sub(now))
    }

    fn inactive(&self) -> bool {
        let idle = self
            .session
            .clock()
            .unix()
            .saturating_sub(self.last_activity.load(Ordering::Relaxed));
        idle >= self.policy.inactivity_limit.as_secs()
    }

    /// Renews until shutdown, until the session ends, or until the user has been inactive for
    /// the policy's limit (then the session is signed out).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut failures = 0u32;
        // The first pass takes a usable stored certificate; later passes wake when renewal is due.
        let mut due = false;
        loop {
            if self.inactive() {
                let message = CertError::Inactive(self.policy.inactivity_limit).to_string();
                let reason = format!(
                    "signed out after {} without activity",
                    human(self.policy.inactivity_limit)
                );
                let _ = self.session.end_locally(&reason).await;
                self.emit(CertEvent::Expired { message });
                return;
            }
            let wait = match self.obtain(due, false).await {
                Ok(Ensured { cert, renewed }) => {
                    if renewed {
                        self.emit(CertEvent::Renewed {
                            valid_before: cert.valid_before(),
                            has_mfa: cert.extensions().contains_key("has-mfa@platform.sh"),
                        });
                    }
                    failures = 0;
                    self.renew_in(&cert).max(Duration::from_secs(1))
                }
                Err(CertError::Auth(
                    e @ (AuthError::SessionEnded(_)
                    | AuthError::NotSignedIn
                    | AuthError::BadApiToken(_)),
                )) => {
                    self.emit(CertEvent::NeedsLogin {
                        message: e.to_string(),
                    });
                    return;
                }
                Err(e @ CertError::StepUp(_)) => {
                    self.emit(CertEvent::NeedsLogin {
                        message: e.to_string(),
                    });
                    return;
                }
                Err(e) => {
                    warn!(error = %e, "certificate renewal failed");
                    self.emit(CertEvent::RenewalFailed {
                        message: e.to_string(),
                    });
                    failures = (failures + 1).min(5);
                    self.policy.retry * (1 << (failures - 1))
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => due = true,
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::TokenStore;
    use crate::context::{ManualClock, Paths};
    use crate::profile::Profile;
    use std::time::UNIX_EPOCH;

    const T0: u64 = 1_800_000_000;

    fn keeper(clock: &ManualClock, dir: &Path) -> CertKeeper {
        let session = Session::new(
            Profile::platformsh(),
            TokenStore::File {
                path: dir.join("t.json"),
            },
            Paths::under_home(dir, None),
            Arc::new(clock.clone()),
            reqwest::Client::new(),
            None,
        );
        CertKeeper::new(
            session,
            RenewalPolicy {
                inactivity_limit: Duration::from_secs(3600),
                ..RenewalPolicy::default()
            },
        )
    }

    fn cert(valid_after: u64, valid_before: u64) -> Certificate {
        let ca = PrivateKey::from(Ed25519Keypair::from_seed(&[1; 32]));
        let key = PrivateKey::from(Ed25519Keypair::from_seed(&[2; 32]));
        let mut b = ssh_key::certificate::Builder::new(
            vec![0; 16],
            key.public_key().key_data().clone(),
            valid_after,
            valid_before,
        )
        .unwrap();
        b.cert_type(ssh_key::certificate::CertType::User)
            .unwrap()
            .key_id("u")
            .unwrap()
            .valid_principal("p")
            .unwrap();
        b.sign(&ca).unwrap()
    }

    #[test]
    fn renewal_is_due_at_three_quarters_and_never_inside_the_margin() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(T0));
        let k = keeper(&clock, dir.path());
        // A one-hour certificate issued now: renew after 45 minutes.
        assert_eq!(k.renew_in(&cert(T0, T0 + 3600)), Duration::from_secs(2700));
        clock.advance(Duration::from_secs(2000));
        assert_eq!(k.renew_in(&cert(T0, T0 + 3600)), Duration::from_secs(700));
        // A short certificate is renewed at three quarters, before it enters its margin
        // (a tenth of its lifetime, 20 s here).
        assert_eq!(
            k.renew_in(&cert(T0 + 2000, T0 + 2000 + 200)),
            Duration::from_secs(150)
        );
        // A certificate of 4 s is usable and renewed after 2 s (margin 1 s, one more to act).
        assert_eq!(
            k.renew_in(&cert(T0 + 2000, T0 + 2004)),
            Duration::from_secs(2)
        );
        // Overdue: now.
        clock.advance(Duration::from_secs(5000));
        assert_eq!(k.renew_in(&cert(T0, T0 + 3600)), Duration::ZERO);
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human(Duration::from_secs(8 * 3600)), "8 hours");
        assert_eq!(human(Duration::from_secs(300)), "5 minutes");
        assert_eq!(human(Duration::from_secs(8)), "8 seconds");
    }

    #[test]
    fn inactivity_counts_from_the_last_touch() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(T0));
        let k = keeper(&clock, dir.path());
        clock.advance(Duration::from_secs(3000));
        assert!(!k.inactive());
        k.touch();
        clock.advance(Duration::from_secs(3599));
        assert!(!k.inactive());
        clock.advance(Duration::from_secs(1));
        assert!(k.inactive());
    }

    #[test]
    fn the_official_rules_decide_usability() {
        let key = PrivateKey::from(Ed25519Keypair::from_seed(&[2; 32]));
        let claims = Claims {
            sub: "u".into(),
            access_id: None,
            jti: None,
            amr: vec!["pwd".into()],
            auth_time: None,
            scp: None,
            grant: None,
            act: None,
            exp: None,
        };
        let e = |now| Expectations {
            key: key.public_key(),
            claims: &claims,
            now,
            margin: 120,
            ca_keys: &[],
        };
        let c = cert(T0, T0 + 3600);
        assert_eq!(check(&c, &e(T0 + 10)), Ok(()));
        assert!(matches!(
            check(&c, &e(T0 + 3481)),
            Err(CertProblem::ExpiresSoon { .. })
        ));
        assert_eq!(check(&c, &e(T0 - 10)), Err(CertProblem::NotYetValid));
        // A four-second certificate is usable for its first three seconds.
        let short = cert(T0, T0 + 4);
        assert_eq!(check(&short, &e(T0 + 2)), Ok(()));
        assert!(matches!(
            check(&short, &e(T0 + 3)),
            Err(CertProblem::ExpiresSoon { .. })
        ));
        let mut other = claims.clone();
        other.sub = "someone".into();
        let e2 = Expectations {
            key: key.public_key(),
            claims: &other,
            now: T0 + 10,
            margin: 120,
            ca_keys: &[],
        };
        assert!(matches!(check(&c, &e2), Err(CertProblem::WrongUser { .. })));
        // amr beyond pwd: the token id and claims must match too.
        let mut mfa = claims.clone();
        mfa.amr = vec!["pwd".into(), "mfa".into()];
        mfa.jti = Some("j".into());
        let e3 = Expectations {
            key: key.public_key(),
            claims: &mfa,
            now: T0 + 10,
            margin: 120,
            ca_keys: &[],
        };
        assert_eq!(check(&c, &e3), Err(CertProblem::WrongTokenId));
    }
}
