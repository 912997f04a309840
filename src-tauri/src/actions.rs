//! What the tray's items do. Each runs off the menu's thread (only showing a window or quitting
//! happens there); what fails is told in a notification (the tray has no other place to say
//! it).

use std::sync::Arc;

use tauri::AppHandle;
use tether_core::auth::LoginRequest;
use tether_core::guard::Entry;
use tether_core::tunnel::AppKey;

use crate::clipboard::Secrecy;
use crate::desktop::{app_ref, Desktop};
use crate::tray::{AppAction, TrayAction, TunnelAction};
use crate::view::{IpcError, SignInMethod};
use crate::windows;

pub fn run(app: &AppHandle, desktop: Arc<Desktop>, action: TrayAction) {
    match action {
        TrayAction::OpenWindow => windows::show(app, None),
        TrayAction::Settings => windows::show(app, Some("settings")),
        TrayAction::Browse => windows::show(app, Some("environments")),
        TrayAction::Quit => app.exit(0),
        TrayAction::App(AppAction::Details, key) => {
            let r = app_ref(&key);
            windows::show(
                app,
                Some(&format!(
                    "details:{}/{}/{}",
                    r.project, r.environment, r.app
                )),
            );
        }
        other => {
            let app = app.clone();
            tauri::async_runtime::spawn(async move {
                let mfa = other == TrayAction::SignInMfa;
                match run_async(&app, &desktop, other).await {
                    // The user closed the sign-in window: nothing to tell.
                    Err(e) if e.code == crate::view::CANCELLED => {}
                    // The keyring cannot keep a sign-in: the window asks where to keep it
                    // (a notification cannot), and starts the sign-in again from there.
                    Err(e) if e.code == crate::view::TOKEN_STORE => {
                        windows::show(&app, Some(if mfa { "sign-in-mfa" } else { "sign-in" }));
                    }
                    // A finished sign-in is held: the window offers to keep it.
                    Err(e) if e.code == crate::view::SIGN_IN_HELD => {
                        windows::show(&app, Some("sign-in-held"));
                    }
                    Err(e) => crate::notify::show(("Tether could not do that".into(), e.message)),
                    Ok(()) => {}
                }
                desktop.refresh_wanted.notify_one();
            });
        }
    }
}

/// Asks before entering production from the tray, in a dialog of its own (the tray has no
/// window to ask in); says whether to go on. Nothing is asked elsewhere, or when the project's
/// guardrails are off.
async fn confirmed(
    app: &AppHandle,
    desktop: &Arc<Desktop>,
    key: &AppKey,
    entry: Entry,
) -> Result<bool, IpcError> {
    let Some(question) = desktop.production_question(key, entry).await? else {
        return Ok(true);
    };
    let yes = ask(app, question).await?;
    tracing::info!(yes, "asked before entering production from the tray");
    Ok(yes)
}

/// The question in a GTK dialog of its own, on the main thread: Cancel is its default and has
/// the focus, so Enter or Escape answer no; "Yes, go on" (Alt+Y) answers yes.
#[cfg(target_os = "linux")]
async fn ask(app: &AppHandle, question: String) -> Result<bool, IpcError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    app.run_on_main_thread(move || {
        use gtk::prelude::*;
        let dialog = gtk::MessageDialog::new(
            None::<&gtk::Window>,
            gtk::DialogFlags::MODAL,
            gtk::MessageType::Warning,
            gtk::ButtonsType::None,
            "Production",
        );
        dialog.set_secondary_text(Some(&question));
        dialog.set_title("Tether: production");
        dialog.set_keep_above(true);
        dialog.add_button("_Cancel", gtk::ResponseType::Cancel);
        dialog.add_button("_Yes, go on", gtk::ResponseType::Accept);
        dialog.set_default_response(gtk::ResponseType::Cancel);
        let answer = std::cell::RefCell::new(Some(tx));
        dialog.connect_response(move |d, response| {
            if let Some(tx) = answer.borrow_mut().take() {
                let _ = tx.send(response == gtk::ResponseType::Accept);
            }
            d.close();
        });
        dialog.show_all();
        if let Some(cancel) = dialog.widget_for_response(gtk::ResponseType::Cancel) {
            cancel.grab_focus();
        }
        dialog.present();
    })
    .map_err(|e| IpcError::other(format!("cannot ask: {e}")))?;
    Ok(rx.await.unwrap_or(false))
}

/// Elsewhere, the dialog plugin's (OK focused, as each system draws it).
#[cfg(not(target_os = "linux"))]
async fn ask(app: &AppHandle, question: String) -> Result<bool, IpcError> {
    let dialog = app
        .dialog()
        .message(question)
        .title("Tether: production")
        .kind(MessageDialogKind::Warning)
        .buttons(MessageDialogButtons::OkCancelCustom(
            "Yes, go on".into(),
            "Cancel".into(),
        ));
    tauri::async_runtime::spawn_blocking(move || dialog.blocking_show())
        .await
        .map_err(|e| IpcError::other(e.to_string()))
}

async fn run_async(
    app: &AppHandle,
    desktop: &Arc<Desktop>,
    action: TrayAction,
) -> Result<(), IpcError> {
    match action {
        TrayAction::SignIn | TrayAction::SignInMfa => {
            let amr = if action == TrayAction::SignInMfa {
                vec!["mfa".to_string()]
            } else {
                Vec::new()
            };
            let request = LoginRequest { amr, max_age: None };
            crate::signin::sign_in(app, desktop, request, SignInMethod::Window).await
        }
        TrayAction::SignOut => desktop.sign_out().await,
        TrayAction::CloseAllTunnels => desktop.close_all_tunnels().await,
        TrayAction::ReopenTunnels => desktop.reopen_tunnels().await.map(|_| ()),
        TrayAction::App(AppAction::Terminal, key) => {
            if confirmed(app, desktop, &key, Entry::Terminal).await? {
                desktop.open_terminal(&key).await?;
            }
            Ok(())
        }
        TrayAction::App(AppAction::SqlShell, key) => {
            if confirmed(app, desktop, &key, Entry::SqlShell).await? {
                desktop.sql_shell(app, &key, None).await?;
            }
            Ok(())
        }
        TrayAction::App(AppAction::Logs, key) => desktop.logs(&key).await,
        TrayAction::App(AppAction::OpenSite, key) => desktop.open_site(&key).await.map(|_| ()),
        TrayAction::App(AppAction::OpenIn(client), key) => {
            if confirmed(app, desktop, &key, Entry::SqlShell).await? {
                desktop.open_in(app, &key, client, None).await?;
            }
            Ok(())
        }
        TrayAction::App(AppAction::CopyAs(form), key) => {
            let ask = desktop.copy_entry(&key).await;
            if ask.is_none() || confirmed(app, desktop, &key, Entry::Tunnel).await? {
                desktop.copy_as(app, &key, form, None).await?;
            }
            Ok(())
        }
        TrayAction::App(AppAction::Dump, key) => {
            if confirmed(app, desktop, &key, Entry::Dump).await? {
                crate::dump::run(app, desktop, &key, None).await?;
            }
            Ok(())
        }
        TrayAction::App(AppAction::CopySsh, key) => {
            let url = desktop.address(&key).await?;
            desktop.used(&key).await;
            crate::notify::copy(app, format!("ssh {url}"), "SSH command", Secrecy::Plain).await
        }
        TrayAction::App(AppAction::CopyAddress, key) => {
            let url = desktop.address(&key).await?;
            desktop.used(&key).await;
            crate::notify::copy(app, url.to_string(), "SSH address", Secrecy::Plain).await
        }
        TrayAction::App(AppAction::OpenTunnels, key) => {
            if !confirmed(app, desktop, &key, Entry::Tunnel).await? {
                return Ok(());
            }
            let opened =
                crate::commands::with_step_up(app, desktop, || desktop.open_tunnels(&key)).await?;
            if !opened.failed.is_empty() {
                let failed: Vec<String> = opened
                    .failed
                    .iter()
                    .map(|f| format!("{}: {}", f.relationship, f.message))
                    .collect();
                crate::notify::show((
                    format!("Some tunnels of {} did not open", key.app),
                    failed.join("\n"),
                ));
            }
            Ok(())
        }
        TrayAction::Tunnel(action, id) => {
            let shown = desktop.shown();
            let Some(t) = shown.tunnels.iter().find(|t| t.id == id) else {
                return Err(IpcError::usage("that tunnel is closed"));
            };
            match action {
                TunnelAction::CopyAddress => {
                    crate::notify::copy(app, t.address.clone(), "tunnel address", Secrecy::Plain)
                        .await
                }
                // The URL carries the relationship's credentials.
                TunnelAction::CopyUrl => {
                    crate::notify::copy(app, t.url.clone(), "tunnel URL", Secrecy::Secret).await
                }
                TunnelAction::CopyExport => {
                    let key = crate::desktop::app_key(&t.app)?;
                    let line = desktop.tunnel_export(Some(&key)).await?;
                    crate::notify::copy(app, line, "PLATFORM_RELATIONSHIPS export", Secrecy::Secret)
                        .await
                }
                TunnelAction::Close => desktop.close_tunnels(|x| x.id == u64::from(id)).await,
            }
        }
        // Handled on the menu's thread.
        TrayAction::OpenWindow
        | TrayAction::Settings
        | TrayAction::Browse
        | TrayAction::Quit
        | TrayAction::App(AppAction::Details, _) => Ok(()),
    }
}
