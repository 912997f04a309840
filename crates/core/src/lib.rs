//! tether-core: everything Tether does, with no UI. The desktop shell (`src-tauri`) and the
//! `tether` command are thin adapters over this crate; side effects (paths, clock, profile,
//! listeners, shutdown) are passed in by them.

pub mod access;
pub mod activity;
#[cfg(unix)]
pub mod agent;
pub mod api;
pub mod auth;
pub mod catalog;
pub mod cert;
pub mod clients;
pub mod context;
pub mod db;
pub mod deployment;
pub mod doctor;
pub mod escape;
pub mod guard;
pub mod memory;
pub mod mounts;
pub mod openssh;
pub mod private_files;
pub mod problem;
pub mod profile;
pub mod routes;
pub mod secret;
pub mod select;
pub mod settings;
pub mod setup;
pub mod size;
pub mod ssh;
pub mod transfer;
pub mod tunnel;

pub use context::{Clock, ManualClock, Paths, SystemClock};
pub use profile::{Profile, ProfileError};
pub use secret::Sensitive;
