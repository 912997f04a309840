//! The secrets of a signed-in user, gathered for suites that search what Tether wrote (its
//! logs, a support bundle) for them.

use anyhow::Result;

use crate::cli::User;

/// The lines of the session's private key file, its armour aside.
pub fn key_lines(user: &User) -> Result<Vec<(&'static str, String)>> {
    let key = std::fs::read_to_string(user.session_dir().join("id_ed25519"))?;
    Ok(key
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .map(|l| ("a line of the private key", l.to_string()))
        .collect())
}

/// A token, and a JWT's signature part alone (a secret too).
pub fn token_secrets(what: &'static str, t: &str) -> Vec<(&'static str, String)> {
    let mut v = vec![(what, t.to_string())];
    if let Some(sig) = t.rsplit('.').next().filter(|s| s.len() < t.len()) {
        v.push((what, sig.to_string()));
    }
    v
}
