//! What every command needs, built once from the command line and the environment: the
//! profile, the directories, the token store and an HTTP client, handed to core's [`Access`].

use std::time::Duration;

use anyhow::Result;
use tether_core::access::Access;
use tether_core::{openssh, setup, Paths, Profile};

use crate::{Cli, Format};

pub struct Ctx {
    pub format: Format,
    pub access: Access,
}

impl Ctx {
    pub fn profile(&self) -> &Profile {
        self.access.profile()
    }
}

pub use tether_core::setup::env_nonempty;

pub fn paths() -> Result<Paths> {
    Ok(setup::paths()?)
}

/// "30" (seconds), "30s", "15m", "8h".
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration: write 30s, 15m or 8h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{text:?} is not a duration: write 30s, 15m or 8h")),
    };
    if secs == 0 {
        return Err("the duration must be more than zero".into());
    }
    Ok(Duration::from_secs(secs))
}

/// The profile the command line selects, and the argument that selects it again from
/// anywhere (a profile file's absolute path).
pub fn profile(cli: &Cli) -> Result<(Profile, String)> {
    Ok(setup::profile(&cli.profile)?)
}

pub fn build(cli: &Cli) -> Result<Ctx> {
    build_for(cli, true)
}

/// The context for a command; `use_agent` false for the agent itself.
pub fn build_for(cli: &Cli, use_agent: bool) -> Result<Ctx> {
    let surroundings = setup::surroundings(setup::ShellChoices {
        profile: &cli.profile,
        inactivity_limit: cli.inactivity_limit,
        use_agent,
        tether_program: std::env::current_exe().ok(),
    })?;
    // This binary may not be the one the session's ssh hook names (moved, upgraded elsewhere,
    // the other one removed): point the hook here.
    let s = &surroundings;
    openssh::repoint_hook(&s.paths, &s.profile, s.refresh_hook.as_ref());
    let access = Access::new(surroundings);
    Ok(Ctx {
        format: cli.format,
        access,
    })
}
