//! Step-up: the platform's demand for a stronger sign-in (RFC 9470
//! `insufficient_user_authentication`), read from a `WWW-Authenticate` header or a JSON body.

use serde::Deserialize;

use crate::auth::LoginRequest;

/// What stronger authentication the platform asks for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepUpKind {
    Mfa,
    Sso(String),
    RecentLogin,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StepUp {
    pub kind: StepUpKind,
    pub amr: Vec<String>,
    pub max_age: Option<u64>,
}

impl StepUp {
    /// The step-up that asks for these authentication methods (and login age).
    pub fn for_amr(amr: Vec<String>, max_age: Option<u64>) -> StepUp {
        let kind = if let Some(sso) = amr.iter().find(|a| a.starts_with("sso")) {
            StepUpKind::Sso(sso.clone())
        } else if amr.iter().any(|a| a == "mfa") {
            StepUpKind::Mfa
        } else {
            StepUpKind::RecentLogin
        };
        StepUp { kind, amr, max_age }
    }

    /// The sign-in that satisfies this step-up.
    pub fn login_request(&self) -> LoginRequest {
        LoginRequest {
            amr: self.amr.clone(),
            max_age: self.max_age,
        }
    }

    /// What is required, as the official client words it.
    pub fn requirement(&self) -> &'static str {
        match &self.kind {
            StepUpKind::Mfa => "Multi-factor authentication (MFA) is required.",
            StepUpKind::Sso(_) => "Single sign-on (SSO) is required.",
            StepUpKind::RecentLogin => "More recent authentication is required.",
        }
    }

    /// The message for people, as the official client words it.
    pub fn message(&self, with_api_token: bool) -> String {
        let mut m = self.requirement().to_string();
        if with_api_token {
            m.push_str(" The API token may need to be re-created after enabling MFA.");
        } else {
            m.push_str(match &self.kind {
                StepUpKind::Mfa => " Sign in again with MFA.",
                StepUpKind::Sso(_) => " Sign in again with single sign-on.",
                StepUpKind::RecentLogin => " Sign in again.",
            });
        }
        m
    }
}

#[derive(Deserialize)]
pub(super) struct ErrorBody {
    #[serde(default)]
    pub(super) message: Option<String>,
    #[serde(default)]
    pub(super) title: Option<String>,
    #[serde(default)]
    pub(super) amr: Option<Vec<String>>,
    #[serde(default)]
    pub(super) max_age: Option<u64>,
}

/// `key="value"` parameters of a `WWW-Authenticate: Bearer …` header.
fn auth_params(header: &str) -> Vec<(String, String)> {
    let rest = header.trim().strip_prefix("Bearer").unwrap_or(header);
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',')).collect();
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('=') {
            continue;
        }
        let value = if chars.peek() == Some(&'"') {
            chars.next();
            let mut v = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => v.extend(chars.next()),
                    '"' => break,
                    c => v.push(c),
                }
            }
            v
        } else {
            std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect::<String>()
        };
        out.push((key.trim().to_string(), value.trim().to_string()));
    }
    out
}

/// Recognizes an RFC 9470 step-up answer from its header and body.
pub fn parse_step_up(www_authenticate: Option<&str>, body: &[u8]) -> Option<StepUp> {
    let params = www_authenticate.map(auth_params).unwrap_or_default();
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let body_error = parsed
        .as_ref()
        .and_then(|v| v["error"].as_str().map(str::to_string));
    let marker = "insufficient_user_authentication";
    if param("error").as_deref() != Some(marker) && body_error.as_deref() != Some(marker) {
        return None;
    }
    let body: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let mut amr: Vec<String> = body
        .as_ref()
        .and_then(|b| b.amr.clone())
        .unwrap_or_default();
    if amr.is_empty() {
        amr = param("amr")
            .or_else(|| param("acr_values"))
            .map(|v| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
    }
    let max_age = body
        .as_ref()
        .and_then(|b| b.max_age)
        .or_else(|| param("max_age").and_then(|v| v.parse().ok()));
    Some(StepUp::for_amr(amr, max_age))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_up_is_read_from_the_header_or_the_body() {
        let h = r#"Bearer error="insufficient_user_authentication", error_description="MFA, please", amr="mfa""#;
        let s = parse_step_up(Some(h), b"").unwrap();
        assert_eq!(s.kind, StepUpKind::Mfa);
        assert_eq!(s.login_request().amr, vec!["mfa"]);
        let s = parse_step_up(
            None,
            br#"{"error":"insufficient_user_authentication","amr":["sso:acme"]}"#,
        )
        .unwrap();
        assert_eq!(s.kind, StepUpKind::Sso("sso:acme".into()));
        let s = parse_step_up(
            Some(r#"Bearer error="insufficient_user_authentication", max_age="300""#),
            b"",
        )
        .unwrap();
        assert_eq!(
            (s.kind.clone(), s.max_age),
            (StepUpKind::RecentLogin, Some(300))
        );
        assert!(s
            .message(false)
            .starts_with("More recent authentication is required."));
        assert!(parse_step_up(Some(r#"Bearer error="invalid_token""#), b"{}").is_none());
    }

    #[test]
    fn api_token_users_are_told_the_token_may_need_recreating() {
        let s = StepUp {
            kind: StepUpKind::Mfa,
            amr: vec!["mfa".into()],
            max_age: None,
        };
        assert_eq!(
            s.message(true),
            "Multi-factor authentication (MFA) is required. The API token may need to be re-created after enabling MFA."
        );
        // Core says what to do in words; each shell names its own command or button.
        assert_eq!(
            s.message(false),
            "Multi-factor authentication (MFA) is required. Sign in again with MFA."
        );
    }
}
