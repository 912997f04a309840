// Shared by the build scripts of `tether` (crates/cli) and the desktop app (src-tauri), which
// `include!` it: the commit a binary is built from, for `tether --version` and the window's
// footer. `TETHER_COMMIT` when set (a build from a source archive can name it), else
// `git rev-parse --short HEAD`, else "unknown" (no git, or not a checkout).

fn git(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (out.status.success() && !text.is_empty()).then(|| text.to_string())
}

/// Sets `TETHER_COMMIT` for the crate, and has cargo run the script again when HEAD moves:
/// HEAD itself (a checkout), the branch it names (a commit) and the packed refs. Only files
/// that exist: cargo reruns the script every time for one that does not.
fn embed_commit() {
    println!("cargo:rerun-if-env-changed=TETHER_COMMIT");
    let commit = std::env::var("TETHER_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    let here = std::env::current_dir().unwrap_or_default();
    for path in watched
        .iter()
        .filter_map(|name| git(&["rev-parse", "--git-path", name]))
        .map(|p| here.join(std::path::PathBuf::from(p)))
        .filter(|p| p.is_file())
    {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    println!("cargo:rustc-env=TETHER_COMMIT={commit}");
}
