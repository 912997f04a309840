//! What an access token says about the session: read (not verified: only the platform can) to
//! match certificates to tokens and to show who is signed in.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    #[serde(default)]
    pub access_id: Option<String>,
    #[serde(default)]
    pub jti: Option<String>,
    #[serde(default)]
    pub amr: Vec<String>,
    #[serde(default)]
    pub auth_time: Option<u64>,
    #[serde(default)]
    pub scp: Option<serde_json::Value>,
    #[serde(default)]
    pub grant: Option<String>,
    #[serde(default)]
    pub act: Option<serde_json::Value>,
    #[serde(default)]
    pub exp: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
#[error("the access token is not a JWT the platform would issue: {0}")]
pub struct ClaimsError(String);

impl Claims {
    pub fn from_jwt(token: &str) -> Result<Claims, ClaimsError> {
        let payload = token
            .split('.')
            .nth(1)
            .ok_or_else(|| ClaimsError("it has no payload".into()))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|e| ClaimsError(e.to_string()))?;
        serde_json::from_slice(&bytes).map_err(|e| ClaimsError(e.to_string()))
    }

    pub fn has_mfa(&self) -> bool {
        self.amr.iter().any(|a| a == "mfa")
    }

    /// The claims a certificate's `token-claims@platform.sh` must match.
    pub fn certificate_claims(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "auth_time": self.auth_time,
            "amr": self.amr,
            "grant": self.grant,
            "scp": self.scp,
        });
        if let (Some(act), Some(obj)) = (&self.act, v.as_object_mut()) {
            obj.insert("act".into(), act.clone());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_read_from_the_payload() {
        let payload =
            URL_SAFE_NO_PAD.encode(br#"{"sub":"u1","jti":"j","amr":["pwd","mfa"],"auth_time":5}"#);
        let c = Claims::from_jwt(&format!("h.{payload}.s")).unwrap();
        assert_eq!(c.sub, "u1");
        assert!(c.has_mfa());
        assert!(Claims::from_jwt("not-a-jwt").is_err());
        assert!(Claims::from_jwt("a.!!!.c").is_err());
    }
}
