//! Tunnels to an app's services: the relationships an app declares (what there is to reach and
//! how), and the local side of a tunnel. The tunnel host (listeners, the SSH connection that
//! carries them, reconnection) builds on these types; nothing here does I/O, so the decoding
//! and export rules are tested without a platform.
//!
//! - [`relationships`]: the platform's `PLATFORM_RELATIONSHIPS` value, decoded into typed
//!   endpoints that keep every field, and the `tunnel:info` export for local use.

pub mod relationships;

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
