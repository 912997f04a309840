//! The SSH connection that carries every tunnel of one app, kept up by a supervisor task:
//! it connects with the session's certificate (a fresh one when the old expired), and when
//! the connection drops it reconnects with capped exponential backoff and jitter, while the
//! tunnels' listeners stay bound. When the platform demands a stronger sign-in it stops
//! trying until the session changes (a sign-in, a renewal) and says so.
//!
//! A network can also fail silently (a laptop losing Wi-Fi, or asleep): nothing closes, the
//! gateway just stops answering. Keepalives notice that within
//! [`crate::ssh::connect::TUNNEL_DEAD_AFTER`] when nothing flows; a local connection that
//! arrives asks the gateway at once ([`Carrier::probe`]) when its channel is slow to open, and
//! so does the supervisor when its timer wakes up late (the process was stopped or the machine
//! slept). A connection found dead is dropped and made again, with every attempt bounded in
//! time, so nothing waits on a network that does not answer.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::access::Access;
use crate::context::clock_jumped;
use crate::problem::{classify, Problem};
use crate::ssh::connect::{connect, Client, ConnectError, Endpoint};
use crate::ssh::SshUrl;

/// The first pause before reconnecting; it doubles per failed attempt up to [`BACKOFF_CAP`].
const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// The longest pause between attempts. Short, because a tunnel waiting on a gateway that is
/// back should not keep the user waiting; an attempt costs one TCP connect when it is down.
pub const BACKOFF_CAP: Duration = Duration::from_secs(3);
/// While the platform demands a new sign-in, look again this often (and at once after a
/// sign-in or renewal).
const NEEDS_SIGN_IN_RETRY: Duration = Duration::from_secs(60);
/// How long the gateway has to answer a probe before its connection counts as dead.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// A probe answered this recently vouches for the connection; a burst of local connections
/// does not probe once each.
const PROBE_FRESH: Duration = Duration::from_secs(1);
/// How often the supervisor of a live connection looks at the clocks.
const CLOCK_TICK: Duration = Duration::from_secs(1);

/// Where the connection stands.
#[derive(Clone)]
pub enum LinkState {
    /// Connecting: the first time (`attempt` 0, no error), or again after `error`.
    Connecting {
        attempt: u32,
        error: Option<String>,
        /// Retrying cannot help until the user acts (the gateway's host key is not trusted):
        /// the link still retries, since a key added to known_hosts is read at the next
        /// attempt, but nobody waits for it to come up.
        hopeless: bool,
    },
    Up(Arc<Carrier>),
    /// The platform wants a stronger or new sign-in before this app can be reached.
    NeedsSignIn {
        reason: String,
    },
    /// Closed for good.
    Stopped,
}

impl LinkState {
    /// Why there is no connection to use, for a person.
    pub fn why_down(&self) -> String {
        match self {
            LinkState::Connecting {
                error: Some(error), ..
            } => format!("the connection to the app is down: {error}"),
            LinkState::NeedsSignIn { reason } => reason.clone(),
            LinkState::Stopped => "the connection to the app was closed".to_string(),
            _ => "the connection to the app is down".to_string(),
        }
    }
}

/// The pause before attempt `attempt` (1 for the first retry), with `jitter` in [0, 1):
/// "equal jitter", half fixed and half random, so that many tunnels do not retry in step.
pub fn backoff(attempt: u32, jitter: f64) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let full = exp.min(BACKOFF_CAP);
    full / 2 + full.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
}

/// The pause left after an attempt that took `spent`: the time an attempt waited for an
/// answer counts toward its backoff. A gateway that refuses at once gets the whole pause;
/// a silent network, where each attempt waits out its timeout, is tried again at once, so a
/// network that comes back is used within about a second.
pub fn pause_after(backoff: Duration, spent: Duration) -> Duration {
    backoff.saturating_sub(spent)
}

pub struct Link {
    pub url: SshUrl,
    gateway: Endpoint,
    config: Arc<client::Config>,
    state: watch::Sender<LinkState>,
    stop: watch::Sender<bool>,
    /// Wakes the supervisor from its pause (a sign-in happened, the session renewed).
    retry: Notify,
    /// Set when the gateway refused a channel for want of a stronger sign-in.
    denied: Mutex<Option<String>>,
    /// Asks for a fresh connection (after a burst, see [`Link::renew`]).
    renew: Notify,
    /// Says the current connection was found dead ([`Link::lost`]).
    lost: Notify,
}

enum Event {
    Ended(String),
    Stop,
    Renew,
    /// The timer woke up late: check the connection.
    Check,
}

/// One SSH connection and the channels it carries.
pub struct Carrier {
    pub handle: client::Handle<Client>,
    channels: AtomicUsize,
    idle: Notify,
    /// When a probe was last answered; held while one is in flight, so that concurrent
    /// askers share it.
    answered: tokio::sync::Mutex<Option<Instant>>,
    /// Set once a probe went unanswered.
    dead: AtomicBool,
}

impl Carrier {
    fn new(handle: client::Handle<Client>) -> Arc<Carrier> {
        Arc::new(Carrier {
            handle,
            channels: AtomicUsize::new(0),
            idle: Notify::new(),
            answered: tokio::sync::Mutex::new(None),
            dead: AtomicBool::new(false),
        })
    }

    /// Whether the gateway still answers on this connection: a global request
    /// (`keepalive@openssh.com`, which every server answers, if only with a refusal) that
    /// must be answered within [`PROBE_TIMEOUT`]. A connection that answered within
    /// [`PROBE_FRESH`] is not asked again.
    pub async fn probe(&self) -> bool {
        if self.dead.load(Ordering::Acquire) {
            return false;
        }
        let mut answered = self.answered.lock().await;
        if self.dead.load(Ordering::Acquire) {
            return false;
        }
        if answered.is_some_and(|at| at.elapsed() < PROBE_FRESH) {
            return true;
        }
        let alive = matches!(
            tokio::time::timeout(PROBE_TIMEOUT, self.handle.send_ping()).await,
            Ok(Ok(()))
        ) && !self.handle.is_closed();
        if alive {
            *answered = Some(Instant::now());
        } else {
            self.dead.store(true, Ordering::Release);
        }
        alive
    }

    /// Counts a channel on this connection while the guard lives.
    pub fn hold(self: &Arc<Self>) -> ChannelHold {
        self.channels.fetch_add(1, Ordering::AcqRel);
        ChannelHold(self.clone())
    }

    /// Ends the connection once it carries no channel, and gives its memory back.
    async fn retire(self: Arc<Self>) {
        while self.channels.load(Ordering::Acquire) > 0 {
            let idle = self.idle.notified();
            if self.channels.load(Ordering::Acquire) == 0 {
                break;
            }
            idle.await;
        }
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
        drop(self);
        // The session task frees its buffers as it ends.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        crate::memory::release_free_memory();
    }
}

/// A channel counted on its connection.
pub struct ChannelHold(Arc<Carrier>);

impl Drop for ChannelHold {
    fn drop(&mut self) {
        if self.0.channels.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Link {
    pub fn new(url: SshUrl, gateway: Endpoint, config: Arc<client::Config>) -> Arc<Link> {
        Arc::new(Link {
            url,
            gateway,
            config,
            state: watch::channel(LinkState::Connecting {
                attempt: 0,
                error: None,
                hopeless: false,
            })
            .0,
            stop: watch::channel(false).0,
            retry: Notify::new(),
            denied: Mutex::new(None),
            renew: Notify::new(),
            lost: Notify::new(),
        })
    }

    pub fn state(&self) -> LinkState {
        self.state.borrow().clone()
    }

    pub fn watch(&self) -> watch::Receiver<LinkState> {
        self.state.subscribe()
    }

    /// The connection, waiting for it while it is being made; `None` once it stopped or
    /// needs a sign-in.
    pub async fn up(&self) -> Option<Arc<Carrier>> {
        let mut rx = self.state.subscribe();
        let state = rx
            .wait_for(|s| {
                !matches!(
                    s,
                    LinkState::Connecting {
                        hopeless: false,
                        ..
                    }
                )
            })
            .await
            .ok()?;
        match &*state {
            LinkState::Up(h) => Some(h.clone()),
            _ => None,
        }
    }

    /// Try again now (after a sign-in or a renewal), if the link is waiting.
    pub fn wake(&self) {
        if !matches!(self.state(), LinkState::Up(_)) {
            self.retry.notify_one();
        }
    }

    /// The gateway refused a channel because it wants a stronger sign-in: drop the connection
    /// and wait for one.
    pub async fn deny(&self, reason: String, handle: &client::Handle<Client>) {
        if let Ok(mut d) = self.denied.lock() {
            *d = Some(reason);
        }
        let _ = handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }

    /// Moves new channels to a fresh connection and ends the current one once its channels
    /// are done. russh keeps the buffers a connection grew for as long as it lives, so after
    /// a burst of connections (a thousand at once grow them by tens of megabytes) a fresh
    /// connection is how that memory is given back.
    pub fn renew(&self) {
        if matches!(self.state(), LinkState::Up(_)) {
            self.renew.notify_one();
        }
    }

    /// `carrier` stopped answering (a probe timed out): drop it and connect again. Nothing
    /// happens when the link has moved on to another connection already.
    pub fn lost(&self, carrier: &Arc<Carrier>) {
        if matches!(self.state(), LinkState::Up(ref c) if Arc::ptr_eq(c, carrier)) {
            self.lost.notify_one();
        }
    }

    pub fn stop(&self) {
        self.stop.send_replace(true);
        self.retry.notify_one();
    }

    /// [`Link::connect`], given up when the link is stopped meanwhile (`None`), so that
    /// closing a tunnel never waits for a gateway that does not answer.
    async fn connect_unless_stopped(
        &self,
        access: &Access,
        new_certificate: bool,
        stop: &mut watch::Receiver<bool>,
    ) -> Option<Result<crate::ssh::connect::Connection, Failure>> {
        tokio::select! {
            c = self.connect(access, new_certificate) => Some(c),
            _ = stop.wait_for(|s| *s) => None,
        }
    }

    /// Keeps the connection until [`Link::stop`]; `changed` is called after every change of
    /// state, for the tunnels' events.
    pub async fn supervise(self: Arc<Link>, access: Arc<Access>, changed: impl Fn()) {
        let mut stop = self.stop.subscribe();
        let mut attempt = 0u32;
        let mut new_certificate = false;
        // A refused certificate is replaced once per run of failures, not at every attempt:
        // a gateway that refuses every certificate must not make the agent hammer the
        // certifier.
        let mut replaced_refused = false;
        loop {
            if *stop.borrow() {
                break;
            }
            let started = Instant::now();
            let Some(connected) = self
                .connect_unless_stopped(&access, new_certificate, &mut stop)
                .await
            else {
                break;
            };
            let pause = match connected {
                Ok(conn) => {
                    new_certificate = false;
                    replaced_refused = false;
                    attempt = 0;
                    let mut carrier = Carrier::new(conn.handle);
                    let mut closed = conn.closed;
                    info!(url = %self.url, "tunnel connection up");
                    self.state.send_replace(LinkState::Up(carrier.clone()));
                    changed();
                    let clock = access.session().clock().clone();
                    let mut looked = (Instant::now(), clock.now());
                    let reason = loop {
                        let ended = async {
                            let reason = closed.wait_for(|c| c.is_some()).await;
                            reason.ok().and_then(|r| r.clone()).unwrap_or_default()
                        };
                        let stopping = async {
                            let _ = stop.wait_for(|s| *s).await;
                        };
                        let event = tokio::select! {
                            r = ended => Event::Ended(r),
                            _ = stopping => Event::Stop,
                            _ = self.renew.notified() => Event::Renew,
                            // A stale word about an older connection is ignored.
                            _ = self.lost.notified() => if carrier.dead.load(Ordering::Acquire) {
                                Event::Ended("the gateway stopped answering".to_string())
                            } else {
                                continue;
                            },
                            _ = tokio::time::sleep(CLOCK_TICK) => {
                                let now = (Instant::now(), clock.now());
                                let mono = now.0.duration_since(looked.0);
                                let wall = now.1.duration_since(looked.1).unwrap_or_default();
                                looked = now;
                                if clock_jumped(CLOCK_TICK, mono, wall) {
                                    info!(url = %self.url, after = ?mono, "the clock jumped: checking the tunnel connection");
                                    Event::Check
                                } else {
                                    continue;
                                }
                            }
                        };
                        match event {
                            Event::Ended(reason) => break Some(reason),
                            Event::Stop => break None,
                            Event::Check => {
                                let stopping = async {
                                    let _ = stop.wait_for(|s| *s).await;
                                };
                                tokio::select! {
                                    alive = carrier.probe() => if !alive {
                                        break Some("the gateway stopped answering (after a pause)".to_string());
                                    },
                                    _ = stopping => break None,
                                }
                                looked = (Instant::now(), clock.now());
                            }
                            // A fresh connection takes the new channels; the old one goes once
                            // its last channel ends, and with it the buffers it grew.
                            Event::Renew => match self
                                .connect_unless_stopped(&access, false, &mut stop)
                                .await
                            {
                                None => break None,
                                Some(Ok(fresh)) => {
                                    debug!(url = %self.url, "renewed the tunnel connection");
                                    let old =
                                        std::mem::replace(&mut carrier, Carrier::new(fresh.handle));
                                    closed = fresh.closed;
                                    self.state.send_replace(LinkState::Up(carrier.clone()));
                                    tokio::spawn(old.retire());
                                }
                                Some(Err(_)) => {
                                    debug!(url = %self.url, "keeping the tunnel connection: no new one")
                                }
                            },
                        }
                    };
                    let Some(reason) = reason else {
                        let _ = tokio::time::timeout(
                            PROBE_TIMEOUT,
                            carrier
                                .handle
                                .disconnect(russh::Disconnect::ByApplication, "", "en"),
                        )
                        .await;
                        break;
                    };
                    // A connection found dead may still look open to russh: end it, without
                    // waiting on a network that does not answer.
                    let old = carrier.clone();
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(
                            PROBE_TIMEOUT,
                            old.handle
                                .disconnect(russh::Disconnect::ByApplication, "", "en"),
                        )
                        .await;
                    });
                    let denied = self.denied.lock().ok().and_then(|mut d| d.take());
                    if let Some(reason) = denied {
                        self.needs_sign_in(&access, reason, &changed);
                        NEEDS_SIGN_IN_RETRY
                    } else {
                        warn!(url = %self.url, %reason, "tunnel connection lost; reconnecting");
                        attempt = 1;
                        self.state.send_replace(LinkState::Connecting {
                            attempt,
                            error: Some(reason),
                            hopeless: false,
                        });
                        changed();
                        backoff(attempt, rand::random())
                    }
                }
                Err(Failure::NeedsSignIn(reason)) => {
                    self.needs_sign_in(&access, reason, &changed);
                    NEEDS_SIGN_IN_RETRY
                }
                Err(Failure::Retry {
                    message,
                    new_certificate: renew,
                    hopeless,
                }) => {
                    new_certificate = renew && !replaced_refused;
                    replaced_refused |= renew;
                    attempt = attempt.saturating_add(1);
                    debug!(url = %self.url, attempt, error = %message, "tunnel connection failed");
                    self.state.send_replace(LinkState::Connecting {
                        attempt,
                        error: Some(message),
                        hopeless,
                    });
                    changed();
                    pause_after(backoff(attempt, rand::random()), started.elapsed())
                }
            };
            let stopping = async {
                let _ = stop.wait_for(|s| *s).await;
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.retry.notified() => {}
                _ = stopping => break,
            }
        }
        self.state.send_replace(LinkState::Stopped);
        changed();
    }

    fn needs_sign_in(&self, access: &Access, reason: String, changed: &impl Fn()) {
        warn!(url = %self.url, %reason, "tunnels need a new sign-in");
        access.keeper().emit(crate::cert::Event::MfaNeeded {
            reason: reason.clone(),
        });
        self.state.send_replace(LinkState::NeedsSignIn { reason });
        changed();
    }

    async fn connect(
        &self,
        access: &Access,
        new_certificate: bool,
    ) -> Result<crate::ssh::connect::Connection, Failure> {
        // The keeper's certificate, renewed here only when it is due (or refused): a tunnel
        // reconnecting is not the user's activity, so this does not touch the session.
        let keeper = access.keeper();
        let ensured = if new_certificate {
            // The gateway refused the certificate: a new one, for the same key.
            keeper.renew_certificate().await
        } else {
            keeper.ensure(false).await
        };
        ensured.map_err(|e| Failure::from_error(&e))?;
        let (key, cert) = access
            .keeper()
            .files()
            .read_pair()
            .map_err(|e| Failure::retry(e.to_string()))?
            .ok_or_else(|| Failure::NeedsSignIn("there is no certificate: sign in".into()))?;
        match connect(self.config.clone(), &self.gateway, &self.url, key, cert).await {
            Ok(c) => Ok(c),
            Err(ConnectError::AuthFailed) => Err(Failure::Retry {
                message: ConnectError::AuthFailed.to_string(),
                new_certificate: true,
                hopeless: false,
            }),
            Err(e @ ConnectError::HostKey(_)) => Err(Failure::Retry {
                message: e.to_string(),
                new_certificate: false,
                hopeless: true,
            }),
            Err(e) => Err(Failure::retry(e.to_string())),
        }
    }
}

enum Failure {
    NeedsSignIn(String),
    Retry {
        message: String,
        new_certificate: bool,
        hopeless: bool,
    },
}

impl Failure {
    fn retry(message: String) -> Failure {
        Failure::Retry {
            message,
            new_certificate: false,
            hopeless: false,
        }
    }
}

impl Failure {
    fn from_error(e: &(dyn std::error::Error + 'static)) -> Failure {
        match classify(e) {
            Some(Problem::SignIn | Problem::StepUp(_)) => Failure::NeedsSignIn(e.to_string()),
            _ => Failure::retry(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_equal_jitter() {
        assert_eq!(backoff(1, 0.0), Duration::from_millis(125));
        assert_eq!(backoff(1, 1.0), Duration::from_millis(250));
        assert_eq!(backoff(2, 1.0), Duration::from_millis(500));
        assert_eq!(backoff(3, 0.5), Duration::from_millis(750));
        for attempt in [5, 6, 30, u32::MAX] {
            assert_eq!(backoff(attempt, 1.0), BACKOFF_CAP);
            assert_eq!(backoff(attempt, 0.0), BACKOFF_CAP / 2);
        }
    }

    #[test]
    fn an_attempt_that_waited_for_an_answer_has_waited_its_backoff() {
        let pause = Duration::from_secs(3);
        // Refused at once: the whole pause.
        assert_eq!(
            pause_after(pause, Duration::from_millis(2)),
            pause - Duration::from_millis(2)
        );
        // A silent network: the attempt waited out its timeout, so the next one starts now.
        assert_eq!(
            pause_after(pause, crate::ssh::connect::TCP_CONNECT_TIMEOUT),
            Duration::from_secs(1)
        );
        assert_eq!(
            pause_after(pause, crate::ssh::connect::CONNECT_TIMEOUT),
            Duration::ZERO
        );
    }

    #[test]
    fn a_dead_network_is_noticed_within_twenty_seconds_without_traffic() {
        assert!(crate::ssh::connect::TUNNEL_DEAD_AFTER <= Duration::from_secs(20));
        // A probe answers within the five seconds a local connection may wait to learn that.
        assert!(PROBE_TIMEOUT + PROBE_FRESH < Duration::from_secs(5));
    }

    #[test]
    fn a_late_tick_or_a_wall_clock_ahead_is_a_clock_jump() {
        let tick = CLOCK_TICK;
        let s = Duration::from_secs;
        assert!(!clock_jumped(tick, tick, tick));
        assert!(
            !clock_jumped(tick, s(2), s(2)),
            "a busy moment is not a jump"
        );
        // SIGSTOP for 90 s: both clocks moved, the tick is late.
        assert!(clock_jumped(tick, s(91), s(91)));
        // A suspend: the monotonic clock stood still, the wall clock did not.
        assert!(clock_jumped(tick, tick, s(600)));
        // The wall clock set back is not a reason to probe: within a one-second tick it is
        // never seen as one (the keeper's longer naps do see it, see `context`).
        assert!(!clock_jumped(tick, tick, Duration::ZERO));
    }

    /// The supervisor's view of a late timer, with tokio's paused clock standing in for a
    /// stopped process: a one-second tick that fires 90 s later is seen as a jump.
    #[tokio::test(start_paused = true)]
    async fn a_stopped_process_sees_its_tick_late() {
        let before = tokio::time::Instant::now();
        let tick = tokio::time::sleep(CLOCK_TICK);
        tokio::time::advance(Duration::from_secs(90)).await;
        tick.await;
        let mono = before.elapsed();
        assert!(clock_jumped(CLOCK_TICK, mono, mono));
    }
}
