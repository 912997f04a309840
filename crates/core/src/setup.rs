//! The edge where a shell (the `tether` command, the desktop app) turns its process
//! environment into the [`Surroundings`] core works in: the profile it selects, the data,
//! `~/.ssh` and runtime directories, the token store and an HTTP client. Nothing else in core
//! reads the environment; the shells call this once, at start.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::access::{StoreKind, Surroundings};
use crate::cert::RenewalPolicy;
use crate::openssh::RefreshHook;
use crate::problem::{Classify, Problem};
use crate::{Paths, Profile, ProfileError, Sensitive, SystemClock};

/// Chooses the token store: the OS keyring unless `TETHER_TOKEN_STORE=file` (or, without the
/// variable, the user chose the file store in the app).
pub const STORE_ENV: &str = "TETHER_TOKEN_STORE";

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot find your home directory: set HOME")]
    NoHome,
    #[error("cannot read the current directory: {0}")]
    Cwd(String),
    #[error("{STORE_ENV}={0:?} is not a token store: use keyring (the default) or file")]
    Store(String),
    #[error("cannot set up HTTP: {0}")]
    Http(String),
    #[error(transparent)]
    Profile(#[from] ProfileError),
}

impl Classify for SetupError {
    fn problem(&self) -> Problem {
        match self {
            SetupError::Profile(e) => e.problem(),
            SetupError::Store(_) => Problem::Usage,
            _ => Problem::Other,
        }
    }
}

/// A variable's value, unless it is unset or blank.
pub fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn home_dir() -> Result<PathBuf, SetupError> {
    env_nonempty("HOME")
        .map(PathBuf::from)
        .or_else(dirs::home_dir)
        .ok_or(SetupError::NoHome)
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

/// Where Tether keeps its files, from `HOME`, `TETHER_DATA_DIR`, `XDG_DATA_HOME` and
/// `XDG_RUNTIME_DIR`.
pub fn paths() -> Result<Paths, SetupError> {
    let home = home_dir()?;
    let mut paths = Paths::under_home(&home, Some(data_dir(&home)));
    if let Some(runtime) = env_nonempty("XDG_RUNTIME_DIR") {
        paths.runtime_dir = PathBuf::from(runtime).join("tether");
    }
    Ok(paths)
}

fn store_kind() -> Result<StoreKind, SetupError> {
    match env_nonempty(STORE_ENV).as_deref() {
        None | Some("keyring") => Ok(StoreKind::Keyring),
        Some("file") => Ok(StoreKind::File),
        Some(other) => Err(SetupError::Store(other.to_string())),
    }
}

/// The profile `selector` names (a built-in name or a profile file, relative to the current
/// directory), and the argument that selects it again from anywhere.
pub fn profile(selector: &str) -> Result<(Profile, String), SetupError> {
    // A built-in name or an absolute path (what the refresh hook passes) does not depend on
    // the current directory, which ssh may run the hook in after it was deleted.
    if Profile::builtins().iter().any(|p| p.name == selector)
        || std::path::Path::new(selector).is_absolute()
    {
        let profile = Profile::select(selector, std::path::Path::new("/"))?;
        return Ok((profile, selector.to_string()));
    }
    let cwd = std::env::current_dir().map_err(|e| SetupError::Cwd(e.to_string()))?;
    let profile = Profile::select(selector, &cwd)?;
    let arg = if Profile::builtins().iter().any(|p| p.name == selector) {
        selector.to_string()
    } else {
        cwd.join(selector).display().to_string()
    };
    Ok((profile, arg))
}

/// What a shell chooses; the rest comes from the environment.
pub struct ShellChoices<'a> {
    /// The `--profile` value (or `TETHER_PROFILE`).
    pub profile: &'a str,
    pub inactivity_limit: Duration,
    /// Whether to hand session work to a running agent (false in the agent itself).
    pub use_agent: bool,
    /// The `tether` executable the session's SSH config runs before each plain `ssh`.
    pub tether_program: Option<PathBuf>,
}

/// The surroundings for `choices`, from the process environment.
pub fn surroundings(choices: ShellChoices<'_>) -> Result<Surroundings, SetupError> {
    let (profile, profile_arg) = profile(choices.profile)?;
    let env_token = env_nonempty(&profile.token_env_var)
        .or_else(|| env_nonempty("TETHER_TOKEN"))
        .map(|t| Sensitive::new(t.trim().to_string()));
    let http = reqwest::Client::builder()
        .user_agent(concat!("tether/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(15))
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| SetupError::Http(e.to_string()))?;
    Ok(Surroundings {
        profile,
        paths: paths()?,
        store: store_kind()?,
        clock: Arc::new(SystemClock),
        http,
        env_token,
        policy: RenewalPolicy {
            inactivity_limit: choices.inactivity_limit,
            ..RenewalPolicy::default()
        },
        use_agent: choices.use_agent,
        // The profile as given (a name, or a file made absolute), so that the hook selects the
        // same profile from wherever ssh runs.
        refresh_hook: choices.tether_program.map(|program| RefreshHook {
            program,
            profile_arg,
        }),
    })
}
