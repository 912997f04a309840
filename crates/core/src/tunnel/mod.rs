//! Tunnels to an app's services: what an app declares (its relationships), the local ports,
//! and the host that listens on them and carries every connection over one SSH connection per
//! app, reconnecting when it drops. The decoding and export rules do no I/O, so they are
//! tested without a platform.
//!
//! - [`relationships`]: the platform's `PLATFORM_RELATIONSHIPS` value, decoded into typed
//!   endpoints that keep every field, and the `tunnel:info` export for local use.
//! - [`ports`]: which local port a tunnel gets (chosen, remembered, or the first free).
//! - [`link`]: the one SSH connection per app that carries its tunnels, kept up with backoff.
//! - [`host`]: the tunnels of a profile, what the agent runs: open, close, list, an app's
//!   relationships; a table of tasks, one per app.
//! - `app`: the task that owns one app's tunnels and link, and answers the host's messages.
//! - `model`: the requests and reports the host's callers exchange with it; `error`: why
//!   opening failed.
//! - `cache`: an app's relationships, read over its connection once per deployment.
//! - `forward`: a tunnel's listener and the channel each local connection gets; `copy`: the
//!   bytes between them.

mod app;
mod cache;
mod copy;
mod error;
mod forward;
pub mod host;
pub mod link;
mod model;
pub mod ports;
pub mod relationships;

pub use cache::{between_markers, READ_RELATIONSHIPS};
pub use error::TunnelError;
pub use host::TunnelHost;
pub use model::{
    local_relationships, AppKey, CloseRequest, Counters, OpenFailure, OpenReport, OpenRequest,
    TunnelInfo, TunnelState,
};
pub use ports::PortError;

use std::fmt;
use std::num::NonZeroU16;

pub use relationships::{
    Endpoint, EndpointError, EndpointId, EndpointProblem, LocalRelationships, Relationship,
    Relationships, RelationshipsError,
};

/// A port on this machine that a tunnel listens on. Never 0: a tunnel's port is the one the
/// user connects to, so "any port" is resolved before a `LocalPort` exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LocalPort(NonZeroU16);

impl LocalPort {
    /// `None` for 0.
    pub fn new(port: u16) -> Option<LocalPort> {
        NonZeroU16::new(port).map(LocalPort)
    }

    pub fn get(self) -> u16 {
        self.0.get()
    }
}

impl fmt::Display for LocalPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
