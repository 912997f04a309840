//! Whether the desktop shows tray icons, and what the app does when it does not.
//!
//! A tray icon on Linux is a StatusNotifierItem, which only a StatusNotifierWatcher on the
//! session bus (`org.kde.StatusNotifierWatcher`: KDE's, or GNOME's AppIndicator extension)
//! passes to a panel. Stock GNOME has none, and a tray app there starts invisible. So the app
//! watches that name from the start: while nobody owns it, the main window is the app's
//! surface (it opens at start, says why there is no tray icon, and closing it hides it
//! instead of ending the webview), and when a watcher appears, now or later, the tray icon is
//! added. A watcher that goes away later (a panel restarting) leaves the icon to register
//! again by itself, as libappindicator does, and only brings the window's notice back.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use tauri::{AppHandle, Emitter, Manager};

use crate::desktop::Desktop;
use crate::windows;

/// The well-known name of the StatusNotifierWatcher (core's, which `tether doctor` asks for).
pub const WATCHER: &str = tether_core::doctor::TRAY_WATCHER;

/// What the session bus last said about the watcher (managed by the app).
#[derive(Debug, Default)]
pub struct TrayHost(AtomicU8);

const UNKNOWN: u8 = 0;
const ABSENT: u8 = 1;
const PRESENT: u8 = 2;

impl TrayHost {
    /// Whether a tray host is there (before the bus answered: taken to be, as nothing is
    /// hidden by a close then).
    pub fn present(&self) -> bool {
        self.0.load(Ordering::SeqCst) != ABSENT
    }

    /// Records the bus's answer; says what to do about it.
    fn seen(&self, present: bool) -> Steps {
        let before = self
            .0
            .swap(if present { PRESENT } else { ABSENT }, Ordering::SeqCst);
        steps(before, present)
    }
}

/// What an answer of the bus asks of the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Steps {
    /// Add the tray icon (when it is not there yet).
    add_tray: bool,
    /// Open the window: the app has no other surface.
    show_window: bool,
    /// The window's notice changes.
    changed: bool,
}

fn steps(before: u8, present: bool) -> Steps {
    Steps {
        add_tray: present,
        // Only at start: a panel restarting later does not pop the window up.
        show_window: !present && before == UNKNOWN,
        changed: before != if present { PRESENT } else { ABSENT },
    }
}

/// Whether closing the main window should only hide it: with no tray, the window is the only
/// way back to the app, and a second launch shows it again as it was.
pub fn hides_on_close(app: &AppHandle) -> bool {
    !app.state::<Arc<TrayHost>>().present()
}

/// Starts watching for the watcher (call on the main thread: the bus's answers come on the
/// main loop, where the tray is made). The first answer comes at once: whether it is there.
pub fn watch(app: &AppHandle, desktop: Arc<Desktop>) {
    let host = Arc::new(TrayHost::default());
    app.manage(host.clone());
    #[cfg(target_os = "linux")]
    {
        let (on_appeared, on_vanished) = (app.clone(), app.clone());
        let (host_appeared, host_vanished) = (host.clone(), host);
        let desktop_vanished = desktop.clone();
        // Never unwatched: the watch lasts as long as the app.
        let _watch = gio::bus_watch_name(
            gio::BusType::Session,
            WATCHER,
            gio::BusNameWatcherFlags::NONE,
            move |_, _, owner| {
                tracing::info!(owner, "a StatusNotifierWatcher is on the session bus");
                apply(&on_appeared, &desktop, host_appeared.seen(true));
            },
            move |_, _| {
                tracing::info!(
                    "no StatusNotifierWatcher on the session bus: no tray icon, the window is the app's surface"
                );
                apply(&on_vanished, &desktop_vanished, host_vanished.seen(false));
            },
        );
    }
    #[cfg(not(target_os = "linux"))]
    apply(app, &desktop, host.seen(true));
}

fn apply(app: &AppHandle, desktop: &Arc<Desktop>, steps: Steps) {
    if steps.add_tray {
        if let Err(e) = crate::tray::add_icon(app, desktop.clone()) {
            tracing::error!(error = %e, "cannot add the tray icon");
        }
    }
    if steps.show_window {
        windows::show(app, None);
    }
    if steps.changed {
        let _ = app.emit_to(windows::MAIN, crate::shell::CHANGED, ());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_no_tray_host_at_start_the_window_opens_and_later_only_the_notice_changes() {
        let host = TrayHost::default();
        assert!(
            host.present(),
            "nothing hidden on close before the bus answers"
        );
        let first = host.seen(false);
        assert!(first.show_window && first.changed && !first.add_tray);
        assert!(!host.present());
        let appeared = host.seen(true);
        assert!(appeared.add_tray && appeared.changed && !appeared.show_window);
        let gone = host.seen(false);
        assert!(
            !gone.show_window,
            "a panel restarting does not pop the window up"
        );
        assert!(gone.changed && !gone.add_tray);
        assert!(!host.seen(false).changed);
    }

    #[test]
    fn with_a_tray_host_at_start_the_icon_is_added_and_the_window_left_as_asked() {
        let host = TrayHost::default();
        let first = host.seen(true);
        assert!(first.add_tray && !first.show_window);
        assert!(host.present());
    }
}
