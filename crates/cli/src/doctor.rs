//! `tether doctor`: core's checks ([`tether_core::doctor`]) printed for people or as JSON, and
//! `--bundle FILE`, the redacted archive for a support request. Exit code 1 when a check
//! found a problem (warnings alone leave it 0).

use std::path::PathBuf;

use anyhow::Result;
use tether_core::access::Access;
use tether_core::doctor::{self, bundle, Status};
use tether_core::setup;

use crate::output::{print, progress};
use crate::ssh::RemoteExit;
use crate::Cli;

#[derive(clap::Args, Debug, Clone)]
pub struct DoctorArgs {
    /// Also write a support bundle to FILE (a .tar.gz, readable only by you): the report,
    /// the versions of tether, ssh and the system, and the agent's last 1,000 log lines with
    /// tokens, passwords and keys removed.
    #[arg(long, value_name = "FILE")]
    pub bundle: Option<PathBuf>,
    /// Replace FILE when it exists.
    #[arg(long, requires = "bundle")]
    pub force: bool,
}

pub async fn run(cli: &Cli, args: &DoctorArgs) -> Result<()> {
    // Not the usual context: that points the session's ssh hook at this binary, which would
    // repair what the hook check is there to find.
    let surroundings = setup::surroundings(setup::ShellChoices {
        profile: &cli.profile,
        inactivity_limit: cli.inactivity_limit,
        use_agent: true,
        tether_program: None,
    })?;
    let access = Access::new(surroundings);
    let report = doctor::run(&access, crate::VERSION).await;
    if let Some(file) = &args.bundle {
        let log = access.paths().agent_log(access.profile());
        bundle::write(&report, &log, file, args.force)?;
        progress(
            cli.format,
            &format!(
                "Wrote {} (the report, versions and the agent's scrubbed log): attach it to your support request.",
                file.display()
            ),
        );
    }
    print(cli.format, &report, || bundle::report_text(&report));
    if report.worst() == Status::Problem {
        // The report said it all: exit 1 without another message.
        return Err(RemoteExit(1).into());
    }
    Ok(())
}
