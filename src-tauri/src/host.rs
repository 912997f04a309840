//! The agent, hosted in the app: the same code as `tether agent`, so that `tether` commands
//! see the app's session and tunnels and the other way round. When a headless agent already
//! runs for the profile, the app uses that one instead of starting a second (they would fight
//! over the socket); either way the app talks to its agent over the control socket, the one
//! way every shell does.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tether_core::access::Access;
use tether_core::agent::{self, AgentClient, AgentError, Bound, Reply, Request, Status};
use tether_core::setup::{self, ShellChoices};
use tether_core::tunnel::{CloseRequest, TunnelInfo};

/// The profile the app serves: `--profile X`, else `TETHER_PROFILE`, else Platform.sh.
fn profile_selector() -> String {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--profile" {
            if let Some(p) = args.next() {
                return p;
            }
        } else if let Some(p) = arg.strip_prefix("--profile=") {
            return p.to_string();
        }
    }
    setup::env_nonempty("TETHER_PROFILE").unwrap_or_else(|| "platformsh".to_string())
}

/// The `tether` command beside the app (the session's SSH config runs it before each plain
/// `ssh`), when it is there.
fn tether_program() -> Option<PathBuf> {
    let beside = std::env::current_exe().ok()?.with_file_name("tether");
    beside.exists().then_some(beside)
}

/// The agent the app talks to.
pub struct Agent {
    pub socket: PathBuf,
    pub profile_title: String,
    /// Whether this process hosts it (else a headless one does).
    pub hosted: bool,
}

/// Starts the agent in this process, or finds the one already running for the profile.
pub fn start() -> Result<Agent, String> {
    let surroundings = setup::surroundings(ShellChoices {
        profile: &profile_selector(),
        inactivity_limit: tether_core::cert::RenewalPolicy::default().inactivity_limit,
        use_agent: false,
        tether_program: tether_program(),
    })
    .map_err(|e| e.to_string())?;
    let access = Access::new(surroundings);
    let socket = agent::socket_path(access.paths(), access.profile());
    let profile_title = access.profile().title.clone();
    match Bound::bind(access.paths(), access.profile()) {
        Ok(bound) => {
            // The agent runs until the app exits.
            let (stop, shutdown) = tokio::sync::watch::channel(false);
            tauri::async_runtime::spawn(async move {
                agent::serve(bound, Arc::new(access), shutdown).await;
                drop(stop);
            });
            Ok(Agent {
                socket,
                profile_title,
                hosted: true,
            })
        }
        Err(AgentError::AlreadyRunning { .. }) => Ok(Agent {
            socket,
            profile_title,
            hosted: false,
        }),
        Err(e) => Err(e.to_string()),
    }
}

impl Agent {
    async fn client(&self) -> Option<AgentClient> {
        AgentClient::connect(&self.socket).await.ok().flatten()
    }

    /// The agent's state and its tunnels, for the tray.
    pub async fn snapshot(&self) -> Option<(Status, Vec<TunnelInfo>)> {
        let mut c = self.client().await?;
        let Ok(Reply::Status(status)) = c.request(&Request::Status).await else {
            return None;
        };
        let Ok(Reply::Tunnels { tunnels }) = c.request(&Request::TunnelList).await else {
            return None;
        };
        Some((status, tunnels))
    }

    pub async fn close_all_tunnels(&self) {
        if let Some(mut c) = self.client().await {
            let _ = c
                .request(&Request::TunnelClose(CloseRequest::default()))
                .await;
        }
    }

    /// Calls `changed` now and after every event of the agent, until the app exits. When the
    /// agent goes away (a headless one stopped), waits for one to come back.
    pub async fn follow(&self, changed: impl Fn()) {
        loop {
            changed();
            if let Some(mut c) = self.client().await {
                if matches!(c.request(&Request::Subscribe).await, Ok(Reply::Subscribed)) {
                    while let Ok(Some(_)) = c.next().await {
                        changed();
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
