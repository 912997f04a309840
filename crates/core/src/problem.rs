//! What an error means for a person, decided once, in core. Every module keeps its own small
//! error enum with the details; this module sorts them into the few things a shell can act
//! on: ask the user to sign in, ask for stronger authentication (and which kind), say the
//! platform is unreachable, say the request cannot be served as asked, or report the rest.
//!
//! The CLI turns a [`Problem`] into an exit code in one match; the desktop turns it into an
//! IPC `{code, message}` and a tray state. Neither looks inside core's error types.

use serde::Serialize;

use crate::api::{ApiError, StepUpKind};
use crate::auth::{AuthError, StoreError};
use crate::catalog::CatalogError;
use crate::cert::CertError;
use crate::openssh::OpensshError;
use crate::profile::ProfileError;
use crate::ssh::exec::ExecError;
use crate::ssh::terminal::TerminalError;
use crate::ssh::{ResolveError, SshUrlError};

/// Which stronger authentication the platform asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepUpNeed {
    Mfa,
    Sso,
    RecentLogin,
}

impl From<&StepUpKind> for StepUpNeed {
    fn from(kind: &StepUpKind) -> Self {
        match kind {
            StepUpKind::Mfa => StepUpNeed::Mfa,
            StepUpKind::Sso(_) => StepUpNeed::Sso,
            StepUpKind::RecentLogin => StepUpNeed::RecentLogin,
        }
    }
}

/// What a person has to do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "need", rename_all = "snake_case")]
pub enum Problem {
    /// Not signed in, or the session ended (expired, revoked, inactive, API token refused).
    SignIn,
    /// Signed in, but the platform demands stronger authentication.
    StepUp(StepUpNeed),
    /// The platform (API, sign-in server, certifier or SSH gateway) could not be reached.
    Unreachable,
    /// The request cannot be served as asked: an unknown project, environment or app, a choice
    /// to make, an environment without SSH, a bad profile or setting.
    Usage,
    /// Anything else: a local file that cannot be written, a platform answer that makes no
    /// sense, a bug.
    Other,
}

impl Problem {
    /// A stable short name, for machine-readable output (`sign_in`, `step_up_mfa`, …).
    pub fn code(self) -> &'static str {
        match self {
            Problem::SignIn => "sign_in",
            Problem::StepUp(StepUpNeed::Mfa) => "step_up_mfa",
            Problem::StepUp(StepUpNeed::Sso) => "step_up_sso",
            Problem::StepUp(StepUpNeed::RecentLogin) => "step_up_recent_login",
            Problem::Unreachable => "unreachable",
            Problem::Usage => "usage",
            Problem::Other => "other",
        }
    }
    /// The problem a [`code`](Problem::code) names (as sent by the agent to its clients).
    pub fn from_code(code: &str) -> Option<Problem> {
        Some(match code {
            "sign_in" => Problem::SignIn,
            "step_up_mfa" => Problem::StepUp(StepUpNeed::Mfa),
            "step_up_sso" => Problem::StepUp(StepUpNeed::Sso),
            "step_up_recent_login" => Problem::StepUp(StepUpNeed::RecentLogin),
            "unreachable" => Problem::Unreachable,
            "usage" => Problem::Usage,
            "other" => Problem::Other,
            _ => return None,
        })
    }
}

/// Errors that know what they mean for a person.
pub trait Classify {
    fn problem(&self) -> Problem;
}

/// The classification of any error core produces, found by its type; `None` for errors that
/// are not core's (the shells' own, I/O from elsewhere). Shells walk an error's chain with it
/// and take the first answer.
pub fn classify(e: &(dyn std::error::Error + 'static)) -> Option<Problem> {
    macro_rules! try_types {
        ($($t:ty),* $(,)?) => {
            $(if let Some(x) = e.downcast_ref::<$t>() {
                return Some(x.problem());
            })*
        };
    }
    try_types!(
        crate::access::AccessError,
        AuthError,
        StoreError,
        ApiError,
        CertError,
        CatalogError,
        ResolveError,
        SshUrlError,
        OpensshError,
        ProfileError,
        TerminalError,
        ExecError,
        crate::tunnel::RelationshipsError,
        crate::tunnel::EndpointError,
        crate::tunnel::TunnelError,
        crate::tunnel::PortError,
        crate::setup::SetupError,
        crate::settings::SettingsError,
    );
    #[cfg(unix)]
    try_types!(crate::agent::AgentError);
    None
}

impl Classify for AuthError {
    fn problem(&self) -> Problem {
        match self {
            AuthError::NotSignedIn | AuthError::SessionEnded(_) | AuthError::BadApiToken(_) => {
                Problem::SignIn
            }
            AuthError::Network { .. } => Problem::Unreachable,
            AuthError::NoRedirectPort
            | AuthError::LoginTimedOut(_)
            | AuthError::Cancelled
            | AuthError::Denied { .. }
            | AuthError::Refused { .. }
            | AuthError::Protocol(_)
            | AuthError::Files(_) => Problem::Other,
            AuthError::Store(e) => e.problem(),
        }
    }
}

impl Classify for StoreError {
    fn problem(&self) -> Problem {
        // No keyring is a setting to change (or a service to start), not a failure of Tether.
        match self {
            StoreError::Unavailable(_) | StoreError::Fixed => Problem::Usage,
            StoreError::Keyring(_) | StoreError::File { .. } => Problem::Other,
        }
    }
}

impl Classify for ApiError {
    fn problem(&self) -> Problem {
        match self {
            ApiError::Unauthorized(_) => Problem::SignIn,
            ApiError::StepUp(s) => Problem::StepUp((&s.kind).into()),
            ApiError::Network { .. } => Problem::Unreachable,
            ApiError::NotFound { .. } => Problem::Usage,
            ApiError::Http { .. } | ApiError::NotJson { .. } | ApiError::TooLarge { .. } => {
                Problem::Other
            }
        }
    }
}

impl Classify for CertError {
    fn problem(&self) -> Problem {
        match self {
            CertError::Auth(e) => e.problem(),
            CertError::StepUp(s) => Problem::StepUp((&s.kind).into()),
            CertError::Inactive(_) => Problem::SignIn,
            CertError::Network { .. } => Problem::Unreachable,
            CertError::Invalid(_)
            | CertError::Refused { .. }
            | CertError::Protocol(_)
            | CertError::Files(_)
            | CertError::BadKey { .. } => Problem::Other,
        }
    }
}

impl Classify for CatalogError {
    fn problem(&self) -> Problem {
        match self {
            CatalogError::Auth(e) => e.problem(),
            CatalogError::Api(e) => e.problem(),
            CatalogError::Resolve(e) => e.problem(),
        }
    }
}

impl Classify for ResolveError {
    fn problem(&self) -> Problem {
        match self {
            // The platform published a link Tether will not use: not the user's doing.
            ResolveError::BadLink(e) => e.problem(),
            _ => Problem::Usage,
        }
    }
}

impl Classify for SshUrlError {
    fn problem(&self) -> Problem {
        Problem::Other
    }
}

impl Classify for OpensshError {
    fn problem(&self) -> Problem {
        match self {
            OpensshError::NotText { .. }
            | OpensshError::BrokenBlock { .. }
            | OpensshError::NotAFile { .. }
            | OpensshError::Profile(_)
            | OpensshError::UnsafePath(_) => Problem::Usage,
            OpensshError::Write(_) | OpensshError::Read { .. } => Problem::Other,
        }
    }
}

impl Classify for ProfileError {
    fn problem(&self) -> Problem {
        Problem::Usage
    }
}

impl Classify for TerminalError {
    fn problem(&self) -> Problem {
        Problem::Usage
    }
}

impl Classify for ExecError {
    fn problem(&self) -> Problem {
        match self {
            ExecError::Connect { .. } | ExecError::Timeout(_) => Problem::Unreachable,
            ExecError::AuthFailed => Problem::SignIn,
            ExecError::HostKey(_) | ExecError::Ssh(_) | ExecError::OutputTooLarge => Problem::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::StepUp;
    use std::time::Duration;

    #[test]
    fn sign_in_problems_are_sign_in_wherever_they_surface() {
        let ended = || AuthError::SessionEnded("revoked".into());
        assert_eq!(ended().problem(), Problem::SignIn);
        assert_eq!(CertError::Auth(ended()).problem(), Problem::SignIn);
        assert_eq!(CatalogError::Auth(ended()).problem(), Problem::SignIn);
        assert_eq!(
            CertError::Inactive(Duration::from_secs(60)).problem(),
            Problem::SignIn
        );
        assert_eq!(
            ApiError::Unauthorized("expired".into()).problem(),
            Problem::SignIn
        );
    }

    #[test]
    fn step_ups_say_which_kind() {
        let mfa = StepUp::for_amr(vec!["mfa".into()], None);
        assert_eq!(
            ApiError::StepUp(mfa.clone()).problem(),
            Problem::StepUp(StepUpNeed::Mfa)
        );
        assert_eq!(
            CertError::StepUp(mfa).problem(),
            Problem::StepUp(StepUpNeed::Mfa)
        );
        let sso = StepUp::for_amr(vec!["sso:acme".into()], None);
        assert_eq!(
            CatalogError::Api(ApiError::StepUp(sso)).problem(),
            Problem::StepUp(StepUpNeed::Sso)
        );
        let recent = StepUp::for_amr(Vec::new(), Some(300));
        assert_eq!(
            ApiError::StepUp(recent).problem().code(),
            "step_up_recent_login"
        );
    }

    #[test]
    fn unreachable_and_usage_and_the_rest() {
        let net = AuthError::Network {
            url: "https://auth".into(),
            message: "refused".into(),
        };
        assert_eq!(net.problem(), Problem::Unreachable);
        assert_eq!(
            ResolveError::Paused { env: "main".into() }.problem(),
            Problem::Usage
        );
        assert_eq!(
            AuthError::Protocol("nonsense".into()).problem(),
            Problem::Other
        );
    }

    #[test]
    fn classification_is_found_through_an_error_chain_by_type() {
        let e = CatalogError::Resolve(ResolveError::NoDeployment { env: "x".into() });
        assert_eq!(classify(&e), Some(Problem::Usage));
        let io = std::io::Error::other("not core's");
        assert_eq!(classify(&io), None);
    }
}
