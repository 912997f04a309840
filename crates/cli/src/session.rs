//! Signing in and out: `login`, `auth:api-token-login`, `auth:info`, `logout`, and the sign-in
//! a step-up asks for in the middle of another command.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use tether_core::access::SignOutScope;
use tether_core::api::StepUp;
use tether_core::auth::LoginRequest;
use tether_core::openssh::Edit;
use tether_core::Sensitive;

use crate::context::{env_nonempty, Ctx};
use crate::output::{self, print, progress};
use crate::Format;

fn has_display() -> bool {
    if cfg!(target_os = "linux") {
        env_nonempty("DISPLAY").is_some() || env_nonempty("WAYLAND_DISPLAY").is_some()
    } else {
        true
    }
}

/// Opens a URL in the user's browser; false when no opener could be started.
fn open_browser(url: &str) -> bool {
    let mut cmd = if cfg!(target_os = "macos") {
        std::process::Command::new("open")
    } else if cfg!(target_os = "windows") {
        let mut c = std::process::Command::new("rundll32");
        c.arg("url.dll,FileProtocolHandler");
        c
    } else {
        std::process::Command::new("xdg-open")
    };
    cmd.arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}

/// Shows `prompt` on the terminal and reads the line typed, trimmed.
pub fn ask(prompt: &str) -> Result<String> {
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim().to_string())
}

/// Asks a yes/no question at the terminal; `default` when the answer is empty.
pub fn confirm(question: &str, default: bool) -> Result<bool> {
    let answer = ask(&format!(
        "{question} [{}] ",
        if default { "Y/n" } else { "y/N" }
    ))?;
    Ok(match answer.to_lowercase().as_str() {
        "" => default,
        a => matches!(a, "y" | "yes"),
    })
}

pub struct LoginOptions {
    pub browser: bool,
    pub no_browser: bool,
    pub timeout: Duration,
}

pub async fn login(ctx: &Ctx, request: LoginRequest, options: &LoginOptions) -> Result<()> {
    let pending = ctx.access.begin_sign_in(&request).await?;
    let url = pending.authorize_url().to_string();
    let title = &ctx.profile().title;
    let opened = (options.browser || (!options.no_browser && has_display())) && open_browser(&url);
    if opened {
        progress(
            ctx.format,
            &format!(
                "Opened the sign-in page in your browser. If it did not open, visit:\n  {url}"
            ),
        );
    } else {
        // The URL is the one thing a person must see, whatever the format.
        eprintln!("Open this URL in a browser to sign in to {title}:\n  {url}");
    }
    progress(
        ctx.format,
        &format!(
            "Waiting for the browser (up to {} s)…",
            options.timeout.as_secs()
        ),
    );
    let code = pending.wait_for_code(options.timeout).await?;
    let (user, ready) = ctx.access.finish_sign_in(code).await?;
    progress(
        ctx.format,
        &format!("Signed in as {} on {title}.", user.username),
    );
    progress(ctx.format, &crate::certs::ready_text(&ready));
    offer_ssh_config(ctx)?;
    print(
        ctx.format,
        &json!({ "user": user, "certificate": ready.certificate, "ssh_config": ctx.access.ssh_config_installed() }),
        String::new,
    );
    Ok(())
}

/// Asks (on a terminal) to add the block to ~/.ssh/config, or says how to.
fn offer_ssh_config(ctx: &Ctx) -> Result<()> {
    if ctx.access.ssh_config_installed() {
        return Ok(());
    }
    let config = ctx.access.paths().ssh_config();
    if std::io::stdin().is_terminal()
        && ctx.format == Format::Text
        && confirm(
            &format!(
                "Add Tether's block to {} so that plain ssh, scp, rsync and git use your certificate?",
                config.display()
            ),
            true,
        )?
    {
        return write_block(ctx);
    }
    progress(
        ctx.format,
        &format!(
            "To use plain ssh with this session, run: tether config:ssh --write (edits {})",
            config.display()
        ),
    );
    Ok(())
}

pub fn write_block(ctx: &Ctx) -> Result<()> {
    match ctx.access.install_ssh_config()? {
        Edit::Unchanged => progress(
            ctx.format,
            "~/.ssh/config already includes Tether's configuration.",
        ),
        Edit::Written { path, backup } => progress(
            ctx.format,
            &format!(
                "Added Tether's block to {}{}.",
                path.display(),
                backup
                    .map(|b| format!(" (backup: {})", b.display()))
                    .unwrap_or_default()
            ),
        ),
    }
    Ok(())
}

/// On a terminal, offers the sign-in a step-up asks for; true when the user signed in again.
pub async fn offer_step_up(ctx: &Ctx, step_up: &StepUp) -> Result<bool> {
    if !std::io::stdin().is_terminal() || !ctx.access.can_sign_in() {
        return Ok(false);
    }
    if !confirm(
        &format!("{} Sign in again now?", step_up.requirement()),
        true,
    )? {
        return Ok(false);
    }
    let options = LoginOptions {
        browser: false,
        no_browser: false,
        timeout: Duration::from_secs(300),
    };
    login(ctx, step_up.login_request(), &options).await?;
    Ok(true)
}

pub async fn api_token_login(ctx: &Ctx) -> Result<()> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("API token: ");
        let _ = std::io::stderr().flush();
    }
    let mut token = String::new();
    stdin
        .lock()
        .read_line(&mut token)
        .context("cannot read the API token from standard input")?;
    let token = token.trim().to_string();
    if token.is_empty() {
        bail!("no API token on standard input: pipe it in, e.g. `tether auth:api-token-login < token-file`");
    }
    let (user, ready) = ctx
        .access
        .sign_in_with_api_token(Sensitive::new(token))
        .await?;
    progress(
        ctx.format,
        &format!(
            "Signed in as {} on {} with an API token (stored in {}).",
            user.username,
            ctx.profile().title,
            ctx.access.session().store.describe()
        ),
    );
    let certificate = match ready {
        Ok(ready) => {
            progress(ctx.format, &crate::certs::ready_text(&ready));
            Some(ready.certificate)
        }
        Err(e) => {
            eprintln!("tether: signed in, but no SSH certificate could be loaded: {e}");
            None
        }
    };
    print(
        ctx.format,
        &json!({ "user": user, "certificate": certificate }),
        String::new,
    );
    Ok(())
}

pub async fn auth_info(ctx: &Ctx, property: Option<&str>) -> Result<()> {
    let user = ctx.access.user().await?;
    let value = serde_json::to_value(&user)?;
    if let Some(p) = property {
        let v = value
            .get(p)
            .ok_or_else(|| anyhow!("no property {p:?}; try one of: {}", output::keys(&value)))?;
        output::property(ctx.format, v);
        return Ok(());
    }
    print(ctx.format, &value, || {
        format!(
            "Signed in to {} as {} ({} {}, {})\n  id:  {}\n  MFA: {}",
            ctx.profile().title,
            user.username,
            user.first_name,
            user.last_name,
            user.email,
            user.id,
            if user.mfa_enabled {
                "enabled"
            } else {
                "not enabled"
            }
        )
    });
    Ok(())
}

pub async fn logout(ctx: &Ctx, all: bool) -> Result<()> {
    let scope = if all {
        SignOutScope::All
    } else {
        SignOutScope::Profile
    };
    let report = ctx.access.sign_out(scope).await?;
    if let Some(e) = &report.revoke_error {
        progress(
            ctx.format,
            &format!("Could not revoke the session at the platform ({e}); it was deleted here."),
        );
    }
    progress(
        ctx.format,
        &format!(
            "Signed out of {}{}.",
            ctx.profile().title,
            if all { " and every other profile" } else { "" }
        ),
    );
    print(
        ctx.format,
        &json!({ "signed_out": true, "revoked": report.revoked, "profiles": report.profiles }),
        String::new,
    );
    Ok(())
}
