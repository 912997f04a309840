//! The platform's memory while it runs: the fixture (swappable, so tests can pause an
//! environment), sign-in transactions, browser sessions, authorization codes, grants and
//! refresh tokens, and the keys that sign tokens and certificates.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use russh::keys::PrivateKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fixture::{EnvStatus, Fixture, User};

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A random URL-safe token of `bytes` bytes of entropy.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// Secrets are stored hashed so that a dump of the state never shows a usable token.
pub fn hash_secret(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes()))
}

/// The claims of an access token, as the reference lists them (`sid` names the grant so that
/// revoking a session invalidates its access tokens too).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub exp: u64,
    pub iat: u64,
    pub jti: String,
    pub access_id: String,
    pub amr: Vec<String>,
    pub auth_time: u64,
    pub scp: Vec<String>,
    pub grant: String,
    pub sid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<serde_json::Value>,
}

impl Claims {
    pub fn has_mfa(&self) -> bool {
        self.amr.iter().any(|a| a == "mfa")
    }

    /// The `token-claims@platform.sh` certificate extension.
    pub fn certificate_claims(&self) -> String {
        let mut v = serde_json::json!({
            "auth_time": self.auth_time,
            "amr": self.amr,
            "grant": self.grant,
            "scp": self.scp,
        });
        if let (Some(act), Some(obj)) = (&self.act, v.as_object_mut()) {
            obj.insert("act".into(), act.clone());
        }
        v.to_string()
    }
}

/// One sign-in: everything the tokens of a session inherit.
#[derive(Debug, Clone)]
pub struct Grant {
    pub user_id: String,
    pub amr: Vec<String>,
    pub auth_time: u64,
    pub scope: Vec<String>,
    pub grant_type: &'static str,
    pub revoked: bool,
}

#[derive(Debug, Clone)]
pub struct RefreshEntry {
    pub grant_id: String,
    pub used: bool,
}

#[derive(Debug, Clone)]
pub struct CodeEntry {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub grant_id: String,
    pub expires_at: u64,
    pub used: bool,
}

/// An authorization code the token endpoint exchanged, with the PKCE verifier that redeemed it.
/// Both are spent (a code works once), so keeping them in the clear grants nothing; tests read
/// them to check that a client never shows them, in its logs say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedeemedCode {
    pub code: String,
    pub verifier: String,
}

/// A browser's progress through the login page, keyed by an unguessable id in the form.
#[derive(Debug, Clone)]
pub struct LoginTxn {
    pub client_id: String,
    pub redirect_uri: String,
    pub state: String,
    pub code_challenge: String,
    pub scope: Vec<String>,
    pub required_amr: Vec<String>,
    pub user_id: Option<String>,
    pub amr: Vec<String>,
    pub auth_time: u64,
    pub created: u64,
}

/// A browser session (cookie), so that a second authorize can skip the password unless
/// `max_age` demands a fresh login.
#[derive(Debug, Clone)]
pub struct BrowserSession {
    pub user_id: String,
    pub amr: Vec<String>,
    pub auth_time: u64,
}

#[derive(Default)]
pub struct Mutable {
    pub txns: HashMap<String, LoginTxn>,
    pub browser_sessions: HashMap<String, BrowserSession>,
    pub codes: HashMap<String, CodeEntry>,
    pub grants: HashMap<String, Grant>,
    pub refresh_tokens: HashMap<String, RefreshEntry>,
    pub redeemed_codes: Vec<RedeemedCode>,
}

/// Lifetimes and keys that tests and the binary choose.
#[derive(Debug, Clone)]
pub struct Lifetimes {
    pub access_token: Duration,
    pub certificate: Duration,
    pub code: Duration,
}

/// How the token endpoint answers renewals (`refresh_token` and `api_token` grants) while a
/// test makes it fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewalFailure {
    /// 502 with an HTML page, as a proxy in front of a dead server answers.
    BadGateway,
    /// 503 with the OAuth error `temporarily_unavailable`.
    TemporarilyUnavailable,
    /// 400 `invalid_grant`: the session is over.
    InvalidGrant,
}

pub struct State {
    /// When set, the certifier answers 503 (an outage of that service alone).
    pub certifier_down: std::sync::atomic::AtomicBool,
    /// When set, the sign-in page carries the desktop tests' navigation probes
    /// (`crate::probes`).
    pub navigation_probes: std::sync::atomic::AtomicBool,
    /// When set, renewals at the token endpoint fail this way.
    pub renewal_failure: Mutex<Option<RenewalFailure>>,
    /// Access tokens (by `jti`) ended before they expire, their session going on.
    ended_access_tokens: Mutex<std::collections::HashSet<String>>,
    fixture: RwLock<Arc<Fixture>>,
    inner: Mutex<Mutable>,
    pub lifetimes: Lifetimes,
    pub auth_url: String,
    pub api_url: String,
    pub backends: BTreeMap<String, SocketAddr>,
    pub ca: PrivateKey,
    pub host_key: PrivateKey,
    pub scratch_dir: PathBuf,
    jwt_encoding: EncodingKey,
    jwt_decoding: DecodingKey,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the access token is malformed or its signature is wrong")]
    Invalid,
    #[error("the access token has expired")]
    Expired,
    #[error("the session was revoked: log in again")]
    Revoked,
}

impl State {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        fixture: Fixture,
        lifetimes: Lifetimes,
        auth_url: String,
        api_url: String,
        backends: BTreeMap<String, SocketAddr>,
        ca: PrivateKey,
        host_key: PrivateKey,
        scratch_dir: PathBuf,
    ) -> Self {
        let mut secret = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut secret);
        State {
            certifier_down: std::sync::atomic::AtomicBool::new(false),
            navigation_probes: std::sync::atomic::AtomicBool::new(false),
            renewal_failure: Mutex::new(None),
            ended_access_tokens: Mutex::new(std::collections::HashSet::new()),
            fixture: RwLock::new(Arc::new(fixture)),
            inner: Mutex::new(Mutable::default()),
            lifetimes,
            auth_url,
            api_url,
            backends,
            ca,
            host_key,
            scratch_dir,
            jwt_encoding: EncodingKey::from_secret(&secret),
            jwt_decoding: DecodingKey::from_secret(&secret),
        }
    }

    /// A snapshot of the fixture; cheap, and consistent for the whole request.
    pub fn fixture(&self) -> Arc<Fixture> {
        match self.fixture.read() {
            Ok(f) => f.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Changes an environment's status (tests pause and resume environments).
    pub fn set_environment_status(&self, project: &str, env: &str, status: EnvStatus) -> bool {
        let mut guard = match self.fixture.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut next = (**guard).clone();
        let found = next
            .projects
            .iter_mut()
            .filter(|p| p.id == project)
            .flat_map(|p| p.environments.iter_mut())
            .find(|e| e.id == env)
            .map(|e| e.status = status)
            .is_some();
        *guard = Arc::new(next);
        found
    }

    /// Redeploys an environment: it gets a new head commit (derived from the old one, so runs
    /// are reproducible), and with `relationships`, the app named gets those relationships
    /// (name → `service:endpoint`) and `PLATFORM_RELATIONSHIPS` built from them, as a changed
    /// app configuration would. Apps are defined per project here, so the new relationships
    /// show in every environment of the project. The new head commit, or `None` when the
    /// project, environment or app does not exist (then nothing changes).
    pub fn redeploy(
        &self,
        project: &str,
        env: &str,
        relationships: Option<(&str, BTreeMap<String, String>)>,
    ) -> Option<String> {
        let mut guard = match self.fixture.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut next = (**guard).clone();
        let p = next.projects.iter_mut().find(|p| p.id == project)?;
        if let Some((app, relationships)) = relationships {
            let app = p.apps.iter_mut().find(|a| a.name == app)?;
            app.relationships = relationships;
            app.relationships_variable = None;
        }
        let e = p.environments.iter().find(|e| e.id == env)?;
        let old = crate::model::head_commit(p, e);
        let head = crate::model::hex(&Sha256::digest(format!("{old}/redeploy"))[..20]);
        let e = p.environments.iter_mut().find(|e| e.id == env)?;
        e.head_commit = Some(head.clone());
        *guard = Arc::new(next);
        Some(head)
    }

    pub fn lock(&self) -> MutexGuard<'_, Mutable> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Records a new sign-in and returns its id.
    pub fn new_grant(&self, grant: Grant) -> String {
        let id = random_token(16);
        self.lock().grants.insert(id.clone(), grant);
        id
    }

    /// Revokes an API token, as its owner would in the console: it can no longer be exchanged,
    /// and the sessions it opened end (their access tokens are refused). Says whether it existed.
    pub fn revoke_api_token(&self, token: &str) -> bool {
        let owner = {
            let mut guard = match self.fixture.write() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            let mut next = (**guard).clone();
            let Some(at) = next.api_tokens.iter().position(|t| t.token == token) else {
                return false;
            };
            let removed = next.api_tokens.remove(at);
            *guard = Arc::new(next);
            guard.user_by_name(&removed.user).map(|u| u.id.clone())
        };
        // Grants do not record which token opened them: every API-token session of its owner.
        for g in self.lock().grants.values_mut() {
            if Some(&g.user_id) == owner.as_ref() && g.grant_type == "api_token" {
                g.revoked = true;
            }
        }
        true
    }

    pub fn revoke_grant(&self, grant_id: &str) {
        if let Some(g) = self.lock().grants.get_mut(grant_id) {
            g.revoked = true;
        }
    }

    /// Signs an access token for a grant.
    pub fn issue_access_token(&self, grant_id: &str) -> Option<(String, Claims)> {
        let grant = self.lock().grants.get(grant_id).cloned()?;
        let fixture = self.fixture();
        let user = fixture.user_by_id(&grant.user_id)?;
        let iat = now();
        let claims = Claims {
            iss: self.auth_url.clone(),
            sub: user.id.clone(),
            exp: iat + self.lifetimes.access_token.as_secs(),
            iat,
            jti: random_token(16),
            access_id: user.access_id(),
            amr: grant.amr.clone(),
            auth_time: grant.auth_time,
            scp: grant.scope.clone(),
            grant: grant.grant_type.to_string(),
            sid: grant_id.to_string(),
            act: None,
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.jwt_encoding)
                .ok()?;
        Some((token, claims))
    }

    /// Issues a refresh token for a grant.
    pub fn issue_refresh_token(&self, grant_id: &str) -> String {
        let token = random_token(32);
        self.lock().refresh_tokens.insert(
            hash_secret(&token),
            RefreshEntry {
                grant_id: grant_id.to_string(),
                used: false,
            },
        );
        token
    }

    /// Checks an access token: signature, expiry, and that its session was not revoked.
    pub fn verify_access_token(&self, token: &str) -> Result<Claims, TokenError> {
        let claims = self.decode_access_token(token, true)?;
        let revoked = self
            .lock()
            .grants
            .get(&claims.sid)
            .map(|g| g.revoked)
            .unwrap_or(true);
        let ended = self
            .ended_access_tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&claims.jti);
        if revoked || ended {
            return Err(TokenError::Revoked);
        }
        Ok(claims)
    }

    /// Ends one access token before it expires (as a platform may, after a password change),
    /// while its session and refresh token go on. Says whether it was one of ours.
    pub fn end_access_token(&self, token: &str) -> bool {
        let Ok(claims) = self.decode_access_token(token, false) else {
            return false;
        };
        self.ended_access_tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(claims.jti);
        true
    }

    /// Decodes an access token; `check_expiry` false is for revocation of expired tokens.
    pub fn decode_access_token(
        &self,
        token: &str,
        check_expiry: bool,
    ) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_exp = check_expiry;
        validation.required_spec_claims.clear();
        validation.set_issuer(&[self.auth_url.as_str()]);
        jsonwebtoken::decode::<Claims>(token, &self.jwt_decoding, &validation)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }

    pub fn user(&self, id: &str) -> Option<User> {
        self.fixture().user_by_id(id).cloned()
    }
}
