//! A notification server (`org.freedesktop.Notifications`) on a test's session bus, as a
//! desktop's would be: it records every notification an app sends, in order, with its buttons.
//! It advertises `body-markup` as common desktops do, so what it records is what such a server
//! would parse, and `actions`, so apps send buttons; [`Notifications::click`] clicks one as a
//! person would (the server emits `ActionInvoked`, then closes the notification).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use zbus::zvariant::OwnedValue;
use zbus::{interface, Connection};

/// One notification: its summary and body, the id the server gave it, and its buttons as
/// `(action key, label)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub id: u32,
    pub summary: String,
    pub body: String,
    pub actions: Vec<(String, String)>,
}

struct Server {
    received: Arc<Mutex<Vec<Note>>>,
}

#[interface(name = "org.freedesktop.Notifications")]
impl Server {
    #[allow(clippy::too_many_arguments)]
    async fn notify(
        &self,
        _app_name: &str,
        _replaces_id: u32,
        _app_icon: &str,
        summary: &str,
        body: &str,
        actions: Vec<String>,
        _hints: std::collections::HashMap<String, OwnedValue>,
        _expire_timeout: i32,
    ) -> u32 {
        let mut r = self.received.lock().unwrap_or_else(|p| p.into_inner());
        let id = r.len() as u32 + 1;
        r.push(Note {
            id,
            summary: summary.to_string(),
            body: body.to_string(),
            // The spec's flat list: key, label, key, label, …
            actions: actions
                .chunks(2)
                .map(|pair| (pair[0].clone(), pair.get(1).cloned().unwrap_or_default()))
                .collect(),
        });
        id
    }

    async fn close_notification(&self, _id: u32) {}

    /// As GNOME's and KDE's servers: bodies are read as markup, so an app must escape them,
    /// and notifications may carry buttons.
    async fn get_capabilities(&self) -> Vec<String> {
        vec!["actions".into(), "body".into(), "body-markup".into()]
    }

    /// A button was clicked.
    #[zbus(signal)]
    async fn action_invoked(
        emitter: &zbus::object_server::SignalEmitter<'_>,
        id: u32,
        action_key: &str,
    ) -> zbus::Result<()>;

    /// A notification went away; reason 2: the user dismissed it.
    #[zbus(signal)]
    async fn notification_closed(
        emitter: &zbus::object_server::SignalEmitter<'_>,
        id: u32,
        reason: u32,
    ) -> zbus::Result<()>;

    async fn get_server_information(&self) -> (String, String, String, String) {
        (
            "tether-test".into(),
            "tether".into(),
            "1".into(),
            "1.2".into(),
        )
    }
}

pub struct Notifications {
    received: Arc<Mutex<Vec<Note>>>,
    connection: Connection,
}

const PATH: &str = "/org/freedesktop/Notifications";

impl Notifications {
    pub async fn start(address: &str) -> Result<Notifications> {
        let received = Arc::new(Mutex::new(Vec::new()));
        let connection = zbus::connection::Builder::address(address)?
            .name("org.freedesktop.Notifications")?
            .serve_at(
                PATH,
                Server {
                    received: received.clone(),
                },
            )?
            .build()
            .await?;
        Ok(Notifications {
            received,
            connection,
        })
    }

    /// Clicks `note`'s button `action_key` as a person would: the server says so on the bus
    /// (`ActionInvoked`), then closes the notification (`NotificationClosed`, dismissed), as
    /// real servers do. Fails when the note has no such button.
    pub async fn click(&self, note: &Note, action_key: &str) -> Result<()> {
        if !note.actions.iter().any(|(k, _)| k == action_key) {
            bail!("{note:?} has no button {action_key:?}");
        }
        let server = self
            .connection
            .object_server()
            .interface::<_, Server>(PATH)
            .await?;
        let emitter = server.signal_emitter();
        Server::action_invoked(emitter, note.id, action_key).await?;
        Server::notification_closed(emitter, note.id, 2).await?;
        Ok(())
    }

    /// Every notification so far.
    pub fn received(&self) -> Vec<Note> {
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Those whose summary starts with `prefix`.
    pub fn with_summary(&self, prefix: &str) -> Vec<Note> {
        self.received()
            .into_iter()
            .filter(|n| n.summary.starts_with(prefix))
            .collect()
    }

    /// Asserts that exactly `n` notifications have a summary starting with `prefix` (one per
    /// event), showing every one received when not.
    #[track_caller]
    pub fn assert_count(&self, prefix: &str, n: usize) {
        assert_eq!(
            self.with_summary(prefix).len(),
            n,
            "notifications {prefix:?}: {:?}",
            self.received()
        );
    }

    /// Watches for `during` that, for each `(prefix, n)`, exactly `n` notifications have a
    /// summary starting with `prefix`: for a notification that must not come (or not come
    /// again), which only time can show. Fails as soon as one count differs, with every
    /// notification received and when.
    pub async fn counts_hold(&self, expected: &[(&str, usize)], during: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            for (prefix, n) in expected {
                let got = self.with_summary(prefix).len();
                if got != *n {
                    bail!(
                        "{got} notifications {prefix:?} instead of {n}, {:?} into a {during:?} watch; received: {:?}",
                        start.elapsed(),
                        self.received()
                    );
                }
            }
            if start.elapsed() >= during {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until one whose summary starts with `prefix` has come.
    pub async fn wait_for(&self, prefix: &str, timeout: Duration) -> Result<Note> {
        let start = Instant::now();
        loop {
            if let Some(n) = self.with_summary(prefix).pop() {
                return Ok(n);
            }
            if start.elapsed() > timeout {
                bail!(
                    "no notification {prefix:?} in {timeout:?}; received: {:?}",
                    self.received()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
