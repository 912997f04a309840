//! What Tether puts on the clipboard. Secrets (a password, a URL with credentials, the
//! `PLATFORM_RELATIONSHIPS` export line) are marked for clipboard managers to keep out of their
//! history (`x-kde-passwordManagerHint` on Linux, which KDE's and GNOME's managers honour), and
//! are cleared after [`Clipboard::clear_after`] if the clipboard still holds them, as password
//! managers do: what the user copied since is left alone.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tether_core::secret::Sensitive;

/// How long a secret stays on the clipboard, unless `TETHER_CLIPBOARD_CLEAR_SECS` says
/// otherwise (tests use a short delay).
pub const CLEAR_AFTER: Duration = Duration::from_secs(45);

/// Whether what is copied is a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrecy {
    Plain,
    Secret,
}

/// The system clipboard as Tether writes it. Cheap to clone; every clone is the same.
#[derive(Clone)]
pub struct Clipboard {
    /// Opened on first use (it needs the display) and kept: on X11 the content lives only as
    /// long as its owner does.
    board: Arc<Mutex<Option<arboard::Clipboard>>>,
    clear_after: Duration,
}

impl Clipboard {
    /// Reads `TETHER_CLIPBOARD_CLEAR_SECS` once.
    pub fn from_env() -> Clipboard {
        let clear_after = std::env::var("TETHER_CLIPBOARD_CLEAR_SECS")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .filter(|s| *s > 0)
            .map_or(CLEAR_AFTER, Duration::from_secs);
        Clipboard {
            board: Arc::new(Mutex::new(None)),
            clear_after,
        }
    }

    pub fn clear_after(&self) -> Duration {
        self.clear_after
    }

    /// Writes `text`; a secret is marked and its clearing scheduled on the app's runtime.
    pub fn write(&self, text: &str, secrecy: Secrecy) -> Result<(), String> {
        self.with(|board| {
            let set = board.set();
            #[cfg(target_os = "linux")]
            let set = if secrecy == Secrecy::Secret {
                use arboard::SetExtLinux;
                set.exclude_from_history()
            } else {
                set
            };
            set.text(text)
        })?;
        if secrecy == Secrecy::Secret {
            let (this, ours) = (self.clone(), Sensitive::new(text.to_string()));
            tauri::async_runtime::spawn(async move {
                tokio::time::sleep(this.clear_after).await;
                let _ =
                    tauri::async_runtime::spawn_blocking(move || this.clear_if_held(&ours)).await;
            });
        }
        Ok(())
    }

    /// Clears the clipboard if it still holds `ours`.
    fn clear_if_held(&self, ours: &Sensitive<String>) {
        let cleared = self.with(|board| {
            if still_ours(board.get_text().ok().as_deref(), ours.expose()) {
                board.clear().map(|()| true)
            } else {
                Ok(false)
            }
        });
        // Said either way (at info level): tests wait for these lines rather than for time.
        match cleared {
            Ok(true) => tracing::info!("cleared a secret from the clipboard"),
            Ok(false) => tracing::info!(
                "left the clipboard alone: it holds something else than the secret copied"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot clear a secret from the clipboard"),
        }
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut arboard::Clipboard) -> Result<T, arboard::Error>,
    ) -> Result<T, String> {
        let mut slot = self
            .board
            .lock()
            .map_err(|_| "the clipboard is unusable after an earlier failure".to_string())?;
        if slot.is_none() {
            *slot = Some(arboard::Clipboard::new().map_err(|e| unreachable_board(&e))?);
        }
        match slot.as_mut() {
            Some(board) => f(board).map_err(|e| e.to_string()),
            None => Err("no clipboard".into()),
        }
    }
}

/// Why the clipboard cannot be opened, in words. Under Wayland, arboard writes through the
/// compositor's data-control protocol (a program without a focused window may not use the
/// ordinary one), else through XWayland's X11 clipboard: a compositor with neither (a bare
/// Weston) has no clipboard to lend.
fn unreachable_board(e: &arboard::Error) -> String {
    let wayland = std::env::var_os("WAYLAND_DISPLAY").is_some();
    let x11 = std::env::var_os("DISPLAY").is_some();
    if wayland && !x11 {
        format!("this Wayland desktop lends its clipboard to no program in the background (no data-control protocol, and no XWayland): {e}")
    } else {
        e.to_string()
    }
}

/// Whether the clipboard's text is still what Tether put there (the user has not copied
/// something else since).
fn still_ours(held: Option<&str>, ours: &str) -> bool {
    held == Some(ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_tether_put_there_is_cleared() {
        assert!(still_ours(
            Some("redis://u:p@127.0.0.1:30000"),
            "redis://u:p@127.0.0.1:30000"
        ));
        assert!(!still_ours(Some("something the user copied"), "s3cret"));
        assert!(!still_ours(None, "s3cret"));
    }
}
