//! The `tether` command. A thin adapter: parse arguments into core types, call tether-core,
//! render the result for people (default) or scripts (`--format json`).
//!
//! Exit codes scripts can rely on: 0 success, 1 failure, 2 bad usage, 3 sign-in needed (not
//! signed in, session ended), 4 stronger authentication needed (MFA, SSO, recent login),
//! 5 the platform could not be reached.

mod agent;
mod browse;
mod certs;
mod commands;
mod context;
mod db;
mod doctor;
mod environment;
mod guard;
mod manual;
mod mount;
mod output;
mod session;
mod ssh;
mod tunnel;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tether_core::api::{AppName, EnvironmentId, ProjectId};

/// `tether --version`: the version and the commit it was built from (crates/cli/build.rs).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("TETHER_COMMIT"), ")");

#[derive(Parser, Debug)]
#[command(
    name = "tether",
    version = VERSION,
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
    /// More detail in the log on stderr (-v info, -vv debug, -vvv trace); `TETHER_LOG` takes
    /// a filter such as `tether_core=debug`.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Sign out after this long without using the session (30s, 15m, 8h).
    #[arg(
        long,
        global = true,
        env = "TETHER_INACTIVITY_LIMIT",
        default_value = "8h",
        value_parser = context::parse_duration,
        value_name = "DURATION"
    )]
    pub inactivity_limit: std::time::Duration,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// An authentication method `login --method` demands: `mfa` or `sso:<provider>`.
fn parse_method(value: &str) -> Result<String, String> {
    tether_core::auth::login::auth_method(value)
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Sign in in a browser (with MFA when asked), then load an SSH certificate.
    #[command(alias = "auth:browser-login")]
    Login {
        /// Demand authentication methods (step-up): `mfa`, `sso:<provider>`; repeatable or
        /// comma-separated.
        #[arg(long, value_name = "METHOD", value_delimiter = ',', value_parser = parse_method)]
        method: Vec<String>,
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
    #[command(alias = "auth:logout")]
    Logout {
        /// Sign out of every profile with a session, and remove Tether's block from ~/.ssh/config.
        #[arg(short = 'a', long)]
        all: bool,
    },
    /// Show the session's SSH certificate.
    #[command(name = "ssh-cert:info")]
    SshCertInfo,
    /// Make sure a valid SSH certificate is loaded (a new one with --new).
    #[command(name = "ssh-cert:load")]
    SshCertLoad {
        /// Request a new certificate even if the current one is valid.
        #[arg(long, conflicts_with = "refresh_only")]
        new: bool,
        /// Renew the certificate only if it needs it, never prompting: what the session's SSH
        /// configuration runs before every plain `ssh`, `scp`, `rsync` and `git` connection.
        #[arg(long)]
        refresh_only: bool,
        /// Print nothing, not even errors (the exit code tells).
        #[arg(long, short = 'q')]
        quiet: bool,
        /// Accepted for compatibility with the official client's hook; Tether never prompts here.
        #[arg(long, short = 'y', hide = true)]
        yes: bool,
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
        project: Option<ProjectId>,
    },
    /// List the apps and workers of an environment's current deployment.
    #[command(name = "apps", alias = "app:list")]
    Apps {
        #[arg(short = 'p', long)]
        project: Option<ProjectId>,
        #[arg(short = 'e', long)]
        environment: Option<EnvironmentId>,
    },
    /// Run the agent in the foreground: it keeps the certificate fresh while you are active,
    /// signs out after the inactivity limit, and serves tether commands. Logs to stderr and to
    /// the data directory's logs/.
    Agent,
    /// Show the running agent's state (with --follow, then stream its events).
    #[command(name = "agent:status")]
    AgentStatus {
        #[arg(long)]
        follow: bool,
    },
    /// Stream the running agent's events (renewed, renewal failed, MFA needed, signed out,
    /// tunnels dropping and coming back…).
    Events,
    /// Ask the running agent to close its tunnels and stop.
    #[command(name = "agent:stop")]
    AgentStop,
    /// Open tunnels to an app's services (all its relationships, or those named with -r),
    /// kept by the agent: they reconnect by themselves after a network drop or a suspend.
    #[command(name = "tunnel:open")]
    TunnelOpen {
        #[command(flatten)]
        app: tunnel::AppFlags,
        /// A relationship to open (repeatable); `name.N` picks one of its endpoints.
        #[arg(short = 'r', long = "relationship", value_name = "REL")]
        relationships: Vec<String>,
        /// The local port, for a single relationship (default: its port last time, else the
        /// first free one from 30000).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        port: Option<u16>,
        /// `--bind` and `-y` (the field keeps its old name so the dispatch is unchanged).
        #[command(flatten)]
        bind: tunnel::OpenFlags,
    },
    /// Open one tunnel in the foreground, without the agent; Ctrl+C closes it.
    #[command(name = "tunnel:single")]
    TunnelSingle {
        #[command(flatten)]
        app: tunnel::AppFlags,
        #[arg(short = 'r', long = "relationship", value_name = "REL")]
        relationship: Option<String>,
        /// The local port (default: its port last time, else the first free one from 30000).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        port: Option<u16>,
        /// `--bind` and `-y` (the field keeps its old name so the dispatch is unchanged).
        #[command(flatten)]
        bind: tunnel::OpenFlags,
    },
    /// List open tunnels with their state, port and counters.
    #[command(name = "tunnel:list", alias = "tunnels")]
    TunnelList {
        #[command(flatten)]
        app: tunnel::AppFlags,
        /// Every tunnel, whatever -p/-e/-A say.
        #[arg(short = 'a', long)]
        all: bool,
    },
    /// Show the open tunnels' relationships as a local program sees them (127.0.0.1, the
    /// local ports, a URL), or one property, or the PLATFORM_RELATIONSHIPS value.
    #[command(name = "tunnel:info")]
    TunnelInfo {
        #[command(flatten)]
        app: tunnel::AppFlags,
        #[arg(short = 'r', long = "relationship", value_name = "REL")]
        relationships: Vec<String>,
        /// One value by dot path, such as `database.0.port`.
        #[arg(short = 'P', long, conflicts_with = "encode")]
        property: Option<String>,
        /// Print the base64 value for `export PLATFORM_RELATIONSHIPS="$(tether tunnel:info --encode)"`.
        #[arg(short = 'c', long)]
        encode: bool,
    },
    /// Close tunnels: --all, or those of an app (-p/-e/-A) or relationship (-r).
    #[command(name = "tunnel:close")]
    TunnelClose {
        #[command(flatten)]
        app: tunnel::AppFlags,
        #[arg(short = 'r', long = "relationship", value_name = "REL")]
        relationships: Vec<String>,
        #[arg(short = 'a', long)]
        all: bool,
        /// Do not ask for confirmation.
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// Open a shell on an app, or run a command given after the options (its exit status
    /// becomes tether's).
    #[command(alias = "environment:ssh")]
    Ssh {
        #[command(flatten)]
        app: tunnel::AppFlags,
        /// An instance of a multi-instance app.
        #[arg(short = 'I', long)]
        instance: Option<String>,
        /// A worker of the app.
        #[arg(long)]
        worker: Option<AppName>,
        /// Print the SSH address (user@host) and nothing else.
        #[arg(long, conflicts_with_all = ["all", "terminal"])]
        pipe: bool,
        /// Print every SSH address of the environment.
        #[arg(long, conflicts_with = "terminal")]
        all: bool,
        /// Open the session in a new terminal window (TETHER_TERMINAL, TERMINAL, or one found).
        #[arg(long)]
        terminal: bool,
        /// Do not ask before a shell on a production environment.
        #[arg(short = 'y', long)]
        yes: bool,
        /// An option for ssh, in ssh_config form such as `-o 'SetEnv LC_X=1'` (repeatable; after
        /// those of PLATFORMSH_CLI_SSH_OPTIONS or UPSUN_CLI_SSH_OPTIONS, one per line).
        #[arg(short = 'o', long = "option", value_name = "OPTION")]
        options: Vec<String>,
        /// The remote command, as plain words after the options (`--` is accepted): one
        /// argument is passed as it is, several are quoted for a shell.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "COMMAND"
        )]
        command: Vec<String>,
    },
    /// Show whether Tether asks before a terminal, a SQL shell, a dump or a tunnel on a
    /// project's production environment, and turn it --on or --off.
    #[command(name = "config:production-guard")]
    ProductionGuard(guard::GuardArgs),
    /// Show an environment's relationships (the app's services), or one property (-P).
    #[command(name = "environment:relationships", visible_aliases = ["relationships", "rel"])]
    Relationships(db::RelationshipsArgs),
    /// Run SQL on the environment's database, or open its SQL shell (read-only on production).
    #[command(name = "db:sql", visible_alias = "sql", alias = "environment:sql")]
    DbSql(db::SqlArgs),
    /// Create a local dump of the environment's database (a progress bar at a terminal).
    #[command(name = "db:dump", aliases = ["sql-dump", "environment:sql-dump"])]
    DbDump(db::DumpArgs),
    /// Get the public URLs of an environment (primary first), or open one in a browser.
    #[command(name = "environment:url", visible_alias = "url")]
    EnvironmentUrl(environment::UrlArgs),
    /// Read an app's log (app, access, error…), or follow it with --tail.
    #[command(name = "environment:logs", visible_alias = "log", alias = "logs")]
    EnvironmentLogs(environment::LogsArgs),
    /// Copy files to and from an app with scp (`remote:PATH` names the app's files).
    #[command(name = "environment:scp", visible_alias = "scp")]
    EnvironmentScp(environment::ScpArgs),
    /// List an app's mounts.
    #[command(name = "mount:list", visible_alias = "mounts")]
    MountList(mount::ListArgs),
    /// Download files from a mount with rsync.
    #[command(name = "mount:download")]
    MountDownload(mount::DownloadArgs),
    /// Upload files to a mount with rsync.
    #[command(name = "mount:upload")]
    MountUpload(mount::UploadArgs),
    /// Check what Tether needs on this machine (OpenSSH, ~/.ssh/config, the keyring, the
    /// clock, the agent, the tray, the tunnel ports, the ssh hook), each with its fix; exit
    /// code 1 when a problem is found. --bundle writes a redacted archive for support.
    Doctor(doctor::DoctorArgs),
    /// Print the completion script for a shell, to install where it looks for them (for bash:
    /// `tether completion bash > ~/.local/share/bash-completion/completions/tether`).
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), which the packages install as tether(1).
    #[command(hide = true)]
    Man,
}

impl Command {
    /// The command's name, for the log.
    fn name(&self) -> &'static str {
        match self {
            Command::Login { .. } => "login",
            Command::ApiTokenLogin => "auth:api-token-login",
            Command::AuthInfo { .. } => "auth:info",
            Command::Logout { .. } => "logout",
            Command::SshCertInfo => "ssh-cert:info",
            Command::SshCertLoad { .. } => "ssh-cert:load",
            Command::ConfigSsh { .. } => "config:ssh",
            Command::ProfileInfo => "profile:info",
            Command::Projects => "projects",
            Command::Environments { .. } => "environments",
            Command::Apps { .. } => "apps",
            Command::Ssh { .. } => "ssh",
            Command::Agent => "agent",
            Command::AgentStatus { .. } => "agent:status",
            Command::Events => "events",
            Command::AgentStop => "agent:stop",
            Command::TunnelOpen { .. } => "tunnel:open",
            Command::TunnelSingle { .. } => "tunnel:single",
            Command::TunnelList { .. } => "tunnel:list",
            Command::TunnelInfo { .. } => "tunnel:info",
            Command::TunnelClose { .. } => "tunnel:close",
            Command::ProductionGuard(_) => "config:production-guard",
            Command::Relationships(_) => "environment:relationships",
            Command::DbSql(_) => "db:sql",
            Command::DbDump(_) => "db:dump",
            Command::EnvironmentUrl(_) => "environment:url",
            Command::EnvironmentLogs(_) => "environment:logs",
            Command::EnvironmentScp(_) => "environment:scp",
            Command::MountList(_) => "mount:list",
            Command::MountDownload(_) => "mount:download",
            Command::MountUpload(_) => "mount:upload",
            Command::Doctor(_) => "doctor",
            Command::Completion { .. } => "completion",
            Command::Man => "man",
        }
    }
}

/// Logs go to stderr, quiet by default (the agent: info, and also to its log file). No secret
/// is ever a field or a message at any level.
fn init_logging(cli: &Cli) {
    let agent = matches!(cli.command, Command::Agent);
    let filter = context::env_nonempty("TETHER_LOG").unwrap_or_else(|| {
        match (cli.verbose, agent) {
            (0, false) => "warn",
            (0, true) | (1, _) => "info",
            (2, _) => "debug",
            _ => "trace",
        }
        .to_string()
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_target(false);
    if let Some(file) = agent.then(|| agent::log_file(cli)).flatten() {
        use tracing_subscriber::fmt::writer::MakeWriterExt;
        let _ = builder
            .with_ansi(false)
            .with_writer(std::io::stderr.and(std::sync::Mutex::new(file)))
            .try_init();
    } else {
        let _ = builder.with_writer(std::io::stderr).try_init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Completion { shell } => return manual::completion(shell),
        Command::Man => return manual::man_page(),
        _ => {}
    }
    // The refresh hook runs before every plain ssh connection: answer from two small files
    // when the certificate is fresh, before logging, a runtime or an HTTP client exist.
    if let Command::SshCertLoad {
        refresh_only: true, ..
    } = cli.command
    {
        if certs::fresh_for_hook(&cli) {
            return ExitCode::SUCCESS;
        }
    }
    init_logging(&cli);
    // The agent runs on one thread: a tunnel's bytes pass from the local socket's task to the
    // app's SSH session task and back, and on one thread that hand-over is a queue push, where
    // across worker threads it is a wake-up through the kernel (futex, eventfd) per read. That
    // cut its CPU per GiB carried by a fifth to a third in `make bench`, at the same throughput.
    // Its blocking work (the keyring, file locks, waiting on children) already goes to
    // `spawn_blocking`'s threads, so nothing blocking runs on this one.
    let mut builder = if matches!(cli.command, Command::Agent) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tether: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let format = cli.format;
    let quiet = matches!(cli.command, Command::SshCertLoad { quiet: true, .. });
    let span = tracing::info_span!("command", name = cli.command.name(), profile = %cli.profile);
    match runtime.block_on(tracing::Instrument::instrument(commands::run(cli), span)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let (code, problem) = commands::exit_code(&e);
            // A remote command's own exit status is passed on silently.
            if e.downcast_ref::<ssh::RemoteExit>().is_none() && !quiet {
                output::error(format, &e, code, problem);
            }
            ExitCode::from(code)
        }
    }
}
