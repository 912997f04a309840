//! What every command needs, built once from the command line and the environment: the
//! profile, the directories, the token store and an HTTP client, handed to core's [`Access`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tether_core::access::{Access, StoreKind, Surroundings};
use tether_core::cert::RenewalPolicy;
use tether_core::openssh::RefreshHook;
use tether_core::{Paths, Profile, Sensitive, SystemClock};

use crate::{Cli, Format};

/// Chooses the token store: the OS keyring unless `TETHER_TOKEN_STORE=file`.
pub const STORE_ENV: &str = "TETHER_TOKEN_STORE";

pub struct Ctx {
    pub format: Format,
    pub access: Access,
}

impl Ctx {
    pub fn profile(&self) -> &Profile {
        self.access.profile()
    }
}

/// A variable's value, unless it is unset or blank.
pub fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn home_dir() -> Result<PathBuf> {
    env_nonempty("HOME")
        .map(PathBuf::from)
        .or_else(dirs::home_dir)
        .context("cannot find your home directory: set HOME")
}

/// The platform's standard data directory, or `TETHER_DATA_DIR`.
fn data_dir(home: &Path) -> PathBuf {
    if let Some(d) = env_nonempty("TETHER_DATA_DIR") {
        return PathBuf::from(d);
    }
    if cfg!(target_os = "linux") {
        if let Some(x) = env_nonempty("XDG_DATA_HOME") {
            return PathBuf::from(x).join("tether");
        }
        return home.join(".local/share/tether");
    }
    dirs::data_dir()
        .map(|d| d.join("tether"))
        .unwrap_or_else(|| home.join(".tether"))
}

pub fn paths() -> Result<Paths> {
    let home = home_dir()?;
    let mut paths = Paths::under_home(&home, Some(data_dir(&home)));
    if let Some(runtime) = env_nonempty("XDG_RUNTIME_DIR") {
        paths.runtime_dir = PathBuf::from(runtime).join("tether");
    }
    Ok(paths)
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

fn store_kind() -> Result<StoreKind> {
    match env_nonempty(STORE_ENV).as_deref() {
        None | Some("keyring") => Ok(StoreKind::Keyring),
        Some("file") => Ok(StoreKind::File),
        Some(other) => {
            bail!("{STORE_ENV}={other:?} is not a token store: use keyring (the default) or file")
        }
    }
}

/// The profile the command line selects, and the argument that selects it again from
/// anywhere (a profile file's absolute path).
pub fn profile(cli: &Cli) -> Result<(Profile, String)> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let profile = Profile::select(&cli.profile, &cwd)?;
    let arg = if Profile::builtins().iter().any(|p| p.name == cli.profile) {
        cli.profile.clone()
    } else {
        cwd.join(&cli.profile).display().to_string()
    };
    Ok((profile, arg))
}

pub fn build(cli: &Cli) -> Result<Ctx> {
    build_for(cli, true)
}

/// The context for a command; `use_agent` false for the agent itself.
pub fn build_for(cli: &Cli, use_agent: bool) -> Result<Ctx> {
    let (profile, profile_arg) = profile(cli)?;
    let env_token = env_nonempty(&profile.token_env_var)
        .or_else(|| env_nonempty("TETHER_TOKEN"))
        .map(|t| Sensitive::new(t.trim().to_string()));
    let http = reqwest::Client::builder()
        .user_agent(concat!("tether/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(15))
        .timeout(Duration::from_secs(60))
        .build()
        .context("cannot set up HTTP")?;
    let access = Access::new(Surroundings {
        profile,
        paths: paths()?,
        store: store_kind()?,
        clock: Arc::new(SystemClock),
        http,
        env_token,
        policy: RenewalPolicy {
            inactivity_limit: cli.inactivity_limit,
            ..RenewalPolicy::default()
        },
        use_agent,
        // The profile as given (a name, or a file made absolute), so that the hook selects the
        // same profile from wherever ssh runs.
        refresh_hook: std::env::current_exe().ok().map(|program| RefreshHook {
            program,
            profile_arg,
        }),
    });
    Ok(Ctx {
        format: cli.format,
        access,
    })
}
