//! Sessions shared by several processes: parallel commands refresh the access token one at a
//! time (refresh tokens rotate, so a race would sign the user out), and logout revokes.
//! Renewal by the agent is in `agent.rs`.

use anyhow::Result;
use std::time::Duration;
use tether_e2e::cli::User;
use tether_e2e::*;
use tether_sim::SimOptions;

/// A simulator whose access tokens are shorter than the refresh margin, so that every command
/// refreshes, and Alice signed in to it through a real browser.
async fn signed_in_with_short_tokens() -> Result<(tether_sim::SimHandle, User)> {
    let sim = demo_sim(SimOptions {
        access_token_lifetime: Duration::from_secs(30),
        ..SimOptions::default()
    })
    .await?;
    let user = User::new(&sim.info, false)?;
    user.sign_in_with_chromium("alice", ALICE_PASSWORD, Some(ALICE_TOTP))
        .await?;
    Ok((sim, user))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_processes_refresh_one_at_a_time() -> Result<()> {
    // Refresh tokens rotate and a reused one ends the session, so a race would sign the user
    // out.
    let (sim, user) = signed_in_with_short_tokens().await?;
    let before = user.stored_session()?;

    let runs = (0..6).map(|_| user.run(&["auth:info", "-P", "username"], None));
    for out in futures::future::join_all(runs).await {
        let out = out?;
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "alice",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let after = user.stored_session()?;
    assert_ne!(
        before["refresh_token"], after["refresh_token"],
        "the refresh token rotated"
    );

    // Logout revokes at the platform: the last refresh token no longer works there.
    user.ok(&["logout"], None).await?;
    let resp = http()
        .post(format!("{}/oauth2/token", sim.info.auth_url))
        .form(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                after["refresh_token"].as_str().unwrap_or_default(),
            ),
            ("client_id", "tether"),
        ])
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 400);
    Ok(())
}

/// The stored session, as the file store keeps it.
fn stored_keys(user: &User) -> Result<Vec<String>> {
    let path = user.session_dir().join("tokens.json");
    if !path.exists() {
        return Ok(Vec::new());
    }
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    Ok(v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_outage_is_not_a_sign_out_but_a_refused_refresh_is() -> Result<()> {
    use tether_sim::state::RenewalFailure;
    let (sim, user) = signed_in_with_short_tokens().await?;
    let info = || user.run(&["auth:info", "-P", "username"], None);

    // The sign-in server has a bad moment: the command says it is unreachable (exit 5) and
    // why, and the session is kept for when it is back.
    for failure in [
        RenewalFailure::TemporarilyUnavailable,
        RenewalFailure::BadGateway,
    ] {
        sim.set_renewal_failure(Some(failure));
        let out = info().await?;
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(5), "{failure:?}: {err}");
        assert!(err.contains("not a sign-out"), "{err}");
        assert!(stored_keys(&user)?.contains(&"session".to_string()));
    }
    sim.set_renewal_failure(None);
    let out = info().await?;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "alice");

    // The platform refuses the grant: the session is over, and the command says so.
    sim.set_renewal_failure(Some(RenewalFailure::InvalidGrant));
    let out = info().await?;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("session has ended") && err.contains("invalid_grant"),
        "{err}"
    );
    assert!(stored_keys(&user)?.is_empty(), "{:?}", stored_keys(&user)?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certifier_that_refuses_the_token_gets_a_refreshed_one_and_the_session_goes_on(
) -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let user = User::signed_in(&sim.info, ALICE_TOKEN).await?;
    let access_token = || user.stored_token("access_token");
    // The platform ends the access token early; it has not expired, so nothing refreshes it
    // before the certifier answers 401.
    let before = access_token()?;
    assert!(sim.end_access_token(&before));
    let out = user.run(&["ssh-cert:load", "--new"], None).await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(access_token()?, before, "the refusal refreshed the token");
    Ok(())
}
