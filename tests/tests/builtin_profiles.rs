//! The built-in profiles as a person who installs Tether meets them: `tether login` sends them
//! to the platform's real sign-in (`https://auth.upsun.com`, with the vendor's client id, as the
//! official client's `internal/config/platformsh-cli.yaml` and `upsun-cli.yaml` say), and
//! `profile:info` shows the gateways' names and bundled host keys. Nothing here reaches the
//! network: the test reads the URL `login --no-browser` prints, then stops it.

use std::collections::HashMap;

use anyhow::{ensure, Context, Result};
use tether_e2e::cli::User;

/// A user with no profile of the simulator's: `--profile NAME` picks a built-in one.
fn user() -> Result<User> {
    let home = tempfile::Builder::new().prefix("tether-home-").tempdir()?;
    Ok(User {
        profile: home.path().join("unused.toml"),
        home,
        store: tether_e2e::cli::Store::File,
    })
}

/// The authorize URL `tether login --no-browser --profile NAME` prints.
async fn authorize_url(user: &User, profile: &str) -> Result<url::Url> {
    let pending = user.start_login(&["--profile", profile]).await?;
    Ok(url::Url::parse(&pending.url)?)
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
