//! tether-core: everything Tether does, with no UI. The desktop shell (`src-tauri`) and the
//! `tether` command are thin adapters over this crate; side effects (paths, clock, profile,
//! listeners, shutdown) are passed in by them.

pub mod profile;

pub use profile::{Profile, ProfileError};
