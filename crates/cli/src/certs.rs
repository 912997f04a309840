//! The session's certificate and OpenSSH wiring: `ssh-cert:load` (also the refresh hook that
//! plain `ssh` runs), `ssh-cert:info`, `config:ssh`, and `profile:info`.

use anyhow::{anyhow, Result};
use serde_json::json;
use tether_core::access::Ready;
use tether_core::cert::CertInfo;
use tether_core::escape::Shown;
use tether_core::openssh::Edit;
use tether_core::Profile;

use crate::context::Ctx;
use crate::output::{self, print, progress};
use crate::Format;

pub fn profile_info(format: Format, profile: &Profile) {
    print(format, profile, || {
        let mut t = format!(
            "{} ({})\n  API:         {}\n  Sign-in:     {}\n  SSH hosts:   {}\n  Token var:   {}",
            profile.title,
            profile.name,
            profile.api_url,
            profile.auth_url,
            profile.ssh_host_patterns.join(" "),
            profile.token_env_var
        );
        if let Some(ssh) = &profile.ssh {
            t.push_str(&format!("\n  Gateway:     {}:{}", ssh.hostname, ssh.port));
        }
        if !profile.gateway_host_keys.is_empty() {
            t.push_str(&format!(
                "\n  Host keys:   {} bundled gateway keys, and your ~/.ssh/known_hosts",
                profile.gateway_host_keys.len()
            ));
        }
        t
    });
}

/// "New certificate, valid until …, with MFA."
pub fn ready_text(ready: &Ready) -> String {
    let info = &ready.certificate;
    format!(
        "{} certificate, valid until {}{}.",
        if ready.renewed { "New" } else { "Current" },
        output::when(info.valid_before),
        if info.has_mfa { ", with MFA" } else { "" }
    )
}

pub fn info(ctx: &Ctx) -> Result<()> {
    let info = ctx.access.certificate().ok_or_else(|| {
        anyhow!(
            "no SSH certificate is loaded for {}: run `tether ssh-cert:load`",
            ctx.profile().title
        )
    })?;
    print(ctx.format, &info, || info_text(&info));
    Ok(())
}

fn info_text(info: &CertInfo) -> String {
    format!(
        "Certificate {}\n  key id:      {}\n  principals:  {}\n  valid until: {}\n  MFA:         {}\n  extensions:  {}\n  key:         {}",
        info.path.display(),
        Shown(&info.key_id),
        Shown(&info.principals.join(", ")),
        output::when(info.valid_before),
        if info.has_mfa { "yes" } else { "no" },
        Shown(&info.extensions.join(", ")),
        info.fingerprint
    )
}

/// Whether the refresh hook has nothing to do: the certificate is fresh (activity is recorded
/// either way). Any doubt, including a bad profile, leaves it to the full path.
pub fn fresh_for_hook(cli: &crate::Cli) -> bool {
    let (Ok((profile, _)), Ok(paths)) = (crate::context::profile(cli), crate::context::paths())
    else {
        return false;
    };
    let now = crate::output::now();
    tether_core::access::certificate_is_fresh(&paths, &profile, now)
}

/// `ssh-cert:load`: a usable certificate (a new one with `new`) and the SSH files. `silent`
/// for the refresh hook, whose output would land in the user's ssh session.
pub async fn load(ctx: &Ctx, new: bool, silent: bool) -> Result<()> {
    if !silent {
        progress(ctx.format, "Loading an SSH certificate…");
    }
    let ready = ctx.access.ready(new).await?;
    if !silent {
        progress(ctx.format, &ready_text(&ready));
        print(ctx.format, &ready.certificate, String::new);
    }
    Ok(())
}

pub fn config_ssh(ctx: &Ctx, write: bool, remove: bool) -> Result<()> {
    if write {
        return crate::session::write_block(ctx);
    }
    if remove {
        match ctx.access.remove_ssh_config()? {
            Edit::Unchanged => progress(ctx.format, "~/.ssh/config has no Tether block."),
            Edit::Written { path, .. } => progress(
                ctx.format,
                &format!("Removed Tether's block from {}.", path.display()),
            ),
        }
        return Ok(());
    }
    let config = ctx.access.paths().ssh_config();
    let session_config = &ctx.access.ssh_files().config;
    let installed = ctx.access.ssh_config_installed();
    let block = ctx.access.ssh_config_block();
    print(
        ctx.format,
        &json!({ "installed": installed, "config": config, "block": block, "session_config": session_config }),
        || {
            format!(
                "{} {} Tether's block:\n\n{block}\nSession configuration: {}{}",
                config.display(),
                if installed {
                    "includes"
                } else {
                    "does not include"
                },
                session_config.display(),
                if installed {
                    ""
                } else {
                    "\nAdd it with: tether config:ssh --write"
                }
            )
        },
    );
    Ok(())
}
