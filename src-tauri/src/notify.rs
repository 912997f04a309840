//! Desktop notifications (freedesktop Notifications through notify-rust): one per event that
//! needs the user (sign in again, MFA needed, renewal failing, a tunnel down and back, a copy),
//! none for routine renewals. [`Notifier`] decides, from the agent's events, which deserve
//! one; repeats of a state already announced do not.

use std::collections::HashSet;

use tauri::AppHandle;
use tauri_plugin_clipboard_manager::ClipboardExt;
use tether_core::cert::Event;

use crate::view::IpcError;

/// What the user is told: a summary and a body.
pub type Note = (String, String);

/// Shows a notification, off the caller's thread (the D-Bus call blocks).
pub fn show((summary, body): Note) {
    std::thread::spawn(move || {
        if let Err(e) = notify_rust::Notification::new()
            .appname("Tether")
            .summary(&summary)
            .body(&body)
            .show()
        {
            tracing::warn!(error = %e, "cannot show a notification");
        }
    });
}

/// Puts text on the clipboard and says so (without the text, which may be a password).
pub fn copy(app: &AppHandle, text: &str, label: &str) -> Result<(), IpcError> {
    app.clipboard()
        .write_text(text.to_string())
        .map_err(|e| IpcError::other(format!("cannot write the clipboard: {e}")))?;
    show((
        format!("Copied {label}"),
        "Paste it where you need it.".into(),
    ));
    Ok(())
}

/// The agent's events, turned into notifications: each state is announced once, when it
/// starts, and a tunnel's recovery once, when it comes back.
#[derive(Debug, Default)]
pub struct Notifier {
    renewal_failing: bool,
    mfa_needed: bool,
    /// Tunnels announced down, as `app relationship`.
    down: HashSet<String>,
}

impl Notifier {
    pub fn renewal_failing(&self) -> bool {
        self.renewal_failing
    }

    pub fn on(&mut self, event: &Event) -> Option<Note> {
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
                })
            }
            Event::MfaNeeded { reason } => {
                (!std::mem::replace(&mut self.mfa_needed, true)).then(|| {
                    (
                        "Multi-factor authentication needed".to_string(),
                        format!("{reason}. Choose \u{201c}Sign in with MFA…\u{201d} in Tether's menu."),
                    )
                })
            }
            Event::SignedOut { reason } => {
                self.renewal_failing = false;
                self.mfa_needed = false;
                self.down.clear();
                (reason != "signed out by the user").then(|| {
                    (
                        "Sign in to Tether again".to_string(),
                        format!("Your session ended ({reason}). Choose \u{201c}Sign in…\u{201d} in Tether's menu."),
                    )
                })
            }
            Event::Tunnel {
                app,
                relationship,
                port,
                state,
                down,
            } => {
                let key = format!("{app} {relationship}");
                if *down {
                    self.down.insert(key).then(|| {
                        (
                            format!("Tunnel down: {relationship}"),
                            format!("{relationship} of {app} (127.0.0.1:{port}) is {state}. Tether keeps its port and reconnects."),
                        )
                    })
                } else if state == "open" {
                    self.down.remove(&key).then(|| {
                        (
                            format!("Tunnel back: {relationship}"),
                            format!("{relationship} of {app} works again on 127.0.0.1:{port}."),
                        )
                    })
                } else {
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

    fn tunnel(state: &str, down: bool) -> Event {
        Event::Tunnel {
            app: "p/main/app".into(),
            relationship: "database".into(),
            port: 30000,
            state: state.into(),
            down,
        }
    }

    #[test]
    fn each_state_is_announced_once_and_routine_renewals_never() {
        let mut n = Notifier::default();
        let renewed = Event::Renewed {
            valid_before: 1,
            has_mfa: false,
        };
        assert_eq!(n.on(&renewed), None);
        let failed = Event::RenewalFailed {
            reason: "unreachable".into(),
        };
        assert!(n.on(&failed).is_some());
        assert!(n.renewal_failing());
        assert_eq!(n.on(&failed), None, "a repeat is not news");
        assert_eq!(n.on(&renewed), None);
        assert!(!n.renewal_failing());
        assert!(n.on(&failed).is_some(), "a new run of failures is");

        let mfa = Event::MfaNeeded {
            reason: "the organization requires MFA".into(),
        };
        assert!(n.on(&mfa).unwrap().0.contains("Multi-factor"));
        assert_eq!(n.on(&mfa), None);
    }

    #[test]
    fn a_tunnel_is_announced_down_once_and_back_once() {
        let mut n = Notifier::default();
        assert_eq!(n.on(&tunnel("open", false)), None, "opening is not news");
        let down = n.on(&tunnel("reconnecting", true)).unwrap();
        assert_eq!(down.0, "Tunnel down: database");
        assert!(down.1.contains("127.0.0.1:30000"), "{down:?}");
        assert_eq!(n.on(&tunnel("reconnecting", true)), None);
        assert_eq!(
            n.on(&tunnel("open", false)).unwrap().0,
            "Tunnel back: database"
        );
        assert_eq!(n.on(&tunnel("open", false)), None);
        assert!(n.on(&tunnel("reconnecting", true)).is_some());
        assert_eq!(
            n.on(&tunnel("closed", false)),
            None,
            "closing is the user's doing"
        );
        assert_eq!(n.on(&tunnel("open", false)), None);
    }

    #[test]
    fn only_a_sign_out_the_user_did_not_ask_for_is_announced() {
        let mut n = Notifier::default();
        let by_user = Event::SignedOut {
            reason: "signed out by the user".into(),
        };
        assert_eq!(n.on(&by_user), None);
        let idle = Event::SignedOut {
            reason: "inactive for 8 h".into(),
        };
        assert!(n.on(&idle).unwrap().1.contains("inactive for 8 h"));
    }
}
