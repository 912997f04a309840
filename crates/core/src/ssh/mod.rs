//! Reaching apps over SSH: the checked [`SshUrl`], resolution from what the user chose, the
//! system `ssh` command line for a session, the user's terminal emulator, and commands run
//! in-process over russh.

pub mod command;
pub mod connect;
pub mod exec;
mod outbox;
pub mod resolve;
pub mod terminal;
pub mod trust;
pub mod url;

pub use resolve::{resolve, ResolveError, Selection};
pub use url::{remote_command, SshUrl, SshUrlError};
