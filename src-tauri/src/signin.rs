//! Signing in: the platform's own login page (password, then the TOTP code when asked) in an
//! app window, or in the user's browser. The window's navigation to the loopback redirect is
//! intercepted and never loaded, so the authorization code stays in the app; the listener
//! still runs, for the browser and as a fallback. The sign-in window shows a remote page and
//! has no IPC capability at all (see `capabilities/`): nothing on it can call the app.

use std::time::Duration;

use tauri::{AppHandle, Manager, WebviewUrl, WebviewWindowBuilder};
use tether_core::auth::LoginRequest;

use crate::desktop::Desktop;
use crate::view::{IpcError, SignInMethod};

pub const WINDOW: &str = "signin";
/// How long a sign-in may take before it is abandoned.
const TIMEOUT: Duration = Duration::from_secs(600);

fn open_in_browser(url: &str) -> Result<(), IpcError> {
    let program = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(target_os = "windows") {
        "explorer"
    } else {
        "xdg-open"
    };
    std::process::Command::new(program)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(|_| ())
        .map_err(|e| {
            IpcError::other(format!(
                "cannot open the browser ({program}: {e}): sign in with `tether login --no-browser` instead"
            ))
        })
}

/// Signs in (or steps up with `request.amr`), in a window or the browser, and tells the agent.
pub async fn sign_in(
    app: &AppHandle,
    desktop: &Desktop,
    request: LoginRequest,
    method: SignInMethod,
) -> Result<(), IpcError> {
    let Ok(_one) = desktop.signing_in.try_lock() else {
        // A sign-in is already under way: bring its window forward.
        if let Some(w) = app.get_webview_window(WINDOW) {
            let _ = w.show();
            let _ = w.set_focus();
        }
        return Err(IpcError::usage(
            "a sign-in is already under way: finish it in its window",
        ));
    };
    let pending = desktop
        .access
        .begin_sign_in(&request)
        .await
        .map_err(|e| IpcError::of(&e))?;
    let url = pending.authorize_url().clone();
    let code = match method {
        SignInMethod::Browser => {
            open_in_browser(url.as_str())?;
            pending.wait_for_code(TIMEOUT).await
        }
        SignInMethod::Window => {
            let redirect = pending.redirect_uri().to_string();
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let title = if request.amr.is_empty() {
                format!("Sign in to {}", desktop.profile_title())
            } else {
                format!(
                    "Sign in to {} with multi-factor authentication",
                    desktop.profile_title()
                )
            };
            if let Some(old) = app.get_webview_window(WINDOW) {
                let _ = old.destroy();
            }
            // Built from this task: Tauri creates the window on the main thread.
            WebviewWindowBuilder::new(app, WINDOW, WebviewUrl::External(url))
                .title(title)
                .inner_size(480.0, 640.0)
                .center()
                .on_navigation(move |to| {
                    if to.as_str().starts_with(&redirect) {
                        let _ = tx.send(to.clone());
                        return false;
                    }
                    true
                })
                .build()
                .map_err(|e| IpcError::other(format!("cannot open the sign-in window: {e}")))?;
            let code = pending.wait_for_callback(Some(rx), TIMEOUT).await;
            if let Some(w) = app.get_webview_window(WINDOW) {
                let _ = w.destroy();
            }
            code
        }
    };
    let code = code.map_err(|e| IpcError::of(&e))?;
    desktop
        .access
        .finish_sign_in(code)
        .await
        .map_err(|e| IpcError::of(&e))?;
    desktop.session_changed();
    Ok(())
}
