//! A typed client of the platform API. Every failure becomes an [`ApiError`] a person can act
//! on: 401 means sign in again; 403 with `insufficient_user_authentication` (RFC 9470) becomes a
//! [`StepUp`] that the shells turn into a login with the right `amr`/`max_age`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::auth::LoginRequest;
use crate::secret::Sensitive;

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

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the platform no longer accepts this session ({0}): sign in again")]
    Unauthorized(String),
    #[error("{}", .0.message(false))]
    StepUp(StepUp),
    #[error("{what} was not found: {message}")]
    NotFound { what: String, message: String },
    #[error("the platform answered HTTP {status} for {url}: {message}")]
    Http {
        status: u16,
        url: String,
        message: String,
    },
    #[error("the platform answered HTTP {status} for {url} with something that is not JSON; try again later")]
    NotJson { status: u16, url: String },
    #[error("cannot reach the platform at {url}: {message}")]
    Network { url: String, message: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub username: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    #[serde(default)]
    pub mfa_enabled: bool,
    #[serde(default)]
    pub sso_enabled: bool,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    amr: Option<Vec<String>>,
    #[serde(default)]
    max_age: Option<u64>,
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

/// What the client needs of a platform response: status, step-up header, body.
pub(crate) struct Reply {
    pub status: u16,
    pub www_authenticate: Option<String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub async fn read(resp: reqwest::Response) -> Result<Reply, reqwest::Error> {
        let status = resp.status().as_u16();
        let www_authenticate = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.bytes().await?.to_vec();
        Ok(Reply {
            status,
            www_authenticate,
            body,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: Url,
}

impl Api {
    pub fn new(http: reqwest::Client, base: Url) -> Api {
        Api { http, base }
    }

    /// GETs a path relative to the API base and decodes its JSON.
    pub async fn get<T: DeserializeOwned>(
        &self,
        token: &Sensitive<String>,
        path: &str,
    ) -> Result<T, ApiError> {
        let url = self
            .base
            .join(path.trim_start_matches('/'))
            .map_err(|e| ApiError::Http {
                status: 0,
                url: path.to_string(),
                message: e.to_string(),
            })?;
        if url.origin() != self.base.origin() {
            // A link to another host must not receive the user's token.
            return Err(ApiError::Http {
                status: 0,
                url: url.to_string(),
                message: "the API linked to another host; refusing to send the session there"
                    .into(),
            });
        }
        let network = |e: reqwest::Error| ApiError::Network {
            url: url.to_string(),
            message: e.to_string(),
        };
        let resp = self
            .http
            .get(url.clone())
            .bearer_auth(token.expose())
            .header("accept", "application/json")
            .send()
            .await
            .map_err(network)?;
        let Reply {
            status,
            www_authenticate: header,
            body,
        } = Reply::read(resp).await.map_err(network)?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&body).map_err(|_| ApiError::NotJson {
                status,
                url: url.to_string(),
            });
        }
        if status == 401 || status == 403 {
            if let Some(step_up) = parse_step_up(header.as_deref(), &body) {
                return Err(ApiError::StepUp(step_up));
            }
        }
        let parsed: Option<ErrorBody> = serde_json::from_slice(&body).ok();
        let Some(parsed) = parsed else {
            return Err(ApiError::NotJson {
                status,
                url: url.to_string(),
            });
        };
        let message = parsed.message.or(parsed.title).unwrap_or_default();
        Err(match status {
            401 => ApiError::Unauthorized(message),
            404 => ApiError::NotFound {
                what: path.to_string(),
                message,
            },
            _ => ApiError::Http {
                status,
                url: url.to_string(),
                message,
            },
        })
    }

    pub async fn me(&self, token: &Sensitive<String>) -> Result<User, ApiError> {
        self.get(token, "users/me").await
    }
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

/// A project the user can reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    pub id: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub organization_id: Option<String>,
}

/// An environment, with the SSH links the platform publishes for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub machine_name: String,
    pub status: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub head_commit: Option<String>,
    /// `pf:ssh:*` link name to `href`, as published (not yet validated).
    #[serde(default)]
    pub ssh_links: std::collections::BTreeMap<String, String>,
}

/// One app (or worker) of the current deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub size: String,
    /// For workers: the app they belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_of: Option<String>,
}

/// The current deployment's apps and workers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    pub apps: Vec<App>,
    pub workers: Vec<App>,
    pub services: Vec<String>,
}

#[derive(Deserialize)]
struct RawEnvironment {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    machine_name: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    head_commit: Option<String>,
    #[serde(rename = "_links", default)]
    links: serde_json::Map<String, serde_json::Value>,
}

impl From<RawEnvironment> for Environment {
    fn from(r: RawEnvironment) -> Environment {
        let ssh_links = r
            .links
            .iter()
            .filter(|(k, _)| k.starts_with("pf:ssh:"))
            .filter_map(|(k, v)| Some((k.clone(), v.get("href")?.as_str()?.to_string())))
            .collect();
        Environment {
            name: r.name.unwrap_or_else(|| r.id.clone()),
            machine_name: r.machine_name.unwrap_or_default(),
            status: r.status.unwrap_or_else(|| "unknown".into()),
            kind: r.kind.unwrap_or_default(),
            head_commit: r.head_commit,
            id: r.id,
            ssh_links,
        }
    }
}

impl Api {
    /// The projects the user can reach: extended access, then the project refs it links to.
    pub async fn projects(
        &self,
        token: &Sensitive<String>,
        user_id: &str,
    ) -> Result<Vec<Project>, ApiError> {
        let access: serde_json::Value = self
            .get(
                token,
                &format!("users/{user_id}/extended-access?filter%5Bresource_type%5D=project"),
            )
            .await?;
        let ids: Vec<String> = access["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter(|i| i["resource_type"] == "project")
                    .filter_map(|i| i["resource_id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let mut refs = serde_json::Map::new();
        let mut index = 0;
        while let Some(href) = access["_links"][format!("ref:projects:{index}")]["href"].as_str() {
            let page: serde_json::Value = self.get(token, href).await?;
            if let Some(obj) = page.as_object() {
                refs.extend(obj.clone());
            }
            index += 1;
        }
        let mut projects: Vec<Project> = ids
            .iter()
            .map(|id| {
                refs.get(id)
                    .and_then(|v| serde_json::from_value(v.clone()).ok())
                    .unwrap_or(Project {
                        id: id.clone(),
                        title: String::new(),
                        region: String::new(),
                        organization_id: None,
                    })
            })
            .collect();
        projects.sort_by(|a, b| {
            a.title
                .to_lowercase()
                .cmp(&b.title.to_lowercase())
                .then(a.id.cmp(&b.id))
        });
        Ok(projects)
    }

    pub async fn environments(
        &self,
        token: &Sensitive<String>,
        project: &str,
    ) -> Result<Vec<Environment>, ApiError> {
        let raw: Vec<RawEnvironment> = self
            .get(token, &format!("projects/{project}/environments"))
            .await?;
        Ok(raw.into_iter().map(Environment::from).collect())
    }

    pub async fn environment(
        &self,
        token: &Sensitive<String>,
        project: &str,
        env: &str,
    ) -> Result<Environment, ApiError> {
        let raw: RawEnvironment = self
            .get(token, &format!("projects/{project}/environments/{env}"))
            .await?;
        Ok(raw.into())
    }

    /// The current deployment, or `None` when the environment has none.
    pub async fn deployment(
        &self,
        token: &Sensitive<String>,
        project: &str,
        env: &str,
    ) -> Result<Option<Deployment>, ApiError> {
        let raw: serde_json::Value = match self
            .get(
                token,
                &format!("projects/{project}/environments/{env}/deployments/current"),
            )
            .await
        {
            Ok(v) => v,
            Err(ApiError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let apps_of = |key: &str| -> Vec<App> {
            raw[key]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(name, v)| App {
                            name: name.clone(),
                            kind: v["type"].as_str().unwrap_or_default().to_string(),
                            size: v["size"].as_str().unwrap_or_default().to_string(),
                            worker_of: (key == "workers")
                                .then(|| name.split_once("--").map(|(a, _)| a.to_string()))
                                .flatten(),
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(Some(Deployment {
            apps: apps_of("webapps"),
            workers: apps_of("workers"),
            services: raw["services"]
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default(),
        }))
    }
}
