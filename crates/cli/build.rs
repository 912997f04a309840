//! Embeds the commit the command is built from, for `tether --version`
//! (`build-support/commit.rs`, shared with the desktop app).

include!("../../build-support/commit.rs");

fn main() {
    embed_commit();
}
