//! Signing in: the platform's own login page (password, then the TOTP code when asked) in an
//! app window, or in the user's browser. The window's navigation to the loopback redirect is
//! intercepted and never loaded, so the authorization code stays in the app; the listener
//! still runs, for the browser and as a fallback. The sign-in window shows a remote page and
//! has no IPC capability at all (see `capabilities/`): nothing on it can call the app; where
//! else it may go is [`crate::navigation`]'s to say.

use std::sync::Arc;
use std::time::Duration;

use tauri::{AppHandle, Manager, WebviewUrl, WebviewWindowBuilder};
use tether_core::auth::LoginRequest;

use crate::desktop::Desktop;
use crate::navigation::{Decision, Navigations};
use crate::view::{IpcError, SignInMethod};

pub const WINDOW: &str = "signin";
/// How long a sign-in may take before it is abandoned.
const TIMEOUT: Duration = Duration::from_secs(600);

/// The browser's command line for a URL: `$BROWSER` when set (the first of its `:`-separated
/// commands, `%s` standing for the URL, else the URL appended), else the system's opener.
fn browser_command(browser_var: Option<&str>, url: &str) -> (String, Vec<String>) {
    if let Some(first) = browser_var.and_then(|b| b.split(':').find(|c| !c.trim().is_empty())) {
        let mut words = first.split_whitespace().map(str::to_string);
        if let Some(program) = words.next() {
            let mut args: Vec<String> = words.collect();
            if args.iter().any(|a| a.contains("%s")) {
                for a in &mut args {
                    *a = a.replace("%s", url);
                }
            } else {
                args.push(url.to_string());
            }
            return (program, args);
        }
    }
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(target_os = "windows") {
        "explorer"
    } else {
        "xdg-open"
    };
    (opener.to_string(), vec![url.to_string()])
}

fn open_in_browser(url: &str) -> Result<(), IpcError> {
    let (program, args) = browser_command(std::env::var("BROWSER").ok().as_deref(), url);
    let mut child = std::process::Command::new(&program)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| {
            IpcError::other(format!(
                "cannot open the browser ({program}: {e}): set BROWSER, or sign in in Tether's window"
            ))
        })?;
    std::thread::spawn(move || child.wait());
    Ok(())
}

/// What the sign-in window's decisions do beyond loading or not: the redirect goes to the
/// sign-in waiting for it, a page elsewhere to the browser.
fn act_on(
    code: tokio::sync::mpsc::UnboundedSender<tauri::Url>,
) -> impl Fn(Decision) + Send + 'static {
    move |made| match made {
        Decision::Intercept(to) => {
            let _ = code.send(to);
        }
        Decision::OpenInBrowser(to) => {
            if let Err(e) = open_in_browser(to.as_str()) {
                tracing::warn!(error = %e.message, "cannot open a page of the sign-in window");
            }
        }
        Decision::Load | Decision::Refuse => {}
    }
}

/// Signs in (or steps up with `request.amr`), in a window or the browser, and tells the agent.
pub async fn sign_in(
    app: &AppHandle,
    desktop: &Arc<Desktop>,
    request: LoginRequest,
    method: SignInMethod,
) -> Result<(), IpcError> {
    // A sign-in waiting for the browser gives way to a new one (the user may have closed the
    // tab); one in the app's window is brought forward instead.
    let abandoned = desktop.take_browser_sign_in();
    let _one = match desktop.signing_in.try_lock() {
        Ok(one) => one,
        Err(_) if abandoned => desktop.signing_in.lock().await,
        Err(_) => {
            if let Some(w) = app.get_webview_window(WINDOW) {
                let _ = w.show();
                let _ = w.set_focus();
            }
            return Err(IpcError::usage(
                "a sign-in is already under way: finish it in its window",
            ));
        }
    };
    // Before the sign-in, not after it: a keyring that cannot keep it is said now.
    desktop.check_token_store().await?;
    let pending = desktop
        .access
        .begin_sign_in(&request)
        .await
        .map_err(|e| IpcError::of(&e))?;
    let url = pending.authorize_url().clone();
    let code = match method {
        SignInMethod::Browser => {
            open_in_browser(url.as_str())?;
            // Nothing comes on this channel: dropping its sender (a new sign-in) cancels.
            let (cancel, cancelled) = tokio::sync::mpsc::unbounded_channel();
            desktop.set_browser_sign_in(cancel);
            let code = pending.wait_for_callback(Some(cancelled), TIMEOUT).await;
            desktop.take_browser_sign_in();
            code
        }
        SignInMethod::Window => {
            let redirect = tauri::Url::parse(pending.redirect_uri())
                .map_err(|e| IpcError::other(format!("bad redirect URI: {e}")))?;
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
            let navigations = Navigations::new(url.clone(), redirect);
            let blank =
                tauri::Url::parse("about:blank").map_err(|e| IpcError::other(e.to_string()))?;
            // Built from this task: Tauri creates the window on the main thread. It starts
            // blank so that what earlier sign-ins left (the platform's cookies) is cleared
            // first: no earlier session approves this one as someone else.
            let builder = WebviewWindowBuilder::new(app, WINDOW, WebviewUrl::External(blank))
                .title(title)
                .inner_size(480.0, 640.0)
                .center();
            #[cfg(not(target_os = "linux"))]
            let builder = {
                let act = act_on(tx);
                builder.on_navigation(move |to| {
                    let made = crate::navigation::by_address(&navigations, to);
                    let load = made == Decision::Load;
                    act(made);
                    load
                })
            };
            let window = builder
                .build()
                .map_err(|e| IpcError::other(format!("cannot open the sign-in window: {e}")))?;
            #[cfg(target_os = "linux")]
            {
                // Before the sign-in page, which the window must not load undecided.
                let (ready, decided) = tokio::sync::oneshot::channel();
                let act = act_on(tx);
                window
                    .with_webview(move |view| {
                        crate::navigation::take_over(&view.inner(), navigations, act);
                        let _ = ready.send(());
                    })
                    .map_err(|e| {
                        IpcError::other(format!("cannot set up the sign-in window: {e}"))
                    })?;
                decided.await.map_err(|_| {
                    IpcError::other("cannot set up the sign-in window: it closed at once")
                })?;
            }
            if let Err(e) = window.clear_all_browsing_data() {
                tracing::warn!(error = %e, "cannot clear the sign-in window's data");
            }
            window
                .navigate(url)
                .map_err(|e| IpcError::other(format!("cannot open the sign-in page: {e}")))?;
            let code = pending.wait_for_callback(Some(rx), TIMEOUT).await;
            if let Some(w) = app.get_webview_window(WINDOW) {
                let _ = w.destroy();
            }
            code
        }
    };
    let code = code.map_err(|e| match e {
        tether_core::auth::AuthError::Cancelled => IpcError {
            code: crate::view::CANCELLED.into(),
            message: e.to_string(),
        },
        e => IpcError::of(&e),
    })?;
    desktop
        .access
        .finish_sign_in(code)
        .await
        .map_err(|e| desktop.sign_in_failed(&e))?;
    desktop.session_changed().await;
    desktop.wire_ssh_config().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_browser_is_browser_else_the_system_opener() {
        let u = "http://127.0.0.1:1/x?a=b";
        assert_eq!(
            browser_command(Some("firefox"), u),
            ("firefox".to_string(), vec![u.to_string()])
        );
        assert_eq!(
            browser_command(Some(":chromium --incognito %s:firefox"), u),
            (
                "chromium".to_string(),
                vec!["--incognito".to_string(), u.to_string()]
            )
        );
        let (opener, args) = browser_command(Some(""), u);
        assert!(!opener.is_empty() && args == [u.to_string()]);
        assert_eq!(browser_command(None, u).0, opener);
    }
}
