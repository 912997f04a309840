//! Dispatch: each command parses its flags into core types and calls the module that renders
//! it. Exit codes come from core's classification of the error, in one match.

use std::time::Duration;

use anyhow::Result;
use tether_core::auth::LoginRequest;
use tether_core::problem::{self, Problem};
use tether_core::ssh::Selection;

use crate::session::LoginOptions;
use crate::ssh::{RemoteExit, SshRequest};
use crate::{browse, certs, context, session, tunnel, Cli, Command};

/// The exit code for an error (see the command's help), and what core says it means.
pub fn exit_code(e: &anyhow::Error) -> (u8, Option<Problem>) {
    if let Some(RemoteExit(code)) = e.downcast_ref::<RemoteExit>() {
        return (*code, None);
    }
    let problem = e.chain().find_map(problem::classify);
    let code = match problem {
        Some(Problem::SignIn) => 3,
        Some(Problem::StepUp(_)) => 4,
        Some(Problem::Unreachable) => 5,
        Some(Problem::Usage | Problem::Other) | None => 1,
    };
    (code, problem)
}

pub async fn run(cli: Cli) -> Result<()> {
    if let Command::ProfileInfo = cli.command {
        let (profile, _) = context::profile(&cli)?;
        certs::profile_info(cli.format, &profile);
        return Ok(());
    }
    if let Command::Doctor(args) = &cli.command {
        return crate::doctor::run(&cli, args).await;
    }
    if let Command::Agent = cli.command {
        return crate::agent::run(context::build_for(&cli, false)?).await;
    }
    let ctx = context::build(&cli)?;
    if let Command::TunnelSingle {
        app,
        relationship,
        port,
        bind,
    } = cli.command
    {
        let args = tunnel::SingleArgs {
            app,
            relationship,
            port,
            bind,
        };
        return tunnel::single(ctx, args).await;
    }
    match cli.command {
        Command::Agent => Ok(()),
        Command::AgentStatus { follow } => crate::agent::status(&ctx, follow).await,
        Command::Events => crate::agent::events(&ctx).await,
        Command::AgentStop => crate::agent::stop(&ctx).await,
        Command::TunnelOpen {
            ref app,
            ref relationships,
            port,
            ref bind,
        } => {
            let args = tunnel::OpenArgs {
                app: app.clone(),
                relationships: relationships.clone(),
                port,
                bind: bind.clone(),
            };
            tunnel::open(&ctx, &cli, args).await
        }
        Command::TunnelSingle { .. } => Ok(()),
        Command::TunnelList { app, all } => tunnel::list(&ctx, app, all).await,
        Command::TunnelInfo {
            app,
            relationships,
            property,
            encode,
        } => tunnel::info(&ctx, app, relationships, property, encode).await,
        Command::TunnelClose {
            app,
            relationships,
            all,
            yes,
        } => tunnel::close(&ctx, app, relationships, all, yes).await,
        Command::Login {
            method,
            max_age,
            browser,
            no_browser,
            timeout,
        } => {
            // Checked values (`mfa`, `sso:<provider>`), sent as the authorize request's `amr`.
            let mut amr = method;
            amr.dedup();
            let options = LoginOptions {
                browser,
                no_browser,
                timeout: Duration::from_secs(timeout),
            };
            session::login(&ctx, LoginRequest { amr, max_age }, &options).await
        }
        Command::ApiTokenLogin => session::api_token_login(&ctx).await,
        Command::AuthInfo { property } => session::auth_info(&ctx, property.as_deref()).await,
        Command::Logout { all } => session::logout(&ctx, all).await,
        Command::SshCertInfo => certs::info(&ctx),
        Command::SshCertLoad {
            new,
            refresh_only,
            quiet,
            yes: _,
        } => certs::load(&ctx, new, refresh_only || quiet).await,
        Command::ConfigSsh { write, remove } => certs::config_ssh(&ctx, write, remove),
        Command::ProfileInfo => Ok(()),
        // Answered in main, before any profile or session.
        Command::Completion { .. } | Command::Man => Ok(()),
        Command::Doctor(_) => Ok(()),
        Command::ProductionGuard(args) => crate::guard::production_guard(&ctx, args).await,
        Command::Relationships(args) => crate::db::relationships(&ctx, args).await,
        Command::DbSql(args) => crate::db::sql(&ctx, args).await,
        Command::DbDump(args) => crate::db::dump(&ctx, args).await,
        Command::EnvironmentUrl(args) => crate::environment::url(&ctx, args).await,
        Command::EnvironmentLogs(args) => crate::environment::logs(&ctx, args).await,
        Command::EnvironmentScp(args) => crate::environment::scp(&ctx, args).await,
        Command::MountList(args) => crate::mount::list(&ctx, args).await,
        Command::MountDownload(args) => crate::mount::download(&ctx, args).await,
        Command::MountUpload(args) => crate::mount::upload(&ctx, args).await,
        Command::Projects => browse::projects(&ctx).await,
        Command::Environments { project } => browse::environments(&ctx, project).await,
        Command::Apps {
            project,
            environment,
        } => browse::apps(&ctx, project, environment).await,
        Command::Ssh {
            app:
                tunnel::AppFlags {
                    project,
                    environment,
                    app,
                },
            instance,
            worker,
            pipe,
            all,
            terminal,
            yes,
            options,
            command,
        } => {
            let request = SshRequest {
                project,
                environment,
                selection: Selection {
                    app,
                    instance,
                    worker,
                },
                pipe,
                all,
                terminal,
                yes,
                options,
                command,
            };
            crate::ssh::ssh(&ctx, request).await
        }
    }
}
