//! Signing in and staying signed in: the browser login (authorization code + PKCE), API-token
//! login for automation, tokens kept in the OS keyring, refresh before expiry with one refresh
//! at a time across processes, and logout that revokes and deletes what the session wrote.
//!
//! The standard OAuth2 parts (PKCE, the authorization URL, the code exchange, refresh and
//! revocation) are the `oauth2` crate's; what is the platform's own stays here: the `api_token`
//! grant, the step-up parameters (`amr`, `max_age`) and the token claims.

pub mod claims;
pub mod login;
pub mod store;

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use oauth2::basic::{BasicClient, BasicErrorResponse, BasicTokenResponse};
use oauth2::{
    AccessToken, AuthUrl, AuthorizationCode, ClientId, EndpointNotSet, EndpointSet,
    ErrorResponseType, HttpClientError, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RequestTokenError, RevocableToken, RevocationUrl, StandardErrorResponse,
    StandardRevocableToken, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::context::{Clock, Paths};
use crate::private_files::{create_private_dir, FileLock};
use crate::profile::Profile;
use crate::secret::Sensitive;
pub use claims::Claims;
pub use login::{AuthCode, LoginRequest, PendingLogin};
pub use store::{StoreError, TokenStore};

/// Refresh an access token when it has less than this left.
const REFRESH_MARGIN: u64 = 60;
const SESSION_KEY: &str = "session";
const API_TOKEN_KEY: &str = "api-token";
/// Written when a session is ended locally (inactivity), so the next command can say why.
const ENDED_MARKER: &str = "session-ended";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("not signed in: sign in (or set an API token for automation)")]
    NotSignedIn,
    #[error("your session has ended{}: sign in again", reason_suffix(.0))]
    SessionEnded(String),
    #[error("no free port for the sign-in redirect: the platform accepts only 127.0.0.1 ports 5000 to 5010, and all are in use; close what uses them and try again")]
    NoRedirectPort,
    #[error("the sign-in was abandoned: nothing came back within {} s; start it again", .0.as_secs())]
    LoginTimedOut(Duration),
    #[error("the sign-in was cancelled: its window was closed before it finished")]
    Cancelled,
    #[error("the sign-in was refused ({error}){}", reason_suffix(.description))]
    Denied { error: String, description: String },
    #[error("the platform refused the {what}: {error}{}", reason_suffix(.description))]
    Refused {
        what: &'static str,
        error: String,
        description: String,
    },
    #[error("the API token was refused: create a new one and log in with it again ({0})")]
    BadApiToken(String),
    #[error("the sign-in server answered something unexpected: {0}")]
    Protocol(String),
    #[error("cannot reach the sign-in server at {url}: {message}")]
    Network { url: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Files(#[from] crate::private_files::WriteError),
}

fn description_suffix<T: ErrorResponseType>(e: &StandardErrorResponse<T>) -> String {
    match e.error_description().filter(|d| !d.is_empty()) {
        Some(d) => format!(", {d}"),
        None => String::new(),
    }
}

fn reason_suffix(s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(" ({s})")
    }
}

/// How the session was obtained; API-token sessions renew by exchanging the token again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Browser,
    ApiToken,
}

#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: Sensitive<String>,
    pub refresh: Option<Sensitive<String>>,
    /// Unix time at which the access token expires.
    pub expires_at: u64,
    pub origin: Origin,
}

/// The stored form; only ever written to the token store.
#[derive(Serialize, Deserialize)]
struct Persisted {
    access_token: String,
    refresh_token: Option<String>,
    expires_at: u64,
    origin: Origin,
}

impl Tokens {
    fn to_persisted(&self) -> Persisted {
        Persisted {
            access_token: self.access.expose().clone(),
            refresh_token: self.refresh.as_ref().map(|r| r.expose().clone()),
            expires_at: self.expires_at,
            origin: self.origin,
        }
    }

    fn from_persisted(p: Persisted) -> Tokens {
        Tokens {
            access: Sensitive::new(p.access_token),
            refresh: p.refresh_token.map(Sensitive::new),
            expires_at: p.expires_at,
            origin: p.origin,
        }
    }
}

/// What a token response that gives no `expires_in` is taken to last.
const DEFAULT_ACCESS_LIFETIME: u64 = 900;

/// The platform's OAuth2 endpoints as the `oauth2` crate sees them: a public client (no secret,
/// so the client id travels in each request's body) with authorize, token and revocation URLs.
pub(crate) type OAuthClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointSet, EndpointSet>;

/// How a request made through the `oauth2` crate can fail, with the workspace's HTTP client.
type OAuthFailure<E> = RequestTokenError<HttpClientError<reqwest::Error>, E>;

/// The `oauth2` client for a profile's authorization server.
pub(crate) fn oauth_client(profile: &Profile) -> Result<OAuthClient, AuthError> {
    let endpoint = |path: &str| {
        profile
            .auth_url
            .join(path)
            .map_err(|e| AuthError::Protocol(format!("bad URL {path}: {e}")))
    };
    Ok(BasicClient::new(ClientId::new(profile.client_id.clone()))
        .set_auth_uri(AuthUrl::from_url(endpoint("oauth2/authorize")?))
        .set_token_uri(TokenUrl::from_url(endpoint("oauth2/token")?))
        .set_revocation_url(RevocationUrl::from_url(endpoint("oauth2/revoke")?)))
}

/// What a failed request to the authorization server means. `what` names the request in
/// messages; `url` is the endpoint (never a token: tokens travel in bodies).
fn classify<T>(
    what: &'static str,
    url: &Url,
    failure: OAuthFailure<StandardErrorResponse<T>>,
) -> AuthError
where
    T: ErrorResponseType + std::fmt::Display + 'static,
{
    match failure {
        RequestTokenError::ServerResponse(e) => AuthError::Refused {
            what,
            error: e.error().to_string(),
            description: e.error_description().cloned().unwrap_or_default(),
        },
        RequestTokenError::Request(HttpClientError::Reqwest(e)) => AuthError::Network {
            url: url.to_string(),
            message: e.to_string(),
        },
        RequestTokenError::Request(HttpClientError::Io(e)) => AuthError::Network {
            url: url.to_string(),
            message: e.to_string(),
        },
        RequestTokenError::Request(e) => AuthError::Protocol(format!("{what}: {e}")),
        // The parse error names the field and position, not the body, which may hold tokens.
        RequestTokenError::Parse(e, _body) => AuthError::Protocol(format!(
            "{what}: the answer is neither a token response nor an OAuth error ({e})"
        )),
        RequestTokenError::Other(message) => AuthError::Protocol(format!("{what}: {message}")),
    }
}

/// The OAuth2 errors that mean the grant itself is gone (RFC 6749 §5.2): the session cannot be
/// refreshed again, whatever happens. Every other refusal (`temporarily_unavailable`,
/// `server_error`, a 5xx page) is the platform having a bad moment, and the session is kept.
const SESSION_ENDING_ERRORS: [&str; 3] = ["invalid_grant", "invalid_client", "unauthorized_client"];

fn ends_the_session(error: &str) -> bool {
    SESSION_ENDING_ERRORS.contains(&error)
}

/// A refresh that failed without ending the session: said as the sign-in server being
/// unreachable for now (retried by the agent; the next command tries again).
fn outage(url: &Url, answer: impl std::fmt::Display) -> AuthError {
    AuthError::Network {
        url: url.to_string(),
        message: format!(
            "it answered {answer}, which is an outage, not a sign-out: your session is kept; \
             try again in a moment"
        ),
    }
}

/// Pauses between tries of a refresh that met an outage.
const REFRESH_RETRIES: [Duration; 2] = [Duration::from_millis(300), Duration::from_millis(1000)];

fn tokens_from(t: &BasicTokenResponse, origin: Origin, now: u64) -> Tokens {
    Tokens {
        access: Sensitive::new(t.access_token().secret().clone()),
        refresh: t
            .refresh_token()
            .map(|r| Sensitive::new(r.secret().clone())),
        // The platform's number: a huge `expires_in` must not wrap around to the past.
        expires_at: now.saturating_add(
            t.expires_in()
                .map_or(DEFAULT_ACCESS_LIFETIME, |d| d.as_secs()),
        ),
        origin,
    }
}

/// The client side of the platform's authorization server. The standard OAuth2 requests (code
/// exchange, refresh, revocation) go through the `oauth2` crate; the platform's own `api_token`
/// grant is a form post of its own. All of them use the shell's HTTP client, so its timeouts and
/// user agent apply.
#[derive(Debug, Clone)]
pub struct Authority {
    http: reqwest::Client,
    profile: Profile,
}

impl Authority {
    pub fn new(http: reqwest::Client, profile: Profile) -> Authority {
        Authority { http, profile }
    }

    fn client(&self) -> Result<OAuthClient, AuthError> {
        oauth_client(&self.profile)
    }

    /// Redeems the code of a browser sign-in.
    pub async fn exchange_code(&self, code: AuthCode, now: u64) -> Result<Tokens, AuthError> {
        let client = self.client()?;
        let redirect = RedirectUrl::new(code.redirect_uri)
            .map_err(|e| AuthError::Protocol(format!("bad redirect URI: {e}")))?;
        let t = client
            .exchange_code(AuthorizationCode::new(code.code.expose().clone()))
            .set_pkce_verifier(PkceCodeVerifier::new(code.verifier.expose().clone()))
            .set_redirect_uri(Cow::Owned(redirect))
            .request_async(&self.http)
            .await
            .map_err(|e| classify("sign-in", client.token_uri().url(), e))?;
        Ok(tokens_from(&t, Origin::Browser, now))
    }

    /// Exchanges an API token for an access token. The `api_token` grant is the platform's own,
    /// so the request is made here; its answers have the standard shapes.
    pub async fn exchange_api_token(
        &self,
        api_token: &Sensitive<String>,
        now: u64,
    ) -> Result<Tokens, AuthError> {
        let client = self.client()?;
        let url = client.token_uri().url();
        let network = |e: reqwest::Error| AuthError::Network {
            url: url.to_string(),
            message: e.to_string(),
        };
        let resp = self
            .http
            .post(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&[
                ("grant_type", "api_token"),
                ("api_token", api_token.expose()),
                ("client_id", client.client_id()),
            ])
            .send()
            .await
            .map_err(network)?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(network)?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<BasicErrorResponse>(&body) {
                Ok(e) if ends_the_session(e.error().as_ref()) => AuthError::BadApiToken(
                    e.error_description()
                        .filter(|d| !d.is_empty())
                        .cloned()
                        .unwrap_or_else(|| e.error().to_string()),
                ),
                Ok(e) if status.is_server_error() || status.as_u16() == 429 => outage(
                    url,
                    format!("HTTP {status} ({}{})", e.error(), description_suffix(&e)),
                ),
                Ok(e) => AuthError::Refused {
                    what: "API token",
                    error: e.error().to_string(),
                    description: e.error_description().cloned().unwrap_or_default(),
                },
                Err(_) if status.is_server_error() || status.as_u16() == 429 => {
                    outage(url, format!("HTTP {status}"))
                }
                Err(_) => AuthError::Protocol(format!(
                    "API token: HTTP {status} with a body that is not an OAuth error"
                )),
            });
        }
        let t: BasicTokenResponse = serde_json::from_slice(&body).map_err(|e| {
            AuthError::Protocol(format!(
                "API token: the answer is not a token response ({e})"
            ))
        })?;
        Ok(tokens_from(&t, Origin::ApiToken, now))
    }

    /// Refreshes the session. Only a refusal that says the grant is gone ends it
    /// ([`AuthError::SessionEnded`]); an outage (a 5xx page, `temporarily_unavailable`,
    /// `server_error`) is tried again shortly and then reported as [`AuthError::Network`].
    pub async fn refresh(
        &self,
        refresh: &Sensitive<String>,
        now: u64,
    ) -> Result<Tokens, AuthError> {
        let first = match self.refresh_once(refresh, now).await {
            Err(e @ AuthError::Network { .. }) => e,
            other => return other,
        };
        for pause in REFRESH_RETRIES {
            tracing::info!(error = %first, "the refresh met an outage; trying again");
            tokio::time::sleep(pause).await;
            match self.refresh_once(refresh, now).await {
                Err(AuthError::Network { .. }) => {}
                other => return other,
            }
        }
        // The first answer says what happened; later tries may only have timed out.
        Err(first)
    }

    async fn refresh_once(
        &self,
        refresh: &Sensitive<String>,
        now: u64,
    ) -> Result<Tokens, AuthError> {
        let client = self.client()?;
        let url = client.token_uri().url();
        let t = client
            .exchange_refresh_token(&RefreshToken::new(refresh.expose().clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(e) if ends_the_session(e.error().as_ref()) => {
                    AuthError::SessionEnded(format!(
                        "the sign-in server refused to refresh it: {}{}",
                        e.error(),
                        description_suffix(&e)
                    ))
                }
                RequestTokenError::ServerResponse(e) => {
                    outage(url, format!("{}{}", e.error(), description_suffix(&e)))
                }
                // A non-200 answer that is not an OAuth error: a proxy's 5xx page, or nothing.
                RequestTokenError::Parse(_, _) | RequestTokenError::Other(_) => {
                    outage(url, "something that is not an OAuth answer (an error page)")
                }
                other => classify("refresh", url, other),
            })?;
        let mut tokens = tokens_from(&t, Origin::Browser, now);
        // RFC 6749 §6: a server that issues no new refresh token leaves the old one valid.
        if tokens.refresh.is_none() {
            tokens.refresh = Some(refresh.clone());
        }
        Ok(tokens)
    }

    /// Revokes a token (RFC 7009); the server ends the session it belongs to. `hint` is
    /// `refresh_token` or `access_token`.
    pub async fn revoke(&self, token: &Sensitive<String>, hint: &str) -> Result<(), AuthError> {
        let token = match hint {
            "refresh_token" => {
                StandardRevocableToken::RefreshToken(RefreshToken::new(token.expose().clone()))
            }
            "access_token" => {
                StandardRevocableToken::AccessToken(AccessToken::new(token.expose().clone()))
            }
            other => {
                return Err(AuthError::Protocol(format!(
                    "cannot revoke a token of kind {other:?}"
                )))
            }
        };
        let client = self.client()?;
        let url = client.revocation_url().url();
        if url.scheme() != "https" {
            // The crate sends revocations only to HTTPS endpoints (RFC 7009 §2.1); a plain-HTTP
            // authority is a local platform (the simulator), which gets the same form here.
            return self.revoke_over_http(url, &token, client.client_id()).await;
        }
        client
            .revoke_token(token)
            .map_err(|e| AuthError::Protocol(format!("revocation: {e}")))?
            .request_async(&self.http)
            .await
            .map_err(|e| classify("revocation", url, e))
    }

    /// The RFC 7009 request the `oauth2` crate makes, for a plain-HTTP authorization server.
    async fn revoke_over_http(
        &self,
        url: &Url,
        token: &StandardRevocableToken,
        client_id: &ClientId,
    ) -> Result<(), AuthError> {
        let secret = match token {
            StandardRevocableToken::AccessToken(t) => t.secret(),
            StandardRevocableToken::RefreshToken(t) => t.secret(),
            _ => return Err(AuthError::Protocol("revocation: unknown token kind".into())),
        };
        let hint = token.type_hint().map(|h| h.to_string()).unwrap_or_default();
        let resp = self
            .http
            .post(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&[
                ("token", secret.as_str()),
                ("token_type_hint", hint.as_str()),
                ("client_id", client_id.as_str()),
            ])
            .send()
            .await
            .map_err(|e| AuthError::Network {
                url: url.to_string(),
                message: e.to_string(),
            })?;
        if !resp.status().is_success() {
            return Err(AuthError::Protocol(format!(
                "revocation answered HTTP {}",
                resp.status()
            )));
        }
        Ok(())
    }
}

/// A profile's signed-in state: tokens in the store, refreshed when needed.
#[derive(Debug, Clone)]
pub struct Session {
    pub profile: Profile,
    pub store: TokenStore,
    pub authority: Authority,
    paths: Paths,
    clock: Arc<dyn Clock>,
    /// An API token from the environment (the vendor's variable or `TETHER_TOKEN`), which wins
    /// over anything stored.
    env_api_token: Option<Sensitive<String>>,
    memory: Arc<tokio::sync::Mutex<Option<Tokens>>>,
    /// A finished sign-in whose tokens the store refused (a keyring missing or locked), kept
    /// until they can be stored ([`Session::store_held`]): a person's sign-in is not
    /// thrown away because of where it was to be kept.
    held: Arc<std::sync::Mutex<Option<Tokens>>>,
    http: reqwest::Client,
}

impl Session {
    pub fn new(
        profile: Profile,
        store: TokenStore,
        paths: Paths,
        clock: Arc<dyn Clock>,
        http: reqwest::Client,
        env_api_token: Option<Sensitive<String>>,
    ) -> Session {
        Session {
            authority: Authority::new(http.clone(), profile.clone()),
            http,
            profile,
            store,
            paths,
            clock,
            env_api_token,
            memory: Arc::new(tokio::sync::Mutex::new(None)),
            held: Arc::new(std::sync::Mutex::new(None)),
        }
    }

    pub fn session_dir(&self) -> PathBuf {
        self.paths.session_dir(&self.profile)
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn uses_env_token(&self) -> bool {
        self.env_api_token.is_some()
    }

    async fn load(&self) -> Result<Option<Tokens>, AuthError> {
        let Some(raw) = self.store.load(SESSION_KEY).await? else {
            return Ok(None);
        };
        let p: Persisted = serde_json::from_str(raw.expose()).map_err(|e| {
            AuthError::Protocol(format!(
                "the stored session is unreadable ({e}); sign out (tether logout) and sign in again"
            ))
        })?;
        Ok(Some(Tokens::from_persisted(p)))
    }

    /// Whether tokens are stored (without refreshing or checking them).
    pub async fn has_session(&self) -> Result<bool, AuthError> {
        Ok(self.env_api_token.is_some() || self.store.load(SESSION_KEY).await?.is_some())
    }

    /// Stores the tokens of a new sign-in.
    pub async fn save(&self, tokens: &Tokens) -> Result<(), AuthError> {
        let json = serde_json::to_string(&tokens.to_persisted())
            .map_err(|e| AuthError::Protocol(e.to_string()))?;
        self.store.save(SESSION_KEY, Sensitive::new(json)).await?;
        let _ = std::fs::remove_file(self.session_dir().join(ENDED_MARKER));
        Ok(())
    }

    /// Finishes a browser sign-in and stores its tokens. When the store refuses them, they are
    /// kept in memory for [`Session::store_held`] and the store's error is returned.
    pub async fn complete_login(&self, code: AuthCode) -> Result<Tokens, AuthError> {
        let tokens = self
            .authority
            .exchange_code(code, self.clock.unix())
            .await?;
        self.keep_or_hold(tokens).await
    }

    /// Stores a new sign-in's tokens, or holds them when the store refuses.
    async fn keep_or_hold(&self, tokens: Tokens) -> Result<Tokens, AuthError> {
        match self.save(&tokens).await {
            Ok(()) => {
                self.hold(None);
                Ok(tokens)
            }
            Err(e @ AuthError::Store(_)) => {
                self.hold(Some(tokens));
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    fn hold(&self, tokens: Option<Tokens>) {
        *self.held.lock().unwrap_or_else(|p| p.into_inner()) = tokens;
    }

    /// Whether a finished sign-in waits to be stored.
    pub fn holds_sign_in(&self) -> bool {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Stores the sign-in the store refused before (after the user unlocked the keyring or
    /// chose the file store); held again if the store still refuses.
    pub async fn store_held(&self) -> Result<Tokens, AuthError> {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner()).take();
        let tokens = held.ok_or(AuthError::NotSignedIn)?;
        self.keep_or_hold(tokens).await
    }

    /// Whether the store can keep a sign-in now (see [`TokenStore::check`]); a session from an
    /// API token in the environment keeps nothing.
    pub async fn check_store(&self) -> Result<(), AuthError> {
        if self.env_api_token.is_some() {
            return Ok(());
        }
        Ok(self.store.check().await?)
    }

    /// Keeps sign-ins in a file (`true`) or in the keyring from now on, as the user chose, and
    /// moves the stored session there.
    pub async fn keep_tokens_in(&self, file: bool) -> Result<(), AuthError> {
        Ok(self
            .store
            .choose(file, &[SESSION_KEY, API_TOKEN_KEY])
            .await?)
    }

    /// Signs in with an API token and remembers the token for renewals.
    pub async fn login_with_api_token(
        &self,
        api_token: Sensitive<String>,
    ) -> Result<Tokens, AuthError> {
        let tokens = self
            .authority
            .exchange_api_token(&api_token, self.clock.unix())
            .await?;
        self.store.save(API_TOKEN_KEY, api_token).await?;
        self.save(&tokens).await?;
        Ok(tokens)
    }

    fn fresh(&self, t: &Tokens) -> bool {
        t.expires_at > self.clock.unix().saturating_add(REFRESH_MARGIN)
    }

    /// A valid access token, refreshing (once across processes) when it is about to expire.
    pub async fn access_token(&self) -> Result<Sensitive<String>, AuthError> {
        if let Some(api_token) = &self.env_api_token {
            let mut memory = self.memory.lock().await;
            if let Some(t) = memory.as_ref().filter(|t| self.fresh(t)) {
                return Ok(t.access.clone());
            }
            let t = self
                .authority
                .exchange_api_token(api_token, self.clock.unix())
                .await?;
            let access = t.access.clone();
            *memory = Some(t);
            return Ok(access);
        }
        match self.load().await? {
            Some(t) if self.fresh(&t) => return Ok(t.access),
            Some(_) => {}
            None => return Err(self.why_signed_out()),
        }
        self.refresh_locked(None).await.map(|t| t.access)
    }

    /// A new access token after a service refused `refused` (the certifier's 401): the
    /// platform may end an access token before it expires, and only a refresh says whether
    /// the session is over. A newer token another process stored meanwhile is taken as is.
    pub async fn access_token_after_refusal(
        &self,
        refused: &Sensitive<String>,
    ) -> Result<Sensitive<String>, AuthError> {
        if let Some(api_token) = &self.env_api_token {
            let mut memory = self.memory.lock().await;
            let t = self
                .authority
                .exchange_api_token(api_token, self.clock.unix())
                .await?;
            let access = t.access.clone();
            *memory = Some(t);
            return Ok(access);
        }
        self.refresh_locked(Some(refused)).await.map(|t| t.access)
    }

    /// Refreshes under the profile's lock; another process may have done it meanwhile. A
    /// fresh stored token is used unless it is the `refused` one.
    async fn refresh_locked(
        &self,
        refused: Option<&Sensitive<String>>,
    ) -> Result<Tokens, AuthError> {
        let dir = self.session_dir();
        create_private_dir(&dir)?;
        let lock_path = dir.join("refresh.lock");
        let _lock = tokio::task::spawn_blocking(move || FileLock::acquire(&lock_path))
            .await
            .map_err(|e| AuthError::Protocol(e.to_string()))??;
        let current = self.load().await?.ok_or(AuthError::NotSignedIn)?;
        let was_refused = refused.is_some_and(|r| r.expose() == current.access.expose());
        if self.fresh(&current) && !was_refused {
            return Ok(current);
        }
        let now = self.clock.unix();
        let renewed = match (current.origin, &current.refresh) {
            (Origin::ApiToken, _) => {
                let api_token = self.store.load(API_TOKEN_KEY).await?.ok_or_else(|| {
                    AuthError::SessionEnded("the stored API token is gone".into())
                })?;
                self.authority.exchange_api_token(&api_token, now).await
            }
            (Origin::Browser, Some(refresh)) => self.authority.refresh(refresh, now).await,
            (Origin::Browser, None) => {
                Err(AuthError::SessionEnded("there is no refresh token".into()))
            }
        };
        match renewed {
            Ok(t) => {
                self.save(&t).await?;
                Ok(t)
            }
            Err(e @ (AuthError::SessionEnded(_) | AuthError::BadApiToken(_))) => {
                // The session cannot come back: forget it, and the API token that opened it,
                // so nothing keeps using them.
                self.store.delete(SESSION_KEY).await?;
                self.store.delete(API_TOKEN_KEY).await?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    fn why_signed_out(&self) -> AuthError {
        match std::fs::read_to_string(self.session_dir().join(ENDED_MARKER)) {
            Ok(reason) if !reason.trim().is_empty() => {
                AuthError::SessionEnded(reason.trim().to_string())
            }
            _ => AuthError::NotSignedIn,
        }
    }

    /// Ends the session on this machine only (after long inactivity): the tokens are deleted,
    /// the stored API token too (signing in again means giving it again, as after a
    /// sign-out), and the reason is kept for the next command to show.
    pub async fn end_locally(&self, reason: &str) -> Result<(), AuthError> {
        self.store.delete(SESSION_KEY).await?;
        self.store.delete(API_TOKEN_KEY).await?;
        let dir = self.session_dir();
        create_private_dir(&dir)?;
        crate::private_files::write_atomic(&dir.join(ENDED_MARKER), reason.as_bytes(), 0o600)?;
        *self.memory.lock().await = None;
        Ok(())
    }

    /// Revokes the session at the platform and deletes its tokens, stored API token and files.
    /// Revocation is best effort (the platform may be unreachable); local deletion is not.
    /// A stored session that cannot be read is deleted all the same (it cannot be revoked).
    pub async fn logout(&self) -> Result<LogoutReport, AuthError> {
        let mut report = LogoutReport::default();
        match self.load().await {
            Ok(Some(t)) => {
                let (token, hint) = match &t.refresh {
                    Some(r) => (r.clone(), "refresh_token"),
                    None => (t.access.clone(), "access_token"),
                };
                match self.authority.revoke(&token, hint).await {
                    Ok(()) => report.revoked = true,
                    Err(e) => report.revoke_error = Some(e.to_string()),
                }
            }
            Ok(None) => {}
            Err(AuthError::Protocol(_)) => {
                report.revoke_error = Some("the stored session was unreadable".into());
            }
            Err(e) => return Err(e),
        }
        self.store.delete(SESSION_KEY).await?;
        self.store.delete(API_TOKEN_KEY).await?;
        let dir = self.session_dir();
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|source| crate::private_files::WriteError {
                path: dir.clone(),
                source,
            })?;
            report.removed_dir = Some(dir);
        }
        Ok(report)
    }
}

/// Whether the session of this directory was ended on this machine (after inactivity).
pub fn ended_locally(session_dir: &std::path::Path) -> bool {
    session_dir.join(ENDED_MARKER).exists()
}

/// Deletes what a session stored (its tokens and API token) without revoking it: for profiles
/// whose platform is no longer known.
pub async fn forget(store: &TokenStore) -> Result<(), AuthError> {
    store.delete(SESSION_KEY).await?;
    store.delete(API_TOKEN_KEY).await?;
    Ok(())
}

#[derive(Debug, Default)]
pub struct LogoutReport {
    pub revoked: bool,
    pub revoke_error: Option<String>,
    pub removed_dir: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An authorization server that answers one request with `status`, `content_type` and
    /// `body`, and hands back the request it got.
    async fn answering_once(
        status: &'static str,
        content_type: &'static str,
        body: &'static str,
    ) -> (Authority, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut profile = Profile::platformsh();
        profile.auth_url =
            Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = sock.read(&mut chunk).await.unwrap();
                request.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if body.len() >= length {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            let answer = format!(
                "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            sock.write_all(answer.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&request).to_string()
        });
        (Authority::new(reqwest::Client::new(), profile), server)
    }

    fn secret(s: &str) -> Sensitive<String> {
        Sensitive::new(s.to_string())
    }

    #[tokio::test]
    async fn a_refused_refresh_ends_the_session_with_the_servers_reason() {
        let (authority, server) = answering_once(
            "400 Bad Request",
            "application/json",
            r#"{"error":"invalid_grant","error_description":"The SSO session has expired."}"#,
        )
        .await;
        let err = authority.refresh(&secret("r-1"), 100).await.unwrap_err();
        assert!(
            matches!(&err, AuthError::SessionEnded(d) if d.contains("invalid_grant") && d.contains("The SSO session has expired.")),
            "{err:?}"
        );
        let request = server.await.unwrap();
        assert!(request.starts_with("POST /oauth2/token "), "{request}");
        for field in [
            "grant_type=refresh_token",
            "refresh_token=r-1",
            "client_id=platform-cli",
        ] {
            assert!(request.contains(field), "{field} missing: {request}");
        }
    }

    #[tokio::test]
    async fn only_a_refusal_of_the_grant_or_client_ends_the_session() {
        for error in ["invalid_client", "unauthorized_client"] {
            let body: &'static str =
                Box::leak(format!(r#"{{"error":"{error}"}}"#).into_boxed_str());
            let (authority, _server) =
                answering_once("401 Unauthorized", "application/json", body).await;
            let err = authority.refresh(&secret("r-1"), 100).await.unwrap_err();
            assert!(
                matches!(&err, AuthError::SessionEnded(d) if d.contains(error)),
                "{err:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_platform_outage_on_refresh_is_not_a_sign_out() {
        for (status, content_type, body, says) in [
            (
                "503 Service Unavailable",
                "application/json",
                r#"{"error":"temporarily_unavailable","error_description":"maintenance"}"#,
                "temporarily_unavailable",
            ),
            (
                "500 Internal Server Error",
                "application/json",
                r#"{"error":"server_error"}"#,
                "server_error",
            ),
            (
                "502 Bad Gateway",
                "text/html",
                "<html>502</html>",
                "error page",
            ),
            ("504 Gateway Timeout", "text/plain", "", "error page"),
        ] {
            let (authority, _server) = answering_once(status, content_type, body).await;
            let err = authority.refresh(&secret("r-1"), 100).await.unwrap_err();
            assert!(
                matches!(&err, AuthError::Network { .. }),
                "{status}: {err:?}"
            );
            let text = err.to_string();
            assert!(text.contains("not a sign-out"), "{text}");
            // The first answer is quoted, though the retries met a closed port.
            assert!(text.contains(says), "{status}: {text}");
            assert!(!text.contains("<html>"), "{text}");
        }
    }

    #[tokio::test]
    async fn an_api_token_exchange_during_an_outage_keeps_the_token() {
        let (authority, _server) = answering_once(
            "503 Service Unavailable",
            "application/json",
            r#"{"error":"temporarily_unavailable"}"#,
        )
        .await;
        let err = authority
            .exchange_api_token(&secret("tok"), 0)
            .await
            .unwrap_err();
        assert!(matches!(err, AuthError::Network { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_huge_expires_in_saturates_instead_of_wrapping() {
        let (authority, _server) = answering_once(
            "200 OK",
            "application/json",
            r#"{"access_token":"a-2","token_type":"bearer","expires_in":18446744073709551615}"#,
        )
        .await;
        let t = authority
            .refresh(&secret("r-1"), u64::MAX - 10)
            .await
            .unwrap();
        assert_eq!(t.expires_at, u64::MAX);
    }

    #[tokio::test]
    async fn a_refresh_that_issues_no_new_refresh_token_keeps_the_old_one() {
        let (authority, _server) = answering_once(
            "200 OK",
            "application/json",
            r#"{"access_token":"a-2","token_type":"bearer","expires_in":300}"#,
        )
        .await;
        let t = authority.refresh(&secret("r-1"), 100).await.unwrap();
        assert_eq!(t.access.expose(), "a-2");
        assert_eq!(t.refresh.as_ref().map(|r| r.expose().as_str()), Some("r-1"));
        assert_eq!(t.expires_at, 400);
        assert_eq!(t.origin, Origin::Browser);
    }

    #[tokio::test]
    async fn the_code_exchange_sends_the_verifier_and_redirect() {
        let (authority, server) = answering_once(
            "200 OK",
            "application/json; charset=utf-8",
            r#"{"access_token":"a-1","token_type":"Bearer","refresh_token":"r-1"}"#,
        )
        .await;
        let code = AuthCode {
            code: secret("the-code"),
            verifier: secret("v".repeat(43).as_str()),
            redirect_uri: "http://127.0.0.1:5003".into(),
        };
        let t = authority.exchange_code(code, 100).await.unwrap();
        assert_eq!(t.refresh.as_ref().map(|r| r.expose().as_str()), Some("r-1"));
        assert_eq!(t.expires_at, 100 + DEFAULT_ACCESS_LIFETIME);
        let request = server.await.unwrap();
        for field in [
            "grant_type=authorization_code",
            "code=the-code",
            &format!("code_verifier={}", "v".repeat(43)),
            "redirect_uri=http%3A%2F%2F127.0.0.1%3A5003",
            "client_id=platform-cli",
        ] {
            assert!(request.contains(field), "{field} missing: {request}");
        }
    }

    #[tokio::test]
    async fn a_sign_in_the_store_refuses_is_held_until_it_can_be_stored() {
        let (authority, _server) = answering_once(
            "200 OK",
            "application/json",
            r#"{"access_token":"a-1","token_type":"Bearer","refresh_token":"r-1"}"#,
        )
        .await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens.json");
        // Something in the way of the token file, as a locked keyring is in the way of a save.
        std::fs::create_dir_all(file.join("in-the-way")).unwrap();
        let session = Session::new(
            authority.profile.clone(),
            TokenStore::File { path: file.clone() },
            Paths::under_home(dir.path(), None),
            Arc::new(crate::SystemClock),
            reqwest::Client::new(),
            None,
        );
        let code = AuthCode {
            code: secret("c"),
            verifier: secret("v"),
            redirect_uri: "http://127.0.0.1:5000".into(),
        };
        let err = session.complete_login(code).await.unwrap_err();
        assert!(matches!(err, AuthError::Store(_)), "{err:?}");
        assert!(session.holds_sign_in(), "the finished sign-in is kept");
        // Still in the way: held again.
        assert!(session.store_held().await.is_err());
        assert!(session.clone().holds_sign_in());
        std::fs::remove_dir_all(&file).unwrap();
        let stored = session.store_held().await.unwrap();
        assert_eq!(stored.access.expose(), "a-1");
        assert!(!session.holds_sign_in());
        assert!(session.has_session().await.unwrap());
        assert!(matches!(
            session.store_held().await,
            Err(AuthError::NotSignedIn)
        ));
    }

    #[tokio::test]
    async fn a_gateway_page_instead_of_a_token_is_a_protocol_error_that_does_not_quote_it() {
        let (authority, _server) = answering_once(
            "502 Bad Gateway",
            "text/html",
            "<html>502 Bad Gateway</html>",
        )
        .await;
        let code = AuthCode {
            code: secret("c"),
            verifier: secret("v"),
            redirect_uri: "http://127.0.0.1:5000".into(),
        };
        let err = authority.exchange_code(code, 0).await.unwrap_err();
        assert!(matches!(err, AuthError::Protocol(_)), "{err:?}");
        assert!(!err.to_string().contains("<html>"), "{err}");
    }

    #[tokio::test]
    async fn an_unreachable_authority_is_a_network_error() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut profile = Profile::platformsh();
        profile.auth_url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let authority = Authority::new(reqwest::Client::new(), profile);
        let err = authority.refresh(&secret("r"), 0).await.unwrap_err();
        assert!(
            matches!(&err, AuthError::Network { url, .. } if url.ends_with("/oauth2/token")),
            "{err:?}"
        );
        let err = authority
            .revoke(&secret("r"), "refresh_token")
            .await
            .unwrap_err();
        assert!(matches!(err, AuthError::Network { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_refused_api_token_says_why() {
        let (authority, server) = answering_once(
            "400 Bad Request",
            "application/json",
            r#"{"error":"invalid_grant","error_description":"invalid API token"}"#,
        )
        .await;
        let err = authority
            .exchange_api_token(&secret("tok"), 0)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, AuthError::BadApiToken(d) if d == "invalid API token"),
            "{err:?}"
        );
        let request = server.await.unwrap();
        assert!(request.contains("grant_type=api_token&api_token=tok&client_id=platform-cli"));
    }

    #[tokio::test]
    async fn revocation_posts_the_token_with_its_kind() {
        let (authority, server) = answering_once("200 OK", "application/json", "").await;
        authority
            .revoke(&secret("r-9"), "refresh_token")
            .await
            .unwrap();
        let request = server.await.unwrap();
        assert!(request.starts_with("POST /oauth2/revoke "), "{request}");
        for field in [
            "token=r-9",
            "token_type_hint=refresh_token",
            "client_id=platform-cli",
        ] {
            assert!(request.contains(field), "{field} missing: {request}");
        }
    }
}
