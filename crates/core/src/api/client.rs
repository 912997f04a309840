//! The HTTP side of the API: GETs with the session's token, never sent to another host, and
//! every failure turned into an [`ApiError`].

use serde::de::DeserializeOwned;
use url::Url;

use super::model::{
    App, Deployment, Environment, EnvironmentId, Project, ProjectId, RawEnvironment, User,
};
use super::step_up::{parse_step_up, ErrorBody};
use super::ApiError;
use crate::secret::Sensitive;

/// The most a platform response's body may hold (4 MiB). The largest real answers (an
/// organization's environment list) are far smaller; a body past this is not read further,
/// so a broken or hostile server cannot make Tether hold what it sends.
pub const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// What the client needs of a platform response: status, step-up header, body.
pub(crate) struct Reply {
    pub status: u16,
    pub www_authenticate: Option<String>,
    pub body: Vec<u8>,
}

/// Why a response's body could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    Network(reqwest::Error),
    /// The body passed [`BODY_LIMIT`].
    TooLarge,
}

impl Reply {
    /// Reads a response; a body past [`BODY_LIMIT`] is [`ReadError::TooLarge`].
    pub async fn read_bounded(resp: reqwest::Response) -> Result<Reply, ReadError> {
        Reply::read_within(resp, BODY_LIMIT)
            .await
            .map_err(|(e, _)| e)
    }

    /// Reads chunk by chunk, stopping at `limit`: on failure, what was read so far.
    async fn read_within(
        mut resp: reqwest::Response,
        limit: usize,
    ) -> Result<Reply, (ReadError, Reply)> {
        let mut reply = Reply {
            status: resp.status().as_u16(),
            www_authenticate: resp
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            body: Vec::new(),
        };
        if resp
            .content_length()
            .is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX))
        {
            return Err((ReadError::TooLarge, reply));
        }
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    let room = limit.saturating_sub(reply.body.len());
                    if chunk.len() > room {
                        reply.body.extend_from_slice(&chunk[..room]);
                        return Err((ReadError::TooLarge, reply));
                    }
                    reply.body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(reply),
                Err(e) => return Err((ReadError::Network(e), reply)),
            }
        }
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
        } = Reply::read_bounded(resp).await.map_err(|e| match e {
            ReadError::Network(e) => network(e),
            ReadError::TooLarge => ApiError::TooLarge {
                url: url.to_string(),
                limit: BODY_LIMIT,
            },
        })?;
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
        let ids: Vec<ProjectId> = access["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter(|i| i["resource_type"] == "project")
                    .filter_map(|i| i["resource_id"].as_str())
                    .filter_map(|id| match ProjectId::parse(id) {
                        Ok(id) => Some(id),
                        Err(e) => {
                            tracing::warn!(error = %e, "the platform listed a project Tether cannot use");
                            None
                        }
                    })
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
                refs.get(id.as_str())
                    .and_then(|v| serde_json::from_value(v.clone()).ok())
                    .unwrap_or(Project {
                        id: id.clone(),
                        title: String::new(),
                        region: String::new(),
                        organization_id: None,
                        default_branch: None,
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

    /// One project's own record (`GET /projects/{id}`), which has what the list's refs lack,
    /// such as its `default_branch`.
    pub async fn project(
        &self,
        token: &Sensitive<String>,
        project: &ProjectId,
    ) -> Result<Project, ApiError> {
        self.get(token, &format!("projects/{project}")).await
    }

    pub async fn environments(
        &self,
        token: &Sensitive<String>,
        project: &ProjectId,
    ) -> Result<Vec<Environment>, ApiError> {
        let raw: Vec<RawEnvironment> = self
            .get(token, &format!("projects/{project}/environments"))
            .await?;
        Ok(raw.into_iter().map(Environment::from).collect())
    }

    pub async fn environment(
        &self,
        token: &Sensitive<String>,
        project: &ProjectId,
        env: &EnvironmentId,
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
        project: &ProjectId,
        env: &EnvironmentId,
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that answers every request with `body_len` bytes of `[`, announced or chunked.
    async fn server(body_len: usize, announced: bool) -> Url {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let head = if announced {
                    format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {body_len}\r\n\r\n")
                } else {
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n"
                        .to_string()
                };
                let _ = sock.write_all(head.as_bytes()).await;
                let chunk = vec![b'['; 64 * 1024];
                let mut left = body_len;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if sock.write_all(&chunk[..n]).await.is_err() {
                        break;
                    }
                    left -= n;
                }
            }
        });
        Url::parse(&format!("http://{addr}/")).unwrap()
    }

    #[tokio::test]
    async fn a_body_past_four_mib_is_refused_by_size_not_read_whole() {
        for announced in [true, false] {
            let api = Api::new(
                reqwest::Client::new(),
                server(5 * 1024 * 1024, announced).await,
            );
            let token = Sensitive::new("t".to_string());
            let err = api
                .get::<serde_json::Value>(&token, "users/me")
                .await
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    ApiError::TooLarge {
                        limit: BODY_LIMIT,
                        ..
                    }
                ),
                "{err:?}"
            );
            assert!(err.to_string().contains("larger than the 4 MiB"), "{err}");
        }
    }

    #[tokio::test]
    async fn a_body_just_under_the_limit_is_read() {
        let api = Api::new(reqwest::Client::new(), server(BODY_LIMIT, true).await);
        let token = Sensitive::new("t".to_string());
        // Read whole (4 MiB of `[` is not JSON, which is the next thing said).
        let err = api
            .get::<serde_json::Value>(&token, "users/me")
            .await
            .unwrap_err();
        assert!(matches!(err, ApiError::NotJson { .. }), "{err:?}");
    }
}
