//! The browser sign-in, as steps: [`PendingLogin::start`] binds the loopback redirect listener
//! (the first free port of 5000–5010, which the platform expects) and builds the authorize URL
//! with PKCE S256 and a random `state`; the shell shows that URL (its own window, the system
//! browser, or printed); [`PendingLogin::wait_for_code`] accepts exactly one valid callback and
//! closes the listener. A callback that carries another `state` (an old tab, another sign-in,
//! or a page trying to slip its own code in) is answered with an error page and ignored: it
//! must not end, or stand in for, the sign-in the user is doing.

use std::borrow::Cow;
use std::time::Duration;

use oauth2::{CsrfToken, PkceCodeChallenge, RedirectUrl, Scope};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use url::Url;

use super::{oauth_client, AuthError};
use crate::profile::Profile;
use crate::secret::Sensitive;

/// The redirect ports the platform accepts for command-line clients.
pub const REDIRECT_PORTS: std::ops::RangeInclusive<u16> = 5000..=5010;
/// Random bytes in the `state` (32 URL-safe characters).
const STATE_BYTES: u32 = 24;
/// Random bytes in the PKCE verifier (64 URL-safe characters; RFC 7636 allows 43 to 128).
const VERIFIER_BYTES: u32 = 48;
/// How long one connection to the redirect listener may take to send its request.
const CONNECTION_READ_LIMIT: Duration = Duration::from_secs(3);
/// How long a reply to the browser may take: a peer that does not read must not hold the
/// sign-in's answer.
const REPLY_LIMIT: Duration = Duration::from_secs(3);

/// What the sign-in must prove (step-up asks for more).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginRequest {
    /// Authentication methods to demand, e.g. `["mfa"]`.
    pub amr: Vec<String>,
    /// Demand a login no older than this many seconds.
    pub max_age: Option<u64>,
}

/// Checks one authentication method a sign-in may demand, as the official client's
/// `login --method` takes them (`legacy/src/Command/Auth/BrowserLoginCommand.php`, passed on
/// as the authorize request's `amr`): `mfa`, or `sso:<provider>`.
pub fn auth_method(value: &str) -> Result<String, String> {
    let v = value.trim();
    let provider_ok = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    match v.strip_prefix("sso:") {
        _ if v == "mfa" => Ok(v.to_string()),
        Some(p) if provider_ok(p) => Ok(v.to_string()),
        _ => Err(format!(
            "{value:?} is not an authentication method: use `mfa` or `sso:<provider>`"
        )),
    }
}

/// The code the callback carried, with what the token request needs alongside it.
#[derive(Debug)]
pub struct AuthCode {
    pub code: Sensitive<String>,
    pub verifier: Sensitive<String>,
    pub redirect_uri: String,
}

pub struct PendingLogin {
    listener: TcpListener,
    redirect_uri: String,
    state: Sensitive<String>,
    verifier: Sensitive<String>,
    url: Url,
}

impl PendingLogin {
    pub async fn start(
        profile: &Profile,
        request: &LoginRequest,
    ) -> Result<PendingLogin, AuthError> {
        let mut bound = None;
        for port in REDIRECT_PORTS {
            if let Ok(l) = TcpListener::bind(("127.0.0.1", port)).await {
                bound = Some((l, port));
                break;
            }
        }
        let (listener, port) = bound.ok_or(AuthError::NoRedirectPort)?;
        let redirect_uri = format!("http://127.0.0.1:{port}");
        let redirect = RedirectUrl::new(redirect_uri.clone())
            .map_err(|e| AuthError::Protocol(format!("bad redirect URI: {e}")))?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256_len(VERIFIER_BYTES);
        let client = oauth_client(profile)?;
        let mut authorize = client
            .authorize_url(|| CsrfToken::new_random_len(STATE_BYTES))
            .set_redirect_uri(Cow::Owned(redirect))
            .add_scope(Scope::new("offline_access".into()))
            .set_pkce_challenge(challenge)
            .add_extra_param("prompt", "consent");
        // Step-up (RFC 9470 as the platform does it) is not the crate's: extra parameters.
        if !request.amr.is_empty() {
            authorize = authorize.add_extra_param("amr", request.amr.join(" "));
        }
        if let Some(max_age) = request.max_age {
            authorize = authorize.add_extra_param("max_age", max_age.to_string());
        }
        let (url, state) = authorize.url();
        Ok(PendingLogin {
            listener,
            redirect_uri,
            state: Sensitive::new(state.into_secret()),
            verifier: Sensitive::new(verifier.into_secret()),
            url,
        })
    }

    /// The page to show the user.
    pub fn authorize_url(&self) -> &Url {
        &self.url
    }

    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Waits for the browser to come back. Requests that are not the callback (a favicon) are
    /// answered 404 and ignored; a callback with the wrong `state` is answered 400 and ignored,
    /// so the sign-in keeps waiting for its own; an `error` with the right `state` ends it.
    /// The listener closes when this returns, so a second callback finds nobody.
    pub async fn wait_for_code(self, timeout: Duration) -> Result<AuthCode, AuthError> {
        self.wait_for_callback(None, timeout).await
    }

    /// [`PendingLogin::wait_for_code`], also taking the callback from an app window that
    /// intercepts the redirect (so the code never leaves the app): each URL sent on
    /// `intercepted` (the window sends those whose origin is the redirect's) is judged like a
    /// request to the listener. When the sender is dropped (the window closed) the sign-in is
    /// cancelled.
    pub async fn wait_for_callback(
        self,
        mut intercepted: Option<tokio::sync::mpsc::UnboundedReceiver<Url>>,
        timeout: Duration,
    ) -> Result<AuthCode, AuthError> {
        let deadline = tokio::time::Instant::now() + timeout;
        // Each connection is read in its own task, so a connection that says nothing (a
        // browser's preconnect, or a local user holding the port open) delays only itself:
        // the redirect that arrives beside it is judged at once. Dropped with this future, so
        // no reader outlives the sign-in.
        let mut reading: JoinSet<(TcpStream, Vec<(String, String)>)> = JoinSet::new();
        let mut replying: JoinSet<()> = JoinSet::new();
        loop {
            let window = async {
                match intercepted.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(AuthError::LoginTimedOut(timeout));
                }
                url = window => {
                    let Some(url) = url else {
                        return Err(AuthError::Cancelled);
                    };
                    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
                    match self.judge(&query) {
                        Callback::Code(code) => return Ok(self.code(code)),
                        Callback::Denied(e) => return Err(e),
                        Callback::NotOurs | Callback::Other => continue,
                    }
                }
                accepted = self.listener.accept() => {
                    match accepted {
                        Ok((mut sock, _)) => {
                            reading.spawn(async move {
                                // Bounded: a silent connection is answered 404 and closed.
                                let query = tokio::time::timeout(
                                    CONNECTION_READ_LIMIT,
                                    read_request_query(&mut sock),
                                )
                                .await
                                .ok()
                                .flatten()
                                .unwrap_or_default();
                                (sock, query)
                            });
                        }
                        // Out of descriptors (many connections held open) or a connection reset
                        // before it was accepted: the listener itself is fine, and the held
                        // connections are let go within their read limit.
                        Err(e) => {
                            tracing::debug!(error = %e, "the redirect listener could not accept a connection");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                Some(read) = reading.join_next() => {
                    let Ok((mut sock, query)) = read else { continue };
                    match self.judge(&query) {
                        Callback::Other => {
                            replying.spawn(async move {
                                respond(&mut sock, 404, "Not found", "This is Tether's sign-in listener.")
                                    .await;
                            });
                        }
                        Callback::NotOurs => {
                            replying.spawn(async move {
                                respond(
                                    &mut sock,
                                    400,
                                    "Not this sign-in",
                                    "This sign-in link is not the one Tether is waiting for, so Tether ignored it. \
                                     If you are signing in, finish in the window Tether opened.",
                                )
                                .await;
                            });
                        }
                        Callback::Denied(e) => {
                            respond(&mut sock, 200, "Sign-in cancelled", "You can close this window.")
                                .await;
                            return Err(e);
                        }
                        Callback::Code(code) => {
                            respond(
                                &mut sock,
                                200,
                                "Signed in",
                                "Tether is signed in. You can close this window.",
                            )
                            .await;
                            return Ok(self.code(code));
                        }
                    }
                }
                Some(_) = replying.join_next() => {}
            }
        }
    }

    /// What a callback's query means for this sign-in.
    fn judge(&self, query: &[(String, String)]) -> Callback {
        let param = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let (code, state, error) = (param("code"), param("state"), param("error"));
        if code.is_none() && error.is_none() {
            return Callback::Other;
        }
        if state.as_deref() != Some(self.state.expose().as_str()) {
            tracing::warn!("ignored a sign-in callback whose state is not the pending sign-in's");
            return Callback::NotOurs;
        }
        match error {
            Some(error) => Callback::Denied(AuthError::Denied {
                error,
                description: param("error_description").unwrap_or_default(),
            }),
            None => Callback::Code(code.unwrap_or_default()),
        }
    }

    fn code(self, code: String) -> AuthCode {
        AuthCode {
            code: Sensitive::new(code),
            verifier: self.verifier,
            redirect_uri: self.redirect_uri,
        }
    }
}

enum Callback {
    Code(String),
    Denied(AuthError),
    /// A callback with another sign-in's `state`: ignored.
    NotOurs,
    /// Not a callback at all (a favicon).
    Other,
}

/// Reads an HTTP request head and returns the query of a `GET`, or `None` for anything else.
async fn read_request_query(sock: &mut TcpStream) -> Option<Vec<(String, String)>> {
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), sock.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 || buf.len() > 16 * 1024 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.lines().next()?.split_whitespace();
    if parts.next()? != "GET" {
        return None;
    }
    let target = parts.next()?;
    let url = Url::parse(&format!("http://127.0.0.1{target}")).ok()?;
    Some(url.query_pairs().into_owned().collect())
}

async fn respond(sock: &mut TcpStream, status: u16, title: &str, message: &str) {
    let body = format!(
        "<!doctype html><html><head><meta charset=utf-8><title>{title} · Tether</title>\
         <style>body{{font:16px system-ui,sans-serif;display:flex;min-height:90vh;align-items:center;\
         justify-content:center;background:#f9fafb}}main{{text-align:center}}h1{{color:#4f46e5}}</style>\
         </head><body><main><h1 id=title>{title}</h1><p id=message>{message}</p></main></body></html>"
    );
    let reason = if status == 200 { "OK" } else { "Error" };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\n\
         cache-control: no-store\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(REPLY_LIMIT, async {
        let _ = sock.write_all(response.as_bytes()).await;
        let _ = sock.shutdown().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain sign-in, its listener bound, for a platform that is never asked.
    async fn pending_sign_in() -> PendingLogin {
        let mut profile = Profile::platformsh();
        profile.auth_url = Url::parse("http://127.0.0.1:9/").unwrap();
        PendingLogin::start(&profile, &LoginRequest::default())
            .await
            .unwrap()
    }

    fn state_of(pending: &PendingLogin) -> String {
        pending
            .authorize_url()
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    }

    /// A raw HTTP GET to the listener; returns the status code and the body.
    async fn get(redirect: &str, target: &str) -> (u16, String) {
        let addr = redirect.trim_start_matches("http://");
        let mut sock = TcpStream::connect(addr).await.unwrap();
        sock.write_all(
            format!("GET {target} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let mut answer = String::new();
        sock.read_to_string(&mut answer).await.unwrap();
        let status = answer
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap();
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    #[tokio::test]
    async fn the_authorize_url_has_pkce_s256_consent_and_the_step_up_parameters() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        use sha2::{Digest, Sha256};

        let mut profile = Profile::platformsh();
        profile.auth_url = Url::parse("https://auth.example.test/base/").unwrap();
        let request = LoginRequest {
            amr: vec!["mfa".into(), "sso:acme".into()],
            max_age: Some(300),
        };
        let pending = PendingLogin::start(&profile, &request).await.unwrap();
        let url = pending.authorize_url();
        assert_eq!(
            url.as_str().split('?').next(),
            Some("https://auth.example.test/base/oauth2/authorize")
        );
        let q = |k: &str| {
            url.query_pairs()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.into_owned())
        };
        let verifier = pending.verifier.expose();
        assert!((43..=128).contains(&verifier.len()), "{verifier}");
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        for (k, v) in [
            ("response_type", "code"),
            ("client_id", "platform-cli"),
            ("redirect_uri", pending.redirect_uri()),
            ("scope", "offline_access"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("prompt", "consent"),
            ("amr", "mfa sso:acme"),
            ("max_age", "300"),
        ] {
            assert_eq!(q(k).as_deref(), Some(v), "{k}");
        }
        assert_eq!(q("state").as_deref(), Some(pending.state.expose().as_str()));
        assert!(pending.state.expose().len() >= 32);

        // No step-up asked, none sent.
        drop(pending);
        let plain = PendingLogin::start(&profile, &LoginRequest::default())
            .await
            .unwrap();
        let names: Vec<String> = plain
            .authorize_url()
            .query_pairs()
            .map(|(k, _)| k.into_owned())
            .collect();
        assert!(
            !names.iter().any(|n| n == "amr" || n == "max_age"),
            "{names:?}"
        );
    }

    #[tokio::test]
    async fn an_intercepted_redirect_ends_the_sign_in_and_a_closed_window_cancels_it() {
        let pending = pending_sign_in().await;
        let (redirect, state) = (pending.redirect_uri().to_string(), state_of(&pending));
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let waiting = tokio::spawn(pending.wait_for_callback(Some(rx), Duration::from_secs(20)));
        // Another sign-in's redirect is ignored; this one's ends it.
        tx.send(Url::parse(&format!("{redirect}/?code=stolen&state=forged")).unwrap())
            .unwrap();
        tx.send(Url::parse(&format!("{redirect}/?code=the-code&state={state}")).unwrap())
            .unwrap();
        let code = waiting.await.unwrap().unwrap();
        assert_eq!(code.code.expose(), "the-code");
        assert_eq!(code.redirect_uri, redirect);

        let pending = pending_sign_in().await;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Url>();
        drop(tx);
        let e = pending
            .wait_for_callback(Some(rx), Duration::from_secs(20))
            .await
            .unwrap_err();
        assert!(matches!(e, AuthError::Cancelled), "{e}");
    }

    #[tokio::test]
    async fn a_callback_with_a_wrong_state_is_refused_and_the_sign_in_keeps_waiting() {
        let pending = pending_sign_in().await;
        let (redirect, state) = (pending.redirect_uri().to_string(), state_of(&pending));
        let waiting = tokio::spawn(pending.wait_for_code(Duration::from_secs(20)));

        for forged in [
            "/?code=stolen&state=forged".to_string(),
            "/?code=stolen".to_string(),
            "/?error=access_denied&state=forged".to_string(),
            format!("/?code=stolen&state={state}x"),
        ] {
            let (status, body) = get(&redirect, &forged).await;
            assert_eq!(status, 400, "{forged}");
            assert!(
                body.contains("not the one Tether is waiting for") && body.contains("<html"),
                "{forged}: {body}"
            );
            assert!(!waiting.is_finished(), "{forged} ended the sign-in");
        }

        let (status, body) = get(&redirect, &format!("/?code=the-real-one&state={state}")).await;
        assert_eq!(status, 200);
        assert!(body.contains("Signed in"), "{body}");
        let code = waiting.await.unwrap().unwrap();
        assert_eq!(code.code.expose(), "the-real-one");
    }

    #[tokio::test]
    async fn idle_connections_held_open_do_not_starve_the_redirect() {
        let pending = pending_sign_in().await;
        let (redirect, state) = (pending.redirect_uri().to_string(), state_of(&pending));
        let waiting = tokio::spawn(pending.wait_for_code(Duration::from_secs(20)));
        // A local user (or a browser's preconnects) holds connections open and says nothing;
        // one more sends half a request and stops.
        let addr = redirect.trim_start_matches("http://").to_string();
        let mut held = Vec::new();
        for _ in 0..16 {
            held.push(TcpStream::connect(&addr).await.unwrap());
        }
        let mut half = TcpStream::connect(&addr).await.unwrap();
        half.write_all(b"GET /?code=").await.unwrap();
        held.push(half);
        tokio::time::sleep(Duration::from_millis(100)).await;

        let started = std::time::Instant::now();
        let (status, body) = get(&redirect, &format!("/?code=the-code&state={state}")).await;
        assert_eq!(status, 200, "{body}");
        let code = tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("the held connections kept the sign-in waiting")
            .unwrap()
            .unwrap();
        assert_eq!(code.code.expose(), "the-code");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the redirect waited {:?} behind idle connections",
            started.elapsed()
        );
        drop(held);
    }

    #[test]
    fn login_methods_are_mfa_or_a_named_single_sign_on() {
        assert_eq!(auth_method("mfa").as_deref(), Ok("mfa"));
        assert_eq!(auth_method("sso:acme").as_deref(), Ok("sso:acme"));
        assert!(auth_method("sso").is_err());
        assert!(auth_method("sso:").is_err());
        assert!(auth_method("pwd").is_err());
        assert!(auth_method("sso:a b").is_err());
    }
}
