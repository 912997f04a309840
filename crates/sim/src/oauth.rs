//! The authorization server: `/oauth2/authorize` (the real login page with password, TOTP and
//! consent), `/oauth2/token` (authorization code with PKCE S256, refresh with rotation, API
//! tokens), and `/oauth2/revoke`. Errors follow RFC 6749: problems with the client or the
//! redirect URI are shown on the page, everything else goes back to the client's redirect.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State as AxState};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::pages;
use crate::state::{
    hash_secret, now, random_token, BrowserSession, CodeEntry, Grant, LoginTxn, RedeemedCode, State,
};

const SESSION_COOKIE: &str = "tether_sim_session";
/// A login page left open longer than this must be started again.
const TXN_LIFETIME: u64 = 15 * 60;

type Params = HashMap<String, String>;

/// Whether `uri` is a redirect the server accepts: the official client's loopback range
/// `http://127.0.0.1:5000`–`5010` (any path), or one of the fixture's extra URIs exactly.
pub fn redirect_allowed(uri: &str, extra: &[String]) -> bool {
    if extra.iter().any(|e| e == uri) {
        return true;
    }
    let Ok(url) = url::Url::parse(uri) else {
        return false;
    };
    url.scheme() == "http"
        && url.host_str() == Some("127.0.0.1")
        && matches!(url.port(), Some(5000..=5010))
        && url.username().is_empty()
        && url.password().is_none()
        && url.fragment().is_none()
}

fn redirect_with(redirect_uri: &str, pairs: &[(&str, &str)]) -> Response {
    match url::Url::parse(redirect_uri) {
        Ok(mut url) => {
            {
                let mut q = url.query_pairs_mut();
                for (k, v) in pairs {
                    q.append_pair(k, v);
                }
            }
            Redirect::to(url.as_str()).into_response()
        }
        Err(_) => error_page(
            StatusCode::BAD_REQUEST,
            "Invalid redirect",
            "The redirect URI is malformed.",
        ),
    }
}

fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    (status, Html(pages::error(title, message))).into_response()
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn is_pkce_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// `GET /oauth2/authorize`.
pub async fn authorize(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    Query(q): Query<Params>,
) -> Response {
    let fixture = state.fixture();
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    let client_id = get("client_id");
    if !fixture.clients.iter().any(|c| c == client_id) {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Unknown application",
            &format!("The application {client_id:?} is not registered with this platform."),
        );
    }
    let redirect_uri = get("redirect_uri");
    if !redirect_allowed(redirect_uri, &fixture.extra_redirect_uris) {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Invalid redirect",
            &format!(
                "The redirect URI {redirect_uri:?} is not registered. Command-line clients must listen on http://127.0.0.1 ports 5000 to 5010."
            ),
        );
    }
    let client_state = get("state");
    let invalid = |desc: &str| {
        let mut pairs = vec![("error", "invalid_request"), ("error_description", desc)];
        if !client_state.is_empty() {
            pairs.push(("state", client_state));
        }
        redirect_with(redirect_uri, &pairs)
    };
    if get("response_type") != "code" {
        return redirect_with(
            redirect_uri,
            &[
                ("error", "unsupported_response_type"),
                ("state", client_state),
            ],
        );
    }
    if client_state.is_empty() {
        return invalid("state is required");
    }
    if get("code_challenge_method") != "S256" {
        return invalid("code_challenge_method must be S256");
    }
    let challenge = get("code_challenge");
    if challenge.len() != 43 || URL_SAFE_NO_PAD.decode(challenge).is_err() {
        return invalid("code_challenge must be a base64url SHA-256 digest");
    }
    let max_age = match q.get("max_age") {
        Some(v) => match v.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => return invalid("max_age must be a number of seconds"),
        },
        None => None,
    };
    let required_amr: Vec<String> = get("amr").split_whitespace().map(str::to_string).collect();
    if let Some(unknown) = required_amr.iter().find(|a| *a != "mfa" && *a != "pwd") {
        return redirect_with(
            redirect_uri,
            &[
                ("error", "access_denied"),
                (
                    "error_description",
                    &format!("authentication method {unknown:?} is not available on this platform"),
                ),
                ("state", client_state),
            ],
        );
    }

    let mut txn = LoginTxn {
        client_id: client_id.to_string(),
        redirect_uri: redirect_uri.to_string(),
        state: client_state.to_string(),
        code_challenge: challenge.to_string(),
        scope: get("scope")
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        required_amr,
        user_id: None,
        amr: Vec::new(),
        auth_time: 0,
        created: now(),
    };
    // An earlier sign-in in this browser counts unless max_age asks for a fresher one.
    if let Some(session) = cookie_value(&headers, SESSION_COOKIE)
        .and_then(|id| state.lock().browser_sessions.get(id).cloned())
    {
        let fresh = max_age.is_none_or(|m| now().saturating_sub(session.auth_time) < m);
        if fresh {
            txn.user_id = Some(session.user_id);
            txn.amr = session.amr;
            txn.auth_time = session.auth_time;
        }
    }
    let id = random_token(24);
    state.lock().txns.insert(id.clone(), txn.clone());
    next_step(&state, &id, &txn, None)
}

/// Shows what the transaction needs next: password, one-time code, or consent.
fn next_step(state: &State, id: &str, txn: &LoginTxn, error: Option<&str>) -> Response {
    let Some(user) = txn.user_id.as_deref().and_then(|u| state.user(u)) else {
        return login_page(state, id, error, "").into_response();
    };
    let has_mfa = txn.amr.iter().any(|a| a == "mfa");
    let demanded = txn.required_amr.iter().any(|a| a == "mfa");
    let wants_mfa = demanded || (user.totp_secret.is_some() && !user.mfa_only_when_required);
    if wants_mfa && !has_mfa {
        if user.totp_secret.is_none() {
            state.lock().txns.remove(id);
            return redirect_with(
                &txn.redirect_uri,
                &[
                    ("error", "access_denied"),
                    (
                        "error_description",
                        "Multi-factor authentication (MFA) is required, but this account has no authenticator app set up.",
                    ),
                    ("state", &txn.state),
                ],
            );
        }
        let code = user
            .totp_secret
            .as_deref()
            .and_then(current_code)
            .filter(|_| is_demo_user(state, &user.username));
        let hint = code.map(|c| format!("Demo platform: {}'s current code is {c}.", user.username));
        return Html(pages::totp(id, error, &user.username, hint.as_deref())).into_response();
    }
    Html(pages::consent(id, &txn.client_id, &user.username)).into_response()
}

/// The password page, with the demo's hint and, when a test turned them on, the navigation
/// probes.
fn login_page(state: &State, id: &str, error: Option<&str>, username: &str) -> Html<String> {
    let probes = state
        .navigation_probes
        .load(std::sync::atomic::Ordering::SeqCst)
        .then_some(state.api_url.as_str());
    Html(pages::login(
        id,
        error,
        username,
        login_hint(state).as_deref(),
        probes,
    ))
}

/// The demo's sign-in hint: who to sign in as, on a platform serving a fixture with a demo.
fn login_hint(state: &State) -> Option<String> {
    state.fixture().demo.as_ref().map(|d| {
        format!(
            "Demo platform: sign in as {} with the password “{}”.",
            d.username, d.password
        )
    })
}

fn is_demo_user(state: &State, username: &str) -> bool {
    state
        .fixture()
        .demo
        .as_ref()
        .is_some_and(|d| d.username == username)
}

/// The code an authenticator shows now for a secret.
fn current_code(secret: &str) -> Option<String> {
    let bytes = totp_rs::Secret::Encoded(secret.to_string())
        .to_bytes()
        .ok()?;
    totp_rs::TOTP::new_unchecked(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes)
        .generate_current()
        .ok()
}

fn totp_ok(secret: &str, code: &str) -> bool {
    let Ok(bytes) = totp_rs::Secret::Encoded(secret.to_string()).to_bytes() else {
        return false;
    };
    let totp = totp_rs::TOTP::new_unchecked(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes);
    totp.check_current(code.trim()).unwrap_or(false)
}

/// `POST /oauth2/authorize`: one step of the login page.
pub async fn authorize_step(
    AxState(state): AxState<Arc<State>>,
    Form(form): Form<Params>,
) -> Response {
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let id = get("txn");
    let Some(mut txn) = state.lock().txns.get(id).cloned() else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Sign-in expired",
            "This sign-in page is no longer valid. Start the sign-in again from your application.",
        );
    };
    if now().saturating_sub(txn.created) > TXN_LIFETIME {
        state.lock().txns.remove(id);
        return error_page(
            StatusCode::BAD_REQUEST,
            "Sign-in expired",
            "This sign-in page was open too long. Start the sign-in again from your application.",
        );
    }
    let mut set_cookie = None;
    match get("step") {
        "password" => {
            let fixture = state.fixture();
            let name = get("username").trim();
            let user = fixture
                .users
                .iter()
                .find(|u| u.username == name || (!u.email.is_empty() && u.email == name));
            match user {
                Some(u) if u.password == get("password") => {
                    txn.user_id = Some(u.id.clone());
                    txn.amr = vec!["pwd".to_string()];
                    txn.auth_time = now();
                }
                _ => {
                    return (
                        StatusCode::UNAUTHORIZED,
                        login_page(&state, id, Some("Wrong username or password."), name),
                    )
                        .into_response()
                }
            }
        }
        "totp" => {
            let Some(user) = txn.user_id.as_deref().and_then(|u| state.user(u)) else {
                return login_page(&state, id, None, "").into_response();
            };
            let ok = user
                .totp_secret
                .as_deref()
                .is_some_and(|s| totp_ok(s, get("totp")));
            if !ok {
                return (
                    StatusCode::UNAUTHORIZED,
                    Html(pages::totp(
                        id,
                        Some("That code is not valid. Try the current one."),
                        &user.username,
                        None,
                    )),
                )
                    .into_response();
            }
            txn.amr = vec!["pwd".to_string(), "mfa".to_string()];
            txn.auth_time = now();
        }
        "consent" => {
            let Some(user_id) = txn.user_id.clone() else {
                return login_page(&state, id, None, "").into_response();
            };
            state.lock().txns.remove(id);
            if get("decision") != "allow" {
                return redirect_with(
                    &txn.redirect_uri,
                    &[
                        ("error", "access_denied"),
                        ("error_description", "The user denied the request."),
                        ("state", &txn.state),
                    ],
                );
            }
            let grant_id = state.new_grant(Grant {
                user_id,
                amr: txn.amr.clone(),
                auth_time: txn.auth_time,
                scope: txn.scope.clone(),
                grant_type: "authorization_code",
                revoked: false,
            });
            let code = random_token(24);
            state.lock().codes.insert(
                hash_secret(&code),
                CodeEntry {
                    client_id: txn.client_id.clone(),
                    redirect_uri: txn.redirect_uri.clone(),
                    code_challenge: txn.code_challenge.clone(),
                    grant_id,
                    expires_at: now() + state.lifetimes.code.as_secs(),
                    used: false,
                },
            );
            return redirect_with(&txn.redirect_uri, &[("code", &code), ("state", &txn.state)]);
        }
        _ => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Bad request",
                "Unknown sign-in step.",
            )
        }
    }
    // Password or code accepted: remember the browser unless the user still owes a code.
    if let Some(user_id) = &txn.user_id {
        let sid = random_token(24);
        state.lock().browser_sessions.insert(
            sid.clone(),
            BrowserSession {
                user_id: user_id.clone(),
                amr: txn.amr.clone(),
                auth_time: txn.auth_time,
            },
        );
        set_cookie = Some(format!(
            "{SESSION_COOKIE}={sid}; Path=/; HttpOnly; SameSite=Lax"
        ));
    }
    state.lock().txns.insert(id.to_string(), txn.clone());
    let mut response = next_step(&state, id, &txn, None);
    if let Some(c) = set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(header::SET_COOKIE, c);
    }
    response
}

/// An RFC 6749 §5.2 error.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

fn renewal_failure(failure: crate::state::RenewalFailure) -> Response {
    use crate::state::RenewalFailure;
    match failure {
        RenewalFailure::BadGateway => (
            StatusCode::BAD_GATEWAY,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
        )
            .into_response(),
        RenewalFailure::TemporarilyUnavailable => oauth_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "The service is under maintenance.",
        ),
        RenewalFailure::InvalidGrant => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "The session has ended: log in again.",
        ),
    }
}

fn token_response(state: &State, grant_id: &str, with_refresh: bool) -> Response {
    let Some((access, claims)) = state.issue_access_token(grant_id) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "the account no longer exists",
        );
    };
    let mut body = json!({
        "access_token": access,
        "expires_in": state.lifetimes.access_token.as_secs(),
        "token_type": "bearer",
        "scope": claims.scp.join(" "),
    });
    if with_refresh {
        body["refresh_token"] = json!(state.issue_refresh_token(grant_id));
    }
    (
        StatusCode::OK,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(body),
    )
        .into_response()
}

/// `POST /oauth2/token`.
pub async fn token(AxState(state): AxState<Arc<State>>, Form(form): Form<Params>) -> Response {
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let fixture = state.fixture();
    if !fixture.clients.iter().any(|c| c == get("client_id")) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client_id",
        );
    }
    if matches!(get("grant_type"), "refresh_token" | "api_token") {
        if let Some(failure) = *state
            .renewal_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
        {
            return renewal_failure(failure);
        }
    }
    match get("grant_type") {
        "authorization_code" => {
            let key = hash_secret(get("code"));
            let mut inner = state.lock();
            let Some(entry) = inner.codes.get_mut(&key) else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "unknown authorization code",
                );
            };
            if entry.used {
                // A replayed code may be stolen: end the session it started (RFC 6749 §4.1.2).
                let grant_id = entry.grant_id.clone();
                if let Some(g) = inner.grants.get_mut(&grant_id) {
                    g.revoked = true;
                }
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "the authorization code was already used",
                );
            }
            entry.used = true;
            let entry = entry.clone();
            drop(inner);
            if entry.expires_at < now() {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "the authorization code expired",
                );
            }
            if entry.client_id != get("client_id") || entry.redirect_uri != get("redirect_uri") {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "client_id or redirect_uri does not match the authorization request",
                );
            }
            let verifier = get("code_verifier");
            if !is_pkce_verifier(verifier) || pkce_challenge(verifier) != entry.code_challenge {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "PKCE verification failed",
                );
            }
            state.lock().redeemed_codes.push(RedeemedCode {
                code: get("code").to_string(),
                verifier: verifier.to_string(),
            });
            token_response(&state, &entry.grant_id, true)
        }
        "refresh_token" => {
            let key = hash_secret(get("refresh_token"));
            let mut inner = state.lock();
            let Some(entry) = inner.refresh_tokens.get_mut(&key) else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "unknown refresh token: log in again",
                );
            };
            let grant_id = entry.grant_id.clone();
            let reused = entry.used;
            entry.used = true;
            let revoked = inner.grants.get(&grant_id).is_none_or(|g| g.revoked);
            if reused {
                if let Some(g) = inner.grants.get_mut(&grant_id) {
                    g.revoked = true;
                }
            }
            drop(inner);
            if revoked || reused {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "The session has ended: log in again.",
                );
            }
            token_response(&state, &grant_id, true)
        }
        "api_token" => {
            let presented = get("api_token");
            let Some(t) = fixture
                .api_tokens
                .iter()
                .find(|t| !presented.is_empty() && t.token == presented)
            else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "invalid API token",
                );
            };
            let Some(user) = fixture.user_by_name(&t.user) else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "invalid API token",
                );
            };
            let mut amr = vec!["api_token".to_string()];
            if t.mfa {
                amr.push("mfa".to_string());
            }
            let grant_id = state.new_grant(Grant {
                user_id: user.id.clone(),
                amr,
                auth_time: now(),
                scope: Vec::new(),
                grant_type: "api_token",
                revoked: false,
            });
            token_response(&state, &grant_id, false)
        }
        "" => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "grant_type is required",
        ),
        other => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("grant type {other:?} is not supported"),
        ),
    }
}

/// `POST /oauth2/revoke` (RFC 7009): revoking either token of a session ends the session.
pub async fn revoke(AxState(state): AxState<Arc<State>>, Form(form): Form<Params>) -> Response {
    let token = form.get("token").map(String::as_str).unwrap_or("");
    if token.is_empty() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is required",
        );
    }
    let grant_id = state
        .lock()
        .refresh_tokens
        .get(&hash_secret(token))
        .map(|e| e.grant_id.clone())
        .or_else(|| state.decode_access_token(token, false).ok().map(|c| c.sid));
    if let Some(g) = grant_id {
        state.revoke_grant(&g);
    }
    // RFC 7009 §2.2: unknown tokens are not an error.
    StatusCode::OK.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_loopback_range_and_registered_uris_are_redirects() {
        let extra = vec!["http://127.0.0.1:4999/app-callback".to_string()];
        assert!(redirect_allowed("http://127.0.0.1:5000", &extra));
        assert!(redirect_allowed("http://127.0.0.1:5010/callback", &extra));
        assert!(redirect_allowed(
            "http://127.0.0.1:4999/app-callback",
            &extra
        ));
        for bad in [
            "http://127.0.0.1:5011",
            "http://127.0.0.1:4999",
            "http://localhost:5000",
            "https://127.0.0.1:5000",
            "http://evil@127.0.0.1:5000",
            "http://127.0.0.1:5000/#x",
            "http://10.0.0.1:5000",
            "not a url",
        ] {
            assert!(!redirect_allowed(bad, &extra), "{bad}");
        }
    }

    #[test]
    fn pkce_matches_rfc_7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
