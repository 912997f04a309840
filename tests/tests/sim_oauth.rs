//! The simulator's authorization server and API: the login page driven by a real browser, the
//! code flow's checks (PKCE, single-use codes, state, redirect URIs), refresh rotation and
//! revocation, step-up, and the certifier's answers to bad keys.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tether_e2e::forms::{hidden_txn, FormAgent};
use tether_e2e::webdriver::Chromium;
use tether_e2e::*;
use tether_sim::SimOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const VERIFIER: &str = "m0nNVsBXyhQpP7sFJ2oV8cW3qg6ZQk9u5yTtR1eDfLaHwXxKjG4";

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn authorize_url(auth: &str, redirect: &str, state: &str, extra: &[(&str, &str)]) -> String {
    let mut url =
        url::Url::parse(&format!("{auth}/oauth2/authorize")).unwrap_or_else(|_| unreachable!());
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", "platform-cli")
        .append_pair("redirect_uri", redirect)
        .append_pair("state", state)
        .append_pair("scope", "offline_access")
        .append_pair("code_challenge", &challenge(VERIFIER))
        .append_pair("code_challenge_method", "S256")
        .append_pair("prompt", "consent");
    for (k, v) in extra {
        url.query_pairs_mut().append_pair(k, v);
    }
    url.to_string()
}

fn query_of(location: &str) -> HashMap<String, String> {
    url::Url::parse(location)
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

async fn exchange(auth: &str, form: &[(&str, &str)]) -> Result<(u16, Value)> {
    let resp = http()
        .post(format!("{auth}/oauth2/token"))
        .form(form)
        .send()
        .await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await?))
}

async fn redeem(auth: &str, code: &str, redirect: &str, verifier: &str) -> Result<(u16, Value)> {
    exchange(
        auth,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", "platform-cli"),
            ("redirect_uri", redirect),
            ("code_verifier", verifier),
        ],
    )
    .await
}

const REDIRECT: &str = "http://127.0.0.1:5003";

async fn code_for(auth: &str, state: &str) -> Result<String> {
    let location = FormAgent::new(auth)
        .login(&authorize_url(auth, REDIRECT, state, &[]), Some(ALICE_TOTP))
        .await?;
    let q = query_of(&location);
    assert_eq!(q.get("state").map(String::as_str), Some(state));
    q.get("code")
        .cloned()
        .ok_or_else(|| anyhow!("no code in {location}"))
}

/// Accepts one HTTP request on `listener` (the redirect) and answers it like a CLI would.
async fn accept_redirect(listener: tokio::net::TcpListener) -> Result<String> {
    let (mut sock, _) = listener.accept().await?;
    let mut buf = vec![0u8; 8192];
    let n = sock.read(&mut buf).await?;
    let request = String::from_utf8_lossy(&buf[..n]).into_owned();
    let target = request
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let body = "<!doctype html><title>Signed in</title><h1 id=done>You are signed in. You can close this window.</h1>";
    sock.write_all(
        format!("HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len())
            .as_bytes(),
    )
    .await?;
    Ok(target)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_browser_signs_in_with_password_totp_and_consent() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let auth = sim.info.auth_url.clone();
    // The redirect listener takes the first free port of 5000–5010, as the official client does.
    let mut listener = None;
    for port in 5000..=5010u16 {
        if let Ok(l) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            listener = Some((l, port));
            break;
        }
    }
    let (listener, port) = listener.context("no free port in 5000-5010")?;
    let redirect = format!("http://127.0.0.1:{port}");
    let state = "st-Ä/+= &x";
    let callback = tokio::spawn(accept_redirect(listener));

    let browser = Chromium::start().await?;
    let d = &browser.driver;
    d.goto(&authorize_url(&auth, &redirect, state, &[])).await?;
    let wait = Duration::from_secs(10);
    d.send_keys(&d.find("#username", wait).await?, "alice")
        .await?;
    d.send_keys(&d.find("#password", wait).await?, ALICE_PASSWORD)
        .await?;
    d.click_on("#submit", wait).await?;
    // Alice has an authenticator: the page asks for the current code.
    let totp = d.find("#totp", wait).await?;
    let shots = std::env::var_os("TETHER_SCREENSHOTS").map(std::path::PathBuf::from);
    if let Some(dir) = &shots {
        std::fs::create_dir_all(dir)?;
        d.screenshot(&dir.join("sim-login-totp.png")).await?;
    }
    d.send_keys(&totp, "000000").await?;
    d.click_on("#submit", wait).await?;
    let error = d.text(&d.find("#error", wait).await?).await?;
    assert!(error.contains("not valid"), "{error}");
    d.send_keys(&d.find("#totp", wait).await?, &totp_now(ALICE_TOTP)?)
        .await?;
    d.click_on("#submit", wait).await?;
    let allow = d.find("#allow", wait).await?;
    if let Some(dir) = &shots {
        d.screenshot(&dir.join("sim-login-consent.png")).await?;
    }
    d.click(&allow).await?;
    let target = tokio::time::timeout(Duration::from_secs(20), callback).await???;
    d.find("#done", wait).await?;
    browser.driver.quit().await?;

    let q = query_of(&format!("http://127.0.0.1{target}"));
    assert_eq!(
        q.get("state").map(String::as_str),
        Some(state),
        "state must come back verbatim"
    );
    let code = q.get("code").context("no code in the redirect")?;
    let (status, tokens) = redeem(&auth, code, &redirect, VERIFIER).await?;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().context("no access token")?;
    assert!(tokens["refresh_token"].is_string());
    assert_eq!(tokens["token_type"], "bearer");
    let me: Value = http()
        .get(format!("{}/users/me", sim.info.api_url))
        .bearer_auth(access)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(me["username"], "alice");
    // The JWT carries the claims the reference lists, with MFA.
    let payload = access.split('.').nth(1).context("not a JWT")?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload)?)?;
    assert_eq!(claims["sub"], me["id"]);
    assert_eq!(claims["amr"], serde_json::json!(["pwd", "mfa"]));
    for claim in ["access_id", "jti", "auth_time", "scp", "exp"] {
        assert!(!claims[claim].is_null(), "missing claim {claim}: {claims}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pkce_verifier_that_does_not_match_is_refused() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let auth = &sim.info.auth_url;
    let code = code_for(auth, "s1").await?;
    let (status, body) = redeem(
        auth,
        &code,
        REDIRECT,
        "another-verifier-that-is-long-enough-0123456789abc",
    )
    .await?;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert!(body["error_description"]
        .as_str()
        .unwrap_or_default()
        .contains("PKCE"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorization_code_works_once_and_a_replay_ends_its_session() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let auth = &sim.info.auth_url;
    let code = code_for(auth, "s2").await?;
    let (status, tokens) = redeem(auth, &code, REDIRECT, VERIFIER).await?;
    assert_eq!(status, 200, "{tokens}");
    let (status, body) = redeem(auth, &code, REDIRECT, VERIFIER).await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // The replay may be an attacker: the tokens the code produced no longer work.
    let resp = http()
        .get(format!("{}/users/me", sim.info.api_url))
        .bearer_auth(tokens["access_token"].as_str().unwrap_or_default())
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 401);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_is_required_and_echoed_verbatim_and_redirects_must_be_registered() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let auth = &sim.info.auth_url;
    // Missing state: the error goes back to the (valid) redirect.
    let url = authorize_url(auth, REDIRECT, "", &[]);
    let resp = http().get(url).send().await?;
    assert!(resp.status().is_redirection());
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert_eq!(
        query_of(location).get("error").map(String::as_str),
        Some("invalid_request")
    );

    // An unusual state comes back byte for byte.
    let odd = "a b&c=d/é?#%";
    let code_location = FormAgent::new(auth)
        .login(&authorize_url(auth, REDIRECT, odd, &[]), Some(ALICE_TOTP))
        .await?;
    assert_eq!(
        query_of(&code_location).get("state").map(String::as_str),
        Some(odd)
    );

    // Unregistered redirects are refused on the page and never redirected to.
    for bad in [
        "http://127.0.0.1:5011",
        "http://localhost:5000",
        "https://evil.example/cb",
        "http://127.0.0.1:4999",
    ] {
        let resp = http()
            .get(authorize_url(auth, bad, "s", &[]))
            .send()
            .await?;
        assert_eq!(resp.status().as_u16(), 400, "{bad}");
        assert!(
            resp.headers().get("location").is_none(),
            "{bad} was redirected to"
        );
        assert!(resp.text().await?.contains("not registered"), "{bad}");
    }
    // And a token request cannot swap the redirect either.
    let code = code_for(auth, "s3").await?;
    let (status, body) = redeem(auth, &code, "http://127.0.0.1:5004", VERIFIER).await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_denied_and_max_age_and_step_up_amr() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let auth = &sim.info.auth_url;
    let agent = FormAgent::new(auth);
    agent
        .login(
            &authorize_url(auth, REDIRECT, "first", &[]),
            Some(ALICE_TOTP),
        )
        .await?;

    // The browser session is reused: the next authorize goes straight to consent...
    let html = agent
        .http
        .get(authorize_url(auth, REDIRECT, "again", &[]))
        .send()
        .await?
        .text()
        .await?;
    assert!(html.contains("id=\"allow\""), "{html}");
    let txn = hidden_txn(&html)?;
    let resp = agent
        .post(&[("txn", &txn), ("step", "consent"), ("decision", "deny")])
        .await?;
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let q = query_of(location);
    assert_eq!(q.get("error").map(String::as_str), Some("access_denied"));
    assert_eq!(q.get("state").map(String::as_str), Some("again"));

    // ...unless max_age asks for a fresher login.
    let html = agent
        .http
        .get(authorize_url(auth, REDIRECT, "fresh", &[("max_age", "0")]))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        html.contains("id=\"password\""),
        "max_age=0 must ask for the password again"
    );

    // Bob has no authenticator: demanding MFA cannot succeed, and says why.
    let bob = FormAgent::new(auth);
    let html = bob
        .http
        .get(authorize_url(auth, REDIRECT, "b", &[("amr", "mfa")]))
        .send()
        .await?
        .text()
        .await?;
    let txn = hidden_txn(&html)?;
    let resp = bob
        .post(&[
            ("txn", &txn),
            ("step", "password"),
            ("username", "bob"),
            ("password", "hunter2-but-longer"),
        ])
        .await?;
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let q = query_of(location);
    assert_eq!(q.get("error").map(String::as_str), Some("access_denied"));
    assert!(q
        .get("error_description")
        .is_some_and(|d| d.contains("MFA")));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_rotate_and_die_with_revocation() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let auth = &sim.info.auth_url;
    let code = code_for(auth, "r").await?;
    let (_, tokens) = redeem(auth, &code, REDIRECT, VERIFIER).await?;
    let first = tokens["refresh_token"]
        .as_str()
        .context("no refresh token")?
        .to_string();
    let refresh = |t: String| async move {
        exchange(
            auth,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &t),
                ("client_id", "platform-cli"),
            ],
        )
        .await
    };
    let (status, rotated) = refresh(first.clone()).await?;
    assert_eq!(status, 200, "{rotated}");
    let second = rotated["refresh_token"]
        .as_str()
        .context("no rotated token")?
        .to_string();
    assert_ne!(first, second);

    let resp = http()
        .post(format!("{auth}/oauth2/revoke"))
        .form(&[
            ("token", second.as_str()),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    let (status, body) = refresh(second).await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(body["error_description"]
        .as_str()
        .unwrap_or_default()
        .contains("log in again"));
    // The session's access tokens are revoked with it.
    let resp = http()
        .get(format!("{}/users/me", sim.info.api_url))
        .bearer_auth(rotated["access_token"].as_str().unwrap_or_default())
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_asks_for_step_up_on_mfa_organizations() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let api = &sim.info.api_url;
    let plain = api_token_login(&sim.info, ALICE_TOKEN).await?;
    let resp = http()
        .get(format!("{api}/projects/{MFA_PROJECT}/environments"))
        .bearer_auth(&plain)
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 403);
    let header = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        header.contains("error=\"insufficient_user_authentication\""),
        "{header}"
    );
    let body: Value = resp.json().await?;
    assert_eq!(body["amr"], serde_json::json!(["mfa"]));
    assert_eq!(
        body["message"],
        "Multi-factor authentication (MFA) is required."
    );

    let mfa = api_token_login(&sim.info, ALICE_MFA_TOKEN).await?;
    let envs: Value = http()
        .get(format!("{api}/projects/{MFA_PROJECT}/environments"))
        .bearer_auth(&mfa)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(envs[0]["machine_name"], MFA_ENV_MACHINE);

    // Extended access lists what the user may reach, with the project refs link.
    let me: Value = http()
        .get(format!("{api}/users/me"))
        .bearer_auth(&plain)
        .send()
        .await?
        .json()
        .await?;
    let access: Value = http()
        .get(format!(
            "{api}/users/{}/extended-access?filter[resource_type]=project",
            me["id"].as_str().unwrap_or_default()
        ))
        .bearer_auth(&plain)
        .send()
        .await?
        .json()
        .await?;
    let href = access["_links"]["ref:projects:0"]["href"]
        .as_str()
        .context("no refs link")?;
    let refs: Value = http()
        .get(format!("{api}{href}"))
        .bearer_auth(&plain)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(refs[DEMO_PROJECT]["title"], "Storefront");
    assert_eq!(access["items"].as_array().map(Vec::len), Some(3));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_certifier_refuses_what_is_not_a_public_key() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let access = api_token_login(&sim.info, ALICE_TOKEN).await?;
    let url = format!("{}/ssh", sim.info.auth_url);
    for (body, expect) in [
        (
            serde_json::json!({ "key": "ssh-ed25519 not-base64!!" }),
            "not an OpenSSH public key",
        ),
        (
            serde_json::json!({ "key": "" }),
            "not an OpenSSH public key",
        ),
        (serde_json::json!({ "nokey": true }), "\"key\""),
    ] {
        let resp = http()
            .post(&url)
            .bearer_auth(&access)
            .json(&body)
            .send()
            .await?;
        assert_eq!(resp.status().as_u16(), 400, "{body}");
        let err: Value = resp.json().await?;
        assert!(
            err["message"].as_str().unwrap_or_default().contains(expect),
            "{err}"
        );
        assert_eq!(err["status"], 400);
    }
    let resp = http()
        .post(&url)
        .bearer_auth(&access)
        .body("not json")
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 400);
    let resp = http()
        .post(&url)
        .json(&serde_json::json!({ "key": "ssh-ed25519 AAAA" }))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 401, "no token");
    Ok(())
}
