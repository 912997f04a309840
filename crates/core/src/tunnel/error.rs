//! Why opening tunnels or reading an app's relationships failed, for a person and for the
//! shells' exit codes and error codes ([`Classify`]).

use super::model::AppKey;
use super::ports::PortError;
use super::RelationshipsError;
use crate::access::AccessError;
use crate::problem::{Classify, Problem};

#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    Relationships(#[from] RelationshipsError),
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("cannot read the relationships of {app}: {message}")]
    Read { app: AppKey, message: String },
    #[error("cannot reach {app}: {reason}")]
    Unreachable { app: AppKey, reason: String },
    #[error("{app} asks for a stronger sign-in before its tunnels can open: {message}")]
    StepUp {
        app: AppKey,
        step_up: Box<crate::api::StepUp>,
        message: String,
    },
    #[error("{app} needs a new sign-in before its tunnels can open: {reason}")]
    NeedsSignIn { app: AppKey, reason: String },
    #[error("--port chooses the port of one tunnel, but {count} would open: name one relationship with -r")]
    PortForMany { count: usize },
    #[error("{relationship} is already open on port {port}: close it first to move it")]
    AlreadyOpen { relationship: String, port: u16 },
    #[error("{app} has no relationships: there is nothing to tunnel to")]
    NoRelationships { app: AppKey },
    /// The session ended while these tunnels were opening: nothing outlives it.
    #[error(
        "the session ended while the tunnels of {app} were opening: sign in, then open them again"
    )]
    SessionEnded { app: AppKey },
}

impl TunnelError {
    /// The stronger authentication the platform asked for, when that is the problem.
    pub fn step_up(&self) -> Option<crate::api::StepUp> {
        match self {
            TunnelError::StepUp { step_up, .. } => Some(step_up.as_ref().clone()),
            TunnelError::Access(e) => e.step_up(),
            _ => None,
        }
    }
}

impl Classify for TunnelError {
    fn problem(&self) -> Problem {
        match self {
            TunnelError::Access(e) => e.problem(),
            TunnelError::Relationships(e) => e.problem(),
            TunnelError::Port(e) => e.problem(),
            TunnelError::Read { .. } => Problem::Other,
            TunnelError::Unreachable { .. } => Problem::Unreachable,
            TunnelError::NeedsSignIn { .. } | TunnelError::SessionEnded { .. } => Problem::SignIn,
            TunnelError::StepUp { step_up, .. } => Problem::StepUp((&step_up.kind).into()),
            TunnelError::PortForMany { .. }
            | TunnelError::AlreadyOpen { .. }
            | TunnelError::NoRelationships { .. } => Problem::Usage,
        }
    }
}
