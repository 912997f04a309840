//! The SSH certificate authority: `POST {auth}/ssh` signs the caller's public key into a user
//! certificate whose key id is the user id and whose extensions carry the token's identity, as
//! the reference describes. The gateway trusts exactly these certificates.

use std::sync::Arc;

use axum::extract::State as AxState;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use rand::RngCore;
use russh::keys::ssh_key::certificate::{Builder, CertType};
use russh::keys::ssh_key::{Algorithm, PublicKey};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::{authenticate, ApiError};
use crate::state::{now, Claims, State};

/// The principal every platform certificate carries and the gateway requires, besides the user id.
pub const PRINCIPAL_PREFIX: &str = "platform-user:";

/// Certificates are valid from a little before they are issued, for clocks that lag.
const BACKDATE: u64 = 60;

#[derive(Deserialize)]
pub struct CertRequest {
    key: Option<String>,
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

/// `POST /ssh`.
pub async fn sign(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    body: Result<Json<CertRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    if state
        .certifier_down
        .load(std::sync::atomic::Ordering::SeqCst)
    {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "The SSH certificate service is unavailable. Try again later.",
        ));
    }
    let claims = authenticate(&state, &headers)?;
    let Json(req) = body.map_err(|e| {
        bad_request(format!(
            "the body must be JSON {{\"key\": \"ssh-ed25519 AAAA…\"}}: {e}"
        ))
    })?;
    let key_text = req
        .key
        .ok_or_else(|| bad_request("the body must name the public key to sign in \"key\""))?;
    let key = PublicKey::from_openssh(key_text.trim())
        .map_err(|e| bad_request(format!("\"key\" is not an OpenSSH public key: {e}")))?;
    if !matches!(
        key.algorithm(),
        Algorithm::Ed25519 | Algorithm::Ecdsa { .. }
    ) {
        return Err(bad_request(format!(
            "keys of type {} are not accepted: send an ed25519 or ECDSA key",
            key.algorithm()
        )));
    }
    let user = state
        .user(&claims.sub)
        .ok_or_else(|| ApiError::unauthorized("The account no longer exists."))?;
    let certificate = issue(&state, &claims, &user.id, &key).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("signing failed: {e}"),
        )
    })?;
    Ok(Json(json!({ "certificate": certificate })))
}

fn issue(
    state: &State,
    claims: &Claims,
    user_id: &str,
    key: &PublicKey,
) -> Result<String, russh::keys::ssh_key::Error> {
    let issued = now();
    let mut nonce = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut nonce);
    let mut builder = Builder::new(
        nonce.to_vec(),
        key.key_data().clone(),
        issued.saturating_sub(BACKDATE),
        issued + state.lifetimes.certificate.as_secs(),
    )?;
    builder
        .serial(rand::thread_rng().next_u64())?
        .cert_type(CertType::User)?
        .key_id(user_id)?
        .valid_principal(format!("{PRINCIPAL_PREFIX}{user_id}"))?
        .extension("permit-pty", "")?
        .extension("permit-port-forwarding", "")?
        .extension("access-id@platform.sh", claims.access_id.as_str())?
        .extension("token-id@platform.sh", claims.jti.as_str())?
        .extension("token-claims@platform.sh", claims.certificate_claims())?;
    if claims.has_mfa() {
        builder.extension("has-mfa@platform.sh", "")?;
    }
    builder.comment(format!("{user_id}@tether-sim"))?;
    let cert = builder.sign(&state.ca)?;
    cert.to_openssh()
}
