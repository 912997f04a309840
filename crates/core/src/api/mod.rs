//! A typed client of the platform API. Every failure becomes an [`ApiError`] a person can act
//! on: 401 means sign in again; 403 with `insufficient_user_authentication` (RFC 9470) becomes a
//! [`StepUp`] that the shells turn into a login with the right `amr`/`max_age`.
//!
//! `client` is the HTTP side (one GET with the session's token, errors a person can act on),
//! `model` the platform's JSON (with ids that are checked before they reach a URL), and
//! `step_up` the platform's demand for a stronger sign-in.

mod client;
mod model;
mod step_up;

pub use client::{Api, BODY_LIMIT};
pub(crate) use client::{ReadError, Reply};
pub use model::{
    App, AppName, Deployment, Environment, EnvironmentId, IdError, Project, ProjectId, User,
};
pub use step_up::{parse_step_up, StepUp, StepUpKind};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the platform no longer accepts this session ({0}): sign in again")]
    Unauthorized(String),
    #[error("{}", .0.message(false))]
    StepUp(StepUp),
    #[error("{what} was not found: {message}")]
    NotFound { what: String, message: String },
    #[error("the platform answered HTTP {status} for {url}: {message}")]
    Http {
        status: u16,
        url: String,
        message: String,
    },
    #[error("the platform answered HTTP {status} for {url} with something that is not JSON; try again later")]
    NotJson { status: u16, url: String },
    #[error(
        "the platform's answer for {url} is larger than the {} MiB Tether reads; try again \
         later, and report it if it persists",
        .limit / (1024 * 1024)
    )]
    TooLarge { url: String, limit: usize },
    #[error("cannot reach the platform at {url}: {message}")]
    Network { url: String, message: String },
}
