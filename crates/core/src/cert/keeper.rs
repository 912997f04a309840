//! Keeps the session's certificate valid while the user is active: renews at three quarters of
//! its lifetime, looks again at once when the wall clock jumps (suspend and resume, a clock
//! change), backs off when the certifier is unreachable, and ends the session after the
//! inactivity limit. What happens is published as [`Event`]s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use ssh_key::{Certificate, PrivateKey, PublicKey};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use tracing::{info, warn};

use super::files::{new_key, CertFiles};
use super::{check, human, lifetime, usable_margin, useful_from, CertError, Expectations};
use crate::auth::{AuthError, Claims, Session};
use crate::private_files::{create_private_dir, FileLock};
use crate::secret::Sensitive;

/// The longest the keeper sleeps without looking at the wall clock: a suspended machine does
/// not advance the monotonic clock timers run on, so a renewal due during a suspend is noticed
/// within this long after resume.
const LOOK_EVERY: Duration = Duration::from_secs(5);

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

/// What happens to a session, for the tray, `tether events` and notifications.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A session started (or came back after a new sign-in).
    SignedIn,
    /// A new certificate was loaded.
    Renewed { valid_before: u64, has_mfa: bool },
    /// Renewal failed and will be retried; the current certificate stays in use.
    RenewalFailed { reason: String },
    /// The platform demands stronger authentication: sign in again with MFA (or SSO, or a
    /// recent login) to go on.
    MfaNeeded { reason: String },
    /// The session ended: by the user, after inactivity, or at the platform.
    SignedOut {
        reason: String,
        /// The user asked for it (nothing to tell them).
        #[serde(default)]
        by_user: bool,
    },
    /// A tunnel changed state (opened, dropped, back, closed). `down` says whether it is not
    /// doing its job (reconnecting, or waiting for a sign-in).
    Tunnel {
        app: String,
        relationship: String,
        port: u16,
        state: crate::agent::protocol::TunnelEventState,
        down: bool,
        /// Down until the user signs in again (MFA, SSO…), not reconnecting by itself.
        #[serde(default)]
        needs_sign_in: bool,
    },
}

/// How a keeper's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// The host is shutting down.
    Shutdown,
    /// There is no session (never signed in, signed out, or ended): nothing to keep.
    NoSession,
    /// The platform wants a new sign-in before issuing certificates.
    NeedsSignIn,
}

/// A usable certificate, and whether it was just issued.
#[derive(Debug, Clone)]
pub struct Ensured {
    pub cert: Certificate,
    pub renewed: bool,
    /// When it was received (Unix seconds).
    pub received: u64,
}

/// Keeps the session's certificate valid.
#[derive(Clone)]
pub struct CertKeeper {
    session: Session,
    files: CertFiles,
    policy: RenewalPolicy,
    ca_keys: Vec<PublicKey>,
    events: broadcast::Sender<Event>,
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
        let (events, _) = broadcast::channel(64);
        CertKeeper {
            session,
            files,
            policy,
            ca_keys,
            events,
            last_activity: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn files(&self) -> &CertFiles {
        &self.files
    }

    pub fn policy(&self) -> &RenewalPolicy {
        &self.policy
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Publishes an event to every subscriber.
    pub fn emit(&self, e: Event) {
        info!(event = ?e, "session event");
        let _ = self.events.send(e);
    }

    /// Marks the session as in use (a command ran, a connection was opened), for this process
    /// and, through the shared record, for every other.
    pub fn touch(&self) {
        let now = self.session.clock().unix();
        self.last_activity.store(now, Ordering::Relaxed);
        crate::activity::touch(&self.session.session_dir(), now);
    }

    /// The last activity of any Tether process of this profile, when one was recorded.
    pub fn last_activity(&self) -> Option<u64> {
        let here = self.last_activity.load(Ordering::Relaxed);
        let shared = crate::activity::last(&self.session.session_dir()).unwrap_or(0);
        Some(here.max(shared)).filter(|t| *t > 0)
    }

    /// A usable certificate: the stored one if it passes the rules, else a new one. `new`
    /// asks for a new certificate and a new key regardless.
    pub async fn ensure(&self, new: bool) -> Result<Ensured, CertError> {
        let ensured = self.obtain(new, new).await?;
        if ensured.renewed {
            self.emit(renewed(&ensured.cert));
        }
        Ok(ensured)
    }

    /// A new certificate for the current key (a new key only when the stored one is too old
    /// or unreadable): what a refused certificate calls for. A refusal says nothing against the
    /// key, and replacing it on every refusal would churn the key files under plain ssh.
    pub async fn renew_certificate(&self) -> Result<Ensured, CertError> {
        let ensured = self.obtain(true, false).await?;
        if ensured.renewed {
            self.emit(renewed(&ensured.cert));
        }
        Ok(ensured)
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
                let received = self.files.received_at();
                if check(
                    &cert,
                    &self.expectations(key.public_key(), &claims, received),
                )
                .is_ok()
                {
                    return Ok(Ensured {
                        cert,
                        renewed: false,
                        received: received.unwrap_or_else(|| self.session.clock().unix()),
                    });
                }
            }
        }
        let key: PrivateKey = match stored_key {
            Some((key, true)) if !force_key => key,
            _ => new_key()?,
        };
        let (cert, claims) = match self.request(&token, key.public_key()).await? {
            Some(cert) => (cert, claims),
            None => {
                // The certifier refused the token: the platform may have ended it early. A
                // refresh says whether the session is over (it ends it then) or goes on.
                info!("the certifier refused the access token; refreshing it");
                let token = self.session.access_token_after_refusal(&token).await?;
                let claims = Claims::from_jwt(token.expose())
                    .map_err(|e| CertError::Protocol(e.to_string()))?;
                match self.request(&token, key.public_key()).await? {
                    Some(cert) => (cert, claims),
                    None => {
                        return Err(CertError::Auth(AuthError::SessionEnded(
                            "the certifier refused the session's token, also after a refresh"
                                .into(),
                        )))
                    }
                }
            }
        };
        let received = self.session.clock().unix();
        check(
            &cert,
            &self.expectations(key.public_key(), &claims, Some(received)),
        )?;
        self.files.write(&key, &cert)?;
        info!(valid_before = cert.valid_before(), "new SSH certificate");
        Ok(Ensured {
            cert,
            renewed: true,
            received,
        })
    }

    fn expectations<'a>(
        &'a self,
        key: &'a PublicKey,
        claims: &'a Claims,
        received: Option<u64>,
    ) -> Expectations<'a> {
        Expectations {
            key,
            claims,
            now: self.session.clock().unix(),
            margin: self.policy.margin.as_secs(),
            received,
            ca_keys: &self.ca_keys,
        }
    }

    /// Asks the certifier for a certificate of `key`; `None` when it refused the token (401).
    async fn request(
        &self,
        token: &Sensitive<String>,
        key: &PublicKey,
    ) -> Result<Option<Certificate>, CertError> {
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
        } = crate::api::Reply::read_bounded(resp)
            .await
            .map_err(|e| match e {
                crate::api::ReadError::Network(e) => network(e),
                crate::api::ReadError::TooLarge => CertError::Protocol(format!(
                    "an answer larger than {} MiB, which no certificate is",
                    crate::api::BODY_LIMIT / (1024 * 1024)
                )),
            })?;
        if !(200..300).contains(&status) {
            if let Some(s) = crate::api::parse_step_up(header.as_deref(), &body) {
                return Err(CertError::StepUp(s));
            }
            if status == 401 {
                return Ok(None);
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
            .map(Some)
            .map_err(|e| CertError::Invalid(super::CertProblem::Malformed(e.to_string())))
    }

    /// How long until the certificate should be renewed.
    fn renew_in(&self, cert: &Certificate, received: Option<u64>) -> Duration {
        let now = self.session.clock().unix();
        let lifetime = lifetime(cert, received) as f64;
        let renew_at =
            useful_from(cert, received).saturating_add((lifetime * self.policy.renew_at) as u64);
        let latest = cert.valid_before().saturating_sub(
            usable_margin(self.policy.margin.as_secs(), cert, received).saturating_add(1),
        );
        Duration::from_secs(renew_at.min(latest).saturating_sub(now))
    }

    /// The session's inactivity limit: the one stored with the session by whoever keeps it
    /// (the running agent), else this process's own.
    pub fn inactivity_limit(&self) -> Duration {
        crate::activity::limit(&self.session.session_dir())
            .map_or(self.policy.inactivity_limit, Duration::from_secs)
    }

    /// Makes this process's limit the session's: called by whoever keeps the session (the
    /// agent as it starts keeping it, or a sign-in when no agent runs).
    pub fn record_inactivity_limit(&self) {
        let secs = self.policy.inactivity_limit.as_secs();
        if let Err(e) = crate::activity::set_limit(&self.session.session_dir(), secs) {
            warn!(error = %e, "cannot store the session's inactivity limit");
        }
    }

    /// Seconds until the inactivity limit is reached (zero when it has been). Without any
    /// record of activity the whole limit is left.
    pub fn idle_left(&self) -> u64 {
        let now = self.session.clock().unix();
        let idle = self.last_activity().map_or(0, |t| now.saturating_sub(t));
        self.inactivity_limit().as_secs().saturating_sub(idle)
    }

    fn inactive(&self) -> bool {
        self.idle_left() == 0
    }

    /// The inactivity policy, in one place for the agent's loop and a process without an
    /// agent: once the session's limit has passed without activity, the session ends here.
    /// A session from an API token in the environment is never ended (automation has nobody to
    /// be idle, and its token is not Tether's to delete). Returns the reason when it ended.
    pub async fn end_if_idle(&self) -> Option<String> {
        if self.session.uses_env_token() || !self.inactive() {
            return None;
        }
        if !self.session.has_session().await.unwrap_or(false) {
            return None;
        }
        Some(self.end_for_inactivity().await)
    }

    /// Ends the session here after the inactivity limit: its tokens, key and certificate are
    /// deleted (so plain `ssh` stops getting in too) and the reason is kept for the next
    /// command to show. Returns the reason.
    async fn end_for_inactivity(&self) -> String {
        let reason = format!(
            "signed out after {} without activity",
            human(self.inactivity_limit())
        );
        if let Err(e) = self.session.end_locally(&reason).await {
            warn!(error = %e, "cannot end the idle session");
        }
        self.files.forget();
        reason
    }

    /// Renews until shutdown, until the session ends, or until the user has been inactive for
    /// the policy's limit (then the session is signed out here).
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) -> Stopped {
        let mut failures = 0u32;
        // The first pass takes a usable stored certificate; later passes renew when due.
        let mut due = false;
        match self.session.has_session().await {
            // The keeper of the session decides its inactivity limit for every process.
            Ok(true) => self.record_inactivity_limit(),
            Ok(false) => {}
            // A token store that cannot be read (no keyring on the bus, a locked one) holds no
            // session this keeper could renew: that is being signed out, not a renewal
            // failing, so nothing is tried and nothing is told until a sign-in restarts the
            // keeper (and a sign-in is only kept where it can be read again).
            Err(e) => {
                info!(error = %e, "the token store cannot be read: no session to keep");
                return Stopped::NoSession;
            }
        }
        loop {
            if let Some(reason) = self.end_if_idle().await {
                self.emit(Event::SignedOut {
                    reason,
                    by_user: false,
                });
                return Stopped::NoSession;
            }
            let wait = match self.obtain(due, false).await {
                Ok(Ensured {
                    cert,
                    renewed: new,
                    received,
                }) => {
                    if new {
                        self.emit(renewed(&cert));
                    }
                    failures = 0;
                    self.renew_in(&cert, Some(received))
                        .max(Duration::from_secs(1))
                }
                Err(CertError::Auth(AuthError::NotSignedIn)) => return Stopped::NoSession,
                Err(CertError::Auth(
                    e @ (AuthError::SessionEnded(_) | AuthError::BadApiToken(_)),
                )) => {
                    self.emit(Event::SignedOut {
                        by_user: false,
                        reason: e.to_string(),
                    });
                    return Stopped::NoSession;
                }
                Err(e @ CertError::StepUp(_)) => {
                    self.emit(Event::MfaNeeded {
                        reason: e.to_string(),
                    });
                    return Stopped::NeedsSignIn;
                }
                Err(e) => {
                    warn!(error = %e, "certificate renewal failed");
                    self.emit(Event::RenewalFailed {
                        reason: e.to_string(),
                    });
                    failures = (failures + 1).min(5);
                    self.policy.retry * (1 << (failures - 1))
                }
            };
            match self.sleep(wait, &mut shutdown).await {
                Wake::Shutdown => return Stopped::Shutdown,
                Wake::Due => due = true,
                Wake::Look => due = false,
            }
        }
    }

    /// Sleeps until `wait` has passed on the wall clock, the inactivity limit is reached, or
    /// the wall clock jumped; looks at the wall clock at least every [`LOOK_EVERY`].
    async fn sleep(&self, wait: Duration, shutdown: &mut watch::Receiver<bool>) -> Wake {
        let clock = self.session.clock();
        let due_at = clock.unix() + wait.as_secs();
        loop {
            let now = clock.unix();
            if now >= due_at {
                return Wake::Due;
            }
            let idle_left = self.idle_left();
            if idle_left == 0 {
                return Wake::Look;
            }
            let nap = Duration::from_secs((due_at - now).min(idle_left)).min(LOOK_EVERY);
            let (wall, mono) = (clock.unix(), Instant::now());
            tokio::select! {
                _ = tokio::time::sleep(nap) => {}
                _ = shutdown.wait_for(|s| *s) => return Wake::Shutdown,
            }
            if clock.unix() >= due_at {
                return Wake::Due;
            }
            // A wall clock set back shows as no time passed at all.
            let wall_elapsed = Duration::from_secs(clock.unix().saturating_sub(wall));
            let mono_elapsed = mono.elapsed();
            if crate::context::clock_jumped(nap, mono_elapsed, wall_elapsed) {
                info!(
                    wall_elapsed = wall_elapsed.as_secs(),
                    late = mono_elapsed.saturating_sub(nap).as_secs(),
                    "the clock jumped (suspend, a paused process, or a clock change): looking again"
                );
                return Wake::Look;
            }
        }
    }
}

enum Wake {
    Shutdown,
    /// Renewal is due.
    Due,
    /// Check the certificate and the inactivity limit again.
    Look,
}

fn renewed(cert: &Certificate) -> Event {
    Event::Renewed {
        valid_before: cert.valid_before(),
        has_mfa: cert.extensions().contains_key("has-mfa@platform.sh"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::TokenStore;
    use crate::cert::tests::cert;
    use crate::context::{ManualClock, Paths};
    use crate::profile::Profile;
    use std::path::Path;
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

    #[test]
    fn renewal_is_due_at_three_quarters_and_never_inside_the_margin() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(T0));
        let k = keeper(&clock, dir.path());
        // A one-hour certificate issued now: renew after 45 minutes.
        assert_eq!(
            k.renew_in(&cert(T0, T0 + 3600), None),
            Duration::from_secs(2700)
        );
        clock.advance(Duration::from_secs(2000));
        assert_eq!(
            k.renew_in(&cert(T0, T0 + 3600), None),
            Duration::from_secs(700)
        );
        // A short certificate is renewed at three quarters, before it enters its margin
        // (a tenth of its lifetime, 20 s here).
        assert_eq!(
            k.renew_in(&cert(T0 + 2000, T0 + 2000 + 200), None),
            Duration::from_secs(150)
        );
        // A certificate of 4 s is usable and renewed after 2 s (margin 1 s, one more to act).
        assert_eq!(
            k.renew_in(&cert(T0 + 2000, T0 + 2004), None),
            Duration::from_secs(2)
        );
        // Backdated by a minute (for clocks that lag): judged on the four seconds it had when
        // it arrived, not on its 64-second window.
        let now = T0 + 2000;
        assert_eq!(
            k.renew_in(&cert(now - 60, now + 4), Some(now)),
            Duration::from_secs(2)
        );
        assert_eq!(
            crate::cert::usable_margin(120, &cert(now - 60, now + 4), Some(now)),
            1
        );
        // Overdue: now.
        clock.advance(Duration::from_secs(5000));
        assert_eq!(k.renew_in(&cert(T0, T0 + 3600), None), Duration::ZERO);
        // A certificate the platform says is valid forever does not overflow the arithmetic.
        let forever = k.renew_in(&cert(T0, u64::MAX), None);
        assert!(
            forever > Duration::from_secs(3600 * 24 * 365),
            "{forever:?}"
        );
    }

    /// Puts a keeper to sleep until a renewal due in 45 minutes, moves the wall clock by
    /// `wall` and the timers by `timers` (a suspend moves only the first, a stopped process
    /// both, a clock change only the first), lets one look pass, and returns why the keeper
    /// woke.
    async fn wake_after(wall: Duration, timers: Duration) -> Wake {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(T0));
        let k = keeper(&clock, dir.path());
        k.touch();
        let (_stop, mut stopped) = watch::channel(false);
        let task =
            tokio::spawn(async move { k.sleep(Duration::from_secs(2700), &mut stopped).await });
        tokio::task::yield_now().await;
        clock.advance(wall);
        tokio::time::advance(timers.max(LOOK_EVERY)).await;
        tokio::time::timeout(Duration::from_millis(10), task)
            .await
            .expect("the keeper looked at the clock within one look")
            .unwrap()
    }

    async fn wake_after_jump(jump: Duration) -> Wake {
        wake_after(jump, Duration::ZERO).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_clock_jump_wakes_the_keeper_within_one_look() {
        // The machine sleeps for 50 minutes: the renewal is due at once.
        assert!(matches!(
            wake_after_jump(Duration::from_secs(3000)).await,
            Wake::Due
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_keeper_woken_late_looks_again() {
        // The process was stopped (SIGSTOP) for 90 s: both clocks moved on together, but the
        // nap ended 90 s after it should have.
        let ninety = Duration::from_secs(90);
        assert!(matches!(wake_after(ninety, ninety).await, Wake::Look));
    }

    #[tokio::test(start_paused = true)]
    async fn a_jump_before_the_renewal_is_due_makes_the_keeper_look_again() {
        assert!(matches!(
            wake_after_jump(Duration::from_secs(600)).await,
            Wake::Look
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreadable_token_store_is_no_session_not_a_failing_renewal() {
        // Nobody signed in on a machine whose keyring is missing used to read as a renewal
        // failing every 30 s, each told as a notification. A store that cannot be read (here
        // a token file that is not JSON, as a keyring that is not there) is no session.
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(T0));
        let k = keeper(&clock, dir.path());
        std::fs::write(dir.path().join("t.json"), "{not json").unwrap();
        let mut events = k.subscribe();
        let (_stop, stopped) = watch::channel(false);
        let ran = tokio::time::timeout(Duration::from_secs(600), k.run(stopped))
            .await
            .expect("the keeper stops at once instead of retrying");
        assert_eq!(ran, Stopped::NoSession);
        assert!(
            events.try_recv().is_err(),
            "nothing is told: {:?}",
            events.try_recv()
        );
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
        // No record of activity: never idle.
        clock.advance(Duration::from_secs(5000));
        assert!(!k.inactive());
        k.touch();
        clock.advance(Duration::from_secs(3000));
        assert!(!k.inactive());
        k.touch();
        clock.advance(Duration::from_secs(3599));
        assert!(!k.inactive());
        clock.advance(Duration::from_secs(1));
        assert!(k.inactive());
    }

    #[test]
    fn the_limit_stored_with_the_session_wins_over_this_processs_own() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(T0));
        // The agent keeping the session decided 12 h; this process (a command) would say 1 h.
        let k = keeper(&clock, dir.path());
        crate::activity::set_limit(&k.session.session_dir(), 12 * 3600).unwrap();
        assert_eq!(k.inactivity_limit(), Duration::from_secs(12 * 3600));
        k.touch();
        clock.advance(Duration::from_secs(2 * 3600));
        assert!(!k.inactive());
        clock.advance(Duration::from_secs(10 * 3600));
        assert!(k.inactive());
        // The keeper of a new session records its own.
        k.record_inactivity_limit();
        assert_eq!(k.inactivity_limit(), Duration::from_secs(3600));
    }
}
