//! The `tether` command. A thin adapter: parse arguments into core types, call tether-core,
//! render the result for people (default) or scripts (`--format json`).
//!
//! Exit codes scripts can rely on: 0 success, 1 failure, 2 bad usage, 3 sign-in needed (not
//! signed in, session ended), 4 stronger authentication needed (MFA, SSO, recent login),
//! 5 the platform could not be reached.

mod browse;
mod commands;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "tether",
    version,
    about = "Secure SSH access to Platform.sh and Upsun environments",
    after_help = "Exit codes: 0 success, 1 failure, 2 bad usage, 3 sign-in needed, 4 stronger authentication needed, 5 platform unreachable."
)]
pub struct Cli {
    /// The platform: `platformsh`, `upsun`, or the path of a profile file (such as the one
    /// `tether-sim --profile-out` writes).
    #[arg(
        long,
        global = true,
        env = "TETHER_PROFILE",
        default_value = "platformsh"
    )]
    pub profile: String,
    /// Output for people (`text`) or scripts (`json`).
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Method {
    /// Multi-factor authentication.
    Mfa,
    /// Single sign-on.
    Sso,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Sign in in a browser (with MFA when asked), then load an SSH certificate.
    Login {
        /// Demand an authentication method (step-up).
        #[arg(long, value_enum)]
        method: Option<Method>,
        /// Demand a login no older than this many seconds.
        #[arg(long, value_name = "SECS")]
        max_age: Option<u64>,
        /// Open the system browser (the default when there is a display).
        #[arg(long, conflicts_with = "no_browser")]
        browser: bool,
        /// Print the sign-in URL instead of opening a browser.
        #[arg(long)]
        no_browser: bool,
        /// Give up when the browser has not come back after this many seconds.
        #[arg(long, default_value_t = 300, value_name = "SECS")]
        timeout: u64,
    },
    /// Sign in with an API token read from standard input (for automation).
    #[command(name = "auth:api-token-login")]
    ApiTokenLogin,
    /// Show who is signed in.
    #[command(name = "auth:info")]
    AuthInfo {
        /// Print only this property (id, username, email, first_name, last_name, mfa_enabled…).
        #[arg(long, short = 'P')]
        property: Option<String>,
    },
    /// Sign out: revoke the session and delete its tokens, key, certificate and SSH files.
    Logout {
        /// Sign out of every profile with a session, and remove Tether's block from ~/.ssh/config.
        #[arg(long)]
        all: bool,
    },
    /// Show the session's SSH certificate.
    #[command(name = "ssh-cert:info")]
    SshCertInfo,
    /// Make sure a valid SSH certificate is loaded (a new one with --new).
    #[command(name = "ssh-cert:load")]
    SshCertLoad {
        /// Request a new certificate even if the current one is valid.
        #[arg(long)]
        new: bool,
    },
    /// Show, add (--write) or remove (--remove) Tether's block in ~/.ssh/config.
    #[command(name = "config:ssh")]
    ConfigSsh {
        #[arg(long, conflicts_with = "remove")]
        write: bool,
        #[arg(long)]
        remove: bool,
    },
    /// Show the selected platform profile: its API, sign-in server and SSH hosts.
    #[command(name = "profile:info")]
    ProfileInfo,
    /// List the projects you can reach.
    #[command(name = "projects", alias = "project:list")]
    Projects,
    /// List a project's environments with their status and type.
    #[command(name = "environments", alias = "environment:list")]
    Environments {
        #[arg(short = 'p', long)]
        project: Option<String>,
    },
    /// List the apps and workers of an environment's current deployment.
    #[command(name = "apps", alias = "app:list")]
    Apps {
        #[arg(short = 'p', long)]
        project: Option<String>,
        #[arg(short = 'e', long)]
        environment: Option<String>,
    },
    /// Open a shell on an app, or run a command after `--` (its exit status becomes tether's).
    Ssh {
        #[arg(short = 'p', long)]
        project: Option<String>,
        #[arg(short = 'e', long)]
        environment: Option<String>,
        #[arg(short = 'A', long)]
        app: Option<String>,
        /// An instance of a multi-instance app.
        #[arg(short = 'I', long)]
        instance: Option<String>,
        /// A worker of the app.
        #[arg(long)]
        worker: Option<String>,
        /// Print the SSH address (user@host) and nothing else.
        #[arg(long, conflicts_with_all = ["all", "terminal"])]
        pipe: bool,
        /// Print every SSH address of the environment.
        #[arg(long, conflicts_with = "terminal")]
        all: bool,
        /// Open the session in a new terminal window (TETHER_TERMINAL, TERMINAL, or one found).
        #[arg(long)]
        terminal: bool,
        /// The remote command: one argument is passed as it is, several are quoted for a shell.
        #[arg(last = true)]
        command: Vec<String>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = cli.format;
    match commands::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = commands::exit_code(&e);
            // A remote command's own exit status is passed on silently.
            if e.downcast_ref::<commands::RemoteExit>().is_none() {
                output::error(format, &e, code);
            }
            ExitCode::from(code)
        }
    }
}
