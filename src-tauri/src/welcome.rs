//! The first-run welcome: on the first start (no settings saved), the window walks a person
//! through choosing the platform, signing in, Tether's block in `~/.ssh/config` (shown before
//! it is added: the official client asks before editing that file, and so does Tether) and
//! start at login. Until its last step the settings say it is under way, so a start in between
//! goes on with it; then later starts go to the tray.
//!
//! A platform given at start (`--profile`, `TETHER_PROFILE`: a profile file, such as the
//! demo's) is not asked for. Choosing another platform than the app serves restarts the app,
//! which serves one profile per process (its agent, its socket).

use std::sync::Arc;

use tauri::AppHandle;
use tether_core::Profile;

use crate::desktop::Desktop;
use crate::view::{IpcError, ProfileChoice, SshConfigOffer, WelcomeAnswer, WelcomeView};

/// What the welcome shows now.
pub async fn view(desktop: &Arc<Desktop>) -> WelcomeView {
    let settings = desktop.settings();
    let given_by = desktop.profile_origin.given_by();
    let access = desktop.access.clone();
    // Reading ~/.ssh/config is file work.
    let installed = tauri::async_runtime::spawn_blocking(move || access.ssh_config_installed())
        .await
        .unwrap_or(false);
    let access = &desktop.access;
    WelcomeView {
        under_way: settings.welcome_under_way,
        platforms: Profile::builtins()
            .into_iter()
            .map(|p| ProfileChoice {
                name: p.name,
                title: p.title,
            })
            .collect(),
        active_profile: desktop.profile_selector.clone(),
        profile_title: desktop.profile_title().to_string(),
        platform_chosen: given_by.is_some() || !settings.profile.trim().is_empty(),
        profile_given_by: given_by.map(str::to_string),
        ssh_config: SshConfigOffer {
            path: access.paths().ssh_config().display().to_string(),
            lines: access.ssh_config_block(),
            installed,
        },
    }
}

/// Takes a step's answer and says what the welcome shows next.
pub async fn answer(
    app: &AppHandle,
    desktop: &Arc<Desktop>,
    answer: WelcomeAnswer,
) -> Result<WelcomeView, IpcError> {
    match answer {
        WelcomeAnswer::Platform { profile } => {
            if let Some(by) = desktop.profile_origin.given_by() {
                return Err(IpcError::usage(format!(
                    "the platform was given at start ({by}): Tether serves {}",
                    desktop.profile_title()
                )));
            }
            if !Profile::builtins().iter().any(|p| p.name == profile) {
                return Err(IpcError::usage(format!(
                    "{profile:?} is not a platform Tether knows: choose Platform.sh or Upsun"
                )));
            }
            let other = profile != desktop.profile_selector;
            desktop.set_profile(profile).await?;
            if other {
                // After this answer reaches the window: the new process goes on with step 2.
                app.request_restart();
            }
        }
        WelcomeAnswer::SshConfig { add } => {
            let mut settings = desktop.settings();
            settings.manage_ssh_config = add;
            desktop.save_settings(settings, false, |_| Ok(())).await?;
        }
        WelcomeAnswer::Finish { start_at_login } => {
            let mut settings = desktop.settings();
            settings.start_at_login = start_at_login;
            let app = app.clone();
            desktop
                .save_settings(settings, false, move |s| {
                    crate::autostart::apply(&app, s.start_at_login)
                })
                .await?;
            desktop.welcome_done().await?;
        }
    }
    Ok(view(desktop).await)
}
