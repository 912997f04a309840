//! Desktop notifications (freedesktop Notifications through notify-rust): one per event that
//! needs the user (sign in again, MFA needed, renewal failing, a tunnel down and back, a copy),
//! none for routine renewals. [`Notifier`] decides, from the agent's events, which deserve
//! one; repeats of a state already announced do not.
//!
//! Where the notification server supports actions (its capabilities list `actions`), "Sign in
//! to Tether again" carries a Sign in button and "Tunnel down" a Reconnect button
//! ([`NoteAction`]); a click does it, as the tray's item would.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tauri::{AppHandle, Manager};
use tether_core::agent::protocol::{Request, TunnelEventState};
use tether_core::cert::Event;

use crate::clipboard::{Clipboard, Secrecy};
use crate::desktop::Desktop;
use crate::view::IpcError;

/// What a notification's button does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoteAction {
    /// Starts the sign-in window, as the tray's "Sign in…".
    SignIn,
    /// Reconnects the tunnels of an app (`project/environment/app`) now.
    Reconnect(String),
}

impl NoteAction {
    /// The action's key on the bus, and its button's label.
    fn button(&self) -> (&'static str, &'static str) {
        match self {
            NoteAction::SignIn => ("sign-in", "Sign in"),
            NoteAction::Reconnect(_) => ("reconnect", "Reconnect"),
        }
    }
}

/// What the user is told: a summary, a body, and what a button does where the server shows
/// buttons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub summary: String,
    pub body: String,
    pub action: Option<NoteAction>,
}

impl Note {
    fn with(summary: String, body: String, action: NoteAction) -> Note {
        Note {
            summary,
            body,
            action: Some(action),
        }
    }
}

impl From<(String, String)> for Note {
    fn from((summary, body): (String, String)) -> Note {
        Note {
            summary,
            body,
            action: None,
        }
    }
}

/// Notes waiting to be shown; past this many (a flood of events, or a notification server
/// that does not answer) new ones are dropped rather than queued without end.
const QUEUED_NOTES: usize = 64;
/// Notifications whose button may still be clicked, each watched by a thread until it is
/// clicked or closed; past this many (a server that keeps every notification), new ones are
/// shown without a button.
const WATCHED_NOTES: usize = 8;

/// The app a button's action runs in ([`init`]).
static APP: OnceLock<AppHandle> = OnceLock::new();

/// Lets notifications' buttons act on the app (without it they are shown without buttons).
pub fn init(app: &AppHandle) {
    let _ = APP.set(app.clone());
}

/// Shows a notification, off the caller's thread (the D-Bus call blocks). One thread shows
/// them all, in order: a thread per note would pile up while the server is slow.
pub fn show(note: impl Into<Note>) {
    static COURIER: std::sync::OnceLock<Option<Courier<Note>>> = std::sync::OnceLock::new();
    let courier = COURIER.get_or_init(|| Courier::start("tether-notify", QUEUED_NOTES, deliver));
    match courier {
        Some(c) => {
            if !c.send(note.into()) {
                tracing::warn!("too many notifications waiting: one was dropped");
            }
        }
        None => tracing::warn!("cannot start the notification thread"),
    }
}

fn deliver(note: Note) {
    static WATCHING: AtomicUsize = AtomicUsize::new(0);
    let caps = notify_rust::get_capabilities().ok();
    // Unknown capabilities are taken to include markup: an entity shown as written is a
    // lesser harm than a name read as a link.
    let markup = caps
        .as_ref()
        .is_none_or(|caps| caps.iter().any(|c| c == "body-markup"));
    let buttons = caps
        .as_ref()
        .is_some_and(|caps| caps.iter().any(|c| c == "actions"));
    let mut notification = notify_rust::Notification::new();
    notification
        .appname("Tether")
        .summary(&note.summary)
        .body(&body_for(markup, &note.body));
    let action = note
        .action
        .filter(|_| buttons && APP.get().is_some())
        .filter(|_| {
            WATCHING
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                    (n < WATCHED_NOTES).then_some(n + 1)
                })
                .is_ok()
        });
    if let Some(a) = &action {
        let (key, label) = a.button();
        notification.action(key, label);
    }
    match notification.show() {
        Ok(handle) => {
            let Some(action) = action else { return };
            let watched = std::thread::Builder::new()
                .name("tether-note-action".into())
                .spawn(move || {
                    handle.wait_for_action(|key| {
                        if key == action.button().0 {
                            clicked(action);
                        }
                    });
                    WATCHING.fetch_sub(1, Ordering::SeqCst);
                });
            if watched.is_err() {
                WATCHING.fetch_sub(1, Ordering::SeqCst);
            }
        }
        Err(e) => {
            if action.is_some() {
                WATCHING.fetch_sub(1, Ordering::SeqCst);
            }
            tracing::warn!(error = %e, "cannot show a notification");
        }
    }
}

/// A notification's button was clicked: does what it says.
fn clicked(action: NoteAction) {
    let Some(app) = APP.get() else { return };
    let Some(desktop) = app.try_state::<Arc<Desktop>>().map(|d| d.inner().clone()) else {
        return;
    };
    match action {
        NoteAction::SignIn => {
            crate::actions::run(app, desktop, crate::tray::TrayAction::SignIn);
        }
        NoteAction::Reconnect(key) => {
            tauri::async_runtime::spawn(async move {
                if let Err(e) = reconnect(&desktop).await {
                    show((format!("Tether could not reconnect {key}"), e.message));
                }
                desktop.refresh_wanted.notify_one();
            });
        }
    }
}

/// Reconnects now rather than at the next try: a new certificate, after which every tunnel
/// connection that is down tries again at once (the agent wakes them on a renewal). A session
/// that needs a new sign-in says so, and the tunnels wait for it.
async fn reconnect(desktop: &Desktop) -> Result<(), IpcError> {
    desktop
        .request(&Request::Ready { new: true })
        .await
        .map(|_| ())
}

/// One thread that hands what it is sent to `deliver`, in order, with a bounded queue. The
/// thread ends when the courier is dropped.
struct Courier<T> {
    queue: std::sync::mpsc::SyncSender<T>,
}

impl<T: Send + 'static> Courier<T> {
    fn start(
        name: &str,
        capacity: usize,
        mut deliver: impl FnMut(T) + Send + 'static,
    ) -> Option<Courier<T>> {
        let (queue, waiting) = std::sync::mpsc::sync_channel::<T>(capacity);
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                while let Ok(item) = waiting.recv() {
                    deliver(item);
                }
            })
            .ok()?;
        Some(Courier { queue })
    }

    /// Queues `item`; false when the queue is full and it was dropped.
    fn send(&self, item: T) -> bool {
        self.queue.try_send(item).is_ok()
    }
}

/// The body as the server reads it. Servers with the `body-markup` capability read `<b>`,
/// `<a href>` and entities, and notes carry names the platform chose (apps, relationships,
/// reasons), so those servers get `<`, `>` and `&` escaped. The summary is plain text for
/// every server.
fn body_for(server_reads_markup: bool, body: &str) -> String {
    if server_reads_markup {
        tether_core::escape::markup(body).into_owned()
    } else {
        body.to_string()
    }
}

/// Puts text on the clipboard and says so (without the text, which may be a password). A
/// secret is cleared after a while (see [`crate::clipboard`]), and the note says when. The
/// clipboard is written on a blocking thread: it takes a lock and may wait on the display.
pub async fn copy(
    app: &AppHandle,
    text: String,
    label: &str,
    secrecy: Secrecy,
) -> Result<(), IpcError> {
    let clipboard = app.state::<Clipboard>().inner().clone();
    let writer = clipboard.clone();
    tauri::async_runtime::spawn_blocking(move || writer.write(&text, secrecy))
        .await
        .map_err(|e| e.to_string())
        .and_then(|written| written)
        .map_err(|e| IpcError::other(format!("cannot write the clipboard: {e}")))?;
    let body = match secrecy {
        Secrecy::Plain => "Paste it where you need it.".to_string(),
        Secrecy::Secret => format!(
            "Paste it where you need it: Tether clears it from the clipboard in {} s.",
            clipboard.clear_after().as_secs()
        ),
    };
    show((format!("Copied {label}"), body));
    Ok(())
}

/// How long a tunnel may be down before the user is told: a blip that heals by itself (the
/// gateway restarting, a network change) is not news.
pub const DOWN_GRACE: Duration = Duration::from_secs(3);

/// A reason as the start of a sentence (core's messages start in lower case).
fn sentence_case(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The agent's events, turned into notifications: each state is announced once, when it
/// starts, and a tunnel's recovery once, when it comes back. A tunnel is announced down only
/// when it stays down for [`DOWN_GRACE`] ([`Notifier::due`] says when).
#[derive(Debug, Default)]
pub struct Notifier {
    /// No tray shows Tether's menu ([`crate::tray_host`]): a note points to its window.
    pub without_tray: bool,
    renewal_failing: bool,
    mfa_needed: bool,
    /// Tunnels down but not yet announced, as `app relationship`: since when, and what to say.
    pending: HashMap<String, (Instant, Note)>,
    /// Tunnels announced down.
    down: HashSet<String>,
}

impl Notifier {
    /// What to do to sign in again: in the tray's menu, or in the window when there is none.
    fn sign_in_how(&self, mfa: bool) -> &'static str {
        match (self.without_tray, mfa) {
            (false, false) => "Choose \u{201c}Sign in…\u{201d} in Tether's menu.",
            (false, true) => "Choose \u{201c}Sign in with MFA…\u{201d} in Tether's menu.",
            (true, false) => "Open Tether and sign in again.",
            (true, true) => "Open Tether and sign in with MFA.",
        }
    }

    pub fn renewal_failing(&self) -> bool {
        self.renewal_failing
    }

    /// Tunnels down for longer than [`DOWN_GRACE`] at `now`, announced once each.
    pub fn due(&mut self, now: Instant) -> Vec<Note> {
        let due: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, (since, _))| now.duration_since(*since) >= DOWN_GRACE)
            .map(|(k, _)| k.clone())
            .collect();
        due.into_iter()
            .filter_map(|k| {
                let (_, note) = self.pending.remove(&k)?;
                self.down.insert(k);
                Some(note)
            })
            .collect()
    }

    pub fn on(&mut self, event: &Event, now: Instant) -> Option<Note> {
        match event {
            Event::SignedIn | Event::Renewed { .. } => {
                self.renewal_failing = false;
                self.mfa_needed = false;
                None
            }
            Event::RenewalFailed { reason } => {
                (!std::mem::replace(&mut self.renewal_failing, true)).then(|| {
                    (
                        "Certificate renewal failed".to_string(),
                        format!("{reason}. Tether keeps trying; the current certificate works until it expires."),
                    )
                        .into()
                })
            }
            Event::MfaNeeded { reason } => {
                (!std::mem::replace(&mut self.mfa_needed, true)).then(|| {
                    (
                        "Multi-factor authentication needed".to_string(),
                        format!("{reason}. {}", self.sign_in_how(true)),
                    )
                        .into()
                })
            }
            Event::SignedOut { reason, by_user } => {
                self.renewal_failing = false;
                self.mfa_needed = false;
                self.down.clear();
                self.pending.clear();
                (!by_user).then(|| {
                    Note::with(
                        "Sign in to Tether again".to_string(),
                        format!("{}. {}", sentence_case(reason), self.sign_in_how(false)),
                        NoteAction::SignIn,
                    )
                })
            }
            Event::Tunnel {
                app,
                relationship,
                port,
                state,
                down,
                needs_sign_in,
            } => {
                let key = format!("{app} {relationship}");
                if *down {
                    if !self.down.contains(&key) {
                        let body = if *needs_sign_in {
                            format!(
                                "{relationship} of {app} (port {port}) waits for a new sign-in. Tether keeps its port."
                            )
                        } else {
                            format!(
                                "{relationship} of {app} (port {port}) is {state}. Tether keeps its port and reconnects."
                            )
                        };
                        let since = self.pending.get(&key).map_or(now, |(since, _)| *since);
                        // Waiting for a sign-in, the button signs in; otherwise it reconnects.
                        let action = if *needs_sign_in {
                            NoteAction::SignIn
                        } else {
                            NoteAction::Reconnect(app.to_string())
                        };
                        let note =
                            Note::with(format!("Tunnel down: {relationship}"), body, action);
                        self.pending.insert(key, (since, note));
                    }
                    None
                } else if *state == TunnelEventState::Open {
                    self.pending.remove(&key);
                    self.down.remove(&key).then(|| {
                        (
                            format!("Tunnel back: {relationship}"),
                            format!("{relationship} of {app} works again on port {port}."),
                        )
                            .into()
                    })
                } else {
                    self.pending.remove(&key);
                    self.down.remove(&key);
                    None
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_are_shown_by_one_thread_in_order_and_a_flood_is_bounded() {
        let (seen_tx, seen) = std::sync::mpsc::channel();
        let (go_tx, go) = std::sync::mpsc::channel::<()>();
        let courier = Courier::start("test-notify", 4, move |n: u32| {
            // The first delivery blocks, as a notification server that does not answer does.
            if n == 0 {
                let _ = go.recv();
            }
            let _ = seen_tx.send((n, std::thread::current().id()));
        })
        .unwrap();
        let sent: Vec<bool> = (0..100).map(|n| courier.send(n)).collect();
        // One in delivery, four queued: the rest dropped, not piled up in threads.
        assert!(sent.iter().filter(|s| **s).count() <= 5, "{sent:?}");
        go_tx.send(()).unwrap();
        drop(courier);
        let seen: Vec<(u32, std::thread::ThreadId)> = seen.iter().collect();
        let order: Vec<u32> = seen.iter().map(|(n, _)| *n).collect();
        // Which ones were dropped depends on when the thread took the first one off the queue
        // (a slot frees then); those shown are every one accepted, in the order sent.
        let accepted: Vec<u32> = (0..100).filter(|n| sent[*n as usize]).collect();
        assert_eq!(order, accepted);
        assert!(
            seen.windows(2).all(|w| w[0].1 == w[1].1),
            "more than one thread"
        );
    }

    #[test]
    fn bodies_for_markup_servers_escape_what_the_platform_named() {
        let body = "Tunnel to <a href=\"https://evil\">db</a> & co is down";
        assert_eq!(
            body_for(true, body),
            "Tunnel to &lt;a href=\"https://evil\"&gt;db&lt;/a&gt; &amp; co is down"
        );
        assert_eq!(body_for(false, body), body);
    }

    fn tunnel(state: &str, down: bool) -> Event {
        let needs_sign_in = state.starts_with("failed");
        let state = match state {
            "reconnecting" => TunnelEventState::Reconnecting {
                attempt: 1,
                error: "timed out".into(),
            },
            s => TunnelEventState::try_from(s.to_string()).unwrap(),
        };
        Event::Tunnel {
            app: "p/main/app".into(),
            relationship: "database".into(),
            port: 30000,
            state,
            down,
            needs_sign_in,
        }
    }

    #[test]
    fn each_state_is_announced_once_and_routine_renewals_never() {
        let mut n = Notifier::default();
        let renewed = Event::Renewed {
            valid_before: 1,
            has_mfa: false,
        };
        assert_eq!(n.on(&renewed, Instant::now()), None);
        let failed = Event::RenewalFailed {
            reason: "unreachable".into(),
        };
        assert!(n.on(&failed, Instant::now()).is_some());
        assert!(n.renewal_failing());
        assert_eq!(n.on(&failed, Instant::now()), None, "a repeat is not news");
        assert_eq!(n.on(&renewed, Instant::now()), None);
        assert!(!n.renewal_failing());
        assert!(
            n.on(&failed, Instant::now()).is_some(),
            "a new run of failures is"
        );

        let mfa = Event::MfaNeeded {
            reason: "the organization requires MFA".into(),
        };
        assert!(n
            .on(&mfa, Instant::now())
            .unwrap()
            .summary
            .contains("Multi-factor"));
        assert_eq!(n.on(&mfa, Instant::now()), None);
    }

    #[test]
    fn a_tunnel_is_announced_down_once_after_its_grace_and_back_once() {
        let t0 = Instant::now();
        let later = |s: u64| t0 + Duration::from_secs(s);
        let mut n = Notifier::default();
        assert_eq!(
            n.on(&tunnel("open", false), t0),
            None,
            "opening is not news"
        );
        assert_eq!(n.on(&tunnel("reconnecting", true), t0), None);
        assert!(n.due(later(1)).is_empty(), "within the grace");
        assert_eq!(n.on(&tunnel("reconnecting", true), later(2)), None);
        let down = n.due(later(3));
        assert_eq!(down.len(), 1, "{down:?}");
        assert_eq!(down[0].summary, "Tunnel down: database");
        assert!(down[0].body.contains("port 30000"), "{down:?}");
        assert!(n.due(later(10)).is_empty(), "once");
        assert_eq!(n.on(&tunnel("reconnecting", true), later(11)), None);
        assert!(n.due(later(20)).is_empty());
        assert_eq!(
            n.on(&tunnel("open", false), later(21)).unwrap().summary,
            "Tunnel back: database"
        );
        assert_eq!(n.on(&tunnel("open", false), later(22)), None);
        assert_eq!(n.on(&tunnel("reconnecting", true), later(23)), None);
        assert_eq!(
            n.on(&tunnel("closed", false), later(24)),
            None,
            "closing is the user's doing"
        );
        assert!(n.due(later(40)).is_empty());
    }

    #[test]
    fn a_blip_that_heals_within_the_grace_is_not_news() {
        let t0 = Instant::now();
        let mut n = Notifier::default();
        assert_eq!(n.on(&tunnel("reconnecting", true), t0), None);
        assert_eq!(
            n.on(&tunnel("open", false), t0 + Duration::from_secs(1)),
            None
        );
        assert!(n.due(t0 + Duration::from_secs(10)).is_empty());
    }

    #[test]
    fn a_tunnel_waiting_for_a_sign_in_says_so() {
        let t0 = Instant::now();
        let mut n = Notifier::default();
        n.on(&tunnel("failed: MFA is required", true), t0);
        let down = n.due(t0 + DOWN_GRACE);
        assert!(down[0].body.contains("waits for a new sign-in"), "{down:?}");
        assert_eq!(
            down[0].action,
            Some(NoteAction::SignIn),
            "its button signs in"
        );
    }

    #[test]
    fn sign_in_again_and_tunnel_down_carry_their_buttons_and_nothing_else_does() {
        let t0 = Instant::now();
        let mut n = Notifier::default();
        n.on(&tunnel("reconnecting", true), t0);
        let down = n.due(t0 + DOWN_GRACE);
        assert_eq!(
            down[0].action,
            Some(NoteAction::Reconnect("p/main/app".into()))
        );
        let back = n.on(&tunnel("open", false), t0).unwrap();
        assert_eq!(back.action, None);
        let failed = Event::RenewalFailed {
            reason: "unreachable".into(),
        };
        assert_eq!(n.on(&failed, t0).unwrap().action, None);
        let idle = Event::SignedOut {
            by_user: false,
            reason: "inactive for 8 h".into(),
        };
        assert_eq!(n.on(&idle, t0).unwrap().action, Some(NoteAction::SignIn));
        assert_eq!(NoteAction::SignIn.button(), ("sign-in", "Sign in"));
        assert_eq!(
            NoteAction::Reconnect(String::new()).button(),
            ("reconnect", "Reconnect")
        );
    }

    #[test]
    fn only_a_sign_out_the_user_did_not_ask_for_is_announced() {
        let mut n = Notifier::default();
        let by_user = Event::SignedOut {
            by_user: true,
            reason: "signed out by the user".into(),
        };
        assert_eq!(n.on(&by_user, Instant::now()), None);
        let idle = Event::SignedOut {
            by_user: false,
            reason: "inactive for 8 h".into(),
        };
        let note = n.on(&idle, Instant::now()).unwrap();
        assert!(
            note.body.starts_with("Inactive for 8 h. Choose"),
            "{note:?}"
        );
    }

    #[test]
    fn without_a_tray_a_note_points_to_the_window_not_a_menu() {
        let mut n = Notifier {
            without_tray: true,
            ..Notifier::default()
        };
        let idle = Event::SignedOut {
            by_user: false,
            reason: "inactive for 8 h".into(),
        };
        let note = n.on(&idle, Instant::now()).unwrap();
        assert_eq!(
            note.body,
            "Inactive for 8 h. Open Tether and sign in again."
        );
        let mfa = Event::MfaNeeded {
            reason: "the organization requires MFA".into(),
        };
        let note = n.on(&mfa, Instant::now()).unwrap();
        assert!(!note.body.contains("menu"), "{note:?}");
    }
}
