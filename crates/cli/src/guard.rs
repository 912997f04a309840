//! The question before entering a production environment ([`tether_core::guard`]), at a
//! terminal, and `config:production-guard`, which turns it off or on for a project.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Result};
use serde_json::json;
use tether_core::api::{Environment, ProjectId};
use tether_core::guard::{self, Entry};
use tether_core::settings::DesktopSettings;
use tether_core::tunnel::AppKey;

use crate::context::Ctx;
use crate::output::{print, progress};
use crate::tunnel::{AppFlags, UsageError};

/// Asks before entering `app`'s environment this way when it is production and its project's
/// question is on. `-y` (`yes`) answers it. Without a terminal the answer is yes with a note on
/// stderr, as the official client's `tunnel:open` goes ahead when no one can answer, so that
/// scripts keep working. The default (an empty answer) is yes for tunnels, as the official
/// client's, and no for the ways in only Tether asks about.
pub async fn confirm(ctx: &Ctx, app: &AppKey, entry: Entry, yes: bool) -> Result<()> {
    if yes {
        return Ok(());
    }
    let env = ctx
        .access
        .catalog()
        .environment(&app.project, &app.environment)
        .await?;
    confirm_in(ctx, &app.project, &env, entry, yes)
}

/// [`confirm`] for an environment already fetched.
pub fn confirm_in(
    ctx: &Ctx,
    project: &ProjectId,
    env: &Environment,
    entry: Entry,
    yes: bool,
) -> Result<()> {
    if yes {
        return Ok(());
    }
    let settings = DesktopSettings::load(ctx.access.paths());
    let Some(question) = guard::question(
        &settings,
        project.as_str(),
        env.id.as_str(),
        &env.kind,
        entry,
    ) else {
        return Ok(());
    };
    if !std::io::stdin().is_terminal() {
        progress(
            ctx.format,
            &format!(
                "Note: {} is the production environment of project {}; going ahead without asking, \
                 as no one is at a terminal (-y skips this note).",
                env.id, project
            ),
        );
        return Ok(());
    }
    let default = entry == Entry::Tunnel;
    let mut err = std::io::stderr();
    write!(
        err,
        "{} {} ",
        tether_core::escape::terminal(&question),
        if default { "[Y/n]" } else { "[y/N]" }
    )?;
    err.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let answer = match line.trim().to_ascii_lowercase().as_str() {
        "" => default,
        a => matches!(a, "y" | "yes"),
    };
    if !answer {
        bail!(UsageError(format!(
            "nothing done: you chose not to enter production (-y answers yes; `tether \
             config:production-guard -p {project} --off` stops asking for this project)"
        )));
    }
    Ok(())
}

/// `config:production-guard`: whether Tether asks before entering a project's production
/// environment, and `--on`/`--off` to change it (the app's Settings show the same switch).
#[derive(clap::Args, Debug)]
pub struct GuardArgs {
    #[command(flatten)]
    pub app: AppFlags,
    /// Ask again before entering this project's production environment.
    #[arg(long, conflicts_with = "off")]
    pub on: bool,
    /// Stop asking before entering this project's production environment.
    #[arg(long)]
    pub off: bool,
}

pub async fn production_guard(ctx: &Ctx, args: GuardArgs) -> Result<()> {
    let project = args.app.project(ctx).await?;
    let paths = ctx.access.paths();
    let mut settings = DesktopSettings::load(paths);
    if args.on || args.off {
        settings.set_guards_production(project.as_str(), args.on);
        settings.save(paths)?;
    }
    let guarded = settings.guards_production(project.as_str());
    print(
        ctx.format,
        &json!({ "project": project.as_str(), "asks_before_production": guarded }),
        || {
            if guarded {
                format!(
                    "Tether asks before a terminal, a SQL shell, a dump or a tunnel on project \
                     {project}'s production environment (--off stops it)."
                )
            } else {
                format!(
                    "Tether does not ask before entering project {project}'s production \
                     environment (--on asks again)."
                )
            }
        },
    );
    Ok(())
}
