//! Embeds the commit the command is built from, for `tether --version`: `TETHER_COMMIT` when
//! set (a build from a source archive can name it), else `git rev-parse --short HEAD`, else
//! "unknown" (no git, or not a checkout).

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (out.status.success() && !text.is_empty()).then(|| text.to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=TETHER_COMMIT");
    let commit = std::env::var("TETHER_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    // Build again when HEAD moves: HEAD itself (a checkout), the branch it names (a commit) and
    // the packed refs. Only files that exist: cargo reruns the script every time for one that
    // does not.
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name]).map(PathBuf::from) {
            if path.is_file() {
                let path = std::env::current_dir().map_or(path.clone(), |d| d.join(&path));
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    println!("cargo:rustc-env=TETHER_COMMIT={commit}");
}
