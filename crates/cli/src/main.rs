//! The `tether` command. A thin adapter: parse arguments into core types, call tether-core,
//! render the result for people (default) or scripts (`--format json`).

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use tether_core::Profile;

#[derive(Parser, Debug)]
#[command(
    name = "tether",
    version,
    about = "Secure SSH access to Platform.sh and Upsun environments"
)]
struct Cli {
    /// The platform: `platformsh`, `upsun`, or the path of a profile file (such as the one
    /// `tether-sim --profile-out` writes).
    #[arg(
        long,
        global = true,
        env = "TETHER_PROFILE",
        default_value = "platformsh"
    )]
    profile: String,
    /// Output for people (`text`) or scripts (`json`).
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    format: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show the selected platform profile: its API, authorization server and SSH hosts.
    #[command(name = "profile:info")]
    ProfileInfo,
}

fn run(cli: Cli) -> Result<()> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    match cli.command {
        Command::ProfileInfo => {
            let profile = Profile::select(&cli.profile, &cwd)?;
            match cli.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&profile)?),
                Format::Text => {
                    println!("{} ({})", profile.title, profile.name);
                    println!("  API:         {}", profile.api_url);
                    println!("  Sign-in:     {}", profile.auth_url);
                    println!("  SSH hosts:   {}", profile.ssh_host_patterns.join(" "));
                    println!("  Token var:   {}", profile.token_env_var);
                    if let Some(ssh) = &profile.ssh {
                        println!("  Gateway:     {}:{}", ssh.hostname, ssh.port);
                    }
                }
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tether: {e:#}");
            ExitCode::FAILURE
        }
    }
}
