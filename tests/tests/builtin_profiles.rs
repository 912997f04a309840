//! The built-in profiles as a person who installs Tether meets them: `tether login` sends them
//! to the platform's real sign-in (`https://auth.upsun.com`, with the vendor's client id, as the
//! official client's `internal/config/platformsh-cli.yaml` and `upsun-cli.yaml` say), and
//! `profile:info` shows the gateways' names and bundled host keys. Nothing here reaches the
//! network: the test reads the URL `login --no-browser` prints, then stops it.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use tether_e2e::cli::User;
use tokio::io::AsyncBufReadExt;

/// A user with no profile of the simulator's: `--profile NAME` picks a built-in one.
fn user() -> Result<User> {
    let home = tempfile::Builder::new().prefix("tether-home-").tempdir()?;
    Ok(User {
        profile: home.path().join("unused.toml"),
        home,
        store: tether_e2e::cli::Store::File,
    })
}

/// The authorize URL `tether --profile NAME login --no-browser` prints.
async fn authorize_url(user: &User, profile: &str) -> Result<url::Url> {
    let mut cmd = tokio::process::Command::from(user.tether(&[
        "--profile",
        profile,
        "login",
        "--no-browser",
        "--timeout",
        "30",
    ])?);
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let mut lines = tokio::io::BufReader::new(child.stderr.take().context("no stderr")?).lines();
    let mut seen = String::new();
    let url = loop {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .with_context(|| format!("no URL within 20 s: {seen}"))??
            .with_context(|| format!("login ended without a URL: {seen}"))?;
        seen.push_str(&line);
        if let Some(u) = line.split_whitespace().find(|w| w.starts_with("https://")) {
            break u.to_string();
        }
    };
    let _ = child.kill().await;
    Ok(url::Url::parse(&url)?)
}

#[tokio::test]
async fn the_builtin_profiles_sign_in_at_auth_upsun_com_with_their_client_ids() -> Result<()> {
    let user = user()?;
    for (profile, client_id) in [("platformsh", "platform-cli"), ("upsun", "upsun-cli")] {
        let url = authorize_url(&user, profile).await?;
        ensure!(
            url.as_str()
                .starts_with("https://auth.upsun.com/oauth2/authorize?"),
            "{profile}: {url}"
        );
        let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
        ensure!(
            q.get("client_id").map(String::as_str) == Some(client_id),
            "{url}"
        );
        ensure!(q.get("code_challenge_method").map(String::as_str) == Some("S256"));
        let redirect = q.get("redirect_uri").context("no redirect_uri")?;
        let port: u16 = redirect
            .strip_prefix("http://127.0.0.1:")
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .with_context(|| format!("redirect {redirect}"))?;
        ensure!((5000..=5010).contains(&port), "{redirect}");
    }
    Ok(())
}

#[tokio::test]
async fn profile_info_shows_the_real_gateways() -> Result<()> {
    let user = user()?;
    let out = user
        .ok(
            &["--profile", "upsun", "--format", "json", "profile:info"],
            None,
        )
        .await?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    ensure!(v["api_url"] == "https://api.upsun.com/", "{v}");
    ensure!(
        v["ssh_host_patterns"] == serde_json::json!(["*.platform.sh", "*.upsun.com"]),
        "{v}"
    );
    Ok(())
}
