//! IPC commands of the main window: small adapters over [`Desktop`]. Every input is parsed
//! into core's types before use ([`crate::desktop::app_key`], [`DesktopSettings::check`]), and
//! every error crosses as `{code, message}`. Only the main window may call them (see
//! `capabilities/`); the sign-in window, which shows a remote page, may call nothing.
//!
//! Every command is `async`: Tauri runs a plain `fn` command on the main thread, where a file
//! write or a lock would freeze the tray and the windows; the file work itself runs on Tokio's
//! blocking threads (see [`Desktop`]'s methods).

use std::future::Future;
use std::sync::Arc;

use tauri::{AppHandle, State};
use tether_core::api::{StepUp, StepUpKind};
use tether_core::auth::LoginRequest;
use tether_core::guard::Entry;
use tether_core::settings::DesktopSettings;
use tether_core::tunnel::AppKey;

use crate::clipboard::Secrecy;
use crate::desktop::{app_key, Desktop};
use crate::view::*;

type Shared<'a> = State<'a, Arc<Desktop>>;

/// The longest text the window may put on the clipboard.
const MAX_COPY: usize = 64 * 1024;

/// Runs an intent; when the platform wants a stronger sign-in for it (MFA, SSO, a recent
/// login) and one can help, signs in that way (SSO in the browser, which identity providers
/// demand) and runs it once more.
pub async fn with_step_up<T, F, Fut>(
    app: &AppHandle,
    desktop: &Arc<Desktop>,
    intent: F,
) -> Result<T, IpcError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, (IpcError, Option<StepUp>)>>,
{
    match intent().await {
        Ok(v) => Ok(v),
        Err((_, Some(step_up))) if desktop.access.can_sign_in() => {
            let method = match step_up.kind {
                StepUpKind::Sso(_) => SignInMethod::Browser,
                _ => SignInMethod::Window,
            };
            crate::signin::sign_in(app, desktop, step_up.login_request(), method).await?;
            intent().await.map_err(|(e, _)| e)
        }
        Err((e, _)) => Err(e),
    }
}

/// The app a command acts on, once the production question for `entry` has had its yes (on
/// production the first call answers with the question, a [`CONFIRM`] error, and `confirmed`
/// is the person's yes).
async fn asked(
    desktop: &Desktop,
    app: &AppRef,
    entry: Entry,
    confirmed: Option<bool>,
) -> Result<AppKey, IpcError> {
    let key = app_key(app)?;
    desktop.check_production(&key, entry, confirmed).await?;
    Ok(key)
}

#[tauri::command]
pub async fn account(desktop: Shared<'_>) -> Result<Account, IpcError> {
    desktop.account().await
}

#[tauri::command]
pub async fn sign_in(
    app: AppHandle,
    desktop: Shared<'_>,
    request: SignInRequest,
) -> Result<Account, IpcError> {
    let login = LoginRequest {
        amr: if request.mfa {
            vec!["mfa".into()]
        } else {
            Vec::new()
        },
        max_age: None,
    };
    crate::signin::sign_in(&app, &desktop, login, request.method).await?;
    desktop.account().await
}

#[tauri::command]
pub async fn sign_out(desktop: Shared<'_>) -> Result<Account, IpcError> {
    desktop.sign_out().await?;
    desktop.account().await
}

#[tauri::command]
pub async fn catalog(desktop: Shared<'_>, refresh: bool) -> Result<Vec<ProjectView>, IpcError> {
    desktop.catalog(refresh).await
}

#[tauri::command]
pub async fn connection_details(
    handle: AppHandle,
    desktop: Shared<'_>,
    app: AppRef,
) -> Result<ConnectionDetails, IpcError> {
    let key = app_key(&app)?;
    with_step_up(&handle, &desktop, || desktop.connection_details(&key)).await
}

/// Opens a terminal on the app; on production the first call answers with the question (a
/// [`CONFIRM`] error) and `confirmed` is the person's yes.
#[tauri::command]
pub async fn open_terminal(
    desktop: Shared<'_>,
    app: AppRef,
    confirmed: Option<bool>,
) -> Result<(), IpcError> {
    let key = asked(&desktop, &app, Entry::Terminal, confirmed).await?;
    desktop.open_terminal(&key).await
}

#[tauri::command]
pub async fn open_tunnels(
    handle: AppHandle,
    desktop: Shared<'_>,
    app: AppRef,
    confirmed: Option<bool>,
) -> Result<OpenedView, IpcError> {
    let key = asked(&desktop, &app, Entry::Tunnel, confirmed).await?;
    with_step_up(&handle, &desktop, || desktop.open_tunnels(&key)).await
}

/// A terminal with the app's database client, through its tunnel (read-only on production).
#[tauri::command]
pub async fn sql_shell(
    handle: AppHandle,
    desktop: Shared<'_>,
    app: AppRef,
    relationship: Option<String>,
    confirmed: Option<bool>,
) -> Result<(), IpcError> {
    let key = asked(&desktop, &app, Entry::SqlShell, confirmed).await?;
    desktop
        .sql_shell(&handle, &key, relationship.as_deref())
        .await
}

/// A terminal following the app's log (`tail -n 100 /var/log/app.log -f`).
#[tauri::command]
pub async fn show_logs(desktop: Shared<'_>, app: AppRef) -> Result<(), IpcError> {
    desktop.logs(&app_key(&app)?).await
}

/// Opens the environment's primary URL in the browser; answers the URL.
#[tauri::command]
pub async fn open_site(desktop: Shared<'_>, app: AppRef) -> Result<String, IpcError> {
    desktop.open_site(&app_key(&app)?).await
}

/// The database clients found on this machine.
#[tauri::command]
pub async fn database_clients() -> Result<Vec<ClientView>, IpcError> {
    let found = tauri::async_runtime::spawn_blocking(Desktop::database_clients)
        .await
        .map_err(|e| IpcError::other(e.to_string()))?;
    Ok(found
        .into_iter()
        .map(|client| ClientView {
            client,
            title: client.title().to_string(),
        })
        .collect())
}

/// Opens a service of the app in a database client, through its tunnel.
#[tauri::command]
pub async fn open_in(
    handle: AppHandle,
    desktop: Shared<'_>,
    app: AppRef,
    client: tether_core::clients::Client,
    relationship: Option<String>,
    confirmed: Option<bool>,
) -> Result<(), IpcError> {
    let key = asked(&desktop, &app, Entry::SqlShell, confirmed).await?;
    desktop
        .open_in(&handle, &key, client, relationship.as_deref())
        .await
}

/// Copies a service's connection in one of the forms other tools take (opening the app's
/// tunnels first, which on production asks when none is open).
#[tauri::command]
pub async fn copy_as(
    handle: AppHandle,
    desktop: Shared<'_>,
    app: AppRef,
    form: CopyForm,
    relationship: Option<String>,
    confirmed: Option<bool>,
) -> Result<(), IpcError> {
    let key = app_key(&app)?;
    if let Some(entry) = desktop.copy_entry(&key).await {
        desktop.check_production(&key, entry, confirmed).await?;
    }
    desktop
        .copy_as(&handle, &key, form, relationship.as_deref())
        .await
}

/// Dumps a database of the app into a file the person chooses in a save dialog; `None` when
/// they cancelled it.
#[tauri::command]
pub async fn dump_database(
    handle: AppHandle,
    desktop: Shared<'_>,
    app: AppRef,
    relationship: Option<String>,
    confirmed: Option<bool>,
) -> Result<Option<DumpView>, IpcError> {
    let key = asked(&desktop, &app, Entry::Dump, confirmed).await?;
    crate::dump::run(&handle, desktop.inner(), &key, relationship.as_deref()).await
}

#[tauri::command]
pub async fn tunnels(desktop: Shared<'_>) -> Result<Vec<TunnelView>, IpcError> {
    desktop.tunnels().await
}

#[tauri::command]
pub async fn close_tunnel(desktop: Shared<'_>, id: u32) -> Result<(), IpcError> {
    desktop.close_tunnels(|t| t.id == u64::from(id)).await
}

#[tauri::command]
pub async fn reopen_tunnels(desktop: Shared<'_>) -> Result<OpenedView, IpcError> {
    desktop.reopen_tunnels().await
}

#[tauri::command]
pub async fn close_all_tunnels(desktop: Shared<'_>) -> Result<(), IpcError> {
    desktop.close_all_tunnels().await
}

#[tauri::command]
pub async fn tunnel_export(desktop: Shared<'_>, app: Option<AppRef>) -> Result<String, IpcError> {
    let key = app.as_ref().map(app_key).transpose()?;
    desktop.tunnel_export(key.as_ref()).await
}

#[tauri::command]
pub async fn copy_text(
    app: AppHandle,
    text: String,
    label: String,
    secret: Option<bool>,
) -> Result<(), IpcError> {
    if text.is_empty() || text.len() > MAX_COPY {
        return Err(IpcError::usage(format!(
            "nothing to copy, or more than {} KiB",
            MAX_COPY / 1024
        )));
    }
    let label: String = label.chars().filter(|c| !c.is_control()).take(80).collect();
    let secrecy = if secret.unwrap_or(false) {
        Secrecy::Secret
    } else {
        Secrecy::Plain
    };
    crate::notify::copy(&app, text, &label, secrecy).await
}

#[tauri::command]
pub async fn set_pinned(desktop: Shared<'_>, app: AppRef, pinned: bool) -> Result<(), IpcError> {
    desktop.set_pinned(&app_key(&app)?, pinned).await
}

async fn settings_view(desktop: &Desktop, settings: DesktopSettings) -> SettingsView {
    let mut profiles: Vec<ProfileChoice> = tether_core::Profile::builtins()
        .into_iter()
        .map(|p| ProfileChoice {
            name: p.name,
            title: p.title,
        })
        .collect();
    // A profile file in use is a choice too, by its path.
    if !profiles.iter().any(|p| p.name == desktop.profile_selector) {
        profiles.push(ProfileChoice {
            name: desktop.profile_selector.clone(),
            title: desktop.access.profile().title.clone(),
        });
    }
    SettingsView {
        settings,
        profiles,
        active_profile: desktop.profile_selector.clone(),
        detected_terminal: desktop.detected_terminal().await,
        token_store: desktop.token_store(),
    }
}

#[tauri::command]
pub async fn settings(desktop: Shared<'_>) -> Result<SettingsView, IpcError> {
    Ok(settings_view(&desktop, desktop.settings()).await)
}

/// Saves the settings; `confirmed` is the person's yes to a question a first try asked (a
/// [`crate::view::CONFIRM`] error: tunnels on every address).
#[tauri::command]
pub async fn save_settings(
    app: AppHandle,
    desktop: Shared<'_>,
    settings: DesktopSettings,
    confirmed: Option<bool>,
) -> Result<SettingsView, IpcError> {
    let saved = desktop
        .save_settings(settings, confirmed.unwrap_or(false), move |s| {
            crate::autostart::apply(&app, s.start_at_login)
        })
        .await?;
    Ok(settings_view(&desktop, saved).await)
}

/// Keeps the sign-in in a private file (`file`) or the keyring, and stores a finished sign-in
/// the keyring refused.
#[tauri::command]
pub async fn use_token_store(desktop: Shared<'_>, file: bool) -> Result<Account, IpcError> {
    desktop.use_token_store(file).await?;
    desktop.account().await
}

#[tauri::command]
pub async fn welcome(desktop: Shared<'_>) -> Result<WelcomeView, IpcError> {
    Ok(crate::welcome::view(&desktop).await)
}

#[tauri::command]
pub async fn welcome_step(
    app: AppHandle,
    desktop: Shared<'_>,
    answer: WelcomeAnswer,
) -> Result<WelcomeView, IpcError> {
    crate::welcome::answer(&app, &desktop, answer).await
}
