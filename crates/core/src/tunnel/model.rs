//! What the tunnel host's callers see and ask: which app ([`AppKey`]), where a tunnel
//! stands ([`TunnelState`], [`Counters`], [`TunnelInfo`]), and the requests to open and close
//! ([`OpenRequest`], [`OpenReport`], [`CloseRequest`]). Plain data that crosses the agent's
//! socket as JSON; no I/O here.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::link::LinkState;
use super::ports;
use super::{EndpointId, LocalRelationships};
use crate::api::{AppName, EnvironmentId, ProjectId};

/// The app a tunnel belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AppKey {
    pub project: ProjectId,
    pub environment: EnvironmentId,
    pub app: AppName,
}

impl AppKey {
    /// Reads `project/environment/app`.
    pub fn parse(s: &str) -> Result<AppKey, crate::api::IdError> {
        let bad = || crate::api::IdError {
            what: "app",
            value: s.chars().take(80).collect(),
            rule: "write it as project/environment/app",
        };
        let (project, rest) = s.split_once('/').ok_or_else(bad)?;
        let (environment, app) = rest.split_once('/').ok_or_else(bad)?;
        Ok(AppKey {
            project: ProjectId::parse(project)?,
            environment: EnvironmentId::parse(environment)?,
            app: AppName::parse(app)?,
        })
    }
}

impl std::fmt::Display for AppKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.project, self.environment, self.app)
    }
}

/// Why tunnels close when the session ends, as their closed state says it.
pub const SIGNED_OUT: &str = "signed out";

/// Where a tunnel stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TunnelState {
    /// Listening; the app's connection is being made for the first time.
    Opening,
    Open,
    /// Listening; the app's connection dropped and is being made again.
    Reconnecting {
        attempt: u32,
        error: String,
    },
    /// Listening, but the platform wants a new sign-in (MFA, SSO…) before it lets us in.
    Failed {
        reason: String,
    },
    Closed,
}

impl std::fmt::Display for TunnelState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TunnelState::Opening => f.write_str("opening"),
            TunnelState::Open => f.write_str("open"),
            TunnelState::Reconnecting { attempt, error } => {
                write!(f, "reconnecting (attempt {attempt}: {error})")
            }
            TunnelState::Failed { reason } => write!(f, "failed: {reason}"),
            TunnelState::Closed => f.write_str("closed"),
        }
    }
}

impl TunnelState {
    pub(super) fn of(link: &LinkState) -> TunnelState {
        match link {
            LinkState::Connecting {
                attempt: 0,
                error: None,
                ..
            } => TunnelState::Opening,
            LinkState::Connecting { attempt, error, .. } => TunnelState::Reconnecting {
                attempt: *attempt,
                error: error.clone().unwrap_or_default(),
            },
            LinkState::Up(_) => TunnelState::Open,
            LinkState::NeedsSignIn { reason } => TunnelState::Failed {
                reason: reason.clone(),
            },
            LinkState::Stopped => TunnelState::Closed,
        }
    }

    /// Whether the tunnel is not doing its job (for the tray's attention icon).
    pub fn is_down(&self) -> bool {
        matches!(
            self,
            TunnelState::Reconnecting { .. } | TunnelState::Failed { .. }
        )
    }
}

/// A tunnel's counters since it opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Local connections accepted.
    pub connections: u64,
    /// Of which still open.
    pub active: u64,
    /// Of which could not be carried (the service refused, the link stayed down).
    pub failed: u64,
    /// Bytes from local clients to the service.
    pub bytes_sent: u64,
    /// Bytes from the service to local clients.
    pub bytes_received: u64,
}

/// What a shell sees of a tunnel. The URL and fields carry the service's credentials (as
/// the platform gives them to the app); `Debug` leaves them out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelInfo {
    pub id: u64,
    #[serde(flatten)]
    pub app: AppKey,
    pub relationship: String,
    pub index: usize,
    pub service: Option<String>,
    pub service_type: Option<String>,
    /// What the tunnel reaches, as seen from the app (`database.internal:5432`).
    pub remote: String,
    pub local: SocketAddr,
    /// The URL to reach the service through the tunnel.
    pub url: String,
    /// The endpoint as seen through the tunnel (`tunnel:info`).
    pub fields: Map<String, Value>,
    #[serde(flatten)]
    pub state: TunnelState,
    pub counters: Counters,
    /// Unix seconds.
    pub opened_at: u64,
    /// Why the last local connection could not be carried, if one could not.
    pub last_error: Option<String>,
    /// The port this tunnel had last time, when another process held it as it opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub displaced: Option<ports::Displaced>,
}

impl std::fmt::Debug for TunnelInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunnelInfo")
            .field("id", &self.id)
            .field("app", &self.app)
            .field("relationship", &self.relationship)
            .field("index", &self.index)
            .field("remote", &self.remote)
            .field("local", &self.local)
            .field("state", &self.state)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl TunnelInfo {
    /// The endpoint's id (`database`, `database.1`).
    pub fn endpoint_id(&self) -> EndpointId {
        EndpointId::new(self.relationship.clone(), self.index)
    }
}

/// The `PLATFORM_RELATIONSHIPS` of these tunnels, for local use (`tunnel:info`), whatever
/// apps they belong to, merged into one object as the official client merges them
/// (`legacy/src/Command/Tunnel/TunnelInfoCommand.php`, `execute`). Its tunnels are listed in
/// the order they were opened (its `tunnel-info.json` appends each new one); ids here are
/// given in that order, so that is the order used.
pub fn local_relationships<'a>(
    tunnels: impl IntoIterator<Item = &'a TunnelInfo>,
) -> LocalRelationships {
    let mut sorted: Vec<&TunnelInfo> = tunnels.into_iter().collect();
    sorted.sort_by_key(|t| t.id);
    LocalRelationships::from_endpoints(
        sorted
            .into_iter()
            .map(|t| (t.endpoint_id(), t.fields.clone())),
    )
}

/// What to open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenRequest {
    #[serde(flatten)]
    pub app: AppKey,
    /// Relationship names (all of them when empty); `name.N` picks one endpoint.
    #[serde(default)]
    pub relationships: Vec<String>,
    /// The local port, for a single tunnel.
    #[serde(default)]
    pub port: Option<u16>,
    /// The local address to listen on (loopback when absent).
    #[serde(default)]
    pub bind: Option<IpAddr>,
}

/// What `open` did: the tunnels now open for the request (new or already open), and the
/// endpoints that could not be opened with the reason (the others are unaffected).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenReport {
    pub tunnels: Vec<TunnelInfo>,
    pub failed: Vec<OpenFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenFailure {
    pub relationship: String,
    pub message: String,
}

/// Which tunnels to close.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseRequest {
    /// Only tunnels of this project / environment / app (each optional).
    #[serde(default)]
    pub project: Option<ProjectId>,
    #[serde(default)]
    pub environment: Option<EnvironmentId>,
    #[serde(default)]
    pub app: Option<AppName>,
    /// Only these relationships (`name` or `name.N`).
    #[serde(default)]
    pub relationships: Vec<String>,
}

impl CloseRequest {
    pub fn matches(&self, t: &TunnelInfo) -> bool {
        self.covers(&t.app)
            && (self.relationships.is_empty()
                || self
                    .relationships
                    .iter()
                    .any(|r| names_endpoint(r, &t.relationship, t.index)))
    }

    /// Whether tunnels of `app` may be among those this closes.
    pub fn covers(&self, app: &AppKey) -> bool {
        self.project.as_ref().is_none_or(|p| *p == app.project)
            && self
                .environment
                .as_ref()
                .is_none_or(|e| *e == app.environment)
            && self.app.as_ref().is_none_or(|a| *a == app.app)
    }
}

/// Whether `wanted` (`name` or `name.N`) names this endpoint.
pub(super) fn names_endpoint(wanted: &str, relationship: &str, index: usize) -> bool {
    wanted == relationship || EndpointId::parse(wanted) == EndpointId::new(relationship, index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_named_by_relationship_or_index() {
        assert!(names_endpoint("database", "database", 0));
        assert!(names_endpoint("database", "database", 1));
        assert!(names_endpoint("database.1", "database", 1));
        assert!(!names_endpoint("database.1", "database", 0));
        assert!(!names_endpoint("cache", "database", 0));
    }

    #[test]
    fn states_read_as_words() {
        assert_eq!(TunnelState::Open.to_string(), "open");
        let r = TunnelState::Reconnecting {
            attempt: 2,
            error: "connection refused".into(),
        };
        assert_eq!(
            r.to_string(),
            "reconnecting (attempt 2: connection refused)"
        );
        assert!(r.is_down());
        assert!(!TunnelState::Opening.is_down());
    }
}
